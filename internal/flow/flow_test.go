package flow_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

var cryptoRead = rand.Read

const (
	taskToken = "AQB4AAAAKgAAAAMAAAAAAAAAAS1task-token-example"
	jwt       = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl"
)

func mustInitiate(t *testing.T, e *env, raw string) *flow.Result {
	t.Helper()
	req, err := flow.ParseRequest([]byte(raw))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	res, err := e.ini.Initiate(context.Background(), req)
	if err != nil {
		t.Fatalf("initiate: %v", err)
	}
	return res
}

// started runs a synchronous initiation for user-1 and returns the
// callback parameters the browser would bring back, plus the code.
func started(t *testing.T, e *env) (flow.CallbackParams, string) {
	t.Helper()
	mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userId":"user-1","provider":"google","scopes":["openid","email"]}}`)
	ev := e.notifier.last(t)
	// The state only ever travels through AgentCore; take it from the call.
	state := e.id.reqs[len(e.id.reqs)-1].CustomState
	uri := "urn:ietf:params:oauth:request_uri:sess-" + string(rune('a'+e.id.uris))
	return flow.CallbackParams{SessionID: uri, State: state}, ev.VerificationCode
}

func failureName(err error) string {
	var f *flow.Failure
	if errors.As(err, &f) {
		return f.Name
	}
	return fmt.Sprintf("not a Failure: %v", err)
}

func TestParseAndValidateRejectsBadInput(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := map[string]string{
		"not json":              `nope`,
		"array":                 `[1]`,
		"unknown field":         `{"user_id":"u","provider":"p","scopes":["s"]}`,
		"trailing data":         `{"userId":"u","provider":"p","scopes":["s"]} {}`,
		"no user":               `{"provider":"p","scopes":["s"]}`,
		"both users":            `{"userId":"u","userToken":"` + jwt + `","provider":"p","scopes":["s"]}`,
		"case-folded field":     `{"UserID":"u","provider":"p","scopes":["s"]}`,
		"case-folded envelope":  `{"TaskToken":"t","input":{"userId":"u","provider":"p","scopes":["s"]}}`,
		"userId too long":       `{"userId":"` + long(129) + `","provider":"p","scopes":["s"]}`,
		"userToken not a JWT":   `{"userToken":"abc","provider":"p","scopes":["s"]}`,
		"provider missing":      `{"userId":"u","scopes":["s"]}`,
		"provider pattern":      `{"userId":"u","provider":"bad name","scopes":["s"]}`,
		"provider too long":     `{"userId":"u","provider":"` + long(129) + `","scopes":["s"]}`,
		"scopes missing":        `{"userId":"u","provider":"p"}`,
		"scopes empty":          `{"userId":"u","provider":"p","scopes":[]}`,
		"scope too long":        `{"userId":"u","provider":"p","scopes":["` + long(129) + `"]}`,
		"scope empty":           `{"userId":"u","provider":"p","scopes":[""]}`,
		"scopes wrong type":     `{"userId":"u","provider":"p","scopes":"openid"}`,
		"param key pattern":     `{"userId":"u","provider":"p","scopes":["s"],"customParameters":{"a b":"v"}}`,
		"param value too long":  `{"userId":"u","provider":"p","scopes":["s"],"customParameters":{"k":"` + long(2049) + `"}}`,
		"param value empty":     `{"userId":"u","provider":"p","scopes":["s"],"customParameters":{"k":""}}`,
		"flow unknown":          `{"userId":"u","provider":"p","scopes":["s"],"flow":"ON_BEHALF_OF_TOKEN_EXCHANGE"}`,
		"m2m with user":         `{"userId":"u","provider":"p","scopes":["s"],"flow":"M2M"}`,
		"envelope no token":     `{"input":{"userId":"u","provider":"p","scopes":["s"]}}`,
		"envelope empty token":  `{"taskToken":"","input":{"userId":"u","provider":"p","scopes":["s"]}}`,
		"envelope no input":     `{"taskToken":"t"}`,
		"task token too long":   `{"taskToken":"` + long(2049) + `","input":{"userId":"u","provider":"p","scopes":["s"]}}`,
		"envelope extra field":  `{"taskToken":"t","input":{"userId":"u","provider":"p","scopes":["s"]},"x":1}`,
		"forceAuth wrong type":  `{"userId":"u","provider":"p","scopes":["s"],"forceAuthentication":"yes"}`,
		"too many scopes":       `{"userId":"u","provider":"p","scopes":[` + strings.TrimSuffix(strings.Repeat(`"s",`, 51), ",") + `]}`,
		"secret not in message": `{"userToken":"secret-not-jwt","provider":"p","scopes":["s"]}`,
	}
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, flow.BindingCode)
			req, err := flow.ParseRequest([]byte(raw))
			if err == nil {
				_, err = e.ini.Initiate(context.Background(), req)
			}
			if got := failureName(err); got != contract.ErrInvalidInput {
				t.Fatalf("error = %s, want %s", got, contract.ErrInvalidInput)
			}
			if strings.Contains(err.Error(), "secret-not-jwt") {
				t.Fatalf("error echoes the input value: %v", err)
			}
			if n := len(e.id.calls); n != 0 {
				t.Fatalf("AgentCore was called %d times for invalid input", n)
			}
		})
	}
}

