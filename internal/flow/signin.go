package flow

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/consentflow/consentflow/internal/contract"
)

// The sign-in binding (oidc, oidc+code). The confirmation form (POST), after
// the state (and the verification code) are checked, sends the browser to
// the application's OpenID Connect provider with a login secret in a
// __Host- cookie; the provider sends it back to contract.LoginCallbackPath,
// where LoginReturn checks that the browser has the secret of an unused,
// unexpired sign-in and that the redirect's state is that sign-in's,
// redeems the code with the PKCE verifier, verifies the ID token and its
// nonce, and completes the session only for the user the flow was started
// for. The state, nonce and verifier are derived from the secret, which is
// never stored: a stored login record is useless without the browser.

// MaxSignInRounds bounds how many sign-ins one browser may make for one
// session (the first, then one per "use another account" or retry).
const MaxSignInRounds = 5

// loginSecretBytes is the entropy of a login secret (the cookie value).
const loginSecretBytes = 32

// LoginStart tells the HTTP layer to set the login cookie to Secret (for
// MaxAge) and send the browser to URL, the provider's authorization URL.
type LoginStart struct {
	URL    string
	Secret string
	MaxAge time.Duration
	// Name tells this sign-in's cookie from other tabs' (LoginName of its
	// state): each sign-in has a cookie of its own.
	Name string
}

// loginNameLen is how much of a sign-in's state names its cookie.
const loginNameLen = 16

// LoginName is the name of the sign-in whose OpenID state is state (the
// provider's redirect and the pages' forms carry it), or "" when state
// cannot be one: the suffix of that sign-in's cookie.
func LoginName(state string) string {
	if len(state) != base64.RawURLEncoding.EncodedLen(sha256.Size) || !allOf(state, isBase64URL) {
		return ""
	}
	return state[:loginNameLen]
}

// LoginParams are the login callback's parameters: the provider's redirect
// (code and state, or an OAuth error) and the login cookie's value.
type LoginParams struct {
	Secret           string
	Code             string
	State            string
	Error            string
	ErrorDescription string
}

