package browser

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/chromium"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/local/sfnlocal"
	"github.com/consentflow/consentflow/internal/testenv/chromiumtest"
)

// The sign-in binding through the real pages: Chromium, the production
// callback handler, the emulator's AgentCore consent page and its OpenID
// provider's sign-in page (test users alice and bob).

func startSignIn(t *testing.T, o runner.Options) *fixture {
	t.Helper()
	if o.Binding == "" {
		o.Binding = contract.BindingOIDC
	}
	return startWith(t, o)
}

// toSignIn consents at the provider, checks the confirmation page asks for
// no code, and presses its button: the browser lands on the emulator's
// sign-in page.
func (f *fixture) toSignIn(a authorization) {
	f.t.Helper()
	want(f.t, f.consent(a, chromium.Allow), "confirm", "Confirm the connection")
	if ok, err := f.page.HasCodeInput(f.ctx); err != nil || ok {
		f.t.Fatalf("the oidc confirmation page must not ask for a code (%v)", err)
	}
	f.submitToSignIn()
}

func (f *fixture) submitToSignIn() {
	f.t.Helper()
	status, err := f.page.Submit(f.ctx)
	if err != nil || status != 200 {
		f.t.Fatalf("to the sign-in page: HTTP %d, %v", status, err)
	}
	f.onSignInPage()
}

func (f *fixture) onSignInPage() {
	f.t.Helper()
	u, err := f.page.URL(f.ctx)
	if err != nil || !strings.HasPrefix(u, f.s.Emulator.Issuer()) {
		f.t.Fatalf("not on the provider's sign-in page (%v)", err)
	}
}

// signIn picks subject on the sign-in page; the browser returns to the
// login callback, whose page it reads.
func (f *fixture) signIn(subject string, status int) chromium.Outcome {
	f.t.Helper()
	got, err := f.page.SignIn(f.ctx, subject)
	if err != nil {
		f.t.Fatalf("signing in as %s: %v", subject, err)
	}
	if u, _ := f.page.URL(f.ctx); !strings.HasPrefix(u, f.s.LoginCallbackURL+"?") {
		f.t.Fatalf("after the sign-in the browser is not on the login callback")
	}
	return f.outcome(got, status)
}

func (f *fixture) signedInAs(want string) {
	f.t.Helper()
	if got, err := f.page.SignedInAs(f.ctx); err != nil || got != want {
		f.t.Fatalf("page says signed in as %q (%v), want %q", got, err, want)
	}
}

func (f *fixture) resumedAuthorized(tok string) {
	f.t.Helper()
	r := f.waitTask(tok)
	var out flow.Result
	_ = json.Unmarshal(r.Output, &out)
	if r.Status != sfnlocal.StatusSucceeded || out.Status != flow.StatusAuthorized {
		f.t.Fatalf("task %s %s, output status %q", r.Status, r.Error, out.Status)
	}
}

func TestSignInRightUser(t *testing.T) {
	f := startSignIn(t, runner.Options{})
	a := f.initiate("alice", "repo")
	f.toSignIn(a)
	if screenshots() {
		chromiumtest.SaveForTest(t, f.page, "idp-sign-in")
	}
	want(t, f.signIn("alice", 200), "ok", "Connected")
	f.signedInAs("alice@example.com")
	if screenshots() {
		chromiumtest.SaveForTest(t, f.page, "signed-in-connected")
	}
	f.resumedAuthorized(a.taskToken)
	if n := f.completeCalls(); n != 1 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
	// The login redirect again (reload): refused, nothing called again.
	u, _ := f.page.URL(f.ctx)
	status, err := f.page.Open(f.ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	want(t, f.outcome(status, 400), "error", "This sign-in cannot be used")
	if n := f.completeCalls(); n != 1 {
		t.Fatalf("a replayed login redirect called Complete (%d calls)", n)
	}
	logs := f.logs.String()
	for _, secret := range []string{"code=", contract.LoginCookie + "="} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs carry %q", secret)
		}
	}
}

func TestSignInWrongUserThenSwitchAccount(t *testing.T) {
	f := startSignIn(t, runner.Options{})
	a := f.initiate("alice", "repo")
	f.toSignIn(a)
	want(t, f.signIn("bob", 403), "error", "Signed in as someone else")
	f.signedInAs("bob@example.com")
	if screenshots() {
		chromiumtest.SaveForTest(t, f.page, "signed-in-wrong-user")
	}
	if n := f.completeCalls(); n != 0 {
		t.Fatalf("bob's sign-in called CompleteResourceTokenAuth %d times", n)
	}
	// Use another account: the provider shows its account chooser even
	// though bob is signed in there.
	status, err := f.page.SignInAgain(f.ctx)
	if err != nil || status != 200 {
		t.Fatalf("sign in again: HTTP %d %v", status, err)
	}
	f.onSignInPage()
	want(t, f.signIn("alice", 200), "ok", "Connected")
	f.signedInAs("alice@example.com")
	f.resumedAuthorized(a.taskToken)
}

