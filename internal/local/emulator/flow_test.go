package emulator

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"
)

var sessionURIRe = regexp.MustCompile(`^urn:ietf:params:oauth:request_uri:[a-zA-Z0-9-._~]+$`)

func TestUserFederationWholeFlow(t *testing.T) {
	e := newEnv(t)
	wat := e.userToken(t, "google|alice")
	state := "st/8f3+a b&c=d%é"
	scopes := []string{"repo", "read:user"}

	out := e.startFlow(t, wat, scopes, aws.String(state))
	if out.AccessToken != nil {
		t.Fatal("no consent yet, but got an access token")
	}
	if out.SessionStatus != types.SessionStatusInProgress {
		t.Fatalf("sessionStatus = %q", out.SessionStatus)
	}
	sessionURI := aws.ToString(out.SessionUri)
	if !sessionURIRe.MatchString(sessionURI) || len(sessionURI) > 1024 {
		t.Fatalf("sessionUri %q does not match the model pattern", sessionURI)
	}
	authURL, err := url.Parse(aws.ToString(out.AuthorizationUrl))
	if err != nil {
		t.Fatal(err)
	}
	if !authURL.IsAbs() || authURL.Scheme+"://"+authURL.Host != e.ts.URL || authURL.Path != AuthorizePath {
		t.Fatalf("authorizationUrl %q does not point at the emulator %s", authURL, e.ts.URL)
	}
	if got := authURL.Query().Get("request_uri"); got != sessionURI {
		t.Fatalf("request_uri = %q, want %q", got, sessionURI)
	}

	// Not completed yet: a follow-up call reports the session still in progress.
	again, err := e.getToken(wat, scopes, aws.String(sessionURI), false)
	if err != nil || again.SessionStatus != types.SessionStatusInProgress || again.AccessToken != nil {
		t.Fatalf("before consent: %+v, %v", again, err)
	}

	page, loc := consent(t, authURL.String(), "allow")
	for _, want := range []string{testProvider, "repo", "read:user", testWorkload, "Allow", "Deny"} {
		if !strings.Contains(page, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	for _, secret := range []string{wat, state, "google|alice"} {
		if strings.Contains(page, secret) {
			t.Errorf("consent page echoes a secret %q", secret)
		}
	}
	ret, _ := url.Parse(testReturnURL)
	if loc.Scheme != ret.Scheme || loc.Host != ret.Host || loc.Path != ret.Path {
		t.Fatalf("redirect to %s, want the return URL %s", loc, testReturnURL)
	}
	q := loc.Query()
	if q.Get("session_id") != sessionURI || q.Get("state") != state || q.Get("tenant") != "blue" || q.Has("error") {
		t.Fatalf("redirect query %v", q)
	}

	// Consented but not completed: still no token.
	again, err = e.getToken(wat, scopes, aws.String(sessionURI), false)
	if err != nil || again.AccessToken != nil {
		t.Fatalf("before completion: %+v, %v", again, err)
	}

	if _, err := e.client.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri:     aws.String(sessionURI),
		UserIdentifier: &types.UserIdentifierMemberUserId{Value: "google|alice"},
	}); err != nil {
		t.Fatalf("CompleteResourceTokenAuth: %v", err)
	}

	got, err := e.getToken(wat, scopes, aws.String(sessionURI), false)
	if err != nil {
		t.Fatal(err)
	}
	token := aws.ToString(got.AccessToken)
	if len(token) < 32 || got.AuthorizationUrl != nil {
		t.Fatalf("after completion: %+v", got)
	}

	// Vault hit: a new workload token for the same user, scopes in another order, no sessionUri.
	wat2 := e.userToken(t, "google|alice")
	hit, err := e.getToken(wat2, []string{"read:user", "repo", "repo"}, nil, false)
	if err != nil || aws.ToString(hit.AccessToken) != token {
		t.Fatalf("vault hit: %+v, %v", hit, err)
	}
	// Another user, or other scopes, miss the vault.
	if o := e.startFlow(t, e.userToken(t, "google|bob"), scopes, nil); o.AccessToken != nil {
		t.Fatal("bob got alice's token")
	}
	if o := e.startFlow(t, wat, []string{"repo"}, nil); o.AccessToken != nil {
		t.Fatal("different scopes hit the vault")
	}

	// forceAuthentication discards the vault entry and starts a new consent.
	forced, err := e.getToken(wat, scopes, nil, true)
	if err != nil || forced.AccessToken != nil || forced.AuthorizationUrl == nil || aws.ToString(forced.SessionUri) == sessionURI {
		t.Fatalf("forceAuthentication: %+v, %v", forced, err)
	}
	after, err := e.getToken(wat, scopes, nil, false)
	if err != nil || after.AccessToken != nil {
		t.Fatalf("vault entry survived forceAuthentication: %+v, %v", after, err)
	}

	if n := len(e.srv.CallsTo(OpCompleteResourceTokenAuth)); n != 1 {
		t.Fatalf("CompleteResourceTokenAuth calls = %d", n)
	}
	for _, c := range e.srv.Calls() {
		if c.Time != t0 {
			t.Fatalf("call time %v, want the injected clock", c.Time)
		}
	}
}

