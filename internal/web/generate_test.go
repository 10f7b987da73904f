package web

import (
	"bytes"
	"go/format"
	"os"
	"strings"
	"testing"

	"github.com/a-h/templ"
	"github.com/a-h/templ/generator"
	parser "github.com/a-h/templ/parser/v2"

	"github.com/consentflow/consentflow/internal/flow"
)

// TestGeneratedPagesAreCurrent regenerates pages_templ.go from pages.templ
// in memory, as `go generate ./internal/web` (templ generate) does, and
// fails when the committed file differs: edit pages.templ, then run it.
func TestGeneratedPagesAreCurrent(t *testing.T) {
	tf, err := parser.Parse("pages.templ")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := generator.Generate(tf, &b, generator.WithFileName("pages.templ"), generator.WithVersion(templ.Version())); err != nil {
		t.Fatal(err)
	}
	want, err := format.Source(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("pages_templ.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("pages_templ.go is stale or was edited by hand (templ %s): run `go generate ./internal/web`", templ.Version())
	}
}

// TestStyleStaysInItsElement: the stylesheet is written verbatim inside
// <style>; "</" in it could end the element early.
func TestStyleStaysInItsElement(t *testing.T) {
	if strings.Contains(style, "</") || strings.Contains(style, "<!--") {
		t.Fatal("templates/style.css contains \"</\" or \"<!--\"")
	}
	_, body := render(&flow.Outcome{Kind: flow.KindConnected}, "")
	if !strings.Contains(body, "<style>"+style+"</style>") {
		t.Fatal("the page does not carry the stylesheet the CSP hash is computed from, byte for byte")
	}
}