// A signed-in person passes with one click: the provider remembers alice.
func TestSignInRemembered(t *testing.T) {
	f := startSignIn(t, runner.Options{})
	first := f.initiate("alice", "repo")
	f.toSignIn(first)
	want(t, f.signIn("alice", 200), "ok", "Connected")
	second := f.initiate("alice", "read:user")
	want(t, f.consent(second, chromium.Allow), "confirm", "Confirm the connection")
	status, err := f.page.Submit(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want(t, f.outcome(status, 200), "ok", "Connected")
	f.resumedAuthorized(second.taskToken)
}

// Login CSRF: a sign-in redirect made in another browser (the attacker's)
// is opened in this one, which has no sign-in of its own for it.
func TestSignInRedirectFromAnotherBrowser(t *testing.T) {
	f := startSignIn(t, runner.Options{})
	victim := f.initiate("alice", "repo")
	f.toSignIn(victim)
	authorize, err := f.page.URL(f.ctx) // the provider's URL with this browser's state
	if err != nil {
		t.Fatal(err)
	}
	attacker := chromiumtest.NewTestPage(t) // a browser context of its own
	if status, err := attacker.Open(f.ctx, authorize); err != nil || status != 200 {
		t.Fatalf("attacker opens the sign-in: %d %v", status, err)
	}
	status, err := attacker.SignIn(f.ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}
	o, _ := attacker.Outcome(f.ctx)
	if status != 400 || o.Kind != "error" || o.Heading != "This sign-in cannot be used" {
		t.Fatalf("attacker's browser got HTTP %d %q", status, o)
	}
	if n := f.completeCalls(); n != 0 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
	// The victim's own sign-in is untouched.
	want(t, f.signIn("alice", 200), "ok", "Connected")
}

func TestSignInCancelled(t *testing.T) {
	f := startSignIn(t, runner.Options{})
	a := f.initiate("alice", "repo")
	f.toSignIn(a)
	status, err := f.page.CancelSignIn(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want(t, f.outcome(status, 403), "error", "Sign-in did not succeed")
	status, err = f.page.SignInAgain(f.ctx)
	if err != nil || status != 200 {
		t.Fatalf("sign in again: %d %v", status, err)
	}
	want(t, f.signIn("alice", 200), "ok", "Connected")
}

func TestSignInExpiredIDToken(t *testing.T) {
	f := startSignIn(t, runner.Options{SignInTokenTTL: -time.Minute})
	a := f.initiate("alice", "repo")
	f.toSignIn(a)
	want(t, f.signIn("alice", 403), "error", "Sign-in did not succeed")
	if n := f.completeCalls(); n != 0 {
		t.Fatalf("an expired ID token completed the session (%d calls)", n)
	}
}

func TestSignInWithCode(t *testing.T) {
	f := startSignIn(t, runner.Options{Binding: contract.BindingOIDCCode})
	a := f.initiate("alice", "repo")
	want(t, f.consent(a, chromium.Allow), "confirm", "Confirm the connection")
	want(t, f.enterCode("ZZZZZ-ZZZZZ", 403), "retry", "That code is not right")
	status, err := f.page.EnterCode(f.ctx, a.event.VerificationCode)
	if err != nil || status != 200 {
		t.Fatalf("right code: %d %v", status, err)
	}
	f.onSignInPage()
	want(t, f.signIn("alice", 200), "ok", "Connected")
	f.resumedAuthorized(a.taskToken)
}

// A session an agent started itself (GetResourceOauth2Token with the
// callback URL, no consentflow record, no state) is completed through
// sign-in, once; the agent then finds the token in the vault.
func TestSignInSessionStartedElsewhere(t *testing.T) {
	f := startSignIn(t, runner.Options{ExternalSessions: true})
	ac := f.s.Clients.AgentCore
	wat, err := ac.GetWorkloadAccessTokenForUserId(f.ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String(runner.WorkloadName), UserId: aws.String("alice"),
	})
	if err != nil {
		t.Fatal(err)
	}
	req := &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: wat.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("github"),
		Scopes: []string{"repo"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation, ResourceOauth2ReturnUrl: aws.String(f.s.CallbackURL),
	}
	res, err := ac.GetResourceOauth2Token(f.ctx, req)
	if err != nil || res.AuthorizationUrl == nil {
		t.Fatalf("agent's GetResourceOauth2Token: %v", err)
	}
	status, err := f.page.Consent(f.ctx, *res.AuthorizationUrl, chromium.Allow)
	if err != nil {
		t.Fatal(err)
	}
	want(t, f.outcome(status, 200), "confirm", "Confirm the connection")
	landing, _ := f.page.URL(f.ctx)
	if q, _ := url.Parse(landing); q == nil || q.Query().Get("state") != "" {
		t.Fatalf("an agent's own session comes back without state")
	}
	f.submitToSignIn()
	want(t, f.signIn("alice", 200), "ok", "Connected")
	if n := f.completeCalls(); n != 1 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
	// The link again: already done, nothing called.
	status, err = f.page.Open(f.ctx, landing)
	if err != nil {
		t.Fatal(err)
	}
	want(t, f.outcome(status, 200), "ok", "Already connected")
	if n := f.completeCalls(); n != 1 {
		t.Fatalf("CompleteResourceTokenAuth called %d times after the replay", n)
	}
	req.SessionUri = res.SessionUri
	tok, err := ac.GetResourceOauth2Token(f.ctx, req)
	if err != nil || aws.ToString(tok.AccessToken) == "" {
		t.Fatalf("the agent finds no token in the vault: %v", err)
	}
}

// bob signs in on a session alice's agent started: AgentCore refuses, and
// the session stays open for alice.
func TestSignInSessionStartedElsewhereWrongUser(t *testing.T) {
	f := startSignIn(t, runner.Options{ExternalSessions: true})
	ac := f.s.Clients.AgentCore
	wat, err := ac.GetWorkloadAccessTokenForUserId(context.Background(), &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String(runner.WorkloadName), UserId: aws.String("alice"),
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := ac.GetResourceOauth2Token(f.ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: wat.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("github"),
		Scopes: []string{"repo"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation, ResourceOauth2ReturnUrl: aws.String(f.s.CallbackURL),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.page.Consent(f.ctx, *res.AuthorizationUrl, chromium.Allow); err != nil {
		t.Fatal(err)
	}
	f.submitToSignIn()
	want(t, f.signIn("bob", 403), "error", "Signed in as someone else")
	if status, err := f.page.SignInAgain(f.ctx); err != nil || status != 200 {
		t.Fatalf("sign in again: %d %v", status, err)
	}
	want(t, f.signIn("alice", 200), "ok", "Connected")
}

// Two tabs of one person, each signing in for its own session at once (an
// agent asking for two providers): each sign-in has its own cookie.
func TestSignInTwoTabs(t *testing.T) {
	f := startSignIn(t, runner.Options{})
	a := f.initiate("alice", "repo")
	b := f.initiate("alice", "read:user")
	f.toSignIn(a)
	tab, err := f.page.NewTab()
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	other := &fixture{t: t, ctx: f.ctx, s: f.s, page: tab, logs: f.logs}
	other.toSignIn(b)
	want(t, f.signIn("alice", 200), "ok", "Connected")
	want(t, other.signIn("alice", 200), "ok", "Connected")
	f.resumedAuthorized(a.taskToken)
	f.resumedAuthorized(b.taskToken)
}

// Login CSRF through the confirmation form: another site's page that
// auto-submits it in the person's browser is refused before anything starts.
func TestCrossSiteAutoSubmitRefused(t *testing.T) {
	f := startSignIn(t, runner.Options{})
	a := f.initiate("alice", "repo")
	want(t, f.consent(a, chromium.Allow), "confirm", "Confirm the connection")
	target, err := f.page.URL(f.ctx) // the callback URL with session_id and state
	if err != nil {
		t.Fatal(err)
	}
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><meta name="referrer" content="no-referrer"><form id=f method=post action="%s"><input name=code value=x></form><script>document.getElementById('f').submit()</script>`,
			html.EscapeString(target))
	}))
	defer evil.Close()
	if _, err := f.page.Open(f.ctx, evil.URL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		u, _ := f.page.URL(f.ctx)
		if strings.HasPrefix(u, f.s.CallbackURL) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	o, err := f.page.Outcome(f.ctx)
	if err != nil || o.Kind != "error" || o.Heading != "This link is not valid" {
		t.Fatalf("the auto-submitted form got %q (%v)", o, err)
	}
	if n := f.completeCalls(); n != 0 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
	if u, _ := f.page.URL(f.ctx); strings.HasPrefix(u, f.s.Emulator.Issuer()) {
		t.Fatal("a sign-in was started")
	}
}