func TestJWTFlowNeedsTheExactToken(t *testing.T) {
	e := newEnv(t)
	jwt := e.mintJWT(t, "alice")
	wat := e.jwtToken(t, jwt)
	out := e.startFlow(t, wat, []string{"calendar"}, nil)
	_, loc := consent(t, aws.ToString(out.AuthorizationUrl), "allow")
	if loc.Query().Has("state") {
		t.Fatal("state returned though none was given")
	}
	complete := func(id types.UserIdentifier) error {
		_, err := e.client.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
			SessionUri: out.SessionUri, UserIdentifier: id})
		return err
	}
	fresh := e.mintJWT(t, "alice") // same person, another token
	for name, id := range map[string]types.UserIdentifier{
		"fresh JWT, same person": &types.UserIdentifierMemberUserToken{Value: fresh},
		"other person":           &types.UserIdentifierMemberUserToken{Value: e.mintJWT(t, "mallory")},
		"sub as userId":          &types.UserIdentifierMemberUserId{Value: "alice"},
	} {
		ad := asErr[*types.AccessDeniedException](t, complete(id))
		if ad.ErrorMessage() != InvalidSession {
			t.Errorf("%s: message %q", name, ad.ErrorMessage())
		}
	}
	if err := complete(&types.UserIdentifierMemberUserToken{Value: jwt}); err != nil {
		t.Fatalf("exact JWT: %v", err)
	}
	// AWS keys JWT users on iss+sub: a fresh JWT for alice finds the vault entry.
	hit, err := e.getToken(e.jwtToken(t, fresh), []string{"calendar"}, nil, false)
	if err != nil || hit.AccessToken == nil {
		t.Fatalf("vault lookup with a fresh JWT: %+v, %v", hit, err)
	}
}

