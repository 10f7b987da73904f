package awsconf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/smithy-go/logging"

	"github.com/consentflow/consentflow/internal/adapters/awsconf"
)

// The SDK's warnings are JSON records like every other line of a function.
func TestSDKLogLinesAreJSON(t *testing.T) {
	var buf bytes.Buffer
	var seen context.Context
	log := slog.New(ctxHandler{slog.NewJSONHandler(&buf, nil), &seen})
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "req-1")
	l := logging.WithContext(ctx, awsconf.Logger(func() *slog.Logger { return log }))
	l.Logf(logging.Warn, "failed to close HTTP response body, %v", "expected checksum, 0, 42")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not one JSON record: %q", buf.String())
	}
	if seen == nil || seen.Value(key{}) != "req-1" {
		t.Fatal("the SDK call's context did not reach the handler (no request id on the line)")
	}
	if rec["level"] != "WARN" || rec["source"] != "aws-sdk" || rec["msg"] != "failed to close HTTP response body, expected checksum, 0, 42" {
		t.Fatalf("record %v", rec)
	}
}

// ctxHandler records the context a record was logged with.
type ctxHandler struct {
	slog.Handler
	seen *context.Context
}

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	*h.seen = ctx
	return h.Handler.Handle(ctx, r)
}

type closeCount struct {
	*strings.Reader // a WriterTo, as smithy-go's body is
	n               int
}

func (c *closeCount) Close() error { c.n++; return errors.New("closed twice") }

type doer struct{ req *http.Request }

func (d *doer) Do(r *http.Request) (*http.Response, error) { d.req = r; return &http.Response{}, nil }

// The body net/http gets is a Reader and a Closer only: smithy-go's WriteTo
// answers io.EOF once it is closed, which net/http takes for a write error.
// Closing it twice reaches the body once.
func TestRequestBodyClosedOnce(t *testing.T) {
	body := &closeCount{Reader: strings.NewReader("{}")}
	var _ io.WriterTo = body
	d := &doer{}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/", body)
	if _, err := awsconf.PlainRequestBodies(d).Do(req); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.req.Body.(io.WriterTo); ok {
		t.Fatal("the body net/http gets implements io.WriterTo")
	}
	a, b := d.req.Body.Close(), d.req.Body.Close()
	if body.n != 1 || a == nil || b != a {
		t.Fatalf("closed %d times: %v %v", body.n, a, b)
	}
}
