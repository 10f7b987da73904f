package inprocess

import (
	"context"
	"encoding/json"
	"github.com/consentflow/consentflow/internal/testenv/dynamotest"
	"io"
	"net/http"
	"testing"

	"github.com/consentflow/consentflow/internal/local/runner"
)

// BenchmarkInitiate measures one initiate invocation end to end: workload
// token and GetResourceOauth2Token at the emulator, the conditional
// two-item transaction in DynamoDB Local, PutEvents and MarkNotified.
func BenchmarkInitiate(b *testing.B) {
	s, err := runner.Start(context.Background(), runner.Options{DynamoDB: dynamotest.Shared(b), Table: dynamotest.TableName(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	for b.Loop() {
		tok := s.SFN.NewTask()
		if _, err := s.Initiate(context.Background(), json.RawMessage(`{"taskToken":"`+tok+`","input":{"userId":"bench","provider":"github","scopes":["repo"]}}`)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallbackPage measures the confirmation page: API Gateway
// stand-in, session lookup in DynamoDB Local, state check, HTML render.
func BenchmarkCallbackPage(b *testing.B) {
	s, err := runner.Start(context.Background(), runner.Options{DynamoDB: dynamotest.Shared(b), Table: dynamotest.TableName(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	f := &fixture{t: b, s: s, logs: &syncBuffer{}, http: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	a := f.initiate(`{"userId":"bench","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	b.ReportAllocs()
	for b.Loop() {
		resp, err := f.http.Get(a.callback)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
