// Package oidc adapts an OpenID Connect provider to the flow's ports with
// the field's own libraries: github.com/coreos/go-oidc/v3 (discovery, JWKS,
// ID token verification) and golang.org/x/oauth2 (authorization code flow
// with PKCE). SignIn is flow.SignIn (the sign-in binding modes); Verifier is
// flow.UserTokenVerifier (JWT-cookie binding).
//
// Discovery is lazy: the first request that needs the provider fetches its
// configuration, and a failure is retried by the next request, so a
// function starts even while its provider is briefly unreachable.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/consentflow/consentflow/internal/flow"
)

// DefaultTimeout bounds each request to the provider.
const DefaultTimeout = 5 * time.Second

// Config configures SignIn.
type Config struct {
	// Issuer is the provider's issuer URL (its discovery document is at
	// Issuer + "/.well-known/openid-configuration").
	Issuer string
	// ClientID and ClientSecret are consentflow's client at the provider;
	// ClientSecret is empty for a public client (PKCE alone).
	ClientID, ClientSecret string
	// RedirectURL is the login callback's URL, registered at the provider.
	RedirectURL string
	// Scopes asked for; "openid" is added when missing.
	Scopes []string
	// UserClaim names the ID token claim that identifies the user (default
	// "sub"). "email" counts only when email_verified is true.
	UserClaim string
	// UserPrefix is put before the claim's value to form the user id.
	UserPrefix string
	// HTTPClient makes the requests to the provider (default: a client
	// with DefaultTimeout).
	HTTPClient *http.Client
}

// SignIn is flow.SignIn for one provider.
type SignIn struct {
	cfg Config
	d   discovery
}

// NewSignIn checks cfg and returns a SignIn; the provider is contacted on
// first use.
func NewSignIn(cfg Config) (*SignIn, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, errors.New("oidc: issuer, client id and redirect URL are required")
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "sub"
	}
	if !slices.Contains(cfg.Scopes, gooidc.ScopeOpenID) {
		cfg.Scopes = append([]string{gooidc.ScopeOpenID}, cfg.Scopes...)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultTimeout}
	}
	return &SignIn{cfg: cfg, d: discovery{issuer: cfg.Issuer, client: cfg.HTTPClient}}, nil
}

func (s *SignIn) oauth(p *gooidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, RedirectURL: s.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: s.cfg.Scopes,
	}
}

// AuthURL implements flow.SignIn: the authorization code flow with state,
// nonce and the PKCE S256 challenge of r.Verifier.
func (s *SignIn) AuthURL(ctx context.Context, r flow.SignInRequest) (string, error) {
	p, err := s.d.provider(ctx)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{gooidc.Nonce(r.Nonce), oauth2.S256ChallengeOption(r.Verifier)}
	if r.Prompt != "" {
		opts = append(opts, oauth2.SetAuthURLParam("prompt", r.Prompt))
	}
	return s.oauth(p).AuthCodeURL(r.State, opts...), nil
}

// AuthOrigin is the origin (scheme://host[:port]) of the provider's
// authorization endpoint: the pages that post to the sign-in allow the
// redirect to it (Content-Security-Policy form-action). "" until the
// provider was discovered.
func (s *SignIn) AuthOrigin(ctx context.Context) string {
	p, err := s.d.provider(ctx)
	if err != nil {
		return ""
	}
	u, err := url.Parse(p.Endpoint().AuthURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// Exchange implements flow.SignIn.
func (s *SignIn) Exchange(ctx context.Context, code, verifier string) (flow.SignedInUser, error) {
	p, err := s.d.provider(ctx)
	if err != nil {
		return flow.SignedInUser{}, err
	}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.cfg.HTTPClient)
	tok, err := s.oauth(p).Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
			// invalid_grant and friends: the code, verifier or client is wrong.
			return flow.SignedInUser{}, fmt.Errorf("%w: token endpoint refused the code (%s)", flow.ErrSignInRejected, re.ErrorCode)
		}
		return flow.SignedInUser{}, fmt.Errorf("oidc: token endpoint unavailable: %s", errorClass(err))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return flow.SignedInUser{}, fmt.Errorf("%w: no ID token in the token response", flow.ErrSignInRejected)
	}
	// The provider's key set (cached, refreshed when a token names an
	// unknown key) verifies the signature; go-oidc checks issuer,
	// audience and expiry.
	idt, err := p.Verifier(&gooidc.Config{ClientID: s.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return flow.SignedInUser{}, verifyError(err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return flow.SignedInUser{}, fmt.Errorf("%w: unreadable claims", flow.ErrSignInRejected)
	}
	id, err := userID(claims, s.cfg.UserClaim)
	if err != nil {
		return flow.SignedInUser{}, err
	}
	return flow.SignedInUser{UserID: s.cfg.UserPrefix + id, Display: display(claims, s.cfg.UserPrefix+id), Nonce: idt.Nonce}, nil
}

// userID reads the configured claim: a non-empty string; "email" only
// when email_verified is true (a boolean, or the string "true" as some
// providers send it).
func userID(claims map[string]any, claim string) (string, error) {
	v, _ := claims[claim].(string)
	if v == "" {
		return "", fmt.Errorf("%w: the ID token has no %q claim", flow.ErrSignInRejected, claim)
	}
	if claim == "email" && !verified(claims["email_verified"]) {
		return "", fmt.Errorf("%w: the ID token's email is not verified", flow.ErrSignInRejected)
	}
	return v, nil
}

func verified(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return strings.EqualFold(x, "true")
	}
	return false
}