func TestInitiateSynchronousUserID(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	res := mustInitiate(t, e, `{"userId":"user-1","provider":"google","scopes":["openid"],"customParameters":{"access_type":"offline"}}`)
	if res.Status != flow.StatusAuthorizationRequired || res.AuthorizationURL == "" || res.VerificationCode == "" || res.CorrelationID == "" {
		t.Fatalf("unexpected result %+v", res)
	}
	if !strings.HasPrefix(e.id.reqs[0].ReturnURL, "https://cb.example/") || e.id.reqs[0].Flow != flow.FlowUserFederation {
		t.Fatalf("request %+v", e.id.reqs[0])
	}
	state := e.id.reqs[0].CustomState
	if len(state) != flow.StateLen {
		t.Fatalf("customState length %d", len(state))
	}
	ev := e.notifier.last(t)
	if ev.VerificationCode != res.VerificationCode || ev.AuthorizationURL != res.AuthorizationURL || ev.UserID != "user-1" {
		t.Fatalf("event %+v does not match result %+v", ev, res)
	}
	if !ev.ExpiresAt.Equal(e.now.Add(10 * time.Minute)) {
		t.Fatalf("expiresAt %v", ev.ExpiresAt)
	}
	s := e.store.sessions["urn:ietf:params:oauth:request_uri:sess-b"]
	if s.StateHash != flow.Hash(state) || s.CodeHash == "" || s.UserID != "user-1" || s.NotifiedAt.IsZero() {
		t.Fatalf("stored session %+v", s)
	}
	raw, _ := json.Marshal(s)
	for _, secret := range []string{state, res.VerificationCode, strings.ReplaceAll(res.VerificationCode, "-", "")} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("stored session holds a secret in clear")
		}
	}
}

func TestVerificationCodeShape(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		e := newEnv(t, flow.BindingCode)
		res := mustInitiate(t, e, `{"userId":"u","provider":"p","scopes":["s"]}`)
		c := res.VerificationCode
		if len(c) != 11 || c[5] != '-' || strings.ContainsAny(c, "01ILO") {
			t.Fatalf("code %q has the wrong shape", c)
		}
		if seen[c] {
			t.Fatalf("code repeated: %q", c)
		}
		seen[c] = true
	}
}

func TestInitiateCallbackPatternHidesURLAndCode(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	res := mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userId":"u","provider":"p","scopes":["s"]}}`)
	if res.AuthorizationURL != "" || res.VerificationCode != "" {
		t.Fatalf("callback-pattern result leaks into execution history: %+v", res)
	}
	if e.notifier.last(t).VerificationCode == "" {
		t.Fatal("event lacks the verification code")
	}
}

func TestInitiateJWTStoresOnlyHash(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	mustInitiate(t, e, `{"userToken":"`+jwt+`","provider":"p","scopes":["s"]}`)
	if e.id.users[0].UserToken != jwt {
		t.Fatal("workload token not minted for the JWT")
	}
	for _, s := range e.store.sessions {
		if s.UserTokenHash != flow.Hash(jwt) || s.UserID != "" {
			t.Fatalf("session %+v", s)
		}
		raw, _ := json.Marshal(s)
		if strings.Contains(string(raw), jwt) {
			t.Fatal("JWT stored in clear")
		}
	}
}

