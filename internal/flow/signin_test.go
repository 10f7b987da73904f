package flow_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// fakeSignIn is an OpenID provider as the callback sees it: AuthURL records
// the round, issue plays the person signing in, Exchange checks the PKCE
// verifier and answers once per code.
type fakeSignIn struct {
	mu      sync.Mutex
	rounds  []flow.SignInRequest
	codes   map[string]fakeCode
	n       int
	authErr error
	exchErr error
}

type fakeCode struct {
	verifier string
	user     flow.SignedInUser
}

func (f *fakeSignIn) AuthURL(_ context.Context, r flow.SignInRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.authErr != nil {
		return "", f.authErr
	}
	f.rounds = append(f.rounds, r)
	return "https://idp.example/authorize?prompt=" + r.Prompt, nil
}

// issue signs userID in for the last round and returns the code the
// provider's redirect carries (nonce as given, or the round's).
func (f *fakeSignIn) issue(userID, nonce string) (code string, r flow.SignInRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r = f.rounds[len(f.rounds)-1]
	if nonce == "" {
		nonce = r.Nonce
	}
	f.n++
	code = fmt.Sprintf("code-%d", f.n)
	f.codes[code] = fakeCode{verifier: r.Verifier, user: flow.SignedInUser{UserID: userID, Display: userID + "@example.com", Nonce: nonce}}
	return code, r
}

func (f *fakeSignIn) Exchange(_ context.Context, code, verifier string) (flow.SignedInUser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.exchErr != nil {
		return flow.SignedInUser{}, f.exchErr
	}
	c, ok := f.codes[code]
	delete(f.codes, code)
	if !ok || c.verifier != verifier {
		return flow.SignedInUser{}, fmt.Errorf("%w: invalid_grant", flow.ErrSignInRejected)
	}
	return c.user, nil
}

// memLogins is an in-memory LoginStore (the DynamoDB one is tested against
// DynamoDB Local in internal/state).
type memLogins struct {
	mu sync.Mutex
	m  map[string]flow.Login
}

func (s *memLogins) CreateLogin(_ context.Context, l *flow.Login) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[l.Key]; ok {
		return flow.ErrConflict
	}
	s.m[l.Key] = *l
	return nil
}

func (s *memLogins) UseLogin(_ context.Context, key string, now time.Time) (*flow.Login, error) {
	return s.update(key, func(l *flow.Login) bool {
		if !l.UsedAt.IsZero() || !now.Before(l.ExpiresAt) {
			return false
		}
		l.UsedAt = now
		return true
	})
}

func (s *memLogins) FollowLogin(_ context.Context, key string, now time.Time) (*flow.Login, error) {
	return s.update(key, func(l *flow.Login) bool {
		if l.UsedAt.IsZero() || !l.FollowedAt.IsZero() || !now.Before(l.ExpiresAt) {
			return false
		}
		l.FollowedAt = now
		return true
	})
}

func (s *memLogins) update(key string, f func(*flow.Login) bool) (*flow.Login, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.m[key]
	if !ok {
		return nil, flow.ErrNotFound
	}
	if !f(&l) {
		return &l, flow.ErrConflict
	}
	s.m[key] = l
	return &l, nil
}

// signInEnv is an env whose callback signs browsers in.
func signInEnv(t *testing.T, mode flow.BindingMode, external bool) *env {
	t.Helper()
	e := newEnv(t, mode)
	cb, err := flow.NewCallback(flow.CallbackConfig{Binding: mode, ClaimWait: 2 * time.Second, ExternalSessions: external,
		WorkloadName: "consentflow-test", ReturnURL: "https://cb.example/oauth2/callback"}, e.deps)
	if err != nil {
		t.Fatal(err)
	}
	e.cb = cb
	return e
}

