package agentauth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"

	"github.com/consentflow/consentflow/agentauth"
	"github.com/consentflow/consentflow/agentcoretest"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

func githubRequest(user string) agentauth.TokenRequest {
	return agentauth.TokenRequest{Provider: "github", Scopes: []string{"repo", "read:user"}, User: agentauth.User{ID: user}}
}

// userAnswers returns an OnAuthURL that records the URL and has the user
// act on it in the background (after the hook returned, as a person
// would), and a function that waits for the user to be done.
func userAnswers(act func(agentauth.AuthURL)) (func(context.Context, agentauth.AuthURL) error, func() agentauth.AuthURL) {
	var wg sync.WaitGroup
	var got agentauth.AuthURL
	hook := func(_ context.Context, u agentauth.AuthURL) error {
		got = u
		wg.Add(1)
		go func() {
			defer wg.Done()
			act(u)
		}()
		return nil
	}
	return hook, func() agentauth.AuthURL { wg.Wait(); return got }
}

// TestPushConsentThroughTheCallback: the session is registered as
// consentflow's initiate registers it, the user consents and types the code
// at the real callback, and AccessToken, which watched the session record
// meanwhile, fetches the token once: no GetResourceOauth2Token call while
// it waited.
func TestPushConsentThroughTheCallback(t *testing.T) {
	s := newStack(t)
	c := s.client(true)
	ctx := context.Background()
	req := githubRequest("github|4242")
	var outcome string
	req.OnAuthURL, _ = userAnswers(func(u agentauth.AuthURL) {
		time.Sleep(1500 * time.Millisecond) // the user reads the message, opens the link
		outcome = s.consent(u, strings.ToLower(u.VerificationCode))
	})
	var au agentauth.AuthURL
	hook := req.OnAuthURL
	req.OnAuthURL = func(ctx context.Context, u agentauth.AuthURL) error { au = u; return hook(ctx, u) }

	tok, err := c.AccessToken(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if tok == "" || outcome != "ok: Connected" {
		t.Fatalf("token %d characters, callback outcome %q", len(tok), outcome)
	}
	if left := au.ExpiresAt.Sub(s.srv.Now()); au.VerificationCode == "" || left <= 0 || left > contract.SessionValidity {
		t.Fatalf("auth URL %+v", au)
	}

	// The call log: the token request that started the session, the user's
	// consent and the callback's completion, then the one fetch. Nothing
	// asked AgentCore for the token while the user took their time.
	var ops []string
	for _, c := range s.srv.Calls() {
		if c.Op == agentcoretest.OpGetResourceOauth2Token || c.Op == agentcoretest.OpConsent || c.Op == agentcoretest.OpCompleteResourceTokenAuth {
			ops = append(ops, c.Op+":"+c.Outcome)
		}
	}
	want := []string{"GetResourceOauth2Token:session-started", "Consent:allowed", "CompleteResourceTokenAuth:completed", "GetResourceOauth2Token:vault-hit"}
	if fmt.Sprint(ops) != fmt.Sprint(want) {
		t.Fatalf("calls %v, want %v", ops, want)
	}

	// The record is the initiate function's: user, provider, scopes,
	// binding, code and state digests, announced, no task token.
	uri := sessionOf(t, au.URL)
	rec, err := s.store.Get(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != flow.StatusCompleted || rec.UserID != "github|4242" || rec.Provider != "github" ||
		fmt.Sprint(rec.Scopes) != "[repo read:user]" || rec.Binding != flow.BindingCode || rec.CodeHash == "" ||
		rec.StateHash == "" || rec.NotifiedAt.IsZero() || rec.TaskToken != "" || rec.CorrelationID == "" {
		t.Fatalf("record %+v", rec)
	}

	// The token is in the vault now: returned at once, one call.
	s.srv.ResetCalls()
	req.OnAuthURL = func(context.Context, agentauth.AuthURL) error { t.Error("consent asked again"); return nil }
	again, err := c.AccessToken(ctx, req)
	if err != nil || again != tok {
		t.Fatalf("vault hit: %v (same token: %v)", err, again == tok)
	}
	if n := len(s.srv.CallsTo(agentcoretest.OpGetResourceOauth2Token)); n != 1 {
		t.Fatalf("%d GetResourceOauth2Token calls for a vault hit", n)
	}
	s.noSecrets(tok, au.VerificationCode)
}

func sessionOf(t *testing.T, authURL string) string {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("request_uri")
}

func TestPushDenied(t *testing.T) {
	s := newStack(t)
	c := s.client(true)
	req := githubRequest("user-denies")
	var outcome string
	req.OnAuthURL, _ = userAnswers(func(u agentauth.AuthURL) {
		back, err := s.srv.Deny(u.URL)
		if err != nil {
			t.Error(err)
			return
		}
		outcome = s.visit("GET", back, nil)
	})
	_, err := c.AccessToken(context.Background(), req)
	var ae *agentauth.AuthorizationError
	if !errors.As(err, &ae) || !errors.Is(err, agentauth.ErrConsentDenied) || ae.Provider != "github" {
		t.Fatalf("err %v", err)
	}
	if outcome != "error: Access not granted" {
		t.Fatalf("callback outcome %q", outcome)
	}
	if n := len(s.srv.CallsTo(agentcoretest.OpGetResourceOauth2Token)); n != 1 {
		t.Fatalf("%d GetResourceOauth2Token calls", n)
	}
}

func TestPushBindingFailed(t *testing.T) {
	s := newStack(t)
	c := s.client(true)
	req := githubRequest("user-mistypes")
	var outcomes []string
	req.OnAuthURL, _ = userAnswers(func(u agentauth.AuthURL) {
		back, err := s.srv.Allow(u.URL)
		if err != nil {
			t.Error(err)
			return
		}
		for range 5 {
			outcomes = append(outcomes, s.visit("POST", back, url.Values{"code": {"WRONG-CODE"}}))
		}
	})
	_, err := c.AccessToken(context.Background(), req)
	if !errors.Is(err, agentauth.ErrBindingFailed) {
		t.Fatalf("err %v", err)
	}
	want := strings.Repeat("retry: That code is not right,", 4) + "error: Too many wrong codes"
	if strings.Join(outcomes, ",") != want {
		t.Fatalf("outcomes %v", outcomes)
	}
	if n := len(s.srv.CallsTo(agentcoretest.OpCompleteResourceTokenAuth)); n != 0 {
		t.Fatalf("%d completions", n)
	}
}

// TestPushExpired: nobody consents; once the session's 10 minutes are over
// (the clock of AgentCore, the callback and the client moved on),
// AccessToken says so.
func TestPushExpired(t *testing.T) {
	s := newStack(t)
	c := s.client(true)
	req := githubRequest("user-away")
	req.OnAuthURL, _ = userAnswers(func(agentauth.AuthURL) {
		time.Sleep(300 * time.Millisecond)
		s.srv.Advance(contract.SessionValidity + time.Second)
	})
	start := time.Now()
	_, err := c.AccessToken(context.Background(), req)
	var ae *agentauth.AuthorizationError
	if !errors.As(err, &ae) || !errors.Is(err, agentauth.ErrExpired) {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("noticed the expiry after %v", d)
	}
	if n := len(s.srv.CallsTo(agentcoretest.OpGetResourceOauth2Token)); n != 1 {
		t.Fatalf("%d GetResourceOauth2Token calls", n)
	}
}

func TestPushContextCancelled(t *testing.T) {
	s := newStack(t)
	c := s.client(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := githubRequest("user-slow")
	req.OnAuthURL, _ = userAnswers(func(agentauth.AuthURL) {
		time.Sleep(400 * time.Millisecond)
		cancel()
	})
	start := time.Now()
	_, err := c.AccessToken(ctx, req)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("returned %v after the start", d)
	}
}

// TestNoWait: the session is registered and the link returned in the
// error; the user consents later, and the next call finds the token.
func TestNoWait(t *testing.T) {
	s := newStack(t)
	c := s.client(true)
	req := githubRequest("user-later")
	req.NoWait = true
	_, err := c.AccessToken(context.Background(), req)
	var cr *agentauth.ConsentRequiredError
	if !errors.As(err, &cr) || !errors.Is(err, agentauth.ErrConsentRequired) || cr.AuthURL.URL == "" || cr.AuthURL.VerificationCode == "" {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(err.Error(), cr.AuthURL.VerificationCode) || strings.Contains(err.Error(), "request_uri") {
		t.Fatalf("error text %q shows the link or the code", err)
	}
	if o := s.consent(cr.AuthURL, cr.AuthURL.VerificationCode); o != "ok: Connected" {
		t.Fatalf("callback outcome %q", o)
	}
	if tok, err := c.AccessToken(context.Background(), req); err != nil || tok == "" {
		t.Fatalf("after consent: %v", err)
	}
	// Without OnAuthURL nobody could show the link: no waiting either.
	_, err = c.AccessToken(context.Background(), githubRequest("user-nohook"))
	if !errors.As(err, &cr) {
		t.Fatalf("without OnAuthURL: %v", err)
	}
}

func TestOnAuthURLErrorEndsTheCall(t *testing.T) {
	s := newStack(t)
	hookErr := errors.New("chat unavailable")
	for _, push := range []bool{true, false} {
		req := githubRequest(fmt.Sprintf("user-hook-%v", push))
		req.OnAuthURL = func(context.Context, agentauth.AuthURL) error { return hookErr }
		if _, err := s.client(push).AccessToken(context.Background(), req); !errors.Is(err, hookErr) {
			t.Fatalf("push %v: %v", push, err)
		}
	}
}

// TestPollingFallback: without consentflow's table the client polls like
// the official SDKs, here every 50 ms.
func TestPollingFallback(t *testing.T) {
	s := newStack(t)
	c := s.client(false, agentauth.WithPolling(50*time.Millisecond, 10*time.Second))
	ctx := context.Background()
	req := githubRequest("user-poll")
	var au agentauth.AuthURL
	req.OnAuthURL = func(ctx context.Context, u agentauth.AuthURL) error {
		au = u
		go func() {
			time.Sleep(500 * time.Millisecond)
			if err := s.srv.AllowAndComplete(ctx, u.URL); err != nil {
				t.Error(err)
			}
		}()
		return nil
	}
	tok, err := c.AccessToken(ctx, req)
	if err != nil || tok == "" {
		t.Fatalf("AccessToken: %v", err)
	}
	if au.VerificationCode != "" || au.URL == "" || au.ExpiresAt.IsZero() {
		t.Fatalf("auth URL %+v", au)
	}
	if n := len(s.srv.CallsTo(agentcoretest.OpGetResourceOauth2Token)); n < 5 {
		t.Fatalf("only %d GetResourceOauth2Token calls: not polling?", n)
	}

	// sessionStatus FAILED ends the wait (the official SDKs poll on).
	req = githubRequest("user-poll-denies")
	req.OnAuthURL = func(_ context.Context, u agentauth.AuthURL) error {
		_, err := s.srv.Deny(u.URL)
		return err
	}
	if _, err := c.AccessToken(ctx, req); !errors.Is(err, agentauth.ErrAuthorizationFailed) {
		t.Fatalf("denied: %v", err)
	}

	// The poll timeout.
	short := s.client(false, agentauth.WithPolling(20*time.Millisecond, 200*time.Millisecond))
	req = githubRequest("user-poll-away")
	req.OnAuthURL = func(context.Context, agentauth.AuthURL) error { return nil }
	if _, err := short.AccessToken(ctx, req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: %v", err)
	}

	// A poll that fails beyond the SDK's retries (3 attempts) is ridden out.
	req = githubRequest("user-poll-failing")
	req.OnAuthURL = func(ctx context.Context, u agentauth.AuthURL) error {
		s.srv.InjectFault(agentcoretest.OpGetResourceOauth2Token, 3, agentcoretest.InternalError)
		return s.srv.AllowAndComplete(ctx, u.URL)
	}
	if _, err := c.AccessToken(ctx, req); err != nil {
		t.Fatalf("failing poll: %v", err)
	}
}

func TestAPIKeyAndErrors(t *testing.T) {
	s := newStack(t)
	c := s.client(false)
	ctx := context.Background()
	for _, u := range []agentauth.User{{}, {ID: "user-1"}} {
		key, err := c.APIKey(ctx, "weather", u)
		if err != nil || key != "wk-123" {
			t.Fatalf("APIKey(%v): %q %v", u, key, err)
		}
	}
	_, err := c.APIKey(ctx, "nope", agentauth.User{})
	var ae *agentauth.APIError
	if !errors.As(err, &ae) || !errors.Is(err, agentauth.ErrNotFound) || ae.Retryable() {
		t.Fatalf("unknown provider: %v", err)
	}
	// An OAuth2 provider that does not exist, a return URL that is not
	// registered, a request that names no user: typed, before or after
	// AgentCore.
	if _, err := c.AccessToken(ctx, agentauth.TokenRequest{Provider: "gitlab", Scopes: []string{"api"}, User: agentauth.User{ID: "u"}}); !errors.Is(err, agentauth.ErrNotFound) {
		t.Fatalf("unknown OAuth2 provider: %v", err)
	}
	other := s.client(false, agentauth.WithReturnURL("https://elsewhere.example/cb"))
	if _, err := other.AccessToken(ctx, githubRequest("u")); !errors.Is(err, agentauth.ErrInvalidRequest) {
		t.Fatalf("unregistered return URL: %v", err)
	}
	before := len(s.srv.Calls())
	for name, req := range map[string]agentauth.TokenRequest{
		"no user":      {Provider: "github", Scopes: []string{"repo"}},
		"two users":    {Provider: "github", Scopes: []string{"repo"}, User: agentauth.User{ID: "a", JWT: "x.y.z"}},
		"no scopes":    {Provider: "github", User: agentauth.User{ID: "a"}},
		"bad provider": {Provider: "git hub", Scopes: []string{"repo"}, User: agentauth.User{ID: "a"}},
		"M2M for user": {Provider: "github", Flow: agentauth.M2M, User: agentauth.User{ID: "a"}},
	} {
		if _, err := c.AccessToken(ctx, req); !errors.Is(err, agentauth.ErrInvalidRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n := len(s.srv.Calls()) - before; n != 0 {
		t.Fatalf("%d calls for invalid requests", n)
	}
	noWorkload, err := agentauth.New(s.cfg, agentauth.WithReturnURL(s.callbackURL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noWorkload.AccessToken(ctx, githubRequest("u")); !errors.Is(err, agentauth.ErrInvalidRequest) ||
		!strings.Contains(err.Error(), "WithWorkloadName") {
		t.Fatalf("no workload: %v", err)
	}
	// M2M: a token for the agent itself, at once.
	if tok, err := c.AccessToken(ctx, agentauth.TokenRequest{Provider: "github", Flow: agentauth.M2M}); err != nil || tok == "" {
		t.Fatalf("M2M: %v", err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for name, opts := range map[string][]agentauth.Option{
		"workload":     {agentauth.WithWorkloadName("x")},
		"return URL":   {agentauth.WithReturnURL("http://example.com/cb")},
		"table alone":  {agentauth.WithSessionsTable("t")},
		"poll timeout": {agentauth.WithPolling(time.Second, 0)},
	} {
		if _, err := agentauth.New(aws.Config{Region: "us-east-1"}, opts...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestWrappers(t *testing.T) {
	s := newStack(t)
	c := s.client(true)
	ctx := context.Background()
	req := githubRequest("user-wrapped")
	req.OnAuthURL, _ = userAnswers(func(u agentauth.AuthURL) { s.consent(u, u.VerificationCode) })
	var seen string
	listRepos := agentauth.WithAccessToken(c, req, func(ctx context.Context, token, owner string) ([]string, error) {
		seen = token
		return []string{owner + "/a", owner + "/b"}, nil
	})
	repos, err := listRepos(ctx, "octo")
	if err != nil || fmt.Sprint(repos) != "[octo/a octo/b]" || seen == "" {
		t.Fatalf("repos %v, %v", repos, err)
	}
	forecast := agentauth.WithAPIKey(c, "weather", func(ctx context.Context, key string, city string) (string, error) {
		return city + " with " + key, nil
	})
	if out, err := forecast(ctx, "Oslo"); err != nil || out != "Oslo with wk-123" {
		t.Fatalf("forecast %q %v", out, err)
	}
	failing := agentauth.WithAPIKey(c, "nope", func(context.Context, string, int) (int, error) {
		t.Error("called without a key")
		return 1, nil
	})
	if n, err := failing(ctx, 1); n != 0 || !errors.Is(err, agentauth.ErrNotFound) {
		t.Fatalf("failing: %d %v", n, err)
	}
}

// TestMiddleware: an agent served like AgentCore Runtime serves it gets the
// workload token and the user from the request; with consentflow the
// session is registered for that user and the consent is pushed.
func TestMiddleware(t *testing.T) {
	s := newStack(t)
	// No workload name: in Runtime the token comes with the request.
	c, err := agentauth.New(s.cfg, agentauth.WithReturnURL(s.callbackURL), agentauth.WithSessionsTable(s.table),
		agentauth.WithClock(s.srv.Now))
	if err != nil {
		t.Fatal(err)
	}
	agent := agentauth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, _ := agentauth.FromContext(r.Context())
		req := agentauth.TokenRequest{Provider: "github", Scopes: []string{"repo"}}
		req.OnAuthURL, _ = userAnswers(func(u agentauth.AuthURL) { s.consent(u, u.VerificationCode) })
		tok, err := c.AccessToken(r.Context(), req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		key, err := c.APIKey(r.Context(), "weather", agentauth.User{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "user %s, token %v, key %s, callback %s", inv.UserID, tok != "", key, inv.CallbackURL)
	}))
	ts := httptest.NewServer(agent)
	defer ts.Close()

	// What AgentCore Runtime does before it invokes the agent.
	wat, err := s.srv.Client().GetWorkloadAccessTokenForUserId(context.Background(), &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String(workload), UserId: aws.String("runtime-user")})
	if err != nil {
		t.Fatal(err)
	}
	invoke := func(headers map[string]string) (int, string) {
		req, _ := http.NewRequest("POST", ts.URL+"/invocations", strings.NewReader(`{"prompt":"hi"}`))
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	code, body := invoke(map[string]string{
		agentauth.HeaderWorkloadAccessToken: aws.ToString(wat.WorkloadAccessToken),
		agentauth.HeaderUserID:              "runtime-user",
		agentauth.HeaderOAuth2CallbackURL:   "https://chat.example/oauth",
	})
	if code != 200 || body != "user runtime-user, token true, key wk-123, callback https://chat.example/oauth" {
		t.Fatalf("%d %s", code, body)
	}
	if n := len(s.srv.CallsTo(agentcoretest.OpGetWorkloadAccessTokenForUserID)); n != 1 {
		t.Fatalf("the client minted workload tokens: %d", n)
	}
	// The workload token silently missing: a clear error, not a hang.
	code, body = invoke(nil)
	if code != http.StatusForbidden || !strings.Contains(body, "no user") {
		t.Fatalf("without headers: %d %s", code, body)
	}
}

func TestSecretsStayOutOfStrings(t *testing.T) {
	u := agentauth.User{ID: "alice", JWT: "h.p.s", WorkloadToken: "wat-secret"}
	inv := agentauth.Invocation{WorkloadToken: "wat-secret", UserID: "alice"}
	for _, v := range []string{fmt.Sprint(u), fmt.Sprintf("%+v %#v", u, u), fmt.Sprint(inv), fmt.Sprintf("%#v", inv),
		fmt.Sprintf("%+v", agentauth.TokenRequest{User: u})} {
		if strings.Contains(v, "wat-secret") || strings.Contains(v, "h.p.s") || strings.Contains(v, "alice") {
			t.Errorf("%s", v)
		}
	}
}