func TestInitiateVaultHit(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	e.id.token = flow.TokenResult{AccessToken: "ya29.secret-access-token"}
	res := mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userId":"u","provider":"p","scopes":["s"]}}`)
	if res.Status != flow.StatusAuthorized {
		t.Fatalf("status %s", res.Status)
	}
	rs := e.resumer.all()
	if len(rs) != 1 || !rs[0].OK || rs[0].Token != taskToken {
		t.Fatalf("task results %+v", rs)
	}
	if strings.Contains(string(rs[0].Output), "secret-access-token") {
		t.Fatal("token in workflow output")
	}
	if len(e.store.sessions) != 0 || len(e.notifier.events) != 0 {
		t.Fatal("vault hit must not create a session or publish")
	}
	// Resumed task gone: still a success, no crash.
	e2 := newEnv(t, flow.BindingCode)
	e2.id.token = e.id.token
	e2.resumer.err = fmt.Errorf("SendTaskSuccess: %w", flow.ErrTaskGone)
	mustInitiate(t, e2, `{"taskToken":"`+taskToken+`","input":{"userId":"u","provider":"p","scopes":["s"]}}`)
}

func TestInitiateM2M(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	e.id.token = flow.TokenResult{AccessToken: "m2m-token"}
	res := mustInitiate(t, e, `{"provider":"p","scopes":[],"flow":"M2M"}`)
	if res.Status != flow.StatusAuthorized || e.id.users[0] != (flow.UserRef{}) {
		t.Fatalf("res %+v users %+v", res, e.id.users)
	}
	if e.id.reqs[0].ReturnURL != "" || e.id.reqs[0].CustomState != "" {
		t.Fatal("M2M must not send a return URL or state")
	}
}

func TestInitiateRetrySameTaskReusesSession(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	raw := `{"taskToken":"` + taskToken + `","input":{"userId":"u","provider":"p","scopes":["s"]}}`
	first := mustInitiate(t, e, raw)
	again := mustInitiate(t, e, raw)
	if first.CorrelationID != again.CorrelationID {
		t.Fatal("retry created a second session")
	}
	if n := e.id.count("GetResourceOauth2Token"); n != 1 {
		t.Fatalf("GetResourceOauth2Token called %d times", n)
	}
	if len(e.notifier.events) != 1 {
		t.Fatalf("retry re-published an announced session: %d events", len(e.notifier.events))
	}
}

func TestInitiateNotifyFailureThenRetryAnnouncesNewCode(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	e.notifier.err = errBoom
	raw := `{"taskToken":"` + taskToken + `","input":{"userId":"u","provider":"p","scopes":["s"]}}`
	req, _ := flow.ParseRequest([]byte(raw))
	_, err := e.ini.Initiate(context.Background(), req)
	var f *flow.Failure
	if !errors.As(err, &f) || f.Name != contract.ErrNotifyFailed || !f.Retryable() {
		t.Fatalf("err = %v", err)
	}
	mustInitiate(t, e, raw)
	ev := e.notifier.last(t)
	if n := e.id.count("GetResourceOauth2Token"); n != 1 {
		t.Fatalf("GetResourceOauth2Token called %d times", n)
	}
	// The announced code works.
	p := flow.CallbackParams{SessionID: "urn:ietf:params:oauth:request_uri:sess-b", State: e.id.reqs[0].CustomState, Code: ev.VerificationCode}
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindConnected {
		t.Fatalf("outcome %v", o.Kind)
	}
}

func TestInitiateAgentCoreErrorsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		err       error
		name      string
		retryable bool
	}{
		{&flow.Failure{Name: contract.ErrThrottled}, contract.ErrThrottled, true},
		{&flow.Failure{Name: contract.ErrAccessDenied}, contract.ErrAccessDenied, false},
		{errBoom, contract.ErrAgentCoreUnavailable, true},
	} {
		e := newEnv(t, flow.BindingCode)
		e.id.tokenErr = tc.err
		req, _ := flow.ParseRequest([]byte(`{"userId":"u","provider":"p","scopes":["s"]}`))
		_, err := e.ini.Initiate(context.Background(), req)
		var f *flow.Failure
		if !errors.As(err, &f) || f.Name != tc.name || f.Retryable() != tc.retryable {
			t.Fatalf("%v -> %v", tc.err, err)
		}
	}
	e := newEnv(t, flow.BindingCode)
	e.id.token = flow.TokenResult{SessionStatus: "FAILED"}
	req, _ := flow.ParseRequest([]byte(`{"userId":"u","provider":"p","scopes":["s"]}`))
	if _, err := e.ini.Initiate(context.Background(), req); failureName(err) != contract.ErrAuthorizationFailed {
		t.Fatalf("FAILED session: %v", err)
	}
	e = newEnv(t, flow.BindingCode)
	e.store.failNext = errBoom
	if _, err := e.ini.Initiate(context.Background(), flow.Request{TaskToken: "t", Input: req.Input}); failureName(err) != contract.ErrStoreUnavailable {
		t.Fatalf("store down: %v", err)
	}
}

