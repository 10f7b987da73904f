package flow_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

const testRuntimeARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/calendar_agent-a1B2c3D4e5"

func TestContinueWithValidation(t *testing.T) {
	base := `"userId":"u","provider":"p","scopes":["s"]`
	sid := strings.Repeat("s", 33)
	for _, c := range []struct {
		name, cw string
		ok       bool
	}{
		{"arn", `{"agentRuntimeArn":"` + testRuntimeARN + `","payload":{"prompt":"hi"}}`, true},
		{"arn qualifier session", `{"agentRuntimeArn":"` + testRuntimeARN + `","qualifier":"DEFAULT","runtimeSessionId":"` + sid + `","payload":"text"}`, true},
		{"gov partition", `{"agentRuntimeArn":"arn:aws-us-gov:bedrock-agentcore:us-gov-west-1:123456789012:runtime/a-0123456789","payload":1}`, true},
		{"id and account", `{"agentRuntimeId":"calendar_agent-a1B2c3D4e5","accountId":"123456789012","payload":{}}`, true},
		{"neither", `{"payload":{}}`, false},
		{"both", `{"agentRuntimeArn":"` + testRuntimeARN + `","agentRuntimeId":"calendar_agent-a1B2c3D4e5","accountId":"123456789012","payload":{}}`, false},
		{"arn with account", `{"agentRuntimeArn":"` + testRuntimeARN + `","accountId":"123456789012","payload":{}}`, false},
		{"arn of another service", `{"agentRuntimeArn":"arn:aws:lambda:us-east-1:123456789012:function:x","payload":{}}`, false},
		{"arn wildcard", `{"agentRuntimeArn":"arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/*","payload":{}}`, false},
		{"arn endpoint suffix", `{"agentRuntimeArn":"` + testRuntimeARN + `/runtime-endpoint/DEFAULT","payload":{}}`, false},
		{"id without account", `{"agentRuntimeId":"calendar_agent-a1B2c3D4e5","payload":{}}`, false},
		{"id bad account", `{"agentRuntimeId":"calendar_agent-a1B2c3D4e5","accountId":"12345678901","payload":{}}`, false},
		{"id pattern", `{"agentRuntimeId":"calendar agent","accountId":"123456789012","payload":{}}`, false},
		{"qualifier pattern", `{"agentRuntimeArn":"` + testRuntimeARN + `","qualifier":"1bad","payload":{}}`, false},
		{"session too short", `{"agentRuntimeArn":"` + testRuntimeARN + `","runtimeSessionId":"` + sid[1:] + `","payload":{}}`, false},
		{"session too long", `{"agentRuntimeArn":"` + testRuntimeARN + `","runtimeSessionId":"` + strings.Repeat("s", 257) + `","payload":{}}`, false},
		{"session with space", `{"agentRuntimeArn":"` + testRuntimeARN + `","runtimeSessionId":"` + sid + ` x","payload":{}}`, false},
		{"no payload", `{"agentRuntimeArn":"` + testRuntimeARN + `"}`, false},
		{"null payload", `{"agentRuntimeArn":"` + testRuntimeARN + `","payload":null}`, false},
		{"payload too large", `{"agentRuntimeArn":"` + testRuntimeARN + `","payload":"` + strings.Repeat("x", flow.MaxContinuePayload) + `"}`, false},
		{"unknown member", `{"agentRuntimeArn":"` + testRuntimeARN + `","payload":{},"runtimeUserId":"someone-else"}`, false},
		{"case-folded member", `{"AgentRuntimeArn":"` + testRuntimeARN + `","payload":{}}`, false},
		{"not an object", `"` + testRuntimeARN + `"`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := flow.ParseRequest([]byte(`{` + base + `,"continueWith":` + c.cw + `}`))
			if err == nil {
				err = req.Validate()
			}
			if (err == nil) != c.ok {
				t.Fatalf("err = %v, want ok=%v", err, c.ok)
			}
			if err != nil && failureName(err) != contract.ErrInvalidInput {
				t.Fatalf("refusal %v", err)
			}
			if err != nil && strings.Contains(err.Error(), "someone-else") {
				t.Fatalf("refusal echoes a value: %v", err)
			}
		})
	}
}

