package flow_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

const execARN = "arn:aws:states:us-east-1:123456789012:execution:AuthorizeUser:0f3a4b5c-8d9e-4a1b-9c2d-3e4f5a6b7c8d"

// The envelope's optional executionArn: beside taskToken and input, never
// inside the input, refused without being echoed when it is no execution
// ARN.
func TestExecutionARNInput(t *testing.T) {
	in := `{"userId":"u","provider":"p","scopes":["s"]}`
	for _, c := range []struct {
		name, raw string
		ok        bool
		want      string
	}{
		{"absent", `{"taskToken":"t","input":` + in + `}`, true, ""},
		{"given", `{"taskToken":"t","executionArn":"` + execARN + `","input":` + in + `}`, true, execARN},
		{"given first", `{"executionArn":"` + execARN + `","taskToken":"t","input":` + in + `}`, true, execARN},
		{"empty", `{"taskToken":"t","executionArn":"","input":` + in + `}`, true, ""},
		{"null", `{"taskToken":"t","executionArn":null,"input":` + in + `}`, true, ""},
		{"bare input", `{"userId":"u","provider":"p","scopes":["s"],"executionArn":"` + execARN + `"}`, false, ""},
		{"inside the input", `{"taskToken":"t","input":{"userId":"u","provider":"p","scopes":["s"],"executionArn":"` + execARN + `"}}`, false, ""},
		{"without a task token", `{"executionArn":"` + execARN + `","input":` + in + `}`, false, ""},
		{"case-folded", `{"taskToken":"t","ExecutionArn":"` + execARN + `","input":` + in + `}`, false, ""},
		{"wrong type", `{"taskToken":"t","executionArn":7,"input":` + in + `}`, false, ""},
		{"object", `{"taskToken":"t","executionArn":{"arn":"` + execARN + `"},"input":` + in + `}`, false, ""},
		{"garbage", `{"taskToken":"t","executionArn":"secret-garbage-value","input":` + in + `}`, false, ""},
		{"another ARN", `{"taskToken":"t","executionArn":"arn:aws:lambda:us-east-1:123456789012:function:secret-fn","input":` + in + `}`, false, ""},
		{"too long", `{"taskToken":"t","executionArn":"` + execARN + strings.Repeat("x", flow.MaxExecutionARN) + `","input":` + in + `}`, false, ""},
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
				if failureName(err) != contract.ErrInvalidInput {
					t.Fatalf("refusal %v", err)
				}
				for _, v := range []string{"secret", "0f3a4b5c", "xxxxxxxx"} {
					if strings.Contains(err.Error(), v) {
						t.Fatalf("refusal %q echoes the value", err)
					}
				}
				return
			}
			if req.ExecutionARN != c.want {
				t.Fatalf("ExecutionARN %q, want %q", req.ExecutionARN, c.want)
			}
		})
	}
}

// The message names the field and the shape.
func TestExecutionARNRefusalMessage(t *testing.T) {
	req, err := flow.ParseRequest([]byte(`{"taskToken":"t","executionArn":"x","input":{"userId":"u","provider":"p","scopes":["s"]}}`))
	if err != nil {
		t.Fatal(err)
	}
	err = req.Validate()
	want := "executionArn must be a Step Functions execution ARN (arn:<partition>:states:<region>:<account>:execution:<state machine>:<name>) of at most 256 bytes"
	var f *flow.Failure
	if !errors.As(err, &f) || f.Message != want || f.Retryable() {
		t.Fatalf("err = %#v, want the message %q", err, want)
	}
}

// The execution ARN is stored with the session and carried into the
// AuthorizationRequired event, also when a retried invocation announces
// the session its first attempt stored, and into the completion event.
func TestExecutionARNCarriedThroughTheFlow(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	raw := []byte(`{"taskToken":"` + taskToken + `","executionArn":"` + execARN + `","input":{"userId":"user-1","provider":"google","scopes":["openid"]}}`)
	req, err := flow.ParseRequest(raw)
	if err != nil {
		t.Fatal(err)
	}
	// The first attempt stores the session but cannot publish.
	e.notifier.err = errors.New("PutEvents: ThrottlingException")
	if _, err := e.ini.Initiate(context.Background(), req); failureName(err) != contract.ErrNotifyFailed {
		t.Fatalf("first attempt: %v", err)
	}
	s, err := e.store.GetByTaskToken(context.Background(), taskToken)
	if err != nil || s.ExecutionARN != execARN {
		t.Fatalf("stored %+v, %v", s, err)
	}
	// The state machine retries: the stored session is announced.
	res := mustInitiate(t, e, string(raw))
	if res.Status != flow.StatusAuthorizationRequired {
		t.Fatalf("result %+v", res)
	}
	ev := e.notifier.last(t)
	if ev.ExecutionARN != execARN || ev.CorrelationID != s.CorrelationID {
		t.Fatalf("event %+v", ev)
	}
	if b, _ := json.Marshal(res); strings.Contains(string(b), "executionArn") {
		t.Fatalf("the result repeats the execution's own ARN: %s", b)
	}

	p := flow.CallbackParams{SessionID: s.SessionURI, State: e.id.reqs[len(e.id.reqs)-1].CustomState, Code: ev.VerificationCode}
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindConnected {
		t.Fatalf("outcome %+v", o)
	}
	done := e.session(s.SessionURI)
	if done.Status != flow.StatusCompleted || done.ExecutionARN != execARN {
		t.Fatalf("settled %+v", done)
	}
	n := &recordingNotifier{}
	if err := (&flow.Announcer{Notifier: n}).Announce(context.Background(), &done, time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(n.completed) != 1 || n.completed[0].ExecutionARN != execARN {
		t.Fatalf("completion events %+v", n.completed)
	}
}

// Invoked directly (or by a workflow that does not pass it): no execution
// ARN in the session or the event.
func TestNoExecutionARNNoField(t *testing.T) {
	for _, raw := range []string{
		`{"userId":"user-1","provider":"google","scopes":["openid"]}`,
		`{"taskToken":"` + taskToken + `","input":{"userId":"user-1","provider":"google","scopes":["openid"]}}`,
	} {
		e := newEnv(t, flow.BindingCode)
		mustInitiate(t, e, raw)
		ev := e.notifier.last(t)
		if b, _ := json.Marshal(ev); ev.ExecutionARN != "" || strings.Contains(string(b), "executionArn") {
			t.Fatalf("event %s", b)
		}
		for uri, s := range e.store.sessions {
			if s.ExecutionARN != "" {
				t.Fatalf("session %s stored with %q", uri, s.ExecutionARN)
			}
		}
	}
}
