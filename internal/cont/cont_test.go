package cont_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/consentflow/consentflow/internal/adapters/agentruntime"
	"github.com/consentflow/consentflow/internal/cont"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/emulator"
)

const runtimeARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/calendar_agent-a1B2c3D4e5"

// agent is a local agent per the Runtime contract whose answer a test sets.
type agent struct {
	mu          sync.Mutex
	status      int
	contentType string
	body        string
	got         []http.Header
}

func (a *agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, r.Header.Clone())
	_, _ = io.Copy(io.Discard, r.Body)
	if a.status != 0 {
		http.Error(w, "agent failed", a.status)
		return
	}
	w.Header().Set("Content-Type", a.contentType)
	_, _ = io.WriteString(w, a.body)
}

type env struct {
	emu *emulator.Server
	ag  *agent
	h   *cont.Handler
}

func newEnv(t *testing.T) *env {
	ag := &agent{contentType: "application/json", body: `{"answer": "3 meetings today"}`}
	ats := httptest.NewServer(ag)
	t.Cleanup(ats.Close)
	emu, err := emulator.New(emulator.Config{
		Workloads:     []emulator.Workload{{Name: "consentflow"}},
		AgentRuntimes: []emulator.AgentRuntime{{ARN: runtimeARN, URL: ats.URL}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ets := httptest.NewServer(emu.Handler())
	t.Cleanup(ets.Close)
	c := &cont.Continuer{Runtime: agentruntime.Runtime{API: emulator.NewClient(ets.URL)}, Allowed: targets(t, runtimeARN), Region: "us-east-1"}
	return &env{emu: emu, ag: ag, h: &cont.Handler{Continuer: c}}
}

func event(cw string, userID string) json.RawMessage {
	return json.RawMessage(`{"continueWith":` + cw + `,"authorization":{"status":"AUTHORIZED","provider":"google","scopes":["openid"],` +
		`"userId":"` + userID + `","correlationId":"c-1","consented":true}}`)
}

var arnTarget = `{"agentRuntimeArn":"` + runtimeARN + `","payload":{"prompt":"go on"}}`

func errType(t *testing.T, err error) string {
	t.Helper()
	var e messages.InvokeResponse_Error
	if !errors.As(err, &e) {
		t.Fatalf("not a Lambda error: %v", err)
	}
	return e.Type
}

func TestContinueSuccess(t *testing.T) {
	e := newEnv(t)
	for _, cw := range []string{arnTarget, `{"agentRuntimeId":"calendar_agent-a1B2c3D4e5","accountId":"123456789012","payload":"hi"}`} {
		s, err := e.h.Handle(context.Background(), event(cw, "github|4242"))
		if err != nil {
			t.Fatal(err)
		}
		if s.StatusCode != 200 || s.ContentType != "application/json" || string(s.Body) != `{"answer":"3 meetings today"}` ||
			s.Bytes != 30 || s.RuntimeSessionID == "" || s.Truncated {
			t.Fatalf("summary %+v", s)
		}
	}
	// The agent acted for the user who authorized.
	if h := e.ag.got[0]; h.Get(emulator.HeaderRuntimeUserID) != "github|4242" || h.Get(emulator.HeaderWorkloadToken) == "" {
		t.Fatalf("agent got %v", h)
	}
	// An authorization without a user (M2M: initiate refuses continueWith
	// for it) continues nobody.
	n := len(e.ag.got)
	if _, err := e.h.Handle(context.Background(), event(arnTarget, "")); errType(t, err) != contract.ErrInvalidInput || len(e.ag.got) != n {
		t.Fatalf("no user: %v", err)
	}
}

func TestContinueFailures(t *testing.T) {
	other := `{"agentRuntimeArn":"arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/other-a1B2c3D4e5","payload":{}}`
	for _, c := range []struct {
		name  string
		event json.RawMessage
		setup func(e *env)
		want  string
	}{
		{"agent 500", event(arnTarget, "u"), func(e *env) { e.ag.status = 500 }, contract.ErrAgentRuntimeRejected},
		{"agent 404", event(arnTarget, "u"), func(e *env) { e.ag.status = 404 }, contract.ErrAgentRuntimeRejected},
		{"runtime unknown to AgentCore", event(arnTarget, "u"), func(e *env) {
			e.h.Continuer.Allowed = append(e.h.Continuer.Allowed, targets(t, "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/other-a1B2c3D4e5")...)
		}, ""},
		{"throttled", event(arnTarget, "u"), func(e *env) { e.emu.InjectFault(emulator.OpInvokeAgentRuntime, 1, emulator.Throttle) }, contract.ErrAgentRuntimeThrottled},
		{"runtime 500", event(arnTarget, "u"), func(e *env) { e.emu.InjectFault(emulator.OpInvokeAgentRuntime, 1, emulator.InternalError) }, contract.ErrAgentRuntimeUnavailable},
		{"oversized", event(arnTarget, "u"), func(e *env) { e.ag.body = strings.Repeat("x", cont.MaxResponseBytes+1) }, contract.ErrAgentResponseTooLarge},
		{"not allowed", event(other, "u"), nil, contract.ErrInvalidInput},
		{"vault hit, no consent", json.RawMessage(`{"continueWith":` + arnTarget + `,"authorization":{"status":"AUTHORIZED","provider":"p","scopes":[],"userId":"u"}}`), nil, contract.ErrContinuationNeedsConsent},
		{"consented false", json.RawMessage(`{"continueWith":` + arnTarget + `,"authorization":{"status":"AUTHORIZED","provider":"p","scopes":[],"userId":"u","consented":false}}`), nil, contract.ErrContinuationNeedsConsent},
		{"not authorized", json.RawMessage(`{"continueWith":` + arnTarget + `,"authorization":{"status":"AUTHORIZATION_REQUIRED","provider":"p","scopes":[]}}`), nil, contract.ErrInvalidInput},
		{"bad continueWith", event(`{"agentRuntimeArn":"`+runtimeARN+`"}`, "u"), nil, contract.ErrInvalidInput},
		{"unknown field", json.RawMessage(`{"continueWith":` + arnTarget + `,"authorization":{"status":"AUTHORIZED","provider":"p","scopes":[]},"x":1}`), nil, contract.ErrInvalidInput},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			if c.setup != nil {
				c.setup(e)
			}
			if c.name == "runtime unknown to AgentCore" {
				c.event, c.want = event(other, "u"), contract.ErrAgentRuntimeNotFound
			}
			calls := len(e.ag.got)
			s, err := e.h.Handle(context.Background(), c.event)
			if err == nil {
				t.Fatalf("summary %+v", s)
			}
			if got := errType(t, err); got != c.want {
				t.Fatalf("error %s (%v), want %s", got, err, c.want)
			}
			if strings.Contains(err.Error(), "go on") {
				t.Fatalf("error echoes the payload: %v", err)
			}
			if (c.want == contract.ErrInvalidInput || c.want == contract.ErrContinuationNeedsConsent) && len(e.ag.got) != calls {
				t.Fatal("the agent was invoked for an invalid input")
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	big := strings.Repeat("é", cont.SummaryBytes) // 2 bytes each
	for _, c := range []struct {
		name, ct, body string
		check          func(*cont.Summary) bool
	}{
		{"json", "application/json; charset=utf-8", `{ "a": [1, 2] }`, func(s *cont.Summary) bool { return string(s.Body) == `{"a":[1,2]}` && s.Text == "" }},
		{"problem json", "application/problem+json", `{"title":"x"}`, func(s *cont.Summary) bool { return string(s.Body) == `{"title":"x"}` }},
		{"invalid json", "application/json", `{"a":`, func(s *cont.Summary) bool { return s.Body == nil && s.Text == `{"a":` }},
		{"long json", "application/json", `"` + big + `"`, func(s *cont.Summary) bool {
			return s.Body == nil && s.Truncated && len(s.Text) <= cont.SummaryBytes && !strings.ContainsRune(s.Text, '\uFFFD')
		}},
		{"sse", "text/event-stream", "data: x\n\n", func(s *cont.Summary) bool { return s.Text == "data: x\n\n" && !s.Truncated }},
		{"long text", "text/plain", big, func(s *cont.Summary) bool {
			return s.Truncated && len(s.Text) == cont.SummaryBytes && !strings.ContainsRune(s.Text, '\uFFFD') && s.Bytes == 2*cont.SummaryBytes
		}},
		{"binary", "application/octet-stream", "\x00\x01", func(s *cont.Summary) bool { return s.Body == nil && s.Text == "" && s.Bytes == 2 }},
		{"no type", "", "x", func(s *cont.Summary) bool { return s.Text == "" }},
		// Escaped in JSON, '<' and control characters take six bytes: the summary is
		// shortened to MaxSummaryJSON, a JSON body becomes the start of its text.
		{"escaped text", "text/plain", strings.Repeat("<\x01", cont.SummaryBytes/2), func(s *cont.Summary) bool {
			return s.Truncated && len(s.Text) > cont.SummaryBytes/4 && len(s.Text) < cont.SummaryBytes
		}},
		{"escaped json", "application/json", `"` + strings.Repeat("<", cont.SummaryBytes-2) + `"`, func(s *cont.Summary) bool {
			return s.Body == nil && s.Truncated && strings.HasPrefix(s.Text, `"<<<`)
		}},
		{"small escaped json", "application/json", `"<>&"`, func(s *cont.Summary) bool { return string(s.Body) == `"<>&"` }},
	} {
		s := cont.Summarize(200, c.ct, []byte(c.body))
		if !c.check(s) {
			t.Errorf("%s: %+v", c.name, s)
		}
		if b, _ := json.Marshal(s); len(b) > cont.MaxSummaryJSON {
			t.Errorf("%s: the summary's JSON is %d bytes", c.name, len(b))
		}
	}
}

func targets(t *testing.T, arns ...string) []contract.AgentRuntimeTarget {
	t.Helper()
	out, err := flow.ParseAgentRuntimeARNs(strings.Join(arns, ","))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Without a runtimeSessionId of the caller's, the session is derived from
// the execution: every attempt of one execution lands in the same one.
func TestRuntimeSessionFromExecution(t *testing.T) {
	e := newEnv(t)
	withExec := func(cw, exec string) json.RawMessage {
		ev := string(event(cw, "u"))
		return json.RawMessage(ev[:len(ev)-1] + `,"executionId":"` + exec + `"}`)
	}
	const exec = "arn:aws:states:us-east-1:123456789012:execution:AuthorizeUser:run-1"
	for _, ev := range []json.RawMessage{withExec(arnTarget, exec), withExec(arnTarget, exec), withExec(arnTarget, exec+"x")} {
		if _, err := e.h.Handle(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	sid := func(i int) string { return e.ag.got[i].Get(emulator.HeaderRuntimeSessionID) }
	if sid(0) != sid(1) || sid(0) == sid(2) || len(sid(0)) < 33 || len(sid(0)) > 256 || strings.Contains(sid(0), "run-1") {
		t.Fatalf("sessions %q %q %q", sid(0), sid(1), sid(2))
	}
	own := `{"agentRuntimeArn":"` + runtimeARN + `","runtimeSessionId":"chat-7f3a-000000000000000000000000001","payload":{}}`
	if _, err := e.h.Handle(context.Background(), withExec(own, exec)); err != nil || sid(3) != "chat-7f3a-000000000000000000000000001" {
		t.Fatalf("the caller's session: %q %v", sid(3), err)
	}
}

// The step's input is decoded as strictly as initiate's: member names
// exactly, nothing unknown, nothing after it.
func TestParseRequestStrict(t *testing.T) {
	ok := string(event(arnTarget, "u"))
	for name, raw := range map[string]string{
		"case variant":   strings.Replace(ok, `"consented"`, `"Consented"`, 1),
		"top-level case": strings.Replace(ok, `"authorization"`, `"Authorization"`, 1),
		"trailing":       ok + `{}`,
		"unknown":        ok[:len(ok)-1] + `,"x":1}`,
	} {
		if _, err := cont.ParseRequest([]byte(raw)); err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if r, err := cont.ParseRequest([]byte(ok)); err != nil || !r.Authorization.Consented || r.ContinueWith == nil {
		t.Fatalf("%+v %v", r, err)
	}
}

// The agent's headers are bounded in the summary: a content type only when
// it is a media type of at most 256 bytes.
func TestSummaryHeaders(t *testing.T) {
	long := "application/json; x=" + strings.Repeat("a", 300)
	if s := cont.Summarize(200, long, []byte(`{}`)); s.ContentType != "" || string(s.Body) != "{}" {
		t.Fatalf("%+v", s)
	}
	if s := cont.Summarize(200, "not a media type", []byte(`x`)); s.ContentType != "" || s.Text != "" {
		t.Fatalf("%+v", s)
	}
}

// An endpoint ARN in the allow-list permits that endpoint (the qualifier)
// only, end to end through the emulator's InvokeAgentRuntime.
func TestContinueAtAnAllowedEndpoint(t *testing.T) {
	ag := &agent{contentType: "application/json", body: `{"ok":true}`}
	ats := httptest.NewServer(ag)
	t.Cleanup(ats.Close)
	emu, err := emulator.New(emulator.Config{AgentRuntimes: []emulator.AgentRuntime{{ARN: runtimeARN, URL: ats.URL, Endpoints: []string{"prod", "beta"}}}})
	if err != nil {
		t.Fatal(err)
	}
	ets := httptest.NewServer(emu.Handler())
	t.Cleanup(ets.Close)
	h := &cont.Handler{Continuer: &cont.Continuer{Runtime: agentruntime.Runtime{API: emulator.NewClient(ets.URL)},
		Allowed: targets(t, runtimeARN+"/runtime-endpoint/prod"), Region: "us-east-1"}}
	at := func(qualifier string) string {
		q := ""
		if qualifier != "" {
			q = `"qualifier":"` + qualifier + `",`
		}
		return `{"agentRuntimeArn":"` + runtimeARN + `",` + q + `"payload":{}}`
	}
	if s, err := h.Handle(context.Background(), event(at("prod"), "u")); err != nil || s.StatusCode != 200 {
		t.Fatalf("prod: %+v %v", s, err)
	}
	for _, q := range []string{"", "DEFAULT", "beta"} {
		if _, err := h.Handle(context.Background(), event(at(q), "u")); errType(t, err) != contract.ErrInvalidInput {
			t.Fatalf("qualifier %q: %v", q, err)
		}
	}
	if len(ag.got) != 1 {
		t.Fatalf("the agent was invoked %d times", len(ag.got))
	}
}