// Initiate refuses, before any call, a continueWith it could not carry
// out: for a JWT flow, naming a runtime not configured, or with none
// configured.
func TestInitiateRefusesContinuations(t *testing.T) {
	cw := func(target string) string {
		return `,"continueWith":{` + target + `,"payload":{"q":1}}`
	}
	arn := `"agentRuntimeArn":"` + testRuntimeARN + `"`
	for name, raw := range map[string]string{
		"jwt flow":         `{"userToken":"` + jwt + `","provider":"p","scopes":["s"]` + cw(arn) + `}`,
		"other runtime":    `{"userId":"u","provider":"p","scopes":["s"]` + cw(`"agentRuntimeArn":"arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/other-a1B2c3D4e5"`) + `}`,
		"other account":    `{"userId":"u","provider":"p","scopes":["s"]` + cw(`"agentRuntimeId":"calendar_agent-a1B2c3D4e5","accountId":"210987654321"`) + `}`,
		"unknown field in": `{"userId":"u","provider":"p","scopes":["s"]` + cw(arn+`,"x":1`) + `}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, flow.BindingCode)
			req, err := flow.ParseRequest([]byte(raw))
			if err == nil {
				_, err = e.ini.Initiate(context.Background(), req)
			}
			if failureName(err) != contract.ErrInvalidInput || len(e.id.calls) != 0 {
				t.Fatalf("err %v, calls %v", err, e.id.calls)
			}
		})
	}
	t.Run("none configured", func(t *testing.T) {
		x, err := flow.NewInitiator(flow.Config{WorkloadName: "w-1", ReturnURL: "https://cb.example/cb", Binding: flow.BindingCode},
			flow.Deps{Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		req, err := flow.ParseRequest([]byte(`{"userId":"u","provider":"p","scopes":["s"]` + cw(arn) + `}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Initiate(context.Background(), req); failureName(err) != contract.ErrInvalidInput || !strings.Contains(err.Error(), contract.EnvAgentRuntimeARNs) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("accepted", func(t *testing.T) {
		e := newEnv(t, flow.BindingCode)
		for i, target := range []string{arn, `"agentRuntimeId":"calendar_agent-a1B2c3D4e5","accountId":"123456789012"`} {
			res := mustInitiate(t, e, `{"taskToken":"`+taskToken+fmt.Sprint(i)+`","input":{"userId":"u","provider":"p","scopes":["s"]`+cw(target)+`}}`)
			if res.Status != flow.StatusAuthorizationRequired {
				t.Fatalf("result %+v", res)
			}
		}
	})
	// Refused although the runtime is configured: the call is not the state
	// machine's, an M2M flow (never a consent), no session binding, an input
	// that would not leave room in the state for the authorization and the
	// agent's answer.
	for name, c := range map[string]struct {
		binding flow.BindingMode
		raw     string
	}{
		"direct invocation": {flow.BindingCode, `{"userId":"u","provider":"p","scopes":["s"]` + cw(arn) + `}`},
		"m2m":               {flow.BindingCode, `{"taskToken":"t","input":{"flow":"M2M","provider":"p","scopes":["s"]` + cw(arn) + `}}`},
		"binding none":      {flow.BindingNone, `{"taskToken":"t","input":{"userId":"u","provider":"p","scopes":["s"]` + cw(arn) + `}}`},
		"state budget": {flow.BindingCode, `{"taskToken":"t","input":{"userId":"u","provider":"p","scopes":["s"],"context":{"c":"` +
			strings.Repeat("x", flow.MaxContext-10) + `"},"continueWith":{` + arn + `,"payload":"` + strings.Repeat("y", flow.MaxContinuePayload-10) +
			`"},"customParameters":{` + bigParams() + `}}}`},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, c.binding)
			req, err := flow.ParseRequest([]byte(c.raw))
			if err == nil {
				_, err = e.ini.Initiate(context.Background(), req)
			}
			if failureName(err) != contract.ErrInvalidInput || len(e.id.calls) != 0 {
				t.Fatalf("err %v, calls %v", err, e.id.calls)
			}
		})
	}
	// The largest inputs without continueWith fit (about 150 KiB: the
	// payload is what can make an input too large).
	big := `{"taskToken":"t","input":{"userId":"u","provider":"p","scopes":["s"],"context":{"c":"` + strings.Repeat("x", flow.MaxContext-10) +
		`"},"customParameters":{` + bigParams() + `}}}`
	e := newEnv(t, flow.BindingCode)
	req, err := flow.ParseRequest([]byte(big))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ini.Initiate(context.Background(), req); err != nil {
		t.Fatalf("a %d-byte input: %v", len(big), err)
	}
}