func TestCompleteRules(t *testing.T) {
	e := newEnv(t)
	wat := e.userToken(t, "alice")
	complete := func(uri *string, uid string) error {
		_, err := e.client.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
			SessionUri: uri, UserIdentifier: &types.UserIdentifierMemberUserId{Value: uid}})
		return err
	}
	denied := func(name string, err error) {
		t.Helper()
		ad := asErr[*types.AccessDeniedException](t, err)
		if ad.ErrorMessage() != InvalidSession {
			t.Errorf("%s: message %q", name, ad.ErrorMessage())
		}
	}

	// Before consent.
	s1 := e.startFlow(t, wat, []string{"a"}, nil)
	denied("before consent", complete(s1.SessionUri, "alice"))
	// Unknown session.
	denied("unknown session", complete(aws.String(SessionURIPrefix+"nope"), "alice"))
	// Wrong user, then right user, then twice.
	consent(t, aws.ToString(s1.AuthorizationUrl), "allow")
	denied("other userId", complete(s1.SessionUri, "bob"))
	denied("userId with different case", complete(s1.SessionUri, "Alice"))
	if err := complete(s1.SessionUri, "alice"); err != nil {
		t.Fatalf("right user after wrong attempts: %v", err)
	}
	denied("second completion", complete(s1.SessionUri, "alice"))

	// Expiry: consent given in time, completion 10 minutes after creation.
	s2 := e.startFlow(t, wat, []string{"b"}, nil)
	e.srv.Advance(9*time.Minute + 59*time.Second)
	consent(t, aws.ToString(s2.AuthorizationUrl), "allow")
	e.srv.Advance(time.Second)
	denied("expired", complete(s2.SessionUri, "alice"))
	st, err := e.getToken(wat, []string{"b"}, s2.SessionUri, false)
	if err != nil || st.SessionStatus != types.SessionStatusFailed || st.AccessToken != nil {
		t.Fatalf("expired session status: %+v, %v", st, err)
	}

	// An expired authorization URL shows an error page, not a consent form.
	s3 := e.startFlow(t, wat, []string{"c"}, nil)
	e.srv.Advance(SessionTTL)
	resp, err := noRedirect.Get(aws.ToString(s3.AuthorizationUrl))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("expired authorize page: %d", resp.StatusCode)
	}

	var outcomes []string
	for _, c := range e.srv.CallsTo(OpCompleteResourceTokenAuth) {
		outcomes = append(outcomes, c.Outcome)
	}
	want := "denied:no-consent denied:unknown-session denied:identifier-mismatch denied:identifier-mismatch completed denied:already-completed denied:expired"
	if strings.Join(outcomes, " ") != want {
		t.Fatalf("outcomes:\n got %s\nwant %s", strings.Join(outcomes, " "), want)
	}
}

func TestDeny(t *testing.T) {
	e := newEnv(t)
	wat := e.userToken(t, "alice")
	out := e.startFlow(t, wat, []string{"repo"}, aws.String("s-1"))
	_, loc := consent(t, aws.ToString(out.AuthorizationUrl), "deny")
	q := loc.Query()
	if q.Get("error") != "access_denied" || q.Get("state") != "s-1" || q.Get("session_id") != aws.ToString(out.SessionUri) || q.Get("tenant") != "blue" {
		t.Fatalf("deny redirect %s", loc)
	}
	st, err := e.getToken(wat, []string{"repo"}, out.SessionUri, false)
	if err != nil || st.SessionStatus != types.SessionStatusFailed {
		t.Fatalf("denied session: %+v, %v", st, err)
	}
	_, err = e.client.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri: out.SessionUri, UserIdentifier: &types.UserIdentifierMemberUserId{Value: "alice"}})
	asErr[*types.AccessDeniedException](t, err)
	// The consent form cannot be replayed.
	resp, err := noRedirect.Get(aws.ToString(out.AuthorizationUrl))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("authorize page after deny: %d", resp.StatusCode)
	}
}

func TestAutoApprove(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AutoApprove = true })
	wat := e.userToken(t, "alice")
	out := e.startFlow(t, wat, []string{"repo"}, aws.String("xyz"))
	resp, err := noRedirect.Get(aws.ToString(out.AuthorizationUrl))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || loc.Query().Get("session_id") != aws.ToString(out.SessionUri) || loc.Query().Get("state") != "xyz" {
		t.Fatalf("auto-approve: %d %s", resp.StatusCode, loc)
	}
	if _, err := e.client.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri: out.SessionUri, UserIdentifier: &types.UserIdentifierMemberUserId{Value: "alice"}}); err != nil {
		t.Fatal(err)
	}
	e.srv.SetAutoApprove(false)
	out = e.startFlow(t, wat, []string{"other"}, nil)
	resp, err = noRedirect.Get(aws.ToString(out.AuthorizationUrl))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("auto-approve off: status %d", resp.StatusCode)
	}
}