func TestNewInitiatorRejectsBadConfig(t *testing.T) {
	d := flow.Deps{}
	for _, cfg := range []flow.Config{
		{WorkloadName: "x", ReturnURL: "https://a/b", Binding: flow.BindingCode},
		{WorkloadName: "good-name", ReturnURL: "http://example.com/cb", Binding: flow.BindingCode},
		{WorkloadName: "good-name", ReturnURL: "https://a/b", Binding: "cookie"},
	} {
		if _, err := flow.NewInitiator(cfg, d); err == nil {
			t.Fatalf("config %+v accepted", cfg)
		}
	}
}

func TestCallbackHappyPath(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	ctx := context.Background()
	if o := e.cb.View(ctx, p); o.Kind != flow.KindConfirm || o.Provider != "google" || o.UserID != "user-1" || o.AttemptsLeft != 5 {
		t.Fatalf("GET outcome %+v", o)
	}
	if e.id.count("CompleteResourceTokenAuth") != 0 {
		t.Fatal("GET completed the session")
	}
	p.Code = strings.ToLower(strings.ReplaceAll(code, "-", " "))
	o := e.cb.Confirm(ctx, p)
	if o.Kind != flow.KindConnected || !o.WorkflowResumed {
		t.Fatalf("POST outcome %+v", o)
	}
	if e.id.completes[0] != (flow.UserRef{UserID: "user-1"}) {
		t.Fatalf("completed with %+v", e.id.completes[0])
	}
	rs := e.resumer.all()
	if len(rs) != 1 || !rs[0].OK {
		t.Fatalf("task results %+v", rs)
	}
	var out map[string]any
	_ = json.Unmarshal(rs[0].Output, &out)
	if out["status"] != "AUTHORIZED" || out["provider"] != "google" {
		t.Fatalf("output %s", rs[0].Output)
	}
	// Replay: answered from the record, nothing called again.
	for _, f := range []func(context.Context, flow.CallbackParams) *flow.Outcome{e.cb.View, e.cb.Confirm} {
		if o := f(ctx, p); o.Kind != flow.KindAlreadyConnected {
			t.Fatalf("replay outcome %v", o.Kind)
		}
	}
	if e.id.count("CompleteResourceTokenAuth") != 1 || len(e.resumer.all()) != 1 {
		t.Fatal("replay called AgentCore or Step Functions again")
	}
}

func TestCallbackSessionIDDoubleEncoded(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, _ := started(t, e)
	p.SessionID = url.QueryEscape(p.SessionID)
	if o := e.cb.View(context.Background(), p); o.Kind != flow.KindConfirm {
		t.Fatalf("double-encoded session_id: %v", o.Kind)
	}
}

