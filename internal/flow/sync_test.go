package flow_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// funcNotifier is a Notifier made of a function (what agentauth passes).
type funcNotifier func(context.Context, flow.AuthorizationRequired) error

func (f funcNotifier) AuthorizationRequired(ctx context.Context, ev flow.AuthorizationRequired) error {
	return f(ctx, ev)
}

func syncInput() flow.Input {
	return flow.Input{UserID: "user-1", Provider: "google", Scopes: []string{"openid", "email"}}
}

func TestStartSyncVaultHit(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	e.id.token = flow.TokenResult{AccessToken: "vault-token"}
	called := false
	st, err := e.ini.StartSync(context.Background(), syncInput(), "wat-given", funcNotifier(func(context.Context, flow.AuthorizationRequired) error {
		called = true
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if st.AccessToken != "vault-token" || st.Result.Status != flow.StatusAuthorized || st.SessionURI != "" || called {
		t.Fatalf("started %+v (notified %v)", st, called)
	}
	if e.id.count("GetWorkloadAccessToken") != 0 || e.id.count("GetResourceOauth2Token") != 1 {
		t.Fatalf("calls %v", e.id.calls)
	}
	if len(e.store.sessions) != 0 {
		t.Fatal("a session was stored for a vault hit")
	}
}

// TestStartSyncStoresTheInitiateRecord: the same record as Initiate's
// synchronous form, announced through the caller's notifier only.
func TestStartSyncStoresTheInitiateRecord(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	var ev flow.AuthorizationRequired
	st, err := e.ini.StartSync(context.Background(), syncInput(), "wat-given", funcNotifier(func(_ context.Context, x flow.AuthorizationRequired) error {
		ev = x
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.notifier.events) != 0 {
		t.Fatal("the deployment's notifier was used")
	}
	if e.id.count("GetWorkloadAccessToken") != 0 {
		t.Fatal("StartSync minted a workload token")
	}
	r := st.Result
	if r.Status != flow.StatusAuthorizationRequired || r.AuthorizationURL == "" || r.VerificationCode == "" ||
		r.VerificationCode != ev.VerificationCode || r.AuthorizationURL != ev.AuthorizationURL || r.CorrelationID != ev.CorrelationID {
		t.Fatalf("result %+v, event %+v", r, ev)
	}
	s := e.store.sessions[st.SessionURI]
	state := e.id.reqs[0].CustomState
	if s.StateHash != flow.Hash(state) || s.CodeHash == "" || s.UserID != "user-1" || s.TaskToken != "" ||
		s.NotifiedAt.IsZero() || s.Status != flow.StatusPending || s.Binding != flow.BindingCode {
		t.Fatalf("stored %+v", s)
	}
	if e.id.reqs[0].ReturnURL != "https://cb.example/oauth2/callback" {
		t.Fatalf("request %+v", e.id.reqs[0])
	}
	// The callback completes it like any session it started.
	p := flow.CallbackParams{SessionID: st.SessionURI, State: state, Code: r.VerificationCode}
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindConnected || o.WorkflowResumed {
		t.Fatalf("confirm %+v", o)
	}
	got, err := e.ini.Await(context.Background(), st.SessionURI)
	if err != nil || got.Status != flow.StatusCompleted {
		t.Fatalf("await %+v %v", got, err)
	}
	if len(e.resumer.all()) != 0 {
		t.Fatal("a session without task resumed something")
	}
}

func TestStartSyncNotifierErrorFails(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	hookErr := errors.New("chat down")
	_, err := e.ini.StartSync(context.Background(), syncInput(), "wat", funcNotifier(func(context.Context, flow.AuthorizationRequired) error {
		return hookErr
	}))
	if failureName(err) != contract.ErrNotifyFailed || !errors.Is(err, hookErr) {
		t.Fatalf("err %v", err)
	}
}

func TestStartSyncRefusesBadInput(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	n := funcNotifier(func(context.Context, flow.AuthorizationRequired) error { return nil })
	if _, err := e.ini.StartSync(context.Background(), syncInput(), "", n); failureName(err) != contract.ErrInvalidInput {
		t.Fatalf("no workload token: %v", err)
	}
	in := syncInput()
	in.Provider = "bad name"
	if _, err := e.ini.StartSync(context.Background(), in, "wat", n); failureName(err) != contract.ErrInvalidInput {
		t.Fatalf("bad provider: %v", err)
	}
	if len(e.id.calls) != 0 {
		t.Fatalf("AgentCore called: %v", e.id.calls)
	}
}

func TestStartSyncWithoutWorkloadName(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	ini, err := flow.NewInitiator(flow.Config{ReturnURL: "https://cb.example/oauth2/callback", Binding: flow.BindingCode},
		flow.Deps{Identity: e.id, Store: e.store, Clock: time.Now, Random: func(b []byte) error { _, err := cryptoRead(b); return err }, Log: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ini.Initiate(context.Background(), flow.Request{Input: syncInput()}); failureName(err) != contract.ErrMisconfigured {
		t.Fatalf("Initiate without a workload name: %v", err)
	}
	n := funcNotifier(func(context.Context, flow.AuthorizationRequired) error { return nil })
	if st, err := ini.StartSync(context.Background(), syncInput(), "wat", n); err != nil || st.SessionURI == "" {
		t.Fatalf("StartSync: %+v %v", st, err)
	}
}

func TestAwaitFailedAndExpired(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	n := funcNotifier(func(context.Context, flow.AuthorizationRequired) error { return nil })
	st, err := e.ini.StartSync(context.Background(), syncInput(), "wat", n)
	if err != nil {
		t.Fatal(err)
	}
	p := flow.CallbackParams{SessionID: st.SessionURI, State: e.id.reqs[0].CustomState, Error: "access_denied"}
	if o := e.cb.View(context.Background(), p); o.Kind != flow.KindDenied {
		t.Fatalf("denied: %+v", o)
	}
	s, err := e.ini.Await(context.Background(), st.SessionURI)
	if err != nil || s.Status != flow.StatusFailed || s.FailureReason != contract.ErrConsentDenied {
		t.Fatalf("await denied: %+v %v", s, err)
	}

	st, err = e.ini.StartSync(context.Background(), syncInput(), "wat", n)
	if err != nil {
		t.Fatal(err)
	}
	e.advance(contract.SessionValidity)
	s, err = e.ini.Await(context.Background(), st.SessionURI)
	if err != nil || s.Status != flow.StatusExpired || s.MayHaveCompleted() {
		t.Fatalf("await expired: %+v %v", s, err)
	}
}

func TestAwaitWaitsForALiveCompletionPastExpiry(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	n := funcNotifier(func(context.Context, flow.AuthorizationRequired) error { return nil })
	st, err := e.ini.StartSync(context.Background(), syncInput(), "wat", n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Claim(context.Background(), st.SessionURI, e.now.Add(contract.SessionValidity-time.Second)); err != nil {
		t.Fatal(err)
	}
	e.advance(contract.SessionValidity)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if s, err := e.ini.Await(ctx, st.SessionURI); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("await returned during a live completion: %+v %v", s, err)
	}
	e.advance(flow.ClaimLease)
	s, err := e.ini.Await(context.Background(), st.SessionURI)
	if err != nil || s.Status != flow.StatusExpired || !s.MayHaveCompleted() {
		t.Fatalf("await after the lease: %+v %v", s, err)
	}
}

func TestAwaitRidesOutStoreBlipsAndHonoursCtx(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	n := funcNotifier(func(context.Context, flow.AuthorizationRequired) error { return nil })
	st, err := e.ini.StartSync(context.Background(), syncInput(), "wat", n)
	if err != nil {
		t.Fatal(err)
	}
	e.store.failNext = errBoom
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	if _, err := e.ini.Await(ctx, st.SessionURI); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("await: %v", err)
	}
	if _, err := e.ini.Await(context.Background(), "urn:ietf:params:oauth:request_uri:nope"); failureName(err) != contract.ErrAuthorizationFailed {
		t.Fatalf("unknown session: %v", err)
	}
}
