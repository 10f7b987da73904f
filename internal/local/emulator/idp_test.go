package emulator

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
)

const (
	rpConfidential = "consentflow-callback"
	rpSecret       = "s3cret/with+odd chars"
	rpPublic       = "consentflow-public"
	rpRedirect     = "https://app.example.com/oauth2/login/callback"
	rpOtherRedir   = "https://app.example.com/elsewhere"
)

// idpEnv is an emulator served by Start (real clock), with a confidential and a public
// client registered, the go-oidc provider discovered from it, and an SDK client.
type idpEnv struct {
	srv      *Server
	base     string
	provider *oidc.Provider
	client   *bedrockagentcore.Client
	logs     *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func newIdPEnv(t *testing.T, mods ...func(*Config)) *idpEnv {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{
		Workloads: []Workload{{Name: testWorkload, AllowedReturnURLs: []string{testReturnURL}}},
		Providers: []Provider{{Name: testProvider}},
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base, stop, err := srv.Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop() })
	for _, c := range []IdPClient{
		{ClientID: rpConfidential, ClientSecret: rpSecret, RedirectURIs: []string{rpRedirect, rpOtherRedir}},
		{ClientID: rpPublic, RedirectURIs: []string{rpRedirect}},
	} {
		if err := srv.AddIdPClient(c); err != nil {
			t.Fatal(err)
		}
	}
	if srv.Issuer() != base {
		t.Fatalf("Issuer() = %q, want the base URL %q", srv.Issuer(), base)
	}
	provider, err := oidc.NewProvider(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	return &idpEnv{srv: srv, base: base, provider: provider, logs: logs,
		client: NewClient(base, func(o *bedrockagentcore.Options) { o.Retryer = aws.NopRetryer{} })}
}

func (e *idpEnv) oauth(clientID, secret string, style oauth2.AuthStyle) *oauth2.Config {
	ep := e.provider.Endpoint()
	ep.AuthStyle = style
	return &oauth2.Config{ClientID: clientID, ClientSecret: secret, Endpoint: ep, RedirectURL: rpRedirect,
		Scopes: []string{oidc.ScopeOpenID, "email", "profile"}}
}

// browser is a cookie-keeping HTTP client that does not follow redirects.
func browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// authReq is one authorization request's secrets.
type authReq struct {
	state, nonce, verifier string
}

func newAuthReq() authReq {
	return authReq{state: randomToken(16), nonce: randomToken(16), verifier: oauth2.GenerateVerifier()}
}

func (a authReq) url(cfg *oauth2.Config, extra ...oauth2.AuthCodeOption) string {
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(a.verifier), oidc.Nonce(a.nonce)}, extra...)
	return cfg.AuthCodeURL(a.state, opts...)
}

var (
	authRequestRe = regexp.MustCompile(`<input type="hidden" name="auth_request" value="([^"]+)">`)
	userButtonRe  = regexp.MustCompile(`<button class="user" type="submit" name="subject" value="([^"]+)">`)
)

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// signIn opens authURL in the browser, expects the sign-in page, chooses subject and
// returns the redirect's code after checking its state.
func signIn(t *testing.T, b *http.Client, authURL, subject, state string) string {
	t.Helper()
	resp, page := get(t, b, authURL)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: %d %s (%s)", resp.StatusCode, resp.Header.Get("Location"), page)
	}
	m := authRequestRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no sign-in form:\n%s", page)
	}
	resp, err := b.PostForm(strings.SplitN(authURL, "?", 2)[0], url.Values{"auth_request": {html.UnescapeString(m[1])}, "subject": {subject}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in POST: %d", resp.StatusCode)
	}
	return codeFrom(t, resp, state)
}

// codeFrom checks a redirect to rpRedirect with state and returns its code.
func codeFrom(t *testing.T, resp *http.Response, state string) string {
	t.Helper()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	if loc.Scheme+"://"+loc.Host+loc.Path != rpRedirect || q.Get("state") != state || q.Get("code") == "" || q.Has("error") {
		t.Fatalf("redirect %s", loc)
	}
	return q.Get("code")
}

// redirectError checks a redirect to rpRedirect carrying an OAuth error.
func redirectError(t *testing.T, resp *http.Response, wantErr, wantState string) {
	t.Helper()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode/100 != 3 {
		t.Fatalf("want a redirect with error %s, got %d %q", wantErr, resp.StatusCode, resp.Header.Get("Location"))
	}
	q := loc.Query()
	if loc.Scheme+"://"+loc.Host+loc.Path != rpRedirect || q.Get("error") != wantErr || q.Get("state") != wantState || q.Has("code") {
		t.Fatalf("redirect %s, want error=%s state=%q", loc, wantErr, wantState)
	}
}

