package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/testenv/chromiumtest"
	"github.com/consentflow/consentflow/internal/testenv/dynamotest"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/chromium"
	"github.com/consentflow/consentflow/internal/local/emulator"
	"github.com/consentflow/consentflow/internal/local/eventslocal"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/local/sfnlocal"
)

// TestMain is dynamolocal.Main plus the shared browser: both are stopped
// when the tests are done (and die with the binary if it crashes).
func TestMain(m *testing.M) {
	code := func() int {
		defer dynamotest.StopShared()
		defer chromiumtest.StopShared()
		return m.Run()
	}()
	os.Exit(code)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	t    *testing.T
	ctx  context.Context
	s    *runner.Stack
	page *chromium.Page
	logs *syncBuffer
}

// start brings up the local stack (on the shared DynamoDB Local) and a tab
// on the shared browser. The browser is checked first, so that a missing
// Chromium fails (or skips) the test before anything starts.
func start(t *testing.T) *fixture {
	t.Helper()
	return startWith(t, runner.Options{Binding: "code"})
}

// startWith is start with the given options (the log, DynamoDB Local and
// the table are the fixture's).
func startWith(t *testing.T, o runner.Options) *fixture {
	t.Helper()
	chromiumtest.Require(t)
	logs := &syncBuffer{}
	o.Log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.DynamoDB, o.Table = dynamotest.Shared(t), dynamotest.TableName(t)
	s, err := runner.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &fixture{t: t, ctx: ctx, s: s, page: chromiumtest.NewTestPage(t), logs: logs}
}

// authorization is one started flow as the application sees it.
type authorization struct {
	taskToken string
	event     flow.AuthorizationRequired
}

// initiate runs the initiate handler with a fresh task token, as the state
// machine does, and returns the published AuthorizationRequired event.
func (f *fixture) initiate(user string, scopes ...string) authorization {
	f.t.Helper()
	return f.initiateWith(nil, user, scopes...)
}

// initiateWith is initiate with more input fields (e.g. returnTo).
func (f *fixture) initiateWith(more map[string]any, user string, scopes ...string) authorization {
	f.t.Helper()
	tok := f.s.SFN.NewTask()
	sub := f.s.Events.Subscribe(eventslocal.Match{DetailType: "AuthorizationRequired"})
	defer sub.Close()
	input := map[string]any{"userId": user, "provider": "github", "scopes": scopes}
	for k, v := range more {
		input[k] = v
	}
	in, _ := json.Marshal(map[string]any{"taskToken": tok, "input": input})
	res, err := f.s.Initiate(f.ctx, in)
	if err != nil {
		f.t.Fatalf("initiate: %v", err)
	}
	if res.Status != flow.StatusAuthorizationRequired {
		f.t.Fatalf("initiate status %s", res.Status)
	}
	var a authorization
	a.taskToken = tok
	select {
	case ev := <-sub.C:
		if err := json.Unmarshal(ev.Detail, &a.event); err != nil {
			f.t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		f.t.Fatal("no AuthorizationRequired event")
	}
	if a.event.AuthorizationURL == "" || (a.event.VerificationCode == "") != (f.s.Env[contract.EnvBindingMode] == contract.BindingOIDC) {
		f.t.Fatal("the event lacks the authorization URL, or has a code exactly when the binding mode needs none")
	}
	return a
}

// consent opens the authorization URL in the browser and clicks Allow or
// Deny; it checks the browser landed on our callback.
func (f *fixture) consent(a authorization, d chromium.Decision) chromium.Outcome {
	f.t.Helper()
	status, err := f.page.Consent(f.ctx, a.event.AuthorizationURL, d)
	if err != nil {
		f.t.Fatalf("consent: %v", err)
	}
	u, err := f.page.URL(f.ctx)
	if err != nil || !strings.HasPrefix(u, f.s.CallbackURL+"?") {
		f.t.Fatalf("after %s the browser is not on the callback (HTTP %d, %v)", d, status, err)
	}
	return f.outcome(status, 200)
}

func (f *fixture) outcome(status, want int) chromium.Outcome {
	f.t.Helper()
	o, err := f.page.Outcome(f.ctx)
	if err != nil {
		f.t.Fatalf("reading the page: %v", err)
	}
	if status != want {
		f.t.Fatalf("HTTP %d (want %d), page %q", status, want, o)
	}
	return o
}

func (f *fixture) enterCode(code string, want int) chromium.Outcome {
	f.t.Helper()
	status, err := f.page.EnterCode(f.ctx, code)
	if err != nil {
		f.t.Fatalf("entering the code: %v", err)
	}
	return f.outcome(status, want)
}

func (f *fixture) waitTask(tok string) sfnlocal.Result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	defer cancel()
	r, err := f.s.SFN.Wait(ctx, tok)
	if err != nil {
		f.t.Fatalf("task not resumed: %v", err)
	}
	return r
}

func (f *fixture) completeCalls() int {
	return len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth))
}

func want(t *testing.T, o chromium.Outcome, kind, heading string) {
	t.Helper()
	if o.Kind != kind || o.Heading != heading {
		t.Fatalf("page says %q, want %q", o, kind+": "+heading)
	}
}