// display is what the page shows the person: their verified email, else
// the user id (names and usernames are not shown: the person must be able
// to tell which account signed in, and only these identify it).
func display(claims map[string]any, id string) string {
	if v, _ := claims["email"].(string); v != "" && verified(claims["email_verified"]) {
		return v
	}
	return id
}

// verifyError sorts go-oidc's verification errors: the keys could not be
// fetched (the provider is unavailable), or the token is not acceptable.
func verifyError(err error) error {
	if strings.Contains(err.Error(), "fetching keys") {
		return fmt.Errorf("oidc: the provider's keys are unavailable: %s", errorClass(err))
	}
	var exp *gooidc.TokenExpiredError
	if errors.As(err, &exp) {
		return fmt.Errorf("%w: token expired", flow.ErrSignInRejected)
	}
	return fmt.Errorf("%w: %s", flow.ErrSignInRejected, firstLine(err.Error()))
}

// errorClass names a transport failure without its details (which may
// quote URLs with query strings).
func errorClass(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return "timeout"
		}
		return "connection failed"
	}
	return "request failed"
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// discovery fetches a provider's configuration once it is first needed,
// and again after a failure.
type discovery struct {
	issuer string
	client *http.Client
	mu     sync.Mutex
	p      *gooidc.Provider
	// failedAt and failure remember the last failed discovery for
	// retryAfter, so that a provider that is down does not hold every
	// request (every page asks for the form-action origin) for a timeout.
	failedAt time.Time
	failure  error
}

// retryAfter is how long a failed discovery is answered from memory.
const retryAfter = 10 * time.Second

func (d *discovery) provider(ctx context.Context) (*gooidc.Provider, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.p != nil {
		return d.p, nil
	}
	if d.failure != nil && time.Since(d.failedAt) < retryAfter {
		return nil, d.failure
	}
	// The provider keeps this context for its key set's later fetches:
	// detach it from the request (the client's timeout bounds them).
	p, err := gooidc.NewProvider(gooidc.ClientContext(context.WithoutCancel(ctx), d.client), d.issuer)
	if err != nil {
		d.failedAt, d.failure = time.Now(), fmt.Errorf("oidc: discovery of the provider failed: %s", firstLine(err.Error()))
		return nil, d.failure
	}
	d.p, d.failure = p, nil
	return p, nil
}

// Verifier is flow.UserTokenVerifier: it verifies users' JWTs (signature
// through the issuer's JWKS, issuer, audience, expiry).
type Verifier struct {
	audience string
	d        discovery
}

// NewVerifier returns a Verifier for JWTs of issuer with audience; the
// issuer is contacted on first use. client nil: a client with
// DefaultTimeout.
func NewVerifier(issuer, audience string, client *http.Client) (*Verifier, error) {
	if issuer == "" || audience == "" {
		return nil, errors.New("oidc: issuer and audience are required to verify user JWTs")
	}
	if client == nil {
		client = &http.Client{Timeout: DefaultTimeout}
	}
	return &Verifier{audience: audience, d: discovery{issuer: issuer, client: client}}, nil
}

// VerifyUserToken implements flow.UserTokenVerifier.
func (v *Verifier) VerifyUserToken(ctx context.Context, raw string) error {
	p, err := v.d.provider(ctx)
	if err != nil {
		return err
	}
	if _, err := p.Verifier(&gooidc.Config{ClientID: v.audience}).Verify(ctx, raw); err != nil {
		return verifyError(err)
	}
	return nil
}

var (
	_ flow.SignIn            = (*SignIn)(nil)
	_ flow.UserTokenVerifier = (*Verifier)(nil)
)
