package flow_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// lost is a CompleteResourceTokenAuth failure whose outcome is unknown, as
// the AgentCore adapter reports a timeout, a dropped connection or a 5xx.
func lost() error {
	return &flow.Failure{Name: contract.ErrAgentCoreUnavailable, Message: "AgentCore call timed out",
		Err: fmt.Errorf("%w: %w", flow.ErrOutcomeUnknown, context.DeadlineExceeded)}
}

func refused() error {
	return &flow.Failure{Name: contract.ErrAccessDenied, Message: "AgentCore denied access"}
}

func confirmWithCode(t *testing.T, e *env) (flow.CallbackParams, func() *flow.Outcome) {
	t.Helper()
	p, code := started(t, e)
	p.Code = code
	return p, func() *flow.Outcome { return e.cb.Confirm(context.Background(), p) }
}

func wantTask(t *testing.T, e *env, ok bool, errName string) {
	t.Helper()
	rs := e.resumer.all()
	if len(rs) != 1 || rs[0].OK != ok || rs[0].Error != errName {
		t.Fatalf("task results %+v, want one with ok=%v error=%q", rs, ok, errName)
	}
}

// The answer of a Complete that took effect is lost: the vault has the
// token, so the user sees Connected and the workflow resumes AUTHORIZED.
func TestLostCompletionAnswerIsACompletion(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	e.id.completeFn = func(int) error { return lost() }
	e.id.vaultFn = func(flow.TokenRequest) (flow.VaultState, error) { return flow.VaultStored, nil }
	if o := confirm(); o.Kind != flow.KindConnected || !o.WorkflowResumed {
		t.Fatalf("outcome %+v", o)
	}
	wantTask(t, e, true, "")
	if s := e.store.sessions[p.SessionID]; s.Status != flow.StatusCompleted {
		t.Fatalf("session %s", s.Status)
	}
	if n := e.id.count("CompleteResourceTokenAuth"); n != 1 {
		t.Fatalf("%d Complete calls", n)
	}
	// The vault was asked about this very session, as its user.
	r := e.id.vaultRq[0]
	if r.SessionURI != p.SessionID || r.Provider != "google" || r.ReturnURL != "https://cb.example/oauth2/callback" ||
		r.Flow != flow.FlowUserFederation || strings.Join(r.Scopes, " ") != "openid email" {
		t.Fatalf("vault request %+v", r)
	}
	if u := e.id.users[len(e.id.users)-1]; u.UserID != "user-1" {
		t.Fatalf("vault asked as %+v", u)
	}
}

// The scenario that used to end as a false failure: the first Complete
// times out but takes effect later; the retry is refused as "already
// completed". The vault decides: AUTHORIZED, not AccessDenied.
func TestRefusedRetryAfterLateCompletionIsACompletion(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	landed := false
	e.id.completeFn = func(n int) error {
		if n == 1 {
			return lost()
		}
		return refused() // "Invalid or expired session": the first call completed it
	}
	e.id.vaultFn = func(flow.TokenRequest) (flow.VaultState, error) {
		if landed {
			return flow.VaultStored, nil
		}
		return flow.VaultPending, nil
	}
	if o := confirm(); o.Kind != flow.KindTryAgain {
		t.Fatalf("first try: %v", o.Kind)
	}
	if s := e.store.sessions[p.SessionID]; s.Status != flow.StatusPending || s.Attempts != 0 {
		t.Fatalf("after the first try: %+v", s)
	}
	if len(e.resumer.all()) != 0 {
		t.Fatal("task settled while the outcome was unknown")
	}
	landed = true // the first call takes effect late
	if o := confirm(); o.Kind != flow.KindConnected || !o.WorkflowResumed {
		t.Fatalf("retry: %+v", o)
	}
	wantTask(t, e, true, "")
}