func TestParseAgentRuntimeARNs(t *testing.T) {
	got, err := flow.ParseAgentRuntimeARNs(" " + testRuntimeARN + ", ,arn:aws:bedrock-agentcore:eu-west-1:123456789012:runtime/b-0123456789")
	if err != nil || len(got) != 2 || got[0].RuntimeARN != testRuntimeARN || got[0].Endpoint != "DEFAULT" || got[1].Region != "eu-west-1" {
		t.Fatalf("%v %v", got, err)
	}
	if got, err := flow.ParseAgentRuntimeARNs(""); err != nil || got != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
	if _, err := flow.ParseAgentRuntimeARNs("arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/*"); err == nil {
		t.Fatal("a wildcard was accepted")
	}
	if _, err := flow.ParseAgentRuntimeARNs(testRuntimeARN + "/runtime-endpoint/*"); err == nil {
		t.Fatal("an endpoint wildcard was accepted")
	}
}

// A runtime ARN allows its DEFAULT endpoint only; an endpoint ARN allows
// that endpoint (the qualifier) only.
func TestContinueWithQualifierAllowList(t *testing.T) {
	allowed := mustTargets(testRuntimeARN, "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/other-a1B2c3D4e5/runtime-endpoint/prod")
	other := "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/other-a1B2c3D4e5"
	for _, c := range []struct {
		cw   flow.ContinueWith
		want bool
	}{
		{flow.ContinueWith{AgentRuntimeARN: testRuntimeARN}, true},
		{flow.ContinueWith{AgentRuntimeARN: testRuntimeARN, Qualifier: "DEFAULT"}, true},
		{flow.ContinueWith{AgentRuntimeARN: testRuntimeARN, Qualifier: "prod"}, false},
		{flow.ContinueWith{AgentRuntimeARN: other}, false},
		{flow.ContinueWith{AgentRuntimeARN: other, Qualifier: "prod"}, true},
		{flow.ContinueWith{AgentRuntimeARN: other, Qualifier: "staging"}, false},
		{flow.ContinueWith{AgentRuntimeID: "other-a1B2c3D4e5", AccountID: "123456789012", Qualifier: "prod"}, true},
		{flow.ContinueWith{AgentRuntimeID: "other-a1B2c3D4e5", AccountID: "123456789012"}, false},
	} {
		if got := c.cw.AllowedBy(allowed, "us-east-1"); got != c.want {
			t.Errorf("%+v: allowed %v, want %v", c.cw, got, c.want)
		}
	}
	if (&flow.ContinueWith{AgentRuntimeID: "other-a1B2c3D4e5", AccountID: "123456789012", Qualifier: "prod"}).AllowedBy(allowed, "eu-west-1") {
		t.Error("an id allowed in another region")
	}
}

