package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/local/dynamolocal"
)

// TestDemoConnect runs the --connect demo in-process and plays the browser
// with a plain HTTP client: it opens the printed signed-in redirect, and
// the demo reports the Connect call (state and code masked) and succeeds.
func TestDemoConnect(t *testing.T) {
	if dynamolocal.Skipped() {
		t.Skipf("the demo needs DynamoDB Local (%s=1)", dynamolocal.EnvSkip)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runConnect(ctx, config{timeout: time.Minute, connect: true}, pw)
		pw.CloseWithError(io.EOF)
		done <- err
	}()
	var out strings.Builder
	var redirect string
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if u, ok := strings.CutPrefix(strings.TrimSpace(line), "signed in:"); ok && redirect == "" {
			redirect = strings.TrimSpace(u)
			go func() {
				resp, err := http.Get(redirect)
				if err != nil {
					t.Errorf("GET the redirect: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("the redirect answered %d", resp.StatusCode)
				}
			}()
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	text := out.String()
	if redirect == "" {
		t.Fatalf("no signed-in redirect printed:\n%s", text)
	}
	u, err := url.Parse(redirect)
	if err != nil {
		t.Fatal(err)
	}
	state, code := u.Query().Get("state"), u.Query().Get("code")
	for _, want := range []string{"Amazon Connect received UpdateParticipantAuthentication", "(masked)", "CODE_RECEIVED", "stopped: no process left"} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q:\n%s", want, text)
		}
	}
	// After the URLs, the state and the code appear only masked.
	_, after, _ := strings.Cut(text, "waiting up to")
	if strings.Contains(after, state) || strings.Contains(after, code) {
		t.Errorf("the report shows the state or the code in clear:\n%s", after)
	}
}