// When even the vault cannot be asked, the claim is kept: no second
// Complete runs until the lease ends; then a retry takes over.
func TestUnknownOutcomeKeepsClaimUntilLease(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	e.id.completeFn = func(n int) error {
		if n == 1 {
			return lost()
		}
		return nil
	}
	vaultDown := true
	e.id.vaultFn = func(flow.TokenRequest) (flow.VaultState, error) {
		if vaultDown {
			return 0, &flow.Failure{Name: contract.ErrAgentCoreUnavailable, Message: "AgentCore internal error"}
		}
		return flow.VaultPending, nil
	}
	if o := confirm(); o.Kind != flow.KindInProgress {
		t.Fatalf("first try: %v", o.Kind)
	}
	if s := e.store.sessions[p.SessionID]; s.Status != flow.StatusCompleting {
		t.Fatalf("claim not kept: %s", s.Status)
	}
	// Within the lease: answered without a second Complete. The vault is
	// back meanwhile, but only the claim holder asks it.
	vaultDown = false
	e.advance(flow.ClaimLease / 2)
	if o := confirm(); o.Kind != flow.KindInProgress {
		t.Fatalf("retry within the lease: %v", o.Kind)
	}
	if n := e.id.count("CompleteResourceTokenAuth"); n != 1 {
		t.Fatalf("%d Complete calls within the lease", n)
	}
	e.advance(flow.ClaimLease)
	if o := confirm(); o.Kind != flow.KindConnected {
		t.Fatalf("after the lease: %v", o.Kind)
	}
	if n := e.id.count("CompleteResourceTokenAuth"); n != 2 {
		t.Fatalf("%d Complete calls", n)
	}
	wantTask(t, e, true, "")
}

// A definite refusal with the session still waiting fails the task with
// the refusal's name, once.
func TestRefusalWithoutTokenFails(t *testing.T) {
	for name, state := range map[string]flow.VaultState{"pending": flow.VaultPending, "failed": flow.VaultFailed} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, flow.BindingCode)
			p, confirm := confirmWithCode(t, e)
			e.id.completeFn = func(int) error { return refused() }
			e.id.vaultFn = func(flow.TokenRequest) (flow.VaultState, error) { return state, nil }
			if o := confirm(); o.Kind != flow.KindFailed || o.Reason != flow.ReasonCompletionRefused {
				t.Fatalf("outcome %+v", o)
			}
			wantTask(t, e, false, contract.ErrAccessDenied)
			if s := e.store.sessions[p.SessionID]; s.Status != flow.StatusFailed {
				t.Fatalf("session %s", s.Status)
			}
		})
	}
}

// Throttling is a definite "not done": released at once, no vault check.
func TestThrottledCompleteSkipsVaultCheck(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	_, confirm := confirmWithCode(t, e)
	e.id.completeFn = func(int) error { return &flow.Failure{Name: contract.ErrThrottled} }
	if o := confirm(); o.Kind != flow.KindTryAgain {
		t.Fatalf("outcome %v", o.Kind)
	}
	if n := e.id.count("SessionVaultState"); n != 0 {
		t.Fatalf("vault asked %d times", n)
	}
}

// A flow started with a JWT asks the vault as the browser's JWT (the very
// artifact the session was started with).
func TestVaultCheckUsesTheJWT(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userToken":"`+jwt+`","provider":"google","scopes":["openid"]}}`)
	ev := e.notifier.last(t)
	p := flow.CallbackParams{SessionID: "urn:ietf:params:oauth:request_uri:sess-b", State: e.id.reqs[len(e.id.reqs)-1].CustomState,
		Code: ev.VerificationCode, UserToken: jwt}
	e.id.completeFn = func(int) error { return lost() }
	e.id.vaultFn = func(flow.TokenRequest) (flow.VaultState, error) { return flow.VaultStored, nil }
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindConnected {
		t.Fatalf("outcome %v", o.Kind)
	}
	if u := e.id.users[len(e.id.users)-1]; u.UserToken != jwt || u.UserID != "" {
		t.Fatalf("vault asked as %+v", u)
	}
}