func TestCallbackBadInput(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	other := "urn:ietf:params:oauth:request_uri:unknown"
	cases := map[string]struct {
		p      flow.CallbackParams
		want   flow.Kind
		reason flow.Reason
	}{
		"missing session_id": {flow.CallbackParams{State: p.State, Code: code}, flow.KindBadRequest, flow.ReasonIncompleteLink},
		"missing state":      {flow.CallbackParams{SessionID: p.SessionID, Code: code}, flow.KindBadRequest, flow.ReasonIncompleteLink},
		"garbled session_id": {flow.CallbackParams{SessionID: "urn:evil:<script>", State: p.State, Code: code}, flow.KindBadRequest, flow.ReasonMalformedLink},
		"overlong session":   {flow.CallbackParams{SessionID: "urn:ietf:params:oauth:request_uri:" + strings.Repeat("a", 1000), State: p.State, Code: code}, flow.KindBadRequest, flow.ReasonMalformedLink},
		"garbled state":      {flow.CallbackParams{SessionID: p.SessionID, State: "a b", Code: code}, flow.KindBadRequest, flow.ReasonMalformedLink},
		"overlong state":     {flow.CallbackParams{SessionID: p.SessionID, State: strings.Repeat("a", 5000), Code: code}, flow.KindBadRequest, flow.ReasonMalformedLink},
		"wrong state":        {flow.CallbackParams{SessionID: p.SessionID, State: strings.Repeat("A", 43), Code: code}, flow.KindStateMismatch, flow.ReasonNone},
		"unknown session":    {flow.CallbackParams{SessionID: other, State: p.State, Code: code}, flow.KindUnknownSession, flow.ReasonNone},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			for _, f := range []func(context.Context, flow.CallbackParams) *flow.Outcome{e.cb.View, e.cb.Confirm} {
				if o := f(context.Background(), tc.p); o.Kind != tc.want || o.Reason != tc.reason {
					t.Fatalf("outcome %v (reason %v), want %v (reason %v)", o.Kind, o.Reason, tc.want, tc.reason)
				}
			}
		})
	}
	if e.id.count("CompleteResourceTokenAuth") != 0 || len(e.resumer.all()) != 0 {
		t.Fatal("bad input reached AgentCore or Step Functions")
	}
	if e.store.sessions[p.SessionID].Attempts != 0 {
		t.Fatal("bad input counted as a code attempt")
	}
}

func TestCallbackWrongCodeFiveTimesFailsTask(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	p.Code = "WRONG-CODE2"
	if p.Code == code {
		t.Skip("improbable collision")
	}
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		o := e.cb.Confirm(ctx, p)
		if o.Kind != flow.KindWrongCode || o.AttemptsLeft != 5-i {
			t.Fatalf("attempt %d: %+v", i, o)
		}
	}
	if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindTooManyAttempts {
		t.Fatalf("5th attempt: %v", o.Kind)
	}
	p.Code = code // even the right code is refused now
	if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindTooManyAttempts {
		t.Fatalf("after lock-out: %v", o.Kind)
	}
	rs := e.resumer.all()
	if len(rs) != 1 || rs[0].Error != contract.ErrBindingFailed {
		t.Fatalf("task results %+v", rs)
	}
	if e.id.count("CompleteResourceTokenAuth") != 0 {
		t.Fatal("completed after wrong codes")
	}
	if strings.Contains(e.logs.String(), "WRONG-CODE2") {
		t.Fatal("typed code logged")
	}
}

func TestCallbackJWTBinding(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userToken":"`+jwt+`","provider":"p","scopes":["s"]}}`)
	p := flow.CallbackParams{SessionID: "urn:ietf:params:oauth:request_uri:sess-b", State: e.id.reqs[0].CustomState, Code: e.notifier.last(t).VerificationCode}
	ctx := context.Background()
	if o := e.cb.View(ctx, p); !o.NeedsUserSession {
		t.Fatal("confirmation does not say a signed-in session is needed")
	}
	for _, tok := range []string{"", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.b3RoZXI"} {
		p.UserToken = tok
		if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindWrongUser || o.UserID != "" {
			t.Fatalf("browser token %q: %+v", tok, o)
		}
	}
	p.UserToken = jwt
	if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindConnected {
		t.Fatalf("right user: %v", o.Kind)
	}
	if e.id.completes[0] != (flow.UserRef{UserToken: jwt}) {
		t.Fatalf("completed with %+v", e.id.completes[0])
	}
}

func TestCallbackBindingNone(t *testing.T) {
	e := newEnv(t, flow.BindingNone)
	p, code := started(t, e)
	if code != "" {
		t.Fatal("binding none published a code")
	}
	if o := e.cb.View(context.Background(), p); o.Kind != flow.KindConfirm || o.Binding != flow.BindingNone {
		t.Fatalf("%+v", o)
	}
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindConnected {
		t.Fatalf("%v", o.Kind)
	}
	if !strings.Contains(e.logs.String(), "binding mode none") {
		t.Fatal("no warning logged for binding mode none")
	}
}

