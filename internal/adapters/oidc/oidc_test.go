package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc/oidctest"

	"github.com/consentflow/consentflow/internal/flow"
)

// issuer is go-oidc's own test provider (discovery and JWKS) on loopback.
type issuer struct {
	url  string
	key  *rsa.PrivateKey
	down bool
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	srv := &oidctest.Server{PublicKeys: []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: "k1", Algorithm: "RS256"}}}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if is.down && r.URL.Path == "/keys" {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	srv.SetIssuer(ts.URL)
	is.url = ts.URL
	return is
}

func (is *issuer) token(key *rsa.PrivateKey, iss, aud string, exp time.Time) string {
	claims := fmt.Sprintf(`{"iss":%q,"sub":"alice","aud":%q,"exp":%d,"iat":%d}`, iss, aud, exp.Unix(), time.Now().Unix())
	return oidctest.SignIDToken(key, "k1", "RS256", claims)
}

func TestVerifier(t *testing.T) {
	is := newIssuer(t)
	v, err := NewVerifier(is.url, "app", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	good := is.token(is.key, is.url, "app", time.Now().Add(time.Hour))
	if err := v.VerifyUserToken(ctx, good); err != nil {
		t.Fatalf("good token: %v", err)
	}
	for name, tok := range map[string]string{
		"forged (another key)": is.token(other, is.url, "app", time.Now().Add(time.Hour)),
		"expired":              is.token(is.key, is.url, "app", time.Now().Add(-time.Minute)),
		"another audience":     is.token(is.key, is.url, "someone-else", time.Now().Add(time.Hour)),
		"another issuer":       is.token(is.key, "https://evil.example", "app", time.Now().Add(time.Hour)),
		"not a JWT":            "not a jwt",
		"unsigned":             "eyJhbGciOiJub25lIn0." + strings.Split(good, ".")[1] + ".",
	} {
		err := v.VerifyUserToken(ctx, tok)
		if !errors.Is(err, flow.ErrSignInRejected) {
			t.Errorf("%s: %v", name, err)
		}
		if err != nil && strings.Contains(err.Error(), tok) {
			t.Errorf("%s: the error quotes the token", name)
		}
	}
}

func TestVerifierProviderDown(t *testing.T) {
	is := newIssuer(t)
	v, _ := NewVerifier(is.url, "app", nil)
	is.down = true
	err := v.VerifyUserToken(context.Background(), is.token(is.key, is.url, "app", time.Now().Add(time.Hour)))
	if err == nil || errors.Is(err, flow.ErrSignInRejected) {
		t.Fatalf("keys unavailable must not read as a rejected token: %v", err)
	}
	if _, err := NewVerifier("", "app", nil); err == nil {
		t.Fatal("no issuer accepted")
	}
	unreachable, _ := NewVerifier("http://127.0.0.1:1", "app", nil)
	if err := unreachable.VerifyUserToken(context.Background(), "x.y.z"); err == nil || errors.Is(err, flow.ErrSignInRejected) {
		t.Fatalf("discovery failure: %v", err)
	}
}

func TestUserClaim(t *testing.T) {
	for _, tc := range []struct {
		claims map[string]any
		claim  string
		want   string
	}{
		{map[string]any{"sub": "abc"}, "sub", "abc"},
		{map[string]any{"sub": ""}, "sub", ""},
		{map[string]any{"sub": 42.0}, "sub", ""},
		{map[string]any{"email": "a@x", "email_verified": true}, "email", "a@x"},
		{map[string]any{"email": "a@x", "email_verified": "true"}, "email", "a@x"},
		{map[string]any{"email": "a@x", "email_verified": false}, "email", ""},
		{map[string]any{"email": "a@x"}, "email", ""},
		{map[string]any{"preferred_username": "al"}, "preferred_username", "al"},
	} {
		got, err := userID(tc.claims, tc.claim)
		if got != tc.want || (tc.want == "") != errors.Is(err, flow.ErrSignInRejected) {
			t.Errorf("%v %s: %q %v", tc.claims, tc.claim, got, err)
		}
	}
	if d := display(map[string]any{"name": "Al", "email": "a@x", "email_verified": true}, "id"); d != "a@x" {
		t.Errorf("display %q", d)
	}
	if d := display(map[string]any{"name": "Al", "email": "a@x"}, "id"); d != "id" {
		t.Errorf("an unverified email must not be shown as the account: %q", d)
	}
	if d := display(map[string]any{}, "id"); d != "id" {
		t.Errorf("display %q", d)
	}
}

func TestSignInAuthURL(t *testing.T) {
	is := newIssuer(t)
	s, err := NewSignIn(Config{Issuer: is.url, ClientID: "cf", RedirectURL: "https://cb.example/oauth2/login/callback", Scopes: []string{"email"}})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.AuthURL(context.Background(), flow.SignInRequest{State: "st", Nonce: "no", Verifier: strings.Repeat("v", 43), Prompt: "select_account"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"client_id=cf", "state=st", "nonce=no", "code_challenge_method=S256", "code_challenge=", "prompt=select_account", "scope=openid+email", "response_type=code"} {
		if !strings.Contains(u, want) {
			t.Errorf("%s lacks %s", u, want)
		}
	}
	if strings.Contains(u, strings.Repeat("v", 43)) {
		t.Error("the verifier itself must not be in the URL")
	}
	if o := s.AuthOrigin(context.Background()); o != is.url {
		t.Errorf("origin %q, want %q", o, is.url)
	}
}
