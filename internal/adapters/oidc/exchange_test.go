package oidc

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/emulator"
)

const redirect = "http://127.0.0.1:9/oauth2/login/callback"

// provider starts the emulator's OpenID provider with one confidential
// client "cf" (secret "s3cret").
func provider(t *testing.T, idTTL time.Duration) (*emulator.Server, func()) {
	t.Helper()
	srv, err := emulator.New(emulator.Config{IdP: emulator.IdPConfig{
		IDTokenTTL: idTTL,
		Clients:    []emulator.IdPClient{{ClientID: "cf", ClientSecret: "s3cret", RedirectURIs: []string{redirect}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, stop, err := srv.Start("")
	if err != nil {
		t.Fatal(err)
	}
	return srv, func() { _ = stop() }
}

// authorize plays the browser: it asks the provider (signed in as
// subject) for a code and returns it from the redirect.
func authorize(t *testing.T, srv *emulator.Server, s *SignIn, r flow.SignInRequest, subject string) string {
	t.Helper()
	if err := srv.SignInAs(subject); err != nil {
		t.Fatal(err)
	}
	u, err := s.AuthURL(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(loc.String(), redirect) || loc.Query().Get("state") != r.State {
		t.Fatalf("authorize answered %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

var round = flow.SignInRequest{State: "st-1", Nonce: "nonce-1", Verifier: strings.Repeat("v", 43)}

func TestExchange(t *testing.T) {
	srv, stop := provider(t, 0)
	defer stop()
	ctx := context.Background()
	s, err := NewSignIn(Config{Issuer: srv.Issuer(), ClientID: "cf", ClientSecret: "s3cret", RedirectURL: redirect})
	if err != nil {
		t.Fatal(err)
	}
	code := authorize(t, srv, s, round, "alice")
	u, err := s.Exchange(ctx, code, round.Verifier)
	if err != nil || u.UserID != "alice" || u.Display != "alice@example.com" || u.Nonce != "nonce-1" {
		t.Fatalf("exchange: %+v %v", u, err)
	}
	if _, err := s.Exchange(ctx, code, round.Verifier); !errors.Is(err, flow.ErrSignInRejected) {
		t.Fatalf("a replayed code: %v", err)
	}
	code = authorize(t, srv, s, round, "alice")
	if _, err := s.Exchange(ctx, code, strings.Repeat("w", 43)); !errors.Is(err, flow.ErrSignInRejected) {
		t.Fatalf("another verifier: %v", err)
	}

	wrongSecret, _ := NewSignIn(Config{Issuer: srv.Issuer(), ClientID: "cf", ClientSecret: "nope", RedirectURL: redirect})
	code = authorize(t, srv, wrongSecret, round, "bob")
	if _, err := wrongSecret.Exchange(ctx, code, round.Verifier); !errors.Is(err, flow.ErrSignInRejected) {
		t.Fatalf("a wrong client secret: %v", err)
	}

	byEmail, _ := NewSignIn(Config{Issuer: srv.Issuer(), ClientID: "cf", ClientSecret: "s3cret", RedirectURL: redirect,
		UserClaim: "email", UserPrefix: "idp|"})
	code = authorize(t, srv, byEmail, round, "bob")
	if u, err := byEmail.Exchange(ctx, code, round.Verifier); err != nil || u.UserID != "idp|bob@example.com" {
		t.Fatalf("email claim with prefix: %+v %v", u, err)
	}
	if err := srv.AddTestUser(emulator.TestUser{Subject: "eve", Email: "eve@example.com"}); err != nil {
		t.Fatal(err)
	}
	code = authorize(t, srv, byEmail, round, "eve")
	if _, err := byEmail.Exchange(ctx, code, round.Verifier); !errors.Is(err, flow.ErrSignInRejected) {
		t.Fatalf("an unverified email as the user id: %v", err)
	}
}

func TestExchangeExpiredIDToken(t *testing.T) {
	srv, stop := provider(t, -time.Minute)
	defer stop()
	s, _ := NewSignIn(Config{Issuer: srv.Issuer(), ClientID: "cf", ClientSecret: "s3cret", RedirectURL: redirect})
	code := authorize(t, srv, s, round, "alice")
	if _, err := s.Exchange(context.Background(), code, round.Verifier); !errors.Is(err, flow.ErrSignInRejected) {
		t.Fatalf("an expired ID token: %v", err)
	}
}

func TestExchangeProviderGone(t *testing.T) {
	srv, stop := provider(t, 0)
	s, _ := NewSignIn(Config{Issuer: srv.Issuer(), ClientID: "cf", ClientSecret: "s3cret", RedirectURL: redirect})
	code := authorize(t, srv, s, round, "alice")
	stop()
	_, err := s.Exchange(context.Background(), code, round.Verifier)
	if err == nil || errors.Is(err, flow.ErrSignInRejected) {
		t.Fatalf("a provider that does not answer is unavailable, not a rejection: %v", err)
	}
	if strings.Contains(err.Error(), code) {
		t.Fatal("the error quotes the code")
	}
}
