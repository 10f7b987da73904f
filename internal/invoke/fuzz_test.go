package invoke_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// FuzzHandle drives the initiate Lambda handler with arbitrary events: it
// never panics; the domain gets exactly the request flow.ParseRequest
// makes of the event, or is not called; an event ParseRequest refuses is
// answered with errorType consentflow.InvalidInput and ParseRequest's own
// safe message, and the log holds nothing more of the event than that.
// (FuzzParseRequest in internal/flow checks the decoder itself.)
func FuzzHandle(f *testing.F) {
	for _, s := range []string{
		`{"userId":"u-1","provider":"github","scopes":["repo"]}`,
		`{"taskToken":"tok-1","input":{"userToken":"eyJh.eyJz.c2ln","provider":"github","scopes":["repo"]}}`,
		`{"taskToken":"tok-1"}`, `{"userId":"u","provider":"p","scopes":["s"],"secretField":"SECRET-VALUE-1"}`,
		`{"userToken":12345678,"provider":"p"}`, `[]`, `null`, ``, `{`, `{"a":1} {"b":2}`,
	} {
		f.Add([]byte(s))
	}
	res := &flow.Result{Status: flow.StatusAuthorizationRequired, Provider: "github", CorrelationID: "c-1"}
	f.Fuzz(func(t *testing.T, event []byte) {
		d := &domain{res: res}
		h, logs := handler(d)
		got, err := h.Handle(context.Background(), json.RawMessage(event))
		want, perr := flow.ParseRequest(event)
		if perr == nil {
			if len(d.calls) != 1 || !reflect.DeepEqual(d.calls[0], want) || got != res || err != nil {
				t.Fatalf("event %q: domain calls %+v, result %v, %v; want one call with %+v", event, d.calls, got, err, want)
			}
			return
		}
		if len(d.calls) != 0 || got != nil {
			t.Fatalf("refused event %q reached the domain: %+v", event, d.calls)
		}
		e := lambdaError(t, err)
		if e.Type != contract.ErrInvalidInput || e.Message != perr.(*flow.Failure).Message {
			t.Fatalf("event %q: error %+v, want %v", event, e, perr)
		}
		if strings.Contains(logs.String(), "SECRET-VALUE") && !strings.Contains(e.Message, "SECRET-VALUE") {
			t.Fatalf("log holds more of the event than the message: %s", logs.String())
		}
	})
}