func (e *idpEnv) verify(t *testing.T, clientID string, tok *oauth2.Token, nonce string) *oidc.IDToken {
	t.Helper()
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		t.Fatal("no id_token in the token response")
	}
	idt, err := e.provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc Verify: %v", err)
	}
	if idt.Nonce != nonce {
		t.Fatalf("nonce %q, want %q", idt.Nonce, nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	return idt
}

// TestIdPCodeFlowWithGoOIDC runs the whole code flow with PKCE and nonce through
// golang.org/x/oauth2 and verifies the ID token with go-oidc, for each client
// authentication method.
func TestIdPCodeFlowWithGoOIDC(t *testing.T) {
	e := newIdPEnv(t)
	for _, tc := range []struct {
		name, client, secret string
		style                oauth2.AuthStyle
	}{
		{"client_secret_basic", rpConfidential, rpSecret, oauth2.AuthStyleInHeader},
		{"client_secret_post", rpConfidential, rpSecret, oauth2.AuthStyleInParams},
		{"auto-detected", rpConfidential, rpSecret, oauth2.AuthStyleAutoDetect},
		{"public client (none)", rpPublic, "", oauth2.AuthStyleInParams},
		{"public client, auto-detected", rpPublic, "", oauth2.AuthStyleAutoDetect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.oauth(tc.client, tc.secret, tc.style)
			a := newAuthReq()
			code := signIn(t, browser(t), a.url(cfg), "alice", a.state)
			tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
			if err != nil {
				t.Fatalf("exchange: %v", err)
			}
			if tok.TokenType != "Bearer" || tok.Expiry.IsZero() {
				t.Fatalf("token type %q expiry %v", tok.TokenType, tok.Expiry)
			}
			idt := e.verify(t, tc.client, tok, a.nonce)
			var claims struct {
				Email             string `json:"email"`
				EmailVerified     bool   `json:"email_verified"`
				Name              string `json:"name"`
				PreferredUsername string `json:"preferred_username"`
				AuthTime          int64  `json:"auth_time"`
			}
			if err := idt.Claims(&claims); err != nil {
				t.Fatal(err)
			}
			if idt.Issuer != e.base || idt.Subject != "alice" || len(idt.Audience) != 1 || idt.Audience[0] != tc.client ||
				claims.Email != "alice@example.com" || !claims.EmailVerified || claims.Name != "Alice Example" ||
				claims.PreferredUsername != "alice" || claims.AuthTime == 0 {
				t.Fatalf("id token %+v claims %+v", idt, claims)
			}
			// The access token is a JWT signed with the same key.
			var at struct {
				jwt.Claims
				ClientID string `json:"client_id"`
				Scope    string `json:"scope"`
			}
			parsed, err := jwt.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.RS256})
			if err != nil {
				t.Fatal(err)
			}
			if err := parsed.Claims(&e.srv.idp.key.PublicKey, &at); err != nil {
				t.Fatal(err)
			}
			if at.Issuer != e.base || at.Subject != "alice" || !at.Audience.Contains(tc.client) || at.ClientID != tc.client ||
				at.Scope != "openid email profile" || at.Expiry == nil {
				t.Fatalf("access token claims %+v", at)
			}
			// userinfo answers for the access token.
			ui, err := e.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil || ui.Subject != "alice" || ui.Email != "alice@example.com" || !ui.EmailVerified {
				t.Fatalf("userinfo %+v %v", ui, err)
			}
		})
	}
}