func screenshots() bool { return os.Getenv("CONSENTFLOW_SCREENSHOTS") == "1" }

// happy consents, enters the code and checks the success page and the
// resumed workflow.
func (f *fixture) happy(a authorization) {
	f.t.Helper()
	want(f.t, f.consent(a, chromium.Allow), "confirm", "Confirm the connection")
	if ok, err := f.page.HasCodeInput(f.ctx); err != nil || !ok {
		f.t.Fatalf("the confirmation page has no code input (%v)", err)
	}
	if screenshots() {
		chromiumtest.SaveForTest(f.t, f.page, "confirm")
	}
	if n := f.completeCalls(); n != 0 {
		f.t.Fatal("opening the confirmation page completed the session")
	}
	// Lower case: the field upper-cases as you type, the server must accept both.
	want(f.t, f.enterCode(strings.ToLower(a.event.VerificationCode), 200), "ok", "Connected")
	if screenshots() {
		chromiumtest.SaveForTest(f.t, f.page, "connected")
	}
	r := f.waitTask(a.taskToken)
	var out flow.Result
	_ = json.Unmarshal(r.Output, &out)
	if r.Status != sfnlocal.StatusSucceeded || out.Status != flow.StatusAuthorized || out.Provider != "github" {
		f.t.Fatalf("task %s %s, output status %q", r.Status, r.Error, out.Status)
	}
	if n := f.s.SFN.Calls()["SendTaskSuccess"]; n != 1 {
		f.t.Fatalf("SendTaskSuccess called %d times", n)
	}
	if n := f.completeCalls(); n != 1 {
		f.t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
}

func TestHappyPath(t *testing.T) {
	f := start(t)
	a := f.initiate("user-happy", "repo", "read:user")
	f.happy(a)
	logs := f.logs.String()
	for name, v := range map[string]string{"verification code": a.event.VerificationCode, "task token": a.taskToken} {
		if strings.Contains(logs, v) {
			t.Errorf("the %s appears in the handler logs", name)
		}
	}
}

func TestDenyAtProvider(t *testing.T) {
	f := start(t)
	a := f.initiate("user-deny", "repo")
	want(t, f.consent(a, chromium.Deny), "error", "Access not granted")
	r := f.waitTask(a.taskToken)
	if r.Status != sfnlocal.StatusFailed || r.Error != contract.ErrConsentDenied {
		t.Fatalf("task %s %s, want FAILED %s", r.Status, r.Error, contract.ErrConsentDenied)
	}
	if n := f.completeCalls(); n != 0 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
}

func TestWrongCodeFiveTimes(t *testing.T) {
	f := start(t)
	a := f.initiate("user-wrong", "repo")
	want(t, f.consent(a, chromium.Allow), "confirm", "Confirm the connection")
	for i := 1; i < flow.MaxCodeAttempts; i++ {
		o := f.enterCode(fmt.Sprintf("ZZZZZ-ZZZZ%d", i), 403)
		want(t, o, "retry", "That code is not right")
		// The page asks again, in the same form.
		if ok, err := f.page.HasCodeInput(f.ctx); err != nil || !ok {
			t.Fatalf("attempt %d: no code input to try again (%v)", i, err)
		}
	}
	want(t, f.enterCode("ZZZZZ-ZZZZZ", 403), "error", "Too many wrong codes")
	r := f.waitTask(a.taskToken)
	if r.Status != sfnlocal.StatusFailed || r.Error != contract.ErrBindingFailed {
		t.Fatalf("task %s %s, want FAILED %s", r.Status, r.Error, contract.ErrBindingFailed)
	}
	if n := f.completeCalls(); n != 0 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
}

func TestReloadAfterSuccess(t *testing.T) {
	f := start(t)
	a := f.initiate("user-reload", "repo")
	f.happy(a)
	// The browser is on the callback URL (the POST's answer); open it again.
	u, err := f.page.URL(f.ctx)
	if err != nil || !strings.HasPrefix(u, f.s.CallbackURL+"?") {
		t.Fatalf("not on the callback (%v)", err)
	}
	for i := 0; i < 2; i++ {
		status, err := f.page.Open(f.ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		want(t, f.outcome(status, 200), "ok", "Already connected")
	}
	if n := f.completeCalls(); n != 1 {
		t.Fatalf("CompleteResourceTokenAuth called %d times after reloads, want 1", n)
	}
	if n := f.s.SFN.Calls()["SendTaskSuccess"]; n != 1 {
		t.Fatalf("SendTaskSuccess called %d times", n)
	}
}

func TestExpiredSession(t *testing.T) {
	f := start(t)
	a := f.initiate("user-expired", "repo")
	want(t, f.consent(a, chromium.Allow), "confirm", "Confirm the connection")
	f.s.Advance(11 * time.Minute) // the emulator's and the handlers' clocks
	want(t, f.enterCode(a.event.VerificationCode, 410), "error", "This link has expired")
	r := f.waitTask(a.taskToken)
	if r.Status != sfnlocal.StatusFailed || r.Error != contract.ErrExpired {
		t.Fatalf("task %s %s, want FAILED %s", r.Status, r.Error, contract.ErrExpired)
	}
	if n := f.completeCalls(); n != 0 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
}