func TestCallbackTransientCompleteFailureReleasesSession(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	p.Code = code
	e.id.completeFn = func(n int) error {
		if n == 1 {
			return &flow.Failure{Name: contract.ErrThrottled}
		}
		return nil
	}
	ctx := context.Background()
	if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindTryAgain || o.State == "" {
		t.Fatalf("first try: %+v", o)
	}
	if s := e.store.sessions[p.SessionID]; s.Status != flow.StatusPending {
		t.Fatalf("session burned by a transient failure: %s", s.Status)
	}
	if len(e.resumer.all()) != 0 {
		t.Fatal("task resumed after a transient failure")
	}
	if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindConnected {
		t.Fatalf("retry: %v", o.Kind)
	}
}

func TestCallbackTerminalCompleteFailureFailsTask(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	p.Code = code
	e.id.completeFn = func(int) error {
		return &flow.Failure{Name: contract.ErrAccessDenied, Message: "AgentCore denied access"}
	}
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindFailed || o.Reason != flow.ReasonCompletionRefused {
		t.Fatalf("%v (reason %v)", o.Kind, o.Reason)
	}
	rs := e.resumer.all()
	if len(rs) != 1 || rs[0].Error != contract.ErrAccessDenied {
		t.Fatalf("%+v", rs)
	}
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindFailed || e.id.count("CompleteResourceTokenAuth") != 1 {
		t.Fatal("failed session retried")
	}
}

func TestCallbackDenied(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, _ := started(t, e)
	p.Error, p.ErrorDescription = "access_denied", "The user denied <b>access</b>"
	if o := e.cb.View(context.Background(), p); o.Kind != flow.KindDenied {
		t.Fatalf("%v", o.Kind)
	}
	if o := e.cb.View(context.Background(), p); o.Kind != flow.KindDenied {
		t.Fatalf("second: %v", o.Kind)
	}
	rs := e.resumer.all()
	if len(rs) != 1 || rs[0].Error != contract.ErrConsentDenied {
		t.Fatalf("%+v", rs)
	}
	// Any other OAuth error: failed, the provider's error as the reason.
	e3 := newEnv(t, flow.BindingCode)
	p3, _ := started(t, e3)
	p3.Error = "server_error"
	if o := e3.cb.View(context.Background(), p3); o.Kind != flow.KindFailed || o.Reason != flow.ReasonProviderError {
		t.Fatalf("server_error: %v (reason %v)", o.Kind, o.Reason)
	}
	if rs := e3.resumer.all(); len(rs) != 1 || rs[0].Error != contract.ErrAuthorizationFailed {
		t.Fatalf("server_error: %+v", rs)
	}
	// An error with a forged state changes nothing.
	e2 := newEnv(t, flow.BindingCode)
	p2, _ := started(t, e2)
	p2.Error, p2.State = "access_denied", strings.Repeat("B", 43)
	if o := e2.cb.View(context.Background(), p2); o.Kind != flow.KindStateMismatch || len(e2.resumer.all()) != 0 {
		t.Fatalf("forged denial: %v", o.Kind)
	}
}

func TestCallbackExpired(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	p.Code = code
	e.now = e.now.Add(contract.SessionValidity)
	for i := 0; i < 2; i++ {
		if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindExpired {
			t.Fatalf("%v", o.Kind)
		}
	}
	rs := e.resumer.all()
	if len(rs) != 1 || rs[0].Error != contract.ErrExpired {
		t.Fatalf("%+v", rs)
	}
	if e.id.count("CompleteResourceTokenAuth") != 0 {
		t.Fatal("expired session completed")
	}
}

func TestCallbackTaskGoneIsHandled(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	p.Code = code
	e.resumer.err = fmt.Errorf("SendTaskSuccess: %w", flow.ErrTaskGone)
	o := e.cb.Confirm(context.Background(), p)
	if o.Kind != flow.KindConnected || o.WorkflowResumed {
		t.Fatalf("%+v", o)
	}
	if s := e.store.sessions[p.SessionID]; s.Status != flow.StatusCompleted {
		t.Fatalf("status %s", s.Status)
	}
}

func TestCallbackStoreDownIsTryAgain(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, _ := started(t, e)
	e.store.failNext = errBoom
	if o := e.cb.View(context.Background(), p); o.Kind != flow.KindTryAgain {
		t.Fatalf("%v", o.Kind)
	}
}