func TestIdPDiscoveryAndJWKS(t *testing.T) {
	e := newIdPEnv(t)
	resp, body := get(t, http.DefaultClient, e.base+OIDCDiscoveryPath)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("discovery %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"issuer":                                e.base,
		"authorization_endpoint":                e.base + OIDCAuthorizePath,
		"token_endpoint":                        e.base + OIDCTokenPath,
		"jwks_uri":                              e.base + OIDCJWKSPath,
		"userinfo_endpoint":                     e.base + OIDCUserInfoPath,
		"response_types_supported":              []any{"code"},
		"id_token_signing_alg_values_supported": []any{"RS256"},
		"code_challenge_methods_supported":      []any{"S256"},
		"token_endpoint_auth_methods_supported": []any{"client_secret_basic", "client_secret_post", "none"},
		"subject_types_supported":               []any{"public"},
	}
	for k, v := range want {
		if got, _ := json.Marshal(d[k]); string(got) != mustJSON(v) {
			t.Errorf("%s = %s, want %s", k, got, mustJSON(v))
		}
	}
	if sc, _ := json.Marshal(d["scopes_supported"]); !strings.Contains(string(sc), `"openid"`) {
		t.Errorf("scopes_supported %s", sc)
	}
	resp, body = get(t, http.DefaultClient, e.base+OIDCJWKSPath)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &set); err != nil || resp.StatusCode != 200 || len(set.Keys) != 1 {
		t.Fatalf("jwks %d %s %v", resp.StatusCode, body, err)
	}
	k := set.Keys[0]
	if k.KeyID == "" || k.Algorithm != "RS256" || k.Use != "sig" || !k.IsPublic() || strings.Contains(body, `"d"`) {
		t.Fatalf("jwk %+v", k)
	}
	// MintIDToken's tokens verify with go-oidc like the token endpoint's.
	tok, err := e.srv.MintIDToken("bob", "some-app", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := e.provider.Verifier(&oidc.Config{ClientID: "some-app"}).Verify(ctx, tok)
	if err != nil || idt.Subject != "bob" {
		t.Fatalf("minted token: %v", err)
	}
	if hdr := jwtHeader(t, tok); hdr["kid"] != k.KeyID || hdr["alg"] != "RS256" || hdr["typ"] != "JWT" {
		t.Fatalf("header %v", hdr)
	}
	for name, mint := range map[string]func() (string, error){
		"expired (ttl 0)":  func() (string, error) { return e.srv.MintIDToken("bob", "some-app", 0) },
		"expired (ttl -1)": func() (string, error) { return e.srv.MintIDToken("bob", "some-app", -time.Hour) },
		"foreign key":      func() (string, error) { return e.srv.MintForeignToken("", "bob", "some-app", time.Hour) },
		"foreign issuer": func() (string, error) {
			return e.srv.MintForeignToken("https://idp.other.example", "bob", "some-app", time.Hour)
		},
	} {
		tok, err := mint()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.provider.Verifier(&oidc.Config{ClientID: "some-app"}).Verify(ctx, tok); err == nil {
			t.Errorf("%s: go-oidc accepted it", name)
		}
	}
	for _, c := range e.srv.Calls() {
		if IsOperation(c.Op) {
			t.Errorf("IdP call %q counts as an API operation", c.Op)
		}
	}
	if len(e.srv.CallsTo(OpOIDCDiscovery)) < 2 || len(e.srv.CallsTo(OpOIDCJWKS)) < 2 {
		t.Errorf("calls %+v", e.srv.Calls())
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jwtHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

// TestIdPTokenErrors: each refusal of the token endpoint, through x/oauth2.
func TestIdPTokenErrors(t *testing.T) {
	e := newIdPEnv(t)
	conf := e.oauth(rpConfidential, rpSecret, oauth2.AuthStyleInHeader)
	fresh := func(t *testing.T) (authReq, string) {
		a := newAuthReq()
		return a, signIn(t, browser(t), a.url(conf), "alice", a.state)
	}
	for _, tc := range []struct {
		name     string
		run      func(t *testing.T) error
		wantCode string
		status   int
	}{
		{"wrong verifier", func(t *testing.T) error {
			_, code := fresh(t)
			_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
			return err
		}, "invalid_grant", 400},
		{"no verifier", func(t *testing.T) error {
			_, code := fresh(t)
			_, err := conf.Exchange(ctx, code)
			return err
		}, "invalid_grant", 400},
		{"replayed code", func(t *testing.T) error {
			a, code := fresh(t)
			if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(a.verifier)); err != nil {
				t.Fatal(err)
			}
			_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
			return err
		}, "invalid_grant", 400},
		{"code burnt by a failed attempt", func(t *testing.T) error {
			a, code := fresh(t)
			if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
				t.Fatal("wrong verifier accepted")
			}
			_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
			return err
		}, "invalid_grant", 400},
		{"wrong redirect_uri", func(t *testing.T) error {
			a, code := fresh(t)
			other := *conf
			other.RedirectURL = rpOtherRedir // registered, but not the one authorized
			_, err := other.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
			return err
		}, "invalid_grant", 400},
		{"wrong client secret (basic)", func(t *testing.T) error {
			a, code := fresh(t)
			bad := e.oauth(rpConfidential, "wrong", oauth2.AuthStyleInHeader)
			_, err := bad.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
			return err
		}, "invalid_client", 401},
		{"wrong client secret (post)", func(t *testing.T) error {
			a, code := fresh(t)
			bad := e.oauth(rpConfidential, "wrong", oauth2.AuthStyleInParams)
			_, err := bad.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
			return err
		}, "invalid_client", 401},
		{"confidential client without a secret", func(t *testing.T) error {
			a, code := fresh(t)
			bad := e.oauth(rpConfidential, "", oauth2.AuthStyleInParams)
			_, err := bad.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
			return err
		}, "invalid_client", 401},
		{"public client sending a secret", func(t *testing.T) error {
			pub := e.oauth(rpPublic, "made-up", oauth2.AuthStyleInParams)
			a := newAuthReq()
			code := signIn(t, browser(t), a.url(pub), "alice", a.state)
			_, err := pub.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
			return err
		}, "invalid_client", 401},
		{"code of another client", func(t *testing.T) error {
			pub := e.oauth(rpPublic, "", oauth2.AuthStyleInParams)
			a := newAuthReq()
			code := signIn(t, browser(t), a.url(pub), "alice", a.state)
			_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
			return err
		}, "invalid_grant", 400},
		{"expired code", func(t *testing.T) error {
			a, code := fresh(t)
			e.srv.Advance(AuthCodeTTL)
			_, err := conf.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
			return err
		}, "invalid_grant", 400},
		{"unknown code", func(t *testing.T) error {
			_, err := conf.Exchange(ctx, "no-such-code", oauth2.VerifierOption(oauth2.GenerateVerifier()))
			return err
		}, "invalid_grant", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(t)
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) {
				t.Fatalf("error %v, want a RetrieveError", err)
			}
			if re.ErrorCode != tc.wantCode || re.Response.StatusCode != tc.status {
				t.Fatalf("error %q status %d, want %q %d", re.ErrorCode, re.Response.StatusCode, tc.wantCode, tc.status)
			}
			if cc := re.Response.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}

	// Raw requests for what x/oauth2 never sends.
	post := func(form url.Values, basic bool) (int, map[string]string) {
		req, _ := http.NewRequest(http.MethodPost, e.base+OIDCTokenPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if basic {
			req.SetBasicAuth(url.QueryEscape(rpConfidential), url.QueryEscape(rpSecret))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	for name, tc := range map[string]struct {
		form   url.Values
		basic  bool
		status int
		err    string
	}{
		"refresh grant":        {url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, true, 400, "unsupported_grant_type"},
		"client_credentials":   {url.Values{"grant_type": {"client_credentials"}}, true, 400, "unsupported_grant_type"},
		"no grant_type":        {url.Values{"code": {"x"}}, true, 400, "invalid_request"},
		"no code":              {url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {rpRedirect}}, true, 400, "invalid_request"},
		"no redirect_uri":      {url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}, true, 400, "invalid_request"},
		"two auth methods":     {url.Values{"grant_type": {"authorization_code"}, "client_secret": {rpSecret}}, true, 400, "invalid_request"},
		"repeated code":        {url.Values{"grant_type": {"authorization_code"}, "code": {"a", "b"}}, true, 400, "invalid_request"},
		"unknown client":       {url.Values{"grant_type": {"authorization_code"}, "client_id": {"nobody"}}, false, 401, "invalid_client"},
		"no client at all":     {url.Values{"grant_type": {"authorization_code"}}, false, 401, "invalid_client"},
		"basic and other id":   {url.Values{"grant_type": {"authorization_code"}, "client_id": {rpPublic}}, true, 401, "invalid_client"},
		"public client, fine?": {url.Values{"grant_type": {"authorization_code"}, "client_id": {rpPublic}, "code": {"x"}, "redirect_uri": {rpRedirect}}, false, 400, "invalid_grant"},
	} {
		if status, m := post(tc.form, tc.basic); status != tc.status || m["error"] != tc.err {
			t.Errorf("%s: %d %v, want %d %s", name, status, m, tc.status, tc.err)
		}
	}
	if resp, _ := get(t, http.DefaultClient, e.base+OIDCTokenPath); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET token endpoint: %d", resp.StatusCode)
	}
	if n := len(e.srv.CallsTo(OpOIDCToken)); n < 10 {
		t.Errorf("%d OIDCToken calls recorded", n)
	}
}