// derive computes one of a login's values (purpose "state", "nonce",
// "pkce") from its secret: unlinkable to each other and to the secret.
// base64url of 32 bytes is 43 characters, a valid PKCE verifier.
func derive(purpose, secret string) string {
	sum := sha256.Sum256([]byte("consentflow-login\x00" + purpose + "\x00" + secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// validLoginSecret: the shape loginSecret makes (43 base64url characters).
func validLoginSecret(s string) bool {
	return len(s) == base64.RawURLEncoding.EncodedLen(loginSecretBytes) && allOf(s, isBase64URL)
}

// maxSignInCode bounds the provider's code parameter.
const maxSignInCode = 4096

// exchangeTimeout bounds the code exchange and the ID token's verification
// (a key refetch included), so that the completion after them still fits
// the callback function's 10 s (it needs its own budget: completeAtAgentCore).
const exchangeTimeout = 3 * time.Second

// signInMode reports whether the callback signs browsers in.
func (c *Callback) signInMode() bool { return c.cfg.Binding.NeedsSignIn() }

// startLogin records a sign-in round for sessionURI and answers with the
// redirect to the provider.
func (c *Callback) startLogin(ctx context.Context, log *slog.Logger, sessionURI string, external, codeVerified bool, round int, prompt string) *Outcome {
	if round > MaxSignInRounds {
		log.WarnContext(ctx, "too many sign-ins for one session in this browser", "round", round)
		return &Outcome{Kind: KindLoginRefused, Reason: ReasonLoginTooMany}
	}
	b := make([]byte, loginSecretBytes)
	if err := c.d.Random(b); err != nil {
		log.ErrorContext(ctx, "no randomness for a login secret", "error", err.Error())
		return &Outcome{Kind: KindTryAgain}
	}
	secret := base64.RawURLEncoding.EncodeToString(b)
	now := c.d.Clock()
	l := &Login{
		Key: Hash(secret), SessionURI: sessionURI, External: external, CodeVerified: codeVerified,
		Round: round, CreatedAt: now, ExpiresAt: now.Add(contract.LoginValidity),
	}
	if err := c.d.Logins.CreateLogin(ctx, l); err != nil {
		log.ErrorContext(ctx, "could not record the sign-in", "error", safeErr(err))
		return &Outcome{Kind: KindTryAgain}
	}
	u, err := c.d.SignIn.AuthURL(ctx, SignInRequest{
		State: derive("state", secret), Nonce: derive("nonce", secret), Verifier: derive("pkce", secret), Prompt: prompt,
	})
	if err != nil {
		log.ErrorContext(ctx, "the sign-in provider is unavailable", "error", safeErr(err))
		return &Outcome{Kind: KindTryAgain}
	}
	log.InfoContext(ctx, "sign-in started", "round", round, "external", external)
	return &Outcome{Kind: KindSignIn, Login: &LoginStart{URL: u, Secret: secret, MaxAge: contract.LoginValidity,
		Name: LoginName(derive("state", secret))}}
}

// LoginReturn answers the provider's redirect after sign-in (GET
// contract.LoginCallbackPath).
func (c *Callback) LoginReturn(ctx context.Context, p LoginParams) *Outcome {
	log := c.d.Log
	if !c.signInMode() {
		log.WarnContext(ctx, "login callback while the binding mode signs nobody in")
		return &Outcome{Kind: KindBadRequest}
	}
	l, o := c.useLogin(ctx, log, p)
	if o != nil {
		return o
	}
	log = log.With("loginRound", l.Round)
	if p.Error != "" {
		code := p.Error
		if !isOAuthErrorCode(code) {
			code = "invalid"
		}
		log.WarnContext(ctx, "the sign-in provider returned an error", "oauthError", code)
		return &Outcome{Kind: KindSignInFailed, Reason: ReasonSignInCancelled, CanSignInAgain: true}
	}
	if p.Code == "" || len(p.Code) > maxSignInCode {
		log.WarnContext(ctx, "login callback without a usable code")
		return &Outcome{Kind: KindBadRequest, Reason: ReasonMalformedLink}
	}
	xctx, cancel := context.WithTimeout(ctx, exchangeTimeout)
	user, err := c.d.SignIn.Exchange(xctx, p.Code, derive("pkce", p.Secret))
	cancel()
	switch {
	case errors.Is(err, ErrSignInRejected):
		log.WarnContext(ctx, "sign-in rejected", "error", safeErr(err))
		return &Outcome{Kind: KindSignInFailed, Reason: ReasonSignInRejected, CanSignInAgain: true}
	case err != nil:
		log.ErrorContext(ctx, "the sign-in provider is unavailable", "error", safeErr(err))
		return &Outcome{Kind: KindSignInFailed, Reason: ReasonSignInUnavailable, CanSignInAgain: true}
	case !equalHash(Hash(user.Nonce), Hash(derive("nonce", p.Secret))):
		log.WarnContext(ctx, "sign-in rejected: the ID token's nonce is not this sign-in's")
		return &Outcome{Kind: KindSignInFailed, Reason: ReasonSignInRejected, CanSignInAgain: true}
	case user.UserID == "":
		log.WarnContext(ctx, "sign-in rejected: no user identifier")
		return &Outcome{Kind: KindSignInFailed, Reason: ReasonSignInRejected, CanSignInAgain: true}
	}
	log = log.With("signedInUserHash", Hash(user.UserID)[:16])
	s, o := c.loginSession(ctx, log, l, user)
	if o != nil {
		return withSignedIn(o, user)
	}
	log = log.With("correlationId", s.CorrelationID)
	if o := c.settled(ctx, log, s); o != nil {
		return withSignedIn(o, user)
	}
	if !s.External && !c.sameUser(s, user) {
		log.WarnContext(ctx, "signed-in user is not the user who started the flow; nothing completed")
		return &Outcome{Kind: KindWrongUser, SignedInAs: user.Display, CanSignInAgain: true}
	}
	if c.bindingFor(ctx, log, s).NeedsCode() && !l.CodeVerified {
		log.WarnContext(ctx, "sign-in without the verification code this session needs")
		return &Outcome{Kind: KindLoginRefused, Reason: ReasonLoginExpired}
	}
	if s.Status == StatusCompleting && c.claimLive(s) {
		o := c.lostClaim(ctx, log, s, s, ErrConflict)
		o.CanSignInAgain = o.Kind == KindTryAgain || o.Kind == KindInProgress
		return withSignedIn(o, user)
	}
	o = c.complete(ctx, log, s, CallbackParams{}, UserRef{UserID: user.UserID})
	if s.External && o.Kind == KindFailed && o.Reason == ReasonCompletionRefused {
		o = &Outcome{Kind: KindWrongUser, Reason: ReasonCompletionRefused, CanSignInAgain: true, External: true}
	}
	if o.Kind == KindTryAgain || o.Kind == KindInProgress {
		// The login is used up: only another sign-in can retry.
		o.CanSignInAgain = true
	}
	return withSignedIn(o, user)
}

// withSignedIn shows the person which account they signed in with; the
// session's own user is not shown on sign-in pages (the signed-in account
// says it, or differs from it).
func withSignedIn(o *Outcome, u SignedInUser) *Outcome {
	o.SignedInAs = u.Display
	o.UserID = ""
	return o
}

// sameUser compares the signed-in user with the session's, in constant time.
func (c *Callback) sameUser(s *Session, u SignedInUser) bool {
	return s.UserTokenHash == "" && s.UserID != "" && equalHash(Hash(u.UserID), Hash(s.UserID))
}

// useLogin finds the sign-in of this browser, checks that the redirect is
// for it, and uses it up (once).
func (c *Callback) useLogin(ctx context.Context, log *slog.Logger, p LoginParams) (*Login, *Outcome) {
	if !validLoginSecret(p.Secret) {
		log.WarnContext(ctx, "login callback without this browser's sign-in cookie")
		return nil, &Outcome{Kind: KindLoginRefused, Reason: ReasonLoginMissing}
	}
	// The state is derived from the secret: checked before any read, and
	// a redirect that is not this browser's sign-in's (forged or stale)
	// is refused without using up the browser's own sign-in.
	if len(p.State) > maxParamLen || !equalHash(Hash(p.State), Hash(derive("state", p.Secret))) {
		log.WarnContext(ctx, "login callback state does not match this browser's sign-in")
		return nil, &Outcome{Kind: KindLoginRefused, Reason: ReasonLoginMismatch}
	}
	u, err := c.d.Logins.UseLogin(ctx, Hash(p.Secret), c.d.Clock())
	switch {
	case err == nil:
		return u, nil
	case errors.Is(err, ErrNotFound):
		log.WarnContext(ctx, "login callback for an unknown sign-in")
		return nil, &Outcome{Kind: KindLoginRefused, Reason: ReasonLoginMissing}
	case errors.Is(err, ErrConflict) && u != nil && !u.UsedAt.IsZero():
		log.WarnContext(ctx, "replayed login callback")
		return nil, &Outcome{Kind: KindLoginRefused, Reason: ReasonLoginUsed}
	case errors.Is(err, ErrConflict):
		log.WarnContext(ctx, "late login callback")
		return nil, &Outcome{Kind: KindLoginRefused, Reason: ReasonLoginExpired}
	}
	log.ErrorContext(ctx, "session store unavailable", "error", safeErr(err))
	return nil, &Outcome{Kind: KindTryAgain}
}

// loginSession loads the session a sign-in is for; for a session
// consentflow did not start, it records it on first use (the record makes
// every later completion attempt a replay or a race on one record).
func (c *Callback) loginSession(ctx context.Context, log *slog.Logger, l *Login, user SignedInUser) (*Session, *Outcome) {
	s, err := c.d.Store.Get(ctx, l.SessionURI)
	if err == nil {
		return s, nil
	}
	if !errors.Is(err, ErrNotFound) {
		log.ErrorContext(ctx, "session store unavailable", "error", safeErr(err))
		return nil, &Outcome{Kind: KindTryAgain, CanSignInAgain: true}
	}
	if !l.External || !c.cfg.ExternalSessions {
		log.WarnContext(ctx, "the session of this sign-in is gone")
		return nil, &Outcome{Kind: KindUnknownSession}
	}
	now := c.d.Clock()
	s, err = c.d.Store.Create(ctx, &Session{
		SessionURI: l.SessionURI, CorrelationID: uuid.NewString(), Binding: c.cfg.Binding, External: true,
		Status: StatusPending, CreatedAt: now, ExpiresAt: now.Add(contract.SessionValidity),
	})
	if errors.Is(err, ErrConflict) && s != nil {
		return s, nil // recorded meanwhile by another sign-in
	}
	if err != nil {
		log.ErrorContext(ctx, "could not record the external session", "error", safeErr(err))
		return nil, &Outcome{Kind: KindTryAgain, CanSignInAgain: true}
	}
	log.InfoContext(ctx, "session started elsewhere recorded", "correlationId", s.CorrelationID)
	return s, nil
}

// SignInAgain answers POST contract.LoginCallbackPath: a browser whose
// sign-in ended (another account was signed in, the provider reported an
// error, or the completion must be retried) starts one more sign-in for the
// same session, asking the provider to let the person choose the account.
// The browser proves it is the same one with its login cookie; each sign-in
// can be followed once, and at most MaxSignInRounds are made.
func (c *Callback) SignInAgain(ctx context.Context, secret string) *Outcome {
	log := c.d.Log
	if !c.signInMode() {
		return &Outcome{Kind: KindBadRequest}
	}
	if !validLoginSecret(secret) {
		log.WarnContext(ctx, "sign in again without this browser's sign-in cookie")
		return &Outcome{Kind: KindLoginRefused, Reason: ReasonLoginMissing}
	}
	l, err := c.d.Logins.FollowLogin(ctx, Hash(secret), c.d.Clock())
	switch {
	case err == nil:
	case errors.Is(err, ErrConflict) && l != nil && !l.FollowedAt.IsZero():
		log.WarnContext(ctx, "sign in again from a sign-in that was already followed")
		return &Outcome{Kind: KindLoginRefused, Reason: ReasonLoginUsed}
	case errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound):
		log.WarnContext(ctx, "sign in again from an unusable sign-in")
		return &Outcome{Kind: KindLoginRefused, Reason: ReasonLoginExpired}
	default:
		log.ErrorContext(ctx, "session store unavailable", "error", safeErr(err))
		return &Outcome{Kind: KindTryAgain}
	}
	return c.startLogin(ctx, log, l.SessionURI, l.External, l.CodeVerified, l.Round+1, "select_account")
}