func TestCallbackConcurrentRightCode(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	p.Code = code
	var wg sync.WaitGroup
	kinds := make([]flow.Kind, 50)
	for i := range kinds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kinds[i] = e.cb.Confirm(context.Background(), p).Kind
		}()
	}
	wg.Wait()
	connected, already := 0, 0
	for _, k := range kinds {
		switch k {
		case flow.KindConnected:
			connected++
		case flow.KindAlreadyConnected:
			already++
		default:
			t.Fatalf("unexpected outcome %v", k)
		}
	}
	if connected != 1 || already != 49 {
		t.Fatalf("connected %d already %d", connected, already)
	}
	if e.id.count("CompleteResourceTokenAuth") != 1 || len(e.resumer.all()) != 1 {
		t.Fatal("more than one completion or resume")
	}
}

func TestLogsCarryNoSecrets(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userToken":"`+jwt+`","provider":"p","scopes":["s"]}}`)
	state := e.id.reqs[0].CustomState
	code := e.notifier.last(t).VerificationCode
	p := flow.CallbackParams{SessionID: "urn:ietf:params:oauth:request_uri:sess-b", State: state, Code: "XXXXX-YYYYY", UserToken: jwt}
	e.cb.View(context.Background(), p)
	e.cb.Confirm(context.Background(), p)
	p.Code = code
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindConnected {
		t.Fatalf("%v", o.Kind)
	}
	logs := e.logs.String()
	if !strings.Contains(logs, "correlationId") {
		t.Fatal("logs lack correlation ids")
	}
	for name, secret := range map[string]string{"state": state, "code": code, "code-raw": strings.ReplaceAll(code, "-", ""), "jwt": jwt, "task token": taskToken, "typed code": "XXXXX-YYYYY"} {
		if strings.Contains(logs, secret) {
			t.Fatalf("%s appears in the logs", name)
		}
	}
}

// A completion that claimed the session in time is not failed by a reload
// that arrives after the 10 minutes while it is still running.
func TestCallbackExpiryDuringCompletionDoesNotFailTask(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	e.now = e.now.Add(contract.SessionValidity - time.Second)
	inComplete, release := make(chan struct{}), make(chan struct{})
	e.id.completeFn = func(int) error {
		close(inComplete)
		<-release
		return nil
	}
	done := make(chan *flow.Outcome)
	go func() {
		q := p
		q.Code = code
		done <- e.cb.Confirm(context.Background(), q)
	}()
	<-inComplete
	e.advance(2 * time.Second) // past expiry, claim still live
	if o := e.cb.View(context.Background(), p); o.Kind != flow.KindInProgress {
		t.Fatalf("reload during completion: %v", o.Kind)
	}
	// A wrong code meanwhile is neither evaluated nor counted.
	q := p
	q.Code = "WRONG-CODE2"
	wrong := make(chan *flow.Outcome)
	go func() { wrong <- e.cb.Confirm(context.Background(), q) }()
	time.Sleep(100 * time.Millisecond)
	close(release)
	if o := <-done; o.Kind != flow.KindConnected || !o.WorkflowResumed {
		t.Fatalf("completion: %+v", o)
	}
	if o := <-wrong; o.Kind != flow.KindInProgress {
		t.Fatalf("concurrent wrong code: %v", o.Kind)
	}
	rs := e.resumer.all()
	if len(rs) != 1 || !rs[0].OK {
		t.Fatalf("task results %+v", rs)
	}
	// One attempt: the right code's own reservation.
	if s := e.store.sessions[p.SessionID]; s.Attempts != 1 || s.Status != flow.StatusCompleted {
		t.Fatalf("session %+v", s)
	}
}

// A deployment switched from binding none to code does not let its pending
// none-sessions complete without a code.
func TestCallbackStrongerBindingWins(t *testing.T) {
	e := newEnv(t, flow.BindingNone)
	p, _ := started(t, e)
	strict, err := flow.NewCallback(flow.CallbackConfig{Binding: flow.BindingCode}, flow.Deps{
		Identity: e.id, Store: e.store, Resumer: e.resumer, Clock: func() time.Time { return e.now },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if o := strict.Confirm(context.Background(), p); o.Kind != flow.KindBadRequest || o.Reason != flow.ReasonMissingCode {
		t.Fatalf("none-session under code config, no code: %v", o.Kind)
	}
	p.Code = "ABCDE-FGHJK"
	if o := strict.Confirm(context.Background(), p); o.Kind != flow.KindWrongCode {
		t.Fatalf("none-session under code config: %v", o.Kind)
	}
	if e.id.count("CompleteResourceTokenAuth") != 0 {
		t.Fatal("completed without a code")
	}
}