// A member twice in any object is refused (encoding/json would take the
// last, a Step Functions path may read another), and so is a null
// continueWith (the state machine's Choice sees it as present).
func TestParseRequestRefusesAmbiguousInput(t *testing.T) {
	cw := `{"agentRuntimeArn":"` + testRuntimeARN + `","payload":{"q":1}}`
	base := `"userId":"u","provider":"p","scopes":["s"]`
	for name, raw := range map[string]string{
		"top level":          `{` + base + `,"userId":"v"}`,
		"continueWith twice": `{` + base + `,"continueWith":` + cw + `,"continueWith":` + cw + `}`,
		"in continueWith":    `{` + base + `,"continueWith":{"agentRuntimeArn":"` + testRuntimeARN + `","payload":1,"payload":2}}`,
		"in the payload":     `{` + base + `,"continueWith":{"agentRuntimeArn":"` + testRuntimeARN + `","payload":{"a":[{"b":1,"b":2}]}}}`,
		"in context":         `{` + base + `,"context":{"k":1,"k":1}}`,
		"envelope":           `{"taskToken":"t","taskToken":"u","input":{` + base + `}}`,
		"in envelope input":  `{"taskToken":"t","input":{` + base + `,"provider":"q"}}`,
		"null continueWith":  `{` + base + `,"continueWith":null}`,
		"null in envelope":   `{"taskToken":"t","input":{` + base + `,"continueWith": null }}`,
	} {
		if _, err := flow.ParseRequest([]byte(raw)); failureName(err) != contract.ErrInvalidInput {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, raw := range map[string]string{
		"same names in other objects": `{` + base + `,"context":{"userId":{"userId":1},"a":[{"x":1},{"x":2}]}}`,
		"continueWith":                `{` + base + `,"continueWith":` + cw + `}`,
	} {
		if _, err := flow.ParseRequest([]byte(raw)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// bigParams are 20 customParameters of 2048 three-byte characters (about
// 120 KiB of JSON): valid, and with a large context and payload more than
// the state can carry beside the authorization.
func bigParams() string {
	var b strings.Builder
	for i := 0; i < 20; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"p%d":"%s"`, i, strings.Repeat("€", 2048))
	}
	return b.String()
}

// AgentName is the runtime id without its suffix: the ARN's account and
// region, and the id's suffix, stay off the pages.
func TestContinueWithAgentName(t *testing.T) {
	for _, c := range []struct {
		cw   flow.ContinueWith
		want string
	}{
		{flow.ContinueWith{AgentRuntimeARN: testRuntimeARN}, "calendar_agent"},
		{flow.ContinueWith{AgentRuntimeARN: testRuntimeARN, Qualifier: "prod"}, "calendar_agent"},
		{flow.ContinueWith{AgentRuntimeID: "calendar_agent-a1B2c3D4e5", AccountID: "123456789012"}, "calendar_agent"},
		{flow.ContinueWith{AgentRuntimeID: "a-0123456789", AccountID: "123456789012"}, "a"},
		{flow.ContinueWith{AgentRuntimeID: "with-dash-0123456789", AccountID: "123456789012"}, ""},
		{flow.ContinueWith{AgentRuntimeARN: testRuntimeARN + "/runtime-endpoint/prod"}, ""},
		{flow.ContinueWith{}, ""},
	} {
		if got := c.cw.AgentName(); got != c.want {
			t.Errorf("%+v: AgentName %q, want %q", c.cw, got, c.want)
		}
	}
}

// Initiate stores the agent's name with a session that continues with
// one, and nothing else of its ARN; a session without continueWith names
// no agent.
func TestInitiateStoresContinueAgent(t *testing.T) {
	cw := func(target string) string {
		return `,"continueWith":{` + target + `,"payload":{"q":1}}`
	}
	e := newEnv(t, flow.BindingCode)
	for i, c := range []struct{ extra, want string }{
		{cw(`"agentRuntimeArn":"` + testRuntimeARN + `"`), "calendar_agent"},
		{cw(`"agentRuntimeId":"calendar_agent-a1B2c3D4e5","accountId":"123456789012"`), "calendar_agent"},
		{"", ""},
	} {
		mustInitiate(t, e, `{"taskToken":"`+taskToken+fmt.Sprint(i)+`","input":{"userId":"u","provider":"p","scopes":["s"]`+c.extra+`}}`)
		uri := "urn:ietf:params:oauth:request_uri:sess-" + string(rune('a'+e.id.uris))
		s, ok := e.store.sessions[uri]
		if !ok || s.ContinueAgent != c.want {
			t.Fatalf("input %d: stored %+v, want continueAgent %q", i, s, c.want)
		}
	}
	// A synchronous start has no ContinueAgent step: it refuses continueWith
	// before anything is called or stored.
	in := syncInput()
	in.ContinueWith = &flow.ContinueWith{AgentRuntimeARN: testRuntimeARN, Payload: []byte(`{"q":1}`)}
	n := len(e.id.calls)
	if _, err := e.ini.StartSync(context.Background(), in, "wat", e.notifier); failureName(err) != contract.ErrInvalidInput || len(e.id.calls) != n {
		t.Fatalf("a synchronous start with continueWith: %v", err)
	}
}