// TestIdPAuthorizeErrors: refusals that stay on the IdP (400 page) and those that
// redirect with an OAuth error.
func TestIdPAuthorizeErrors(t *testing.T) {
	e := newIdPEnv(t)
	conf := e.oauth(rpConfidential, rpSecret, oauth2.AuthStyleInHeader)
	a := newAuthReq()
	good := func() url.Values {
		u, _ := url.Parse(a.url(conf))
		return u.Query()
	}
	with := func(mod func(url.Values)) string {
		q := good()
		mod(q)
		return e.base + OIDCAuthorizePath + "?" + q.Encode()
	}
	for name, u := range map[string]string{
		"unknown client":          with(func(q url.Values) { q.Set("client_id", "nobody") }),
		"no client":               with(func(q url.Values) { q.Del("client_id") }),
		"unregistered redirect":   with(func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }),
		"redirect prefix":         with(func(q url.Values) { q.Set("redirect_uri", rpRedirect+"/x") }),
		"redirect extra query":    with(func(q url.Values) { q.Set("redirect_uri", rpRedirect+"?a=1") }),
		"no redirect":             with(func(q url.Values) { q.Del("redirect_uri") }),
		"repeated redirect":       with(func(q url.Values) { q.Add("redirect_uri", rpRedirect) }),
		"other client's redirect": with(func(q url.Values) { q.Set("client_id", rpPublic); q.Set("redirect_uri", rpOtherRedir) }),
	} {
		resp, page := get(t, browser(t), u)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" || !strings.Contains(page, "Sign-in request not valid") {
			t.Errorf("%s: %d %q", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for name, tc := range map[string]struct {
		url, err, state string
	}{
		"no PKCE":                 {with(func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }), "invalid_request", a.state},
		"plain PKCE":              {with(func(q url.Values) { q.Set("code_challenge", a.verifier); q.Set("code_challenge_method", "plain") }), "invalid_request", a.state},
		"no PKCE method":          {with(func(q url.Values) { q.Del("code_challenge_method") }), "invalid_request", a.state},
		"short challenge":         {with(func(q url.Values) { q.Set("code_challenge", "abc") }), "invalid_request", a.state},
		"no openid scope":         {with(func(q url.Values) { q.Set("scope", "email profile") }), "invalid_scope", a.state},
		"implicit flow":           {with(func(q url.Values) { q.Set("response_type", "id_token token") }), "unsupported_response_type", a.state},
		"no state":                {with(func(q url.Values) { q.Del("state") }), "invalid_request", ""},
		"no nonce":                {with(func(q url.Values) { q.Del("nonce") }), "invalid_request", a.state},
		"repeated scope":          {with(func(q url.Values) { q.Add("scope", "openid") }), "invalid_request", a.state},
		"none with login":         {with(func(q url.Values) { q.Set("prompt", "none login") }), "invalid_request", a.state},
		"unknown prompt":          {with(func(q url.Values) { q.Set("prompt", "create") }), "invalid_request", a.state},
		"request object":          {with(func(q url.Values) { q.Set("request", "x.y.z") }), "request_not_supported", a.state},
		"prompt=none, no session": {with(func(q url.Values) { q.Set("prompt", "none") }), "login_required", a.state},
	} {
		resp, _ := get(t, browser(t), tc.url)
		t.Run(name, func(t *testing.T) { redirectError(t, resp, tc.err, tc.state) })
	}
	// The sign-in page: strict headers, every user, cancel.
	b := browser(t)
	resp, page := get(t, b, a.url(conf))
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") ||
		resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("page %d %v", resp.StatusCode, resp.Header)
	}
	var subjects []string
	for _, m := range userButtonRe.FindAllStringSubmatch(page, -1) {
		subjects = append(subjects, m[1])
	}
	if strings.Join(subjects, ",") != "alice,bob" || !strings.Contains(page, "alice@example.com") || strings.Contains(page, a.state) || strings.Contains(page, a.nonce) {
		t.Fatalf("users %v in page:\n%s", subjects, page)
	}
	tokenVal := html.UnescapeString(authRequestRe.FindStringSubmatch(page)[1])
	for name, form := range map[string]url.Values{
		"unknown user":  {"auth_request": {tokenVal}, "subject": {"mallory"}},
		"no token":      {"subject": {"alice"}},
		"made-up token": {"auth_request": {"abc"}, "subject": {"alice"}},
	} {
		r, err := b.PostForm(e.base+OIDCAuthorizePath, form)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d", name, r.StatusCode)
		}
	}
	r, err := b.PostForm(e.base+OIDCAuthorizePath, url.Values{"auth_request": {tokenVal}, "cancel": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	redirectError(t, r, "access_denied", a.state)
	// The page's form token is single use.
	r, _ = b.PostForm(e.base+OIDCAuthorizePath, url.Values{"auth_request": {tokenVal}, "subject": {"alice"}})
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("reused page token: %d", r.StatusCode)
	}
}