func TestConsentFormNeedsItsToken(t *testing.T) {
	e := newEnv(t)
	out := e.startFlow(t, e.userToken(t, "alice"), []string{"repo"}, nil)
	resp, err := noRedirect.PostForm(e.ts.URL+AuthorizePath, url.Values{
		"request_uri": {aws.ToString(out.SessionUri)}, "decision": {"allow"}, "consent_token": {"forged"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("forged consent: %d", resp.StatusCode)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "Cache-Control"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("page lacks %s", h)
		}
	}
}

func TestM2MAndAPIKey(t *testing.T) {
	e := newEnv(t)
	w, err := e.client.GetWorkloadAccessToken(ctx, &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String(testWorkload)})
	if err != nil {
		t.Fatal(err)
	}
	wat := w.WorkloadAccessToken
	m2m, err := e.client.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: wat, ResourceCredentialProviderName: aws.String(testProvider),
		Scopes: []string{"api"}, Oauth2Flow: types.Oauth2FlowTypeM2m})
	if err != nil || aws.ToString(m2m.AccessToken) == "" || m2m.AuthorizationUrl != nil {
		t.Fatalf("M2M: %+v, %v", m2m, err)
	}
	// USER_FEDERATION needs a user-bound workload token.
	_, err = e.getToken(aws.ToString(wat), []string{"api"}, nil, false)
	ve := asErr[*types.ValidationException](t, err)
	if len(ve.FieldList) == 0 || aws.ToString(ve.FieldList[0].Name) != "workloadIdentityToken" {
		t.Fatalf("fieldList %+v", ve.FieldList)
	}

	k, err := e.client.GetResourceApiKey(ctx, &bedrockagentcore.GetResourceApiKeyInput{
		WorkloadIdentityToken: wat, ResourceCredentialProviderName: aws.String(apiKeyProv)})
	if err != nil || aws.ToString(k.ApiKey) != testAPIKey {
		t.Fatalf("API key: %+v, %v", k, err)
	}
	for _, name := range []string{testProvider, "missing"} {
		_, err = e.client.GetResourceApiKey(ctx, &bedrockagentcore.GetResourceApiKeyInput{
			WorkloadIdentityToken: wat, ResourceCredentialProviderName: aws.String(name)})
		asErr[*types.ResourceNotFoundException](t, err)
	}
	// An API key provider is not an OAuth2 provider.
	_, err = e.client.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: wat, ResourceCredentialProviderName: aws.String(apiKeyProv),
		Scopes: []string{}, Oauth2Flow: types.Oauth2FlowTypeM2m})
	asErr[*types.ResourceNotFoundException](t, err)
}

func TestConcurrentCompletion(t *testing.T) {
	e := newEnv(t)
	out := e.startFlow(t, e.userToken(t, "alice"), []string{"repo"}, nil)
	consent(t, aws.ToString(out.AuthorizationUrl), "allow")
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, denied := 0, 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.client.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
				SessionUri: out.SessionUri, UserIdentifier: &types.UserIdentifierMemberUserId{Value: "alice"}})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				ok++
			} else if ad := (*types.AccessDeniedException)(nil); errors.As(err, &ad) {
				denied++
			}
		}()
	}
	wg.Wait()
	if ok != 1 || denied != 19 {
		t.Fatalf("ok=%d denied=%d, want 1 and 19", ok, denied)
	}
}

func TestDoubleEncodedSessionID(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.DoubleEncodeSessionID = true })
	out := e.startFlow(t, e.userToken(t, "alice"), []string{"repo"}, nil)
	_, loc := consent(t, aws.ToString(out.AuthorizationUrl), "allow")
	raw := loc.Query().Get("session_id")
	if raw == aws.ToString(out.SessionUri) || !strings.Contains(loc.RawQuery, "%253A") {
		t.Fatalf("session_id not double-encoded: %s", loc.RawQuery)
	}
	if dec, err := url.QueryUnescape(raw); err != nil || dec != aws.ToString(out.SessionUri) {
		t.Fatalf("decoded twice: %q %v", dec, err)
	}
}
