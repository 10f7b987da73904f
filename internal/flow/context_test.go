package flow_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// The workflow contract's correlationId and context: validated before any
// call, the context kept in the compact form json.Marshal gives.
func TestCorrelationIDAndContextInput(t *testing.T) {
	base := `"userId":"u","provider":"p","scopes":["s"]`
	big := `{"k":"` + strings.Repeat("x", flow.MaxContext-8) + `"}`
	for _, c := range []struct {
		name, raw string
		ok        bool
		wantCtx   string
	}{
		{"none", `{` + base + `}`, true, ""},
		{"given", `{` + base + `,"correlationId":"conv-42:turn.7_a"}`, true, ""},
		{"id of 64", `{` + base + `,"correlationId":"` + strings.Repeat("a", 64) + `"}`, true, ""},
		{"id of 65", `{` + base + `,"correlationId":"` + strings.Repeat("a", 65) + `"}`, false, ""},
		{"id with space", `{` + base + `,"correlationId":"a b"}`, false, ""},
		{"id with slash", `{` + base + `,"correlationId":"a/b"}`, false, ""},
		{"id not ASCII", `{` + base + `,"correlationId":"é"}`, false, ""},
		{"id wrong type", `{` + base + `,"correlationId":7}`, false, ""},
		{"context", `{` + base + `,"context":{ "chat" : "c-1", "n": [1, 2] }}`, true, `{"chat":"c-1","n":[1,2]}`},
		{"context html", `{` + base + `,"context":{"a":"<b>&"}}`, true, `{"a":"\u003cb\u003e\u0026"}`},
		{"context null", `{` + base + `,"context":null}`, true, ""},
		{"context empty object", `{` + base + `,"context":{}}`, true, `{}`},
		{"context array", `{` + base + `,"context":[1]}`, false, ""},
		{"context string", `{` + base + `,"context":"secret-context"}`, false, ""},
		{"context number", `{` + base + `,"context":1}`, false, ""},
		{"context at the cap", `{` + base + `,"context":` + big + `}`, true, big},
		{"context over the cap", `{` + base + `,"context":{"k":"` + strings.Repeat("x", flow.MaxContext) + `"}}`, false, ""},
		{"context case-folded", `{` + base + `,"Context":{}}`, false, ""},
		{"context in envelope", `{"taskToken":"t","input":{` + base + `,"context":{"a":1}}}`, true, `{"a":1}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := flow.ParseRequest([]byte(c.raw))
			if err == nil {
				err = req.Validate()
			}
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if err != nil {
				if failureName(err) != contract.ErrInvalidInput || strings.Contains(err.Error(), "secret-context") {
					t.Fatalf("refusal %v", err)
				}
				return
			}
			if string(req.Input.Context) != c.wantCtx {
				t.Fatalf("context %s, want %s", req.Input.Context, c.wantCtx)
			}
		})
	}
}

// A caller's correlationId names the session; its context reaches the
// AuthorizationRequired event, the initiate result and, after consent,
// the task output (the outbox), unchanged.
func TestContextCarriedThroughTheFlow(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	const ctxJSON = `{"conversation":"c-9","turn":3}`
	res := mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userId":"user-1","provider":"google","scopes":["openid"],`+
		`"correlationId":"conv-c-9","context":`+ctxJSON+`}}`)
	if res.CorrelationID != "conv-c-9" || string(res.Context) != ctxJSON {
		t.Fatalf("result %+v", res)
	}
	ev := e.notifier.last(t)
	if ev.CorrelationID != "conv-c-9" || string(ev.Context) != ctxJSON {
		t.Fatalf("event %+v", ev)
	}
	uri := "urn:ietf:params:oauth:request_uri:sess-" + string(rune('a'+e.id.uris))
	p := flow.CallbackParams{SessionID: uri, State: e.id.reqs[len(e.id.reqs)-1].CustomState, Code: ev.VerificationCode}
	if s := e.session(uri); s.Context != ctxJSON || s.CorrelationID != "conv-c-9" {
		t.Fatalf("stored %+v", s)
	}
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindConnected {
		t.Fatalf("outcome %+v", o)
	}
	wantTask(t, e, true, "")
	var out flow.Result
	if err := json.Unmarshal(e.resumer.all()[0].Output, &out); err != nil {
		t.Fatal(err)
	}
	if out.Status != flow.StatusAuthorized || out.CorrelationID != "conv-c-9" || string(out.Context) != ctxJSON || !out.Consented {
		t.Fatalf("task output %s", e.resumer.all()[0].Output)
	}
}

// Without a correlationId one is drawn; without a context none appears.
func TestNoContextNoField(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	res := mustInitiate(t, e, `{"userId":"user-1","provider":"google","scopes":["openid"]}`)
	if res.CorrelationID == "" || res.Context != nil {
		t.Fatalf("result %+v", res)
	}
	b, _ := json.Marshal(e.notifier.last(t))
	if strings.Contains(string(b), `"context"`) {
		t.Fatalf("event %s", b)
	}
}

// A token already in the vault: the result still carries the caller's
// correlationId and context.
func TestContextWhenAlreadyAuthorized(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	e.id.token = flow.TokenResult{AccessToken: "tok"}
	res := mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userId":"user-1","provider":"google","scopes":["openid"],"correlationId":"c1","context":{"a":1}}}`)
	if res.Status != flow.StatusAuthorized || res.CorrelationID != "c1" || string(res.Context) != `{"a":1}` {
		t.Fatalf("result %+v", res)
	}
	// Nobody consented in this workflow: the result says so, and the
	// ContinueAgent step does not act for the user on it.
	if out := e.resumer.all(); len(out) != 1 || !strings.Contains(string(out[0].Output), `"context":{"a":1}`) ||
		strings.Contains(string(out[0].Output), "consented") || res.Consented {
		t.Fatalf("task %+v", out)
	}
}

// Without a correlationId of the caller's, a vault hit's result still gets
// a fresh one (as every session does).
func TestCorrelationIDWhenAlreadyAuthorized(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	e.id.token = flow.TokenResult{AccessToken: "tok"}
	res := mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userId":"user-1","provider":"google","scopes":["openid"]}}`)
	if res.Status != flow.StatusAuthorized || len(res.CorrelationID) != 36 {
		t.Fatalf("result %+v", res)
	}
}