// TestIdPPromptsAndSession: the cookie remembers the sign-in; prompt decides.
func TestIdPPromptsAndSession(t *testing.T) {
	e := newIdPEnv(t)
	conf := e.oauth(rpConfidential, rpSecret, oauth2.AuthStyleInHeader)
	b := browser(t)
	a := newAuthReq()
	signIn(t, b, a.url(conf), "bob", a.state)
	var cookie *http.Cookie
	for _, c := range b.Jar.Cookies(mustURL(t, e.base+OIDCAuthorizePath)) {
		if c.Name == IdPSessionCookie {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no IdP session cookie")
	}
	// The Set-Cookie attributes, on a fresh sign-in.
	raw := rawSignIn(t, e, conf)
	if !strings.Contains(raw, "HttpOnly") || !strings.Contains(raw, "SameSite=Lax") || !strings.Contains(raw, "Path=/oidc/") || strings.Contains(raw, "Secure") {
		t.Errorf("Set-Cookie %q", raw)
	}

	for _, tc := range []struct {
		prompt   string
		wantPage bool
		outcome  string
	}{
		{"", false, "session-reused"},
		{"none", false, "session-reused"},
		{"login", true, "page-shown"},
		{"select_account", true, "page-shown"},
		{"consent", true, "page-shown"},
	} {
		t.Run("prompt="+tc.prompt, func(t *testing.T) {
			a := newAuthReq()
			var opts []oauth2.AuthCodeOption
			if tc.prompt != "" {
				opts = append(opts, oauth2.SetAuthURLParam("prompt", tc.prompt))
			}
			resp, _ := get(t, b, a.url(conf, opts...))
			if tc.wantPage {
				if resp.StatusCode != 200 {
					t.Fatalf("status %d, want the page", resp.StatusCode)
				}
			} else {
				code := codeFrom(t, resp, a.state)
				tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
				if err != nil {
					t.Fatal(err)
				}
				if idt := e.verify(t, rpConfidential, tok, a.nonce); idt.Subject != "bob" {
					t.Fatalf("subject %q, want the remembered bob", idt.Subject)
				}
			}
			calls := e.srv.CallsTo(OpOIDCAuthorize)
			if last := calls[len(calls)-1]; last.Outcome != tc.outcome || last.Client != rpConfidential {
				t.Fatalf("call %+v", last)
			}
		})
	}
	// prompt=login lets another user sign in, and the cookie then names that user.
	a = newAuthReq()
	signIn(t, b, a.url(conf, oauth2.SetAuthURLParam("prompt", "login")), "alice", a.state)
	a = newAuthReq()
	resp, _ := get(t, b, a.url(conf))
	tok, err := conf.Exchange(ctx, codeFrom(t, resp, a.state), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatal(err)
	}
	if idt := e.verify(t, rpConfidential, tok, a.nonce); idt.Subject != "alice" {
		t.Fatalf("after switching: %q", idt.Subject)
	}
	// The session is the IdP's, not the client's: the public client gets it too.
	pub := e.oauth(rpPublic, "", oauth2.AuthStyleInParams)
	a = newAuthReq()
	resp, _ = get(t, b, a.url(pub, oauth2.SetAuthURLParam("prompt", "none")))
	codeFrom(t, resp, a.state)
	// A made-up cookie is no session.
	nb := browser(t)
	nb.Jar.SetCookies(mustURL(t, e.base+OIDCAuthorizePath), []*http.Cookie{{Name: IdPSessionCookie, Value: "forged", Path: "/oidc/"}})
	a = newAuthReq()
	resp, _ = get(t, nb, a.url(conf, oauth2.SetAuthURLParam("prompt", "none")))
	redirectError(t, resp, "login_required", a.state)
}

// rawSignIn signs alice in through a fresh browser and returns the Set-Cookie header.
func rawSignIn(t *testing.T, e *idpEnv, conf *oauth2.Config) string {
	t.Helper()
	b := browser(t)
	a := newAuthReq()
	_, page := get(t, b, a.url(conf))
	tokenVal := html.UnescapeString(authRequestRe.FindStringSubmatch(page)[1])
	resp, err := b.PostForm(e.base+OIDCAuthorizePath, url.Values{"auth_request": {tokenVal}, "subject": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("Set-Cookie")
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestIdPSignInAs(t *testing.T) {
	e := newIdPEnv(t)
	conf := e.oauth(rpConfidential, rpSecret, oauth2.AuthStyleInHeader)
	if err := e.srv.SignInAs("mallory"); err == nil {
		t.Fatal("SignInAs accepted an unknown user")
	}
	if err := e.srv.SignInAs("bob"); err != nil {
		t.Fatal(err)
	}
	// A request refused before the sign-in step does not consume it.
	resp, _ := get(t, browser(t), e.base+OIDCAuthorizePath+"?client_id=nobody")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad request: %d", resp.StatusCode)
	}
	b := browser(t)
	a := newAuthReq()
	// Whatever the prompt: login would show the page without SignInAs.
	resp, _ = get(t, b, a.url(conf, oauth2.SetAuthURLParam("prompt", "login")))
	tok, err := conf.Exchange(ctx, codeFrom(t, resp, a.state), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatal(err)
	}
	if idt := e.verify(t, rpConfidential, tok, a.nonce); idt.Subject != "bob" {
		t.Fatalf("subject %q", idt.Subject)
	}
	// Single shot: a fresh browser gets the page again...
	a = newAuthReq()
	if resp, _ := get(t, browser(t), a.url(conf)); resp.StatusCode != 200 {
		t.Fatalf("second request: %d, want the page", resp.StatusCode)
	}
	// ...while the browser it signed in keeps its session.
	a = newAuthReq()
	resp, _ = get(t, b, a.url(conf, oauth2.SetAuthURLParam("prompt", "none")))
	codeFrom(t, resp, a.state)
	// prompt=none without a session passes with SignInAs.
	if err := e.srv.SignInAs("alice"); err != nil {
		t.Fatal(err)
	}
	a = newAuthReq()
	resp, _ = get(t, browser(t), a.url(conf, oauth2.SetAuthURLParam("prompt", "none")))
	codeFrom(t, resp, a.state)
	if c := e.srv.CallsTo(OpOIDCAuthorize); c[len(c)-1].Outcome != "signed-in-as" {
		t.Fatalf("outcome %q", c[len(c)-1].Outcome)
	}
	// Users and clients added at run time.
	if err := e.srv.AddTestUser(TestUser{Subject: "carol", Email: "carol@example.org"}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.SignInAs("carol"); err != nil {
		t.Fatal(err)
	}
	a = newAuthReq()
	resp, _ = get(t, browser(t), a.url(conf))
	tok, err = conf.Exchange(ctx, codeFrom(t, resp, a.state), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt := e.verify(t, rpConfidential, tok, a.nonce)
	var claims map[string]any
	_ = idt.Claims(&claims)
	if idt.Subject != "carol" || claims["email"] != "carol@example.org" || claims["email_verified"] != false || claims["name"] != nil {
		t.Fatalf("carol's claims %v", claims)
	}
}

// TestIdPWithHandlerOnly: without PublicURL or Start/Serve the IdP answers with each
// request's origin, which go-oidc accepts and GetWorkloadAccessTokenForJWT trusts;
// MintIDToken needs a known issuer.
func TestIdPWithHandlerOnly(t *testing.T) {
	srv, err := New(Config{
		Workloads: []Workload{{Name: testWorkload}},
		IdP: IdPConfig{
			Users:   []TestUser{{Subject: "dora", Email: "dora@example.com", EmailVerified: true}},
			Clients: []IdPClient{{ClientID: "rp", ClientSecret: "pw", RedirectURIs: []string{rpRedirect}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	if srv.Issuer() != "" {
		t.Fatalf("Issuer() = %q", srv.Issuer())
	}
	if _, err := srv.MintIDToken("dora", "rp", time.Hour); err == nil {
		t.Fatal("MintIDToken without an issuer")
	}
	provider, err := oidc.NewProvider(ctx, ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	e := &idpEnv{srv: srv, base: ts.URL, provider: provider}
	conf := e.oauth("rp", "pw", oauth2.AuthStyleInHeader)
	a := newAuthReq()
	code := signIn(t, browser(t), a.url(conf), "dora", a.state)
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt := e.verify(t, "rp", tok, a.nonce)
	if idt.Issuer != ts.URL || idt.Subject != "dora" {
		t.Fatalf("%+v", idt)
	}
	c := NewClient(ts.URL, func(o *bedrockagentcore.Options) { o.Retryer = aws.NopRetryer{} })
	if _, err := c.GetWorkloadAccessTokenForJWT(ctx, &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{
		WorkloadName: aws.String(testWorkload), UserToken: aws.String(tok.Extra("id_token").(string))}); err != nil {
		t.Fatal(err)
	}
}

func TestIdPPublicURLIsTheIssuer(t *testing.T) {
	srv, err := New(Config{PublicURL: "https://emu.example.test:8443/"})
	if err != nil {
		t.Fatal(err)
	}
	_, stop, err := srv.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if srv.Issuer() != "https://emu.example.test:8443" {
		t.Fatalf("Issuer() = %q", srv.Issuer())
	}
	tok, err := srv.MintIDToken("alice", "app", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var c jwt.Claims
	parsed, _ := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.RS256})
	if err := parsed.Claims(&srv.idp.key.PublicKey, &c); err != nil || c.Issuer != "https://emu.example.test:8443" {
		t.Fatalf("iss %q %v", c.Issuer, err)
	}
}

func TestIdPConfig(t *testing.T) {
	var cfg Config
	dec := json.NewDecoder(strings.NewReader(`{"idp":{"users":[{"subject":"u1","email":"u1@x.example","emailVerified":true,"name":"U One","preferredUsername":"one"}],
		"clients":[{"clientId":"c1","clientSecret":"s","redirectUris":["http://127.0.0.1:9/cb"]}],
		"idTokenTtl":"15m","accessTokenTtl":600,"audience":"api://x"}}`))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	want := IdPConfig{
		Users:          []TestUser{{Subject: "u1", Email: "u1@x.example", EmailVerified: true, Name: "U One", PreferredUsername: "one"}},
		Clients:        []IdPClient{{ClientID: "c1", ClientSecret: "s", RedirectURIs: []string{"http://127.0.0.1:9/cb"}}},
		IDTokenTTL:     15 * time.Minute,
		AccessTokenTTL: 10 * time.Minute,
		Audience:       "api://x",
	}
	if mustJSON(cfg.IdP) != mustJSON(want) || cfg.IdP.IDTokenTTL != want.IDTokenTTL || cfg.IdP.AccessTokenTTL != want.AccessTokenTTL {
		t.Fatalf("decoded %+v", cfg.IdP)
	}
	var back IdPConfig
	if err := json.Unmarshal([]byte(mustJSON(want)), &back); err != nil || back.IDTokenTTL != want.IDTokenTTL {
		t.Fatalf("round trip %+v %v (%s)", back, err, mustJSON(want))
	}
	for name, js := range map[string]string{
		"unknown member":      `{"idp":{"userz":[]}}`,
		"unknown user member": `{"idp":{"users":[{"sub":"x"}]}}`,
		"bad duration":        `{"idp":{"idTokenTtl":"soon"}}`,
		"fractional seconds":  `{"idp":{"idTokenTtl":1.5}}`,
		"bool duration":       `{"idp":{"idTokenTtl":true}}`,
	} {
		var c Config
		if err := json.Unmarshal([]byte(js), &c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, c := range map[string]IdPConfig{
		"empty subject":     {Users: []TestUser{{Email: "x@y"}}},
		"subject w/ space":  {Users: []TestUser{{Subject: "a b"}}},
		"dup client":        {Clients: []IdPClient{{ClientID: "c", RedirectURIs: []string{rpRedirect}}, {ClientID: "c", RedirectURIs: []string{rpRedirect}}}},
		"no redirect":       {Clients: []IdPClient{{ClientID: "c"}}},
		"relative redirect": {Clients: []IdPClient{{ClientID: "c", RedirectURIs: []string{"/cb"}}}},
		"fragment":          {Clients: []IdPClient{{ClientID: "c", RedirectURIs: []string{rpRedirect + "#x"}}}},
		"empty client id":   {Clients: []IdPClient{{RedirectURIs: []string{rpRedirect}}}},
		"negative at ttl":   {AccessTokenTTL: -time.Second},
	} {
		if _, err := New(Config{IdP: c}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if u := srv.TestUsers(); len(u) != 2 || u[0].Subject != "alice" || u[1].Email != "bob@example.com" || !u[1].EmailVerified {
		t.Fatalf("default users %+v", u)
	}
}

// TestIdPTTLsAndAudience: configured lifetimes and access token audience.
func TestIdPTTLsAndAudience(t *testing.T) {
	e := newIdPEnv(t, func(c *Config) {
		c.IdP = IdPConfig{IDTokenTTL: 5 * time.Minute, AccessTokenTTL: 2 * time.Minute, Audience: "https://api.example.com"}
	})
	conf := e.oauth(rpPublic, "", oauth2.AuthStyleInParams)
	if err := e.srv.SignInAs("alice"); err != nil {
		t.Fatal(err)
	}
	a := newAuthReq()
	resp, _ := get(t, browser(t), a.url(conf))
	before := time.Now()
	tok, err := conf.Exchange(ctx, codeFrom(t, resp, a.state), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatal(err)
	}
	if d := tok.Expiry.Sub(before); d < 110*time.Second || d > 130*time.Second {
		t.Errorf("expires_in gives %v", d)
	}
	idt := e.verify(t, rpPublic, tok, a.nonce)
	if d := idt.Expiry.Sub(idt.IssuedAt); d != 5*time.Minute {
		t.Errorf("id token lifetime %v", d)
	}
	var at jwt.Claims
	parsed, _ := jwt.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.RS256})
	if err := parsed.Claims(&e.srv.idp.key.PublicKey, &at); err != nil || !at.Audience.Contains("https://api.example.com") ||
		at.Expiry.Time().Sub(at.IssuedAt.Time()) != 2*time.Minute {
		t.Fatalf("access token %+v %v", at, err)
	}
}

// TestIdPLogsNoSecrets: the log lines and the call log carry no code, token, state,
// nonce, verifier, cookie or subject.
func TestIdPLogsNoSecrets(t *testing.T) {
	e := newIdPEnv(t)
	conf := e.oauth(rpConfidential, rpSecret, oauth2.AuthStyleInParams)
	b := browser(t)
	a := newAuthReq()
	code := signIn(t, b, a.url(conf), "alice", a.state)
	tok, err := conf.Exchange(ctx, code, oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conf.Exchange(ctx, code, oauth2.VerifierOption(a.verifier)); err == nil {
		t.Fatal("replay accepted")
	}
	if _, err := e.client.GetWorkloadAccessTokenForJWT(ctx, &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{
		WorkloadName: aws.String(testWorkload), UserToken: aws.String(tok.Extra("id_token").(string))}); err != nil {
		t.Fatal(err)
	}
	var cookie string
	for _, c := range b.Jar.Cookies(mustURL(t, e.base+OIDCAuthorizePath)) {
		cookie = c.Value
	}
	calls, _ := json.Marshal(e.srv.Calls())
	logs := e.logs.String()
	if !strings.Contains(logs, "op="+OpOIDCToken) || !strings.Contains(logs, "client="+rpConfidential) {
		t.Fatalf("logs lack the IdP lines:\n%s", logs)
	}
	for name, secret := range map[string]string{
		"code": code, "state": a.state, "nonce": a.nonce, "verifier": a.verifier, "access token": tok.AccessToken,
		"id token": tok.Extra("id_token").(string), "cookie": cookie, "client secret": rpSecret, "subject": "alice",
	} {
		if secret == "" {
			t.Fatalf("%s empty", name)
		}
		if strings.Contains(logs, secret) || strings.Contains(string(calls), secret) {
			t.Errorf("%s leaked into the logs or the call log", name)
		}
	}
}

// TestIdPConcurrentUse registers clients and users while flows run (go test -race).
func TestIdPConcurrentUse(t *testing.T) {
	e := newIdPEnv(t)
	conf := e.oauth(rpConfidential, rpSecret, oauth2.AuthStyleInHeader)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			sub := "user-" + randomToken(4)
			if err := e.srv.AddTestUser(TestUser{Subject: sub}); err != nil {
				errs <- err
			}
			if err := e.srv.AddIdPClient(IdPClient{ClientID: "c-" + sub, RedirectURIs: []string{rpRedirect}}); err != nil {
				errs <- err
			}
		}()
		go func() {
			defer wg.Done()
			a := newAuthReq()
			b := browser(t)
			resp, err := b.Get(a.url(conf))
			if err != nil {
				errs <- err
				return
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := authRequestRe.FindSubmatch(page)
			if m == nil {
				errs <- errors.New("no sign-in form")
				return
			}
			resp, err = b.PostForm(e.base+OIDCAuthorizePath, url.Values{"auth_request": {html.UnescapeString(string(m[1]))}, "subject": {"bob"}})
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if _, err := conf.Exchange(context.Background(), loc.Query().Get("code"), oauth2.VerifierOption(a.verifier)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