// signIn follows a KindSignIn outcome: userID signs in at the provider and
// the browser returns to the login callback.
func signIn(t *testing.T, e *env, o *flow.Outcome, userID string) *flow.Outcome {
	t.Helper()
	if o.Kind != flow.KindSignIn || o.Login == nil {
		t.Fatalf("want a sign-in redirect, got kind %d reason %d", o.Kind, o.Reason)
	}
	code, r := e.signIn.issue(userID, "")
	return e.cb.LoginReturn(context.Background(), flow.LoginParams{Secret: o.Login.Secret, Code: code, State: r.State})
}

func TestSignInRightUserCompletes(t *testing.T) {
	e := signInEnv(t, flow.BindingOIDC, false)
	p, code := started(t, e)
	if code != "" {
		t.Fatal("oidc binding must not issue a verification code")
	}
	ctx := context.Background()
	if v := e.cb.View(ctx, p); v.Kind != flow.KindConfirm || v.Binding != flow.BindingOIDC {
		t.Fatalf("view: %+v", v)
	}
	o := e.cb.Confirm(ctx, p)
	if o.Kind != flow.KindSignIn || o.Login.MaxAge != contract.LoginValidity || !strings.HasPrefix(o.Login.URL, "https://idp.example/") {
		t.Fatalf("confirm: %+v", o)
	}
	if e.id.count("CompleteResourceTokenAuth") != 0 {
		t.Fatal("completed before the sign-in")
	}
	r := e.signIn.rounds[0]
	if r.State == r.Nonce || r.State == r.Verifier || len(r.Verifier) != 43 || strings.Contains(r.State, o.Login.Secret) {
		t.Fatalf("state, nonce and verifier must be distinct values derived from the secret: %+v", r)
	}
	o = signIn(t, e, o, "user-1")
	if o.Kind != flow.KindConnected || !o.WorkflowResumed || o.SignedInAs != "user-1@example.com" {
		t.Fatalf("login return: %+v", o)
	}
	if got := e.id.completes; len(got) != 1 || got[0] != (flow.UserRef{UserID: "user-1"}) {
		t.Fatalf("Complete for %+v", got)
	}
}

func TestSignInWrongUserThenSwitchAccount(t *testing.T) {
	e := signInEnv(t, flow.BindingOIDC, false)
	p, _ := started(t, e)
	ctx := context.Background()
	first := e.cb.Confirm(ctx, p)
	o := signIn(t, e, first, "user-2")
	if o.Kind != flow.KindWrongUser || !o.CanSignInAgain || o.SignedInAs != "user-2@example.com" || o.UserID != "" {
		t.Fatalf("wrong user: %+v", o)
	}
	if e.id.count("CompleteResourceTokenAuth") != 0 {
		t.Fatal("Complete called for the wrong user")
	}
	if !strings.Contains(e.logs.String(), "signedInUserHash") || strings.Contains(e.logs.String(), "user-2@example.com") {
		t.Fatal("the refusal must be logged with a hash of the signed-in user, not the user")
	}
	again := e.cb.SignInAgain(ctx, first.Login.Secret)
	if again.Kind != flow.KindSignIn || e.signIn.rounds[1].Prompt != "select_account" {
		t.Fatalf("sign in again: %+v", again)
	}
	if o := e.cb.SignInAgain(ctx, first.Login.Secret); o.Kind != flow.KindLoginRefused || o.Reason != flow.ReasonLoginUsed {
		t.Fatalf("a sign-in is followed once: %+v", o)
	}
	if o := signIn(t, e, again, "user-1"); o.Kind != flow.KindConnected {
		t.Fatalf("right account after switching: %+v", o)
	}
}

