package awsconf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
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