func TestSignInLoginChecks(t *testing.T) {
	ctx := context.Background()
	t.Run("no cookie", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		e.cb.Confirm(ctx, p)
		code, r := e.signIn.issue("user-1", "")
		o := e.cb.LoginReturn(ctx, flow.LoginParams{Code: code, State: r.State})
		if o.Kind != flow.KindLoginRefused || o.Reason != flow.ReasonLoginMissing {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("another browser's redirect keeps this browser's sign-in", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		mine := e.cb.Confirm(ctx, p)
		theirs := e.cb.Confirm(ctx, p)
		code, r := e.signIn.issue("user-1", "") // theirs is the last round
		o := e.cb.LoginReturn(ctx, flow.LoginParams{Secret: mine.Login.Secret, Code: code, State: r.State})
		if o.Kind != flow.KindLoginRefused || o.Reason != flow.ReasonLoginMismatch {
			t.Fatalf("%+v", o)
		}
		if o := e.cb.LoginReturn(ctx, flow.LoginParams{Secret: theirs.Login.Secret, Code: code, State: r.State}); o.Kind != flow.KindConnected {
			t.Fatalf("theirs: %+v", o)
		}
	})
	t.Run("replay", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		o := e.cb.Confirm(ctx, p)
		code, r := e.signIn.issue("user-1", "")
		lp := flow.LoginParams{Secret: o.Login.Secret, Code: code, State: r.State}
		if o := e.cb.LoginReturn(ctx, lp); o.Kind != flow.KindConnected {
			t.Fatalf("%+v", o)
		}
		if o := e.cb.LoginReturn(ctx, lp); o.Kind != flow.KindLoginRefused || o.Reason != flow.ReasonLoginUsed {
			t.Fatalf("replay: %+v", o)
		}
		if n := e.id.count("CompleteResourceTokenAuth"); n != 1 {
			t.Fatalf("Complete called %d times", n)
		}
	})
	t.Run("late", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		o := e.cb.Confirm(ctx, p)
		e.advance(contract.LoginValidity)
		if o := signIn(t, e, o, "user-1"); o.Kind != flow.KindLoginRefused || o.Reason != flow.ReasonLoginExpired {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("nonce of another sign-in", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		o := e.cb.Confirm(ctx, p)
		code, r := e.signIn.issue("user-1", "some-other-nonce")
		got := e.cb.LoginReturn(ctx, flow.LoginParams{Secret: o.Login.Secret, Code: code, State: r.State})
		if got.Kind != flow.KindSignInFailed || got.Reason != flow.ReasonSignInRejected || e.id.count("CompleteResourceTokenAuth") != 0 {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("verifier of another sign-in", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		mine := e.cb.Confirm(ctx, p)
		e.cb.Confirm(ctx, p)
		code, _ := e.signIn.issue("user-1", "")
		// A code stolen from another browser's redirect, replayed with
		// this browser's secret and state: the PKCE verifier differs.
		got := e.cb.LoginReturn(ctx, flow.LoginParams{Secret: mine.Login.Secret, Code: code, State: e.signIn.rounds[0].State})
		if got.Kind != flow.KindSignInFailed || got.Reason != flow.ReasonSignInRejected {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("provider error", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		o := e.cb.Confirm(ctx, p)
		r := e.signIn.rounds[0]
		got := e.cb.LoginReturn(ctx, flow.LoginParams{Secret: o.Login.Secret, Error: "access_denied", State: r.State})
		if got.Kind != flow.KindSignInFailed || got.Reason != flow.ReasonSignInCancelled || !got.CanSignInAgain {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("provider unavailable", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		e.signIn.authErr = errBoom
		if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindTryAgain {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("at most MaxSignInRounds", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		o := e.cb.Confirm(ctx, p)
		for i := 1; i < flow.MaxSignInRounds; i++ {
			if got := signIn(t, e, o, "user-2"); got.Kind != flow.KindWrongUser {
				t.Fatalf("round %d: %+v", i, got)
			}
			o = e.cb.SignInAgain(ctx, o.Login.Secret)
		}
		if got := signIn(t, e, o, "user-2"); got.Kind != flow.KindWrongUser {
			t.Fatalf("last round: %+v", got)
		}
		if got := e.cb.SignInAgain(ctx, o.Login.Secret); got.Kind != flow.KindLoginRefused || got.Reason != flow.ReasonLoginTooMany {
			t.Fatalf("beyond the limit: %+v", got)
		}
	})
}

func TestSignInWithCode(t *testing.T) {
	e := signInEnv(t, flow.BindingOIDCCode, false)
	p, code := started(t, e)
	if code == "" {
		t.Fatal("oidc+code issues a verification code")
	}
	ctx := context.Background()
	wrong := p
	wrong.Code = "AAAAA-AAAAA"
	if o := e.cb.Confirm(ctx, wrong); o.Kind != flow.KindWrongCode || len(e.signIn.rounds) != 0 {
		t.Fatalf("a wrong code must not start a sign-in: %+v", o)
	}
	p.Code = code
	if o := signIn(t, e, e.cb.Confirm(ctx, p), "user-1"); o.Kind != flow.KindConnected {
		t.Fatalf("%+v", o)
	}
}

func TestSignInExternalSessions(t *testing.T) {
	ctx := context.Background()
	ext := flow.CallbackParams{SessionID: "urn:ietf:params:oauth:request_uri:started-by-an-agent"}
	t.Run("refused unless enabled", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		if o := e.cb.View(ctx, ext); o.Kind != flow.KindBadRequest {
			t.Fatalf("%+v", o)
		}
		p := ext
		p.State = strings.Repeat("A", 43)
		if o := e.cb.View(ctx, p); o.Kind != flow.KindUnknownSession {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("completed once, for the signed-in user", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, true)
		if o := e.cb.View(ctx, ext); o.Kind != flow.KindConfirm || !o.External {
			t.Fatalf("view: %+v", o)
		}
		o := signIn(t, e, e.cb.Confirm(ctx, ext), "user-7")
		if o.Kind != flow.KindConnected || o.SignedInAs != "user-7@example.com" {
			t.Fatalf("%+v", o)
		}
		if got := e.id.completes; len(got) != 1 || got[0] != (flow.UserRef{UserID: "user-7"}) {
			t.Fatalf("Complete for %+v", got)
		}
		s, err := e.store.Get(ctx, ext.SessionID)
		if err != nil || !s.External || s.Status != flow.StatusCompleted || s.TaskToken != "" {
			t.Fatalf("tombstone: %+v %v", s, err)
		}
		// The same link again: already done, nothing called.
		if o := e.cb.View(ctx, ext); o.Kind != flow.KindAlreadyConnected {
			t.Fatalf("replay view: %+v", o)
		}
		if o := e.cb.Confirm(ctx, ext); o.Kind != flow.KindAlreadyConnected {
			t.Fatalf("replay confirm: %+v", o)
		}
		if n := e.id.count("CompleteResourceTokenAuth"); n != 1 {
			t.Fatalf("Complete called %d times", n)
		}
	})
	t.Run("another user is refused by AgentCore and does not end it", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, true)
		e.id.completeFn = func(n int) error {
			if n == 1 {
				return &flow.Failure{Name: contract.ErrAccessDenied, Message: "Invalid or expired session"}
			}
			return nil
		}
		first := e.cb.Confirm(ctx, ext)
		o := signIn(t, e, first, "mallory")
		if o.Kind != flow.KindWrongUser || o.Reason != flow.ReasonCompletionRefused || !o.CanSignInAgain {
			t.Fatalf("%+v", o)
		}
		if s, err := e.store.Get(ctx, ext.SessionID); err != nil || s.Status != flow.StatusPending {
			t.Fatalf("must stay open for its user: %+v %v", s, err)
		}
		if o := signIn(t, e, e.cb.Confirm(ctx, ext), "user-7"); o.Kind != flow.KindConnected {
			t.Fatalf("its own user: %+v", o)
		}
	})
	t.Run("own sessions still need their state", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, true)
		p, _ := started(t, e)
		p.State = ""
		if o := e.cb.View(ctx, p); o.Kind != flow.KindBadRequest {
			t.Fatalf("%+v", o)
		}
	})
}

func TestSignInConfiguration(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	d := e.deps
	d.SignIn = nil
	if _, err := flow.NewCallback(flow.CallbackConfig{Binding: flow.BindingOIDC}, d); err == nil {
		t.Fatal("oidc without a provider accepted")
	}
	if _, err := flow.NewCallback(flow.CallbackConfig{Binding: flow.BindingCode, ExternalSessions: true}, e.deps); err == nil {
		t.Fatal("external sessions without sign-in accepted")
	}
	if o := e.cb.LoginReturn(context.Background(), flow.LoginParams{}); o.Kind != flow.KindBadRequest {
		t.Fatalf("login callback in code mode: %+v", o)
	}
}

func TestUserTokenVerified(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	forged := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.forged"
	mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userToken":"`+forged+`","provider":"google","scopes":["openid"]}}`)
	ev := e.notifier.last(t)
	state := e.id.reqs[len(e.id.reqs)-1].CustomState
	uri := "urn:ietf:params:oauth:request_uri:sess-" + string(rune('a'+e.id.uris))
	p := flow.CallbackParams{SessionID: uri, State: state, Code: ev.VerificationCode, UserToken: forged}
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindWrongUser || o.UserID != "" {
		t.Fatalf("a JWT that fails verification must be refused even when it is the one the flow started with: %+v", o)
	}
	if e.id.count("CompleteResourceTokenAuth") != 0 {
		t.Fatal("Complete called")
	}
	// And without an issuer configured, a userToken flow is refused at once.
	d := e.deps
	ini, err := flow.NewInitiator(flow.Config{WorkloadName: "consentflow-test", ReturnURL: "https://cb.example/oauth2/callback", Binding: flow.BindingCode}, d)
	if err != nil {
		t.Fatal(err)
	}
	req, err := flow.ParseRequest([]byte(`{"taskToken":"` + taskToken + `","input":{"userToken":"` + jwt + `","provider":"google"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ini.Initiate(context.Background(), req); failureName(err) != contract.ErrInvalidInput {
		t.Fatalf("userToken without an issuer: %v", err)
	}
}

// Findings of the security review of the sign-in binding, each a test.
func TestSignInReviewFindings(t *testing.T) {
	ctx := context.Background()
	ext := flow.CallbackParams{SessionID: "urn:ietf:params:oauth:request_uri:started-by-an-agent"}
	t.Run("an error redirect does not end a session started elsewhere", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, true)
		e.id.completeFn = func(n int) error {
			if n == 1 {
				return &flow.Failure{Name: contract.ErrAccessDenied, Message: "Invalid or expired session"}
			}
			return nil
		}
		signIn(t, e, e.cb.Confirm(ctx, ext), "mallory") // records it, refused, released
		forged := ext
		forged.State, forged.Error = "x", "access_denied"
		if o := e.cb.View(ctx, forged); o.Kind != flow.KindDenied {
			t.Fatalf("%+v", o)
		}
		if s, err := e.store.Get(ctx, ext.SessionID); err != nil || s.Status != flow.StatusPending {
			t.Fatalf("an unauthenticated error redirect ended it: %+v %v", s, err)
		}
		if o := signIn(t, e, e.cb.Confirm(ctx, ext), "user-7"); o.Kind != flow.KindConnected {
			t.Fatalf("its own user: %+v", o)
		}
	})
	t.Run("own sessions need their state with external sessions on", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, true)
		p, _ := started(t, e)
		p.State = strings.Repeat("B", len(p.State))
		if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindStateMismatch || len(e.signIn.rounds) != 0 {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("a recorded external session after external sessions are switched off", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, true)
		e.id.completeFn = func(int) error { return &flow.Failure{Name: contract.ErrAccessDenied} }
		signIn(t, e, e.cb.Confirm(ctx, ext), "mallory")
		off, err := flow.NewCallback(flow.CallbackConfig{Binding: flow.BindingOIDC, WorkloadName: "consentflow-test",
			ReturnURL: "https://cb.example/oauth2/callback"}, e.deps)
		if err != nil {
			t.Fatal(err)
		}
		p := ext
		p.State = strings.Repeat("A", 43)
		if o := off.Confirm(ctx, p); o.Kind != flow.KindUnknownSession {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("a sign-in login for an external session needs external sessions on", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, true)
		o := e.cb.Confirm(ctx, ext)
		off, _ := flow.NewCallback(flow.CallbackConfig{Binding: flow.BindingOIDC, WorkloadName: "consentflow-test",
			ReturnURL: "https://cb.example/oauth2/callback"}, e.deps)
		code, r := e.signIn.issue("user-7", "")
		if got := off.LoginReturn(ctx, flow.LoginParams{Secret: o.Login.Secret, Code: code, State: r.State}); got.Kind != flow.KindUnknownSession {
			t.Fatalf("%+v", got)
		}
		if e.id.count("CompleteResourceTokenAuth") != 0 {
			t.Fatal("Complete called")
		}
	})
	t.Run("a session that needs sign-in under a deployment without it fails closed", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		d := e.deps
		d.SignIn, d.Logins = nil, nil
		none, err := flow.NewCallback(flow.CallbackConfig{Binding: flow.BindingNone}, d)
		if err != nil {
			t.Fatal(err)
		}
		if o := none.Confirm(ctx, p); o.Kind != flow.KindFailed || e.id.count("CompleteResourceTokenAuth") != 0 {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("the code a deployment switched to oidc+code needs", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		o := e.cb.Confirm(ctx, p) // oidc: no code checked
		both, _ := flow.NewCallback(flow.CallbackConfig{Binding: flow.BindingOIDCCode, WorkloadName: "consentflow-test",
			ReturnURL: "https://cb.example/oauth2/callback"}, e.deps)
		code, r := e.signIn.issue("user-1", "")
		got := both.LoginReturn(ctx, flow.LoginParams{Secret: o.Login.Secret, Code: code, State: r.State})
		if got.Kind != flow.KindLoginRefused || e.id.count("CompleteResourceTokenAuth") != 0 {
			t.Fatalf("a sign-in without the code completed under oidc+code: %+v", got)
		}
	})
	t.Run("a JWT flow is never completed by a sign-in", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userToken":"`+jwt+`","provider":"google","scopes":["openid"]}}`)
		state := e.id.reqs[len(e.id.reqs)-1].CustomState
		uri := "urn:ietf:params:oauth:request_uri:sess-" + string(rune('a'+e.id.uris))
		// Confirmed without the browser's JWT: refused before any sign-in.
		if o := e.cb.Confirm(ctx, flow.CallbackParams{SessionID: uri, State: state}); o.Kind != flow.KindWrongUser || len(e.signIn.rounds) != 0 {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("an oversized state on the login callback", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		o := e.cb.Confirm(ctx, p)
		code, _ := e.signIn.issue("user-1", "")
		got := e.cb.LoginReturn(ctx, flow.LoginParams{Secret: o.Login.Secret, Code: code, State: strings.Repeat("s", 5000)})
		if got.Kind != flow.KindLoginRefused || got.Reason != flow.ReasonLoginMismatch {
			t.Fatalf("%+v", got)
		}
	})
	t.Run("the user id is not shown on sign-in confirmation pages", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		if v := e.cb.View(ctx, p); v.UserID != "" {
			t.Fatalf("%+v", v)
		}
	})
	t.Run("a completion that could not run offers another sign-in", func(t *testing.T) {
		e := signInEnv(t, flow.BindingOIDC, false)
		e.id.completeFn = func(int) error { return &flow.Failure{Name: contract.ErrThrottled} }
		p, _ := started(t, e)
		if o := signIn(t, e, e.cb.Confirm(ctx, p), "user-1"); o.Kind != flow.KindTryAgain || !o.CanSignInAgain {
			t.Fatalf("%+v", o)
		}
	})
}

// oidc+code: coming back with the right code does not use up the attempts
// (each right code's attempt is given back when its sign-in starts), while
// wrong codes still count.
func TestSignInWithCodeRefundsRightCodes(t *testing.T) {
	e := signInEnv(t, flow.BindingOIDCCode, false)
	p, code := started(t, e)
	ctx := context.Background()
	p.Code = code
	for i := 0; i < flow.MaxCodeAttempts+2; i++ {
		if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindSignIn {
			t.Fatalf("right code %d: %+v", i+1, o)
		}
	}
	wrong := p
	wrong.Code = "AAAAA-AAAAA"
	if o := e.cb.Confirm(ctx, wrong); o.Kind != flow.KindWrongCode || o.AttemptsLeft != flow.MaxCodeAttempts-1 {
		t.Fatalf("wrong code after right ones: %+v", o)
	}
	if o := signIn(t, e, e.cb.Confirm(ctx, p), "user-1"); o.Kind != flow.KindConnected {
		t.Fatalf("%+v", o)
	}
}

// oidc+code: throttled completions after refunded right codes never give a
// wrong code back: the fifth wrong code still ends the session.
func TestSignInWithCodeLimitSurvivesReleases(t *testing.T) {
	e := signInEnv(t, flow.BindingOIDCCode, false)
	e.id.completeFn = func(int) error { return &flow.Failure{Name: contract.ErrThrottled} }
	p, code := started(t, e)
	ctx := context.Background()
	wrong := p
	wrong.Code = "AAAAA-AAAAA"
	right := p
	right.Code = code
	for i := 1; i < flow.MaxCodeAttempts; i++ {
		if o := e.cb.Confirm(ctx, wrong); o.Kind != flow.KindWrongCode {
			t.Fatalf("wrong code %d: %+v", i, o)
		}
		// The real user signs in; AgentCore is throttled: released.
		if o := signIn(t, e, e.cb.Confirm(ctx, right), "user-1"); o.Kind != flow.KindTryAgain {
			t.Fatalf("right code %d: %+v", i, o)
		}
	}
	if o := e.cb.Confirm(ctx, wrong); o.Kind != flow.KindTooManyAttempts {
		t.Fatalf("the fifth wrong code: %+v", o)
	}
	if s, _ := e.store.Get(ctx, p.SessionID); s.Status != flow.StatusFailed || s.Attempts < s.WrongCodes {
		t.Fatalf("session %+v", s)
	}
}

// A JWT flow whose completion got no answer, with the vault unreachable,
// expires as "outcome unknown", not as "expired": the token may be there.
func TestExpiryOfAnUnknownCompletion(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userToken":"`+jwt+`","provider":"google","scopes":["openid"]}}`)
	ev := e.notifier.last(t)
	state := e.id.reqs[len(e.id.reqs)-1].CustomState
	uri := "urn:ietf:params:oauth:request_uri:sess-" + string(rune('a'+e.id.uris))
	e.id.completeFn = func(int) error {
		return fmt.Errorf("%w: %w: timeout", flow.ErrOutcomeUnknown, flow.ErrNoAnswer)
	}
	ctx := context.Background()
	p := flow.CallbackParams{SessionID: uri, State: state, Code: ev.VerificationCode, UserToken: jwt}
	if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindInProgress {
		t.Fatalf("no answer: %+v", o)
	}
	e.advance(contract.SessionValidity + flow.ClaimLease)
	if o := e.cb.View(ctx, p); o.Kind != flow.KindExpired {
		t.Fatalf("after expiry: %+v", o)
	}
	s, err := e.store.Get(ctx, uri)
	if err != nil || s.Status != flow.StatusExpired || s.FailureReason != contract.ErrOutcomeUnknown {
		t.Fatalf("recorded %+v %v", s, err)
	}
}
