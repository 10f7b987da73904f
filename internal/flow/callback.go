package flow

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
)

// MaxCodeAttempts is how many wrong verification codes end a session.
const MaxCodeAttempts = 5

// Outcome kinds: what happened, for the page the HTTP layer renders.
type Kind int

const (
	// KindConfirm: show the confirmation page (GET, or a retry after a wrong code).
	KindConfirm Kind = iota
	KindConnected
	KindAlreadyConnected
	KindInProgress
	KindWrongCode
	KindTooManyAttempts
	KindWrongUser
	KindDenied
	KindExpired
	KindFailed
	KindTryAgain
	KindBadRequest
	KindUnknownSession
	KindStateMismatch
	// KindSignIn: send the browser to the sign-in provider (Outcome.Login).
	KindSignIn
	// KindLoginRefused: the login callback is not this browser's open
	// sign-in (no cookie, another sign-in's state, used, or late).
	KindLoginRefused
	// KindSignInFailed: the sign-in did not give a verified user.
	KindSignInFailed
)

// Outcome is the callback's answer. It carries only what a page may show.
type Outcome struct {
	Kind Kind
	// Session fields safe to show to the person holding the link.
	Provider string
	Scopes   []string
	UserID   string
	Binding  BindingMode
	// SessionURI and State are echoed into the confirmation form (the
	// browser already has both in its address bar); empty otherwise.
	SessionURI       string
	State            string
	AttemptsLeft     int
	WorkflowResumed  bool
	ExpiresAt        time.Time
	NeedsUserSession bool
	// Reason refines Kind where the page can say more about the cause.
	Reason Reason
	// External: the session was started elsewhere (no provider known).
	External bool
	// Login, for KindSignIn, is where to send the browser and the cookie
	// to set.
	Login *LoginStart
	// SignedInAs is the account the person signed in with (sign-in modes).
	SignedInAs string
	// CanSignInAgain: the browser may start another sign-in for the
	// session (another account, or a retry).
	CanSignInAgain bool
	// ReturnTo, on success outcomes only, is the application page to offer
	// a link back to: the session's returnTo, while the callback's
	// AppReturnURLs list it (withReturnTo).
	ReturnTo string
	// ContinuesAgent is the name of the agent the workflow invokes for the
	// person once they have connected (the session's ContinueAgent), on
	// the outcomes whose pages say so (withContinuesAgent): the
	// confirmation (KindConfirm, and KindWrongCode and KindTryAgain, which
	// may show the form again) and KindConnected. Empty otherwise.
	ContinuesAgent string
}

// Reason is why an outcome happened, where a page can tell more than its
// Kind does. The HTTP layer words it; ReasonNone leaves the Kind's words.
type Reason int

const (
	ReasonNone Reason = iota
	// ReasonIncompleteLink: the callback lacks session_id or state.
	ReasonIncompleteLink
	// ReasonMalformedLink: session_id or state does not have its shape.
	ReasonMalformedLink
	// ReasonCompletionRefused: AgentCore Identity refused to complete the
	// authorization (a non-retryable CompleteResourceTokenAuth error).
	ReasonCompletionRefused
	// ReasonProviderError: the provider redirected with an OAuth error
	// other than access_denied.
	ReasonProviderError
	// ReasonMissingCode: the confirmation form came without a verification
	// code (not counted as an attempt).
	ReasonMissingCode
	// ReasonLoginMissing: the login callback came to a browser without
	// an open sign-in (no cookie, or an unknown one).
	ReasonLoginMissing
	// ReasonLoginMismatch: the redirect's state is not this browser's
	// sign-in's.
	ReasonLoginMismatch
	// ReasonLoginUsed: the sign-in was already used (a replay).
	ReasonLoginUsed
	// ReasonLoginExpired: the sign-in took longer than contract.LoginValidity.
	ReasonLoginExpired
	// ReasonLoginTooMany: MaxSignInRounds sign-ins were made already.
	ReasonLoginTooMany
	// ReasonSignInCancelled: the provider reported an error (the person
	// cancelled, or could not sign in).
	ReasonSignInCancelled
	// ReasonSignInRejected: the provider's answer failed verification.
	ReasonSignInRejected
	// ReasonSignInUnavailable: the provider could not be reached.
	ReasonSignInUnavailable
)

// CallbackParams are the query (GET) or form (POST) parameters.
type CallbackParams struct {
	SessionID        string
	State            string
	Code             string
	Error            string
	ErrorDescription string
	// UserToken is the JWT of the browser's own application session (cookie),
	// for flows started with a user JWT.
	UserToken string
}

// CallbackConfig is the callback deployment's configuration.
type CallbackConfig struct {
	Binding BindingMode
	// ClaimWait bounds how long a request that lost the race for a session
	// waits for the winner to finish, so it can answer "already connected".
	ClaimWait time.Duration
	// CompleteTimeout bounds CompleteResourceTokenAuth (default 4 s: with
	// the vault check and the settling writes it stays inside the callback
	// function's 10 s timeout).
	CompleteTimeout time.Duration
	// WorkloadName and ReturnURL (the callback's own URL, registered on the
	// workload identity) let the callback ask AgentCore's vault whether a
	// session completed when CompleteResourceTokenAuth's answer is lost or
	// refused. Without them such a session keeps its claim until the lease
	// ends.
	WorkloadName string
	ReturnURL    string
	// ExternalSessions lets a sign-in binding complete sessions consentflow
	// did not start: agents that start consent for a userId themselves
	// (AgentCore Runtime with runtimeUserId). AgentCore completes them only
	// for the user they were started for; sessions minted from a JWT
	// (Gateway targets, Runtime with a JWT authorizer) need that exact JWT
	// and cannot be completed by a sign-in.
	ExternalSessions bool
	// Prompt is the OpenID Connect prompt of a first sign-in.
	Prompt string
	// AppReturnURLs are the application return URLs the success page may
	// link back to (a session's returnTo is shown only while listed here).
	AppReturnURLs []string
}

// settleTimeout bounds the store and Step Functions calls that record the
// outcome of a completion attempt; vaultTimeout the vault check before them.
const (
	settleTimeout = 3 * time.Second
	vaultTimeout  = 2 * time.Second
	// deadlineMargin is kept free before the request's deadline, and
	// below minCompleteBudget Complete is not even tried (the session is
	// released as if throttled: the user retries).
	deadlineMargin    = 300 * time.Millisecond
	minCompleteBudget = 500 * time.Millisecond
	// sendReserve is the part of settleTimeout the COMPLETED write's
	// tries leave to the inline SendTaskSuccess that follows it.
	sendReserve = time.Second
)

// errNoTime: the request has too little time left to call Complete and
// settle its outcome; nothing was called.
var errNoTime = &Failure{Name: contract.ErrAgentCoreUnavailable, Message: "no time left to complete at AgentCore"}

// Callback handles the browser's return from AgentCore.
type Callback struct {
	cfg CallbackConfig
	d   Deps
}

// NewCallback checks the configuration and returns a Callback.
func NewCallback(cfg CallbackConfig, d Deps) (*Callback, error) {
	if !cfg.Binding.Valid() {
		return nil, errors.New("binding mode must be one of code, oidc, oidc+code, none")
	}
	if cfg.Binding.NeedsSignIn() && (d.SignIn == nil || d.Logins == nil) {
		return nil, errors.New("the oidc binding modes need a sign-in provider and a login store")
	}
	if cfg.ExternalSessions && !cfg.Binding.NeedsSignIn() {
		return nil, errors.New("external sessions need an oidc binding mode: nothing else tells whom they belong to")
	}
	if cfg.WorkloadName != "" || cfg.ReturnURL != "" {
		if err := ValidateWorkloadName(cfg.WorkloadName); err != nil {
			return nil, err
		}
		if err := ValidateReturnURL(cfg.ReturnURL); err != nil {
			return nil, err
		}
	}
	if err := checkAppReturnURLs(cfg.AppReturnURLs); err != nil {
		return nil, err
	}
	if cfg.ClaimWait == 0 {
		cfg.ClaimWait = 3 * time.Second
	}
	if cfg.CompleteTimeout == 0 {
		cfg.CompleteTimeout = 4 * time.Second
	}
	return &Callback{cfg: cfg, d: d}, nil
}

// maxParamLen bounds a callback parameter (the model's customState limit).
const maxParamLen = 4096

// normalizeSessionID accepts the sessionUri percent-encoded once or twice
// (whether AgentCore encodes session_id once or twice in the redirect is
// not established, so both are accepted) and checks it against the
// model's RequestUri pattern.
func normalizeSessionID(v string) (string, bool) {
	if len(v) > 3*maxRequestURI {
		return "", false
	}
	if strings.HasPrefix(strings.ToLower(v), "urn%3a") {
		d, err := url.QueryUnescape(v)
		if err != nil {
			return "", false
		}
		v = d
	}
	return v, ValidSessionURI(v)
}

// lookup validates the parameters, loads the session and checks the state.
// It returns a non-nil Outcome when the request ends there. With external
// sessions enabled, a session_id consentflow never stored gives an unstored
// External session (no state to check: sign-in binds it), and a recorded
// External session is not state-checked either.
func (c *Callback) lookup(ctx context.Context, p CallbackParams) (*Session, *slog.Logger, *Outcome) {
	log := c.d.Log
	if p.SessionID == "" || (p.State == "" && !c.cfg.ExternalSessions) {
		log.WarnContext(ctx, "callback without session_id or state")
		return nil, log, &Outcome{Kind: KindBadRequest, Reason: ReasonIncompleteLink}
	}
	uri, ok := normalizeSessionID(p.SessionID)
	if !ok {
		log.WarnContext(ctx, "callback with a malformed session_id")
		return nil, log, &Outcome{Kind: KindBadRequest, Reason: ReasonMalformedLink}
	}
	if p.State != "" && (len(p.State) > maxParamLen || !isStateToken(p.State)) && !c.cfg.ExternalSessions {
		log.WarnContext(ctx, "callback with a malformed state")
		return nil, log, &Outcome{Kind: KindBadRequest, Reason: ReasonMalformedLink}
	}
	s, err := c.d.Store.Get(ctx, uri)
	if errors.Is(err, ErrNotFound) {
		if c.cfg.ExternalSessions {
			log.InfoContext(ctx, "callback for a session started elsewhere")
			return &Session{SessionURI: uri, External: true, Binding: BindingOIDC, Status: StatusPending}, log, nil
		}
		log.WarnContext(ctx, "callback for an unknown session")
		return nil, log, &Outcome{Kind: KindUnknownSession}
	}
	if err != nil {
		log.ErrorContext(ctx, "session store unavailable", "error", safeErr(err))
		return nil, log, &Outcome{Kind: KindTryAgain}
	}
	log = log.With("correlationId", s.CorrelationID)
	if s.External {
		if !c.cfg.ExternalSessions {
			// Recorded while they were enabled: without them nothing but
			// a state could bind this session, and it has none.
			log.WarnContext(ctx, "callback for a session started elsewhere while external sessions are off")
			return nil, log, &Outcome{Kind: KindUnknownSession}
		}
		return s, log, nil
	}
	if p.State == "" {
		log.WarnContext(ctx, "callback without state for a session consentflow started")
		return nil, log, &Outcome{Kind: KindBadRequest, Reason: ReasonIncompleteLink}
	}
	if !equalHash(Hash(p.State), s.StateHash) {
		log.WarnContext(ctx, "callback state does not match the session")
		return nil, log, &Outcome{Kind: KindStateMismatch}
	}
	return s, log, nil
}

func (c *Callback) base(s *Session, k Kind) *Outcome {
	o := &Outcome{Kind: k, Provider: s.Provider, Scopes: s.Scopes, UserID: s.UserID, Binding: c.bindingOf(s), ExpiresAt: s.ExpiresAt, External: s.External}
	return withContinuesAgent(c.withReturnTo(o, s), s)
}

// withContinuesAgent tells the person that an agent continues for them
// once they connect: the session's ContinueAgent on the confirmation
// outcomes (before they press Connect or sign in) and on KindConnected
// (it continues now). A replay (KindAlreadyConnected) and every failure
// name none.
func withContinuesAgent(o *Outcome, s *Session) *Outcome {
	switch o.Kind {
	case KindConfirm, KindWrongCode, KindTryAgain, KindConnected:
		o.ContinuesAgent = s.ContinueAgent
	}
	return o
}

// View answers GET: it never completes anything (a link an attacker sends
// must not be able to finish a flow), it shows a confirmation page.
func (c *Callback) View(ctx context.Context, p CallbackParams) *Outcome {
	if p.Error != "" {
		return c.denied(ctx, p)
	}
	s, log, o := c.lookup(ctx, p)
	if o != nil {
		return o
	}
	if o := c.settled(ctx, log, s); o != nil {
		return o
	}
	out := c.base(s, KindConfirm)
	out.SessionURI, out.State = s.SessionURI, p.State
	out.AttemptsLeft = MaxCodeAttempts - s.Attempts
	out.NeedsUserSession = s.UserTokenHash != ""
	if out.Binding.NeedsSignIn() {
		// The sign-in says whose account it is; the link alone must not
		// tell anyone the user id (often an email) it was started for.
		out.UserID = ""
	}
	log.InfoContext(ctx, "confirmation page shown")
	return out
}

// Confirm answers POST: it verifies that this browser may complete the
// session, then completes it, or, in the sign-in binding modes, sends the
// browser to sign in (LoginReturn completes).
func (c *Callback) Confirm(ctx context.Context, p CallbackParams) *Outcome {
	s, log, o := c.lookup(ctx, p)
	if o != nil {
		return o
	}
	user, o := c.verify(ctx, log, s, p)
	if o != nil {
		return o
	}
	if b := c.bindingFor(ctx, log, s); b.NeedsSignIn() && s.UserTokenHash == "" {
		// A flow started with a JWT is bound by the browser's JWT (checked
		// above); every other flow by the signed-in user.
		if !c.signInMode() {
			// Started under a sign-in mode, confirmed after the deployment
			// dropped it: nothing here can sign the browser in.
			log.ErrorContext(ctx, "session needs a sign-in but no sign-in provider is configured")
			return c.base(s, KindFailed)
		}
		codeChecked := b.NeedsCode() && !s.External
		if codeChecked {
			// The right code's attempt is given back: the sign-in, not
			// this request, completes the session, and a person who
			// comes back with the right code must not use up the limit.
			if _, err := c.d.Store.RefundAttempt(ctx, s.SessionURI); err != nil {
				log.WarnContext(ctx, "could not give back the verification attempt", "error", safeErr(err))
			}
		}
		return c.startLogin(ctx, log, s.SessionURI, s.External, codeChecked, 1, c.cfg.Prompt)
	}
	return c.complete(ctx, log, s, p, user)
}

// verify checks, in this order, that the session still waits for the
// user, that no completion is running, that the browser's user is the one
// who started the flow, and the binding proof (the verification code). It
// returns whom to complete the session for, or the outcome that ends the
// request.
func (c *Callback) verify(ctx context.Context, log *slog.Logger, s *Session, p CallbackParams) (UserRef, *Outcome) {
	if o := c.settled(ctx, log, s); o != nil {
		return UserRef{}, o
	}
	if s.Status == StatusCompleting && c.claimLive(s) {
		// Answer before looking at the code (a concurrent completion must
		// not turn this request into an oracle for it): wait for the
		// winner like a request that lost the claim.
		return UserRef{}, c.lostClaim(ctx, log, s, s, ErrConflict)
	}
	binding := c.bindingFor(ctx, log, s)
	user, o := c.verifyUser(ctx, log, s, p)
	if o != nil {
		return UserRef{}, o
	}
	if o := c.verifyBinding(ctx, log, s, p, binding); o != nil {
		return UserRef{}, o
	}
	return user, nil
}

// bindingFor is the binding mode s must prove: every proof its own mode or
// the deployment's asks for (a deployment switched from none to code does
// not let its pending none-sessions complete without proof). A session
// started elsewhere is bound by sign-in alone: no code was ever issued.
func (c *Callback) bindingFor(ctx context.Context, log *slog.Logger, s *Session) BindingMode {
	if s.External {
		return BindingOIDC
	}
	if s.Binding != c.cfg.Binding {
		log.WarnContext(ctx, "session binding mode differs from configuration", "session", string(s.Binding), "config", string(c.cfg.Binding))
	}
	return union(s.Binding, c.cfg.Binding)
}

// bindingOf is bindingFor without the log line (for pages).
func (c *Callback) bindingOf(s *Session) BindingMode {
	if s.External {
		return BindingOIDC
	}
	return union(s.Binding, c.cfg.Binding)
}

// verifyUser checks that a flow started with a user JWT is confirmed by a
// browser signed in as that user: its JWT is verified (signature, issuer,
// audience, expiry) and must be the very JWT the flow was started with.
// It returns whom to complete for.
func (c *Callback) verifyUser(ctx context.Context, log *slog.Logger, s *Session, p CallbackParams) (UserRef, *Outcome) {
	if s.UserTokenHash == "" {
		return UserRef{UserID: s.UserID}, nil
	}
	wrong := func(msg string, args ...any) (UserRef, *Outcome) {
		log.WarnContext(ctx, msg, args...)
		out := c.base(s, KindWrongUser)
		out.UserID = "" // never reveal whom the flow was for to another user
		return UserRef{}, out
	}
	if p.UserToken == "" {
		return wrong("browser user does not match the user who started the flow", "hasSession", false)
	}
	// The cheap comparison first: a JWT that is not the flow's is refused
	// without fetching keys (a forged kid would make the verifier refetch).
	if !equalHash(Hash(p.UserToken), s.UserTokenHash) {
		return wrong("browser user does not match the user who started the flow", "hasSession", true)
	}
	if c.d.UserTokens == nil {
		return wrong("flow started with a user JWT, but no JWT issuer is configured to verify the browser's")
	}
	if err := c.d.UserTokens.VerifyUserToken(ctx, p.UserToken); err != nil {
		if !errors.Is(err, ErrSignInRejected) {
			log.ErrorContext(ctx, "the user JWT issuer's keys are unavailable", "error", safeErr(err))
			return UserRef{}, c.base(s, KindTryAgain)
		}
		return wrong("the browser's user JWT failed verification", "error", safeErr(err))
	}
	return UserRef{UserToken: p.UserToken}, nil
}

// verifyBinding checks the proof the binding mode asks for here: the
// verification code (the sign-in, if any, is checked when it returns).
func (c *Callback) verifyBinding(ctx context.Context, log *slog.Logger, s *Session, p CallbackParams, binding BindingMode) *Outcome {
	switch {
	case !binding.Valid() || (!s.External && !s.Binding.Valid()):
		log.ErrorContext(ctx, "session has an unknown binding mode")
		return c.base(s, KindFailed)
	case binding.NeedsCode():
		return c.verifyCode(ctx, log, s, p)
	case binding == BindingNone:
		log.WarnContext(ctx, "binding mode none: completing without proof that the browser belongs to the user")
	}
	return nil
}

// verifyCode compares the verification code, after reserving one of the
// session's MaxCodeAttempts with a conditional write: no more than
// MaxCodeAttempts comparisons can ever happen for one session, however many
// requests race and whatever state the session is in.
func (c *Callback) verifyCode(ctx context.Context, log *slog.Logger, s *Session, p CallbackParams) *Outcome {
	if NormalizeCode(p.Code) == "" {
		log.WarnContext(ctx, "confirmation without a verification code")
		return &Outcome{Kind: KindBadRequest, Reason: ReasonMissingCode}
	}
	u, err := c.d.Store.ReserveAttempt(ctx, s.SessionURI, MaxCodeAttempts, c.d.Clock())
	if err != nil {
		return c.noAttempt(ctx, log, s, u, err)
	}
	if u.CodeHash == "" || !equalHash(codeHash(u.SessionURI, p.Code), u.CodeHash) {
		return c.wrongCode(ctx, log, u, p)
	}
	return nil
}

// noAttempt answers a request that could not reserve an attempt: the
// session is settled, being completed, or out of attempts.
func (c *Callback) noAttempt(ctx context.Context, log *slog.Logger, s, cur *Session, err error) *Outcome {
	return c.awaitOutcome(ctx, log, "reserve attempt", s, cur, err)
}

// complete claims the session, completes it at AgentCore for user and
// records the result: completed (and the workflow resumed), released for a
// retry, kept while the outcome is unknown, or failed.
func (c *Callback) complete(ctx context.Context, log *slog.Logger, s *Session, p CallbackParams, user UserRef) *Outcome {
	claimed, err := c.d.Store.Claim(ctx, s.SessionURI, c.d.Clock())
	if err != nil {
		return c.lostClaim(ctx, log, s, claimed, err)
	}
	log.InfoContext(ctx, "session claimed; completing at AgentCore")
	err = c.completeAtAgentCore(ctx, s, user)
	// Find out and record the result even if the request context ended
	// meanwhile.
	ctx = context.WithoutCancel(ctx)
	if err != nil {
		return c.notCompleted(ctx, log, s, p, user, err)
	}
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	return c.completed(ctx, log, s)
}

// completeAtAgentCore calls CompleteResourceTokenAuth once, bounded so the
// vault check and the writes that follow still have time inside the
// function's own deadline.
func (c *Callback) completeAtAgentCore(ctx context.Context, s *Session, user UserRef) error {
	budget := c.cfg.CompleteTimeout
	if d, ok := ctx.Deadline(); ok {
		// Leave the vault check and the settling writes their time before
		// the function's own deadline.
		left := time.Until(d) - vaultTimeout - settleTimeout - deadlineMargin
		if left < minCompleteBudget {
			return errNoTime
		}
		budget = min(budget, left)
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	return c.d.Identity.CompleteResourceTokenAuth(ctx, s.SessionURI, user)
}

// notCompleted settles a claimed session whose CompleteResourceTokenAuth
// failed. Throttling is a definite "not done": the session is released for
// a retry. Any other failure may hide a completion (the answer was lost or
// came too late, or an earlier call that did take effect makes this one
// "already completed"), so AgentCore's vault is asked before deciding:
//   - the token is stored: the session completed after all;
//   - the session still waits: released for a retry if the outcome was
//     unknown, failed if AgentCore refused;
//   - AgentCore gave the session up: failed;
//   - the vault cannot be asked: the claim is kept, so that no second
//     Complete runs until the claim's lease ends (then a retry takes over
//     and asks again).
func (c *Callback) notCompleted(ctx context.Context, log *slog.Logger, s *Session, p CallbackParams, user UserRef, err error) *Outcome {
	f := AsFailure(err, contract.ErrAgentCoreUnavailable)
	if errors.Is(err, errNoTime) {
		return c.release(ctx, log, s, p, "too little time left in this request to complete at AgentCore; session released", f.Name)
	}
	if f.Name == contract.ErrThrottled {
		return c.release(ctx, log, s, p, "CompleteResourceTokenAuth throttled; session released", f.Name)
	}
	unknown := errors.Is(err, ErrOutcomeUnknown) || f.Retryable()
	if s.External {
		return c.externalNotCompleted(ctx, log, s, f.Name, unknown)
	}
	state, verr := c.vaultState(ctx, s, user)
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	switch {
	case verr != nil:
		log.WarnContext(ctx, "CompleteResourceTokenAuth failed and the vault could not be asked; the claim is kept until its lease ends",
			"error", f.Name, "outcomeUnknown", unknown, "vaultError", AsFailure(verr, contract.ErrAgentCoreUnavailable).Name)
		return c.base(s, KindInProgress)
	case state == VaultStored:
		log.WarnContext(ctx, "CompleteResourceTokenAuth failed but the session's token is in the vault: completed", "error", f.Name, "outcomeUnknown", unknown)
		return c.completed(ctx, log, s)
	case state == VaultPending && errors.Is(err, ErrNoAnswer):
		// The call may still be running at AgentCore: a retry now could put
		// a second Complete in flight. The claim is kept until its lease
		// ends; a retry after that asks the vault again.
		log.WarnContext(ctx, "CompleteResourceTokenAuth did not answer and the session is not completed yet; the claim is kept until its lease ends", "error", f.Name)
		return c.base(s, KindInProgress)
	case state == VaultPending && unknown:
		return c.release(ctx, log, s, p, "CompleteResourceTokenAuth failed and did not take effect; session released", f.Name)
	}
	log.WarnContext(ctx, "CompleteResourceTokenAuth refused", "error", f.Name, "sessionFailed", state == VaultFailed)
	c.finish(ctx, log, s, []Status{StatusCompleting}, StatusFailed, f.Name, "AgentCore refused to complete the authorization")
	out := c.base(s, KindFailed)
	out.Reason = ReasonCompletionRefused
	return out
}

// externalNotCompleted settles a failed completion of a session started
// elsewhere. Its vault cannot be asked (consentflow does not know its
// provider), so an unknown outcome keeps the claim until its lease ends. A
// refusal releases the session instead of failing it: AgentCore refuses
// any user but the one the session was started for, and another person's
// sign-in must not end the session for its user.
func (c *Callback) externalNotCompleted(ctx context.Context, log *slog.Logger, s *Session, name string, unknown bool) *Outcome {
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	if unknown {
		log.WarnContext(ctx, "CompleteResourceTokenAuth failed for a session started elsewhere; the claim is kept until its lease ends", "error", name)
		return c.base(s, KindInProgress)
	}
	log.WarnContext(ctx, "CompleteResourceTokenAuth refused for a session started elsewhere; released for its own user", "error", name)
	if _, err := c.d.Store.Release(ctx, s.SessionURI); err != nil {
		log.ErrorContext(ctx, "could not release the session", "error", safeErr(err))
	}
	out := c.base(s, KindFailed)
	out.Reason = ReasonCompletionRefused
	return out
}

// completedLate answers for an expired session whose completion was
// attempted and never settled (stored COMPLETING under a stale claim: its
// Complete got no answer, or its request died): if AgentCore's vault holds
// the session's token, the completion took effect after all, so the session
// is recorded COMPLETED and the workflow resumed instead of failed as
// expired. Sessions started with a JWT cannot be checked here (only its hash
// is stored); they expire as before.
func (c *Callback) completedLate(ctx context.Context, log *slog.Logger, s *Session) *Outcome {
	if s.ClaimedAt.IsZero() || s.FailureReason != "" || s.UserID == "" || s.UserTokenHash != "" {
		return nil
	}
	state, err := c.vaultState(ctx, s, UserRef{UserID: s.UserID})
	if err != nil {
		// The completion may have landed: do not expire the session on a
		// guess. (The workflow's own timeout still bounds the wait.)
		log.WarnContext(ctx, "the vault could not be asked about an unsettled completion; not expiring it yet",
			"error", AsFailure(err, contract.ErrAgentCoreUnavailable).Name)
		return c.base(s, KindTryAgain)
	}
	if state != VaultStored {
		return nil
	}
	log.WarnContext(ctx, "an unsettled completion took effect after all: the session's token is in the vault")
	claim := c.deliveryClaim(s)
	u, err := c.settle(ctx, s, []Status{StatusCompleting}, StatusCompleted, "", successOutbox(s), claim)
	switch {
	case errors.Is(err, ErrConflict) && u != nil && u.Status == StatusCompleted:
		return c.base(s, KindAlreadyConnected)
	case errors.Is(err, ErrConflict):
		// Settled otherwise by another request meanwhile: answer from it.
		return nil
	case err != nil:
		// Never fall through to EXPIRED: the token is in the vault.
		log.ErrorContext(ctx, "could not record a late completion", "error", safeErr(err))
		return c.base(s, KindTryAgain)
	}
	out := c.base(s, KindAlreadyConnected)
	out.WorkflowResumed = c.deliverInline(ctx, log, u, claim)
	return out
}

// vaultCheckable reports whether completedLate can ask the vault about s:
// a session consentflow started for a userId.
func (c *Callback) vaultCheckable(s *Session) bool {
	return s.UserID != "" && s.UserTokenHash == "" && !s.External
}

// release gives the claimed session back so the user may retry.
func (c *Callback) release(ctx context.Context, log *slog.Logger, s *Session, p CallbackParams, msg, name string) *Outcome {
	log.WarnContext(ctx, msg, "error", name)
	if _, err := c.d.Store.Release(ctx, s.SessionURI); err != nil {
		log.ErrorContext(ctx, "could not release the session", "error", safeErr(err))
	}
	out := c.base(s, KindTryAgain)
	out.SessionURI, out.State = s.SessionURI, p.State
	return out
}

// vaultState asks AgentCore, as the user the session is completed for,
// whether the session's token is in the vault (bounded by vaultTimeout).
func (c *Callback) vaultState(ctx context.Context, s *Session, user UserRef) (VaultState, error) {
	if c.cfg.WorkloadName == "" || c.cfg.ReturnURL == "" {
		return 0, errors.New("vault check not configured (workload name, return URL)")
	}
	ctx, cancel := context.WithTimeout(ctx, vaultTimeout)
	defer cancel()
	wat, err := c.d.Identity.WorkloadAccessToken(ctx, c.cfg.WorkloadName, user)
	if err != nil {
		return 0, err
	}
	return c.d.Identity.SessionVaultState(ctx, wat, TokenRequest{
		Provider: s.Provider, Scopes: s.Scopes, Flow: FlowUserFederation,
		ReturnURL: c.cfg.ReturnURL, SessionURI: s.SessionURI,
	})
}

// completed records a completion AgentCore accepted, with the workflow's
// result in the outbox, and resumes the waiting workflow inline (the
// resumer function delivers the outbox if this does not).
func (c *Callback) completed(ctx context.Context, log *slog.Logger, s *Session) *Outcome {
	// Retried within the settle budget: a session left COMPLETING would
	// let a retry after the lease call Complete again (the vault check
	// would still find the token, but the record should say it first).
	claim := c.deliveryClaim(s)
	var (
		u   *Session
		err error
	)
	// The write's tries end sendReserve before ctx does: when they all
	// fail, the send below is the only one (no outbox exists), and it must
	// not start with a spent context.
	wctx := ctx
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		wctx, cancel = context.WithDeadline(ctx, d.Add(-sendReserve))
		defer cancel()
	}
	for delay := 50 * time.Millisecond; ; delay *= 2 {
		u, err = c.settle(wctx, s, []Status{StatusCompleting}, StatusCompleted, "", successOutbox(s), claim)
		if err == nil || errors.Is(err, ErrConflict) || wctx.Err() != nil || delay > 800*time.Millisecond {
			break
		}
		select {
		case <-wctx.Done():
		case <-time.After(delay):
		}
	}
	out := c.base(s, KindConnected)
	switch {
	case err == nil:
		out.WorkflowResumed = c.deliverInline(ctx, log, u, claim)
	case errors.Is(err, ErrConflict):
		// Settled by another request meanwhile: its outbox is delivered by
		// that request or the resumer.
		log.WarnContext(ctx, "session settled by another request meanwhile", "status", string(u.Status))
	default:
		// No outbox was written (as far as we know), so no other sender
		// will resume the task: send here, unclaimed. If the write did land
		// after all, a second send is refused by Step Functions (ErrTaskGone).
		// The vault has the token; a stale record only costs a replay page.
		log.ErrorContext(ctx, "could not mark the session completed", "error", safeErr(err))
		out.WorkflowResumed = c.resume(ctx, log, s)
	}
	log.InfoContext(ctx, "authorization completed", "workflowResumed", out.WorkflowResumed)
	return out
}

// settle is Store.Settle that recognises its own write: when the write
// landed but its answer was lost, a retry (the SDK's or ours) conflicts,
// yet the record holds this request's decision and delivery claim. That is
// this request's success, so it still sends inline instead of leaving the
// resumer to wait out its own lease.
func (c *Callback) settle(ctx context.Context, s *Session, from []Status, to Status, reason string, out Outbox, claim time.Time) (*Session, error) {
	u, err := c.d.Store.Settle(ctx, s.SessionURI, from, to, reason, out, claim)
	if errors.Is(err, ErrConflict) && u != nil && u.Status == to && u.Outbox == out &&
		!claim.IsZero() && u.DeliveryClaimedAt.Equal(claim.Truncate(time.Millisecond)) {
		return u, nil
	}
	return u, err
}

// authorizedResult is the Result a completed session's task continues
// with (never a token).
func authorizedResult(s *Session) *Result {
	return &Result{Status: StatusAuthorized, Provider: s.Provider, Scopes: s.Scopes, UserID: s.UserID,
		CorrelationID: s.CorrelationID, Context: s.context(), Consented: true}
}

// successOutbox is what a completed session's task is owed: the Result the
// workflow continues with (never a token).
func successOutbox(s *Session) Outbox {
	b, _ := json.Marshal(authorizedResult(s))
	return Outbox{Output: string(b)}
}

// deliveryClaim is the delivery claim the callback makes with its settling
// write when it will send inline: now, or none for a session without a
// task.
func (c *Callback) deliveryClaim(s *Session) time.Time {
	if s.TaskToken == "" {
		return time.Time{}
	}
	return c.d.Clock()
}

// deliverInline sends the outbox of u, settled by this request with the
// delivery claim claim, and reports whether the task was resumed now. A
// failed send leaves the outbox to the resumer function.
func (c *Callback) deliverInline(ctx context.Context, log *slog.Logger, u *Session, claim time.Time) bool {
	if u == nil || claim.IsZero() || !u.DeliveryDue() {
		return false
	}
	d := Deliverer{Store: c.d.Store, Resumer: c.d.Resumer, Clock: c.d.Clock, Log: log}
	resumed, err := d.send(ctx, log, u, claim)
	if err != nil {
		log.WarnContext(ctx, "the resumer will deliver the outcome to the workflow")
	}
	return resumed
}

// claimLive reports whether a completion attempt holds s right now. A
// session the store shows as EXPIRED only by the clock still has its stored
// claim and no FailureReason; a settled one has a reason.
func (c *Callback) claimLive(s *Session) bool {
	// The complement of Session.ClaimableAt's lease rule (> ClaimLease).
	return s.FailureReason == "" && !s.ClaimedAt.IsZero() && c.d.Clock().Sub(s.ClaimedAt) <= ClaimLease
}

// settled answers for sessions that are no longer waiting for the user.
func (c *Callback) settled(ctx context.Context, log *slog.Logger, s *Session) *Outcome {
	switch s.Status {
	case StatusPending, StatusCompleting:
		return nil
	case StatusCompleted:
		log.InfoContext(ctx, "replayed callback for a completed session")
		return c.base(s, KindAlreadyConnected)
	case StatusExpired:
		if c.claimLive(s) {
			// A completion that started in time is still running: its
			// outcome, not the clock, settles the session.
			return c.base(s, KindInProgress)
		}
		if o := c.completedLate(ctx, log, s); o != nil {
			return o
		}
		// Once expired nobody can claim, so a stale claim stays stale.
		reason, cause := contract.ErrExpired, "the authorization session expired"
		if !s.ClaimedAt.IsZero() && s.FailureReason == "" && !c.vaultCheckable(s) {
			// A completion was attempted, its answer never came, and the
			// vault cannot tell (a JWT flow, a session started elsewhere):
			// say so instead of "expired", which it may not be.
			reason, cause = contract.ErrOutcomeUnknown, "the session expired while a completion's outcome was unknown; the token may be in the vault"
			log.WarnContext(ctx, "expired with a completion of unknown outcome")
		}
		c.finish(ctx, log, s, []Status{StatusPending, StatusCompleting}, StatusExpired, reason, cause)
		return c.base(s, KindExpired)
	case StatusFailed:
		switch s.FailureReason {
		case contract.ErrBindingFailed:
			return c.base(s, KindTooManyAttempts)
		case contract.ErrConsentDenied:
			return c.base(s, KindDenied)
		}
		return c.base(s, KindFailed)
	}
	log.ErrorContext(ctx, "session has an unknown status", "status", string(s.Status))
	return c.base(s, KindFailed)
}

func (c *Callback) wrongCode(ctx context.Context, log *slog.Logger, s *Session, p CallbackParams) *Outcome {
	now := c.d.Clock()
	u, err := c.d.Store.RecordWrongCode(ctx, s.SessionURI, MaxCodeAttempts, contract.ErrBindingFailed,
		Outbox{Error: contract.ErrBindingFailed, Cause: causeBindingFailed}, now)
	if err != nil {
		// Settled or taken over meanwhile: answer with what happened.
		return c.awaitOutcome(ctx, log, "record wrong code", s, u, err)
	}
	log.WarnContext(ctx, "wrong verification code", "attempts", u.Attempts, "wrongCodes", u.WrongCodes)
	if u.Status == StatusFailed {
		// Every attempt found a wrong code; this write ended the session.
		c.deliverInline(ctx, log, u, now)
		return c.base(u, KindTooManyAttempts)
	}
	if AttemptsExhausted(u.Attempts, MaxCodeAttempts) {
		// No attempt left, but another reserved comparison is open (it may
		// hold the right code): its outcome is the answer.
		return c.awaitOutcome(ctx, log, "", u, u, ErrConflict)
	}
	out := c.base(u, KindWrongCode)
	out.SessionURI, out.State = u.SessionURI, p.State
	out.AttemptsLeft = MaxCodeAttempts - u.Attempts
	out.NeedsUserSession = u.UserTokenHash != ""
	return out
}

// lostClaim: another request holds or finished the session, or it expired.
func (c *Callback) lostClaim(ctx context.Context, log *slog.Logger, s, cur *Session, err error) *Outcome {
	return c.awaitOutcome(ctx, log, "claim", s, cur, err)
}

// awaitOutcome answers a request that found the session busy or settled
// by another: one holds it (COMPLETING under a live claim), or holds its
// last verification attempt (PENDING with none left), or settled it. It
// waits for that request to finish, with backoff and for at most ClaimWait,
// so the answer is the other request's outcome.
func (c *Callback) awaitOutcome(ctx context.Context, log *slog.Logger, op string, s, cur *Session, err error) *Outcome {
	if !errors.Is(err, ErrConflict) || cur == nil {
		log.ErrorContext(ctx, "session store unavailable", "operation", op, "error", safeErr(err))
		return c.base(s, KindTryAgain)
	}
	timeout := time.NewTimer(c.cfg.ClaimWait)
	defer timeout.Stop()
	for delay := 20 * time.Millisecond; c.busy(cur); delay = min(2*delay, 400*time.Millisecond) {
		select {
		case <-ctx.Done():
			return c.base(s, KindInProgress)
		case <-timeout.C:
			return c.base(s, KindInProgress)
		case <-time.After(delay):
		}
		n, gerr := c.d.Store.Get(ctx, s.SessionURI)
		if gerr != nil {
			return c.base(s, KindTryAgain)
		}
		cur = n
	}
	if o := c.settled(ctx, log, cur); o != nil {
		return o
	}
	if AttemptsExhausted(cur.Attempts, MaxCodeAttempts) {
		log.WarnContext(ctx, "verification code refused: no attempts left", "attempts", cur.Attempts)
		if cur.Status == StatusPending {
			// Every attempt is used and none is open any more (a comparison
			// whose request ended without recording it): nothing can
			// complete this session; end it and its task now.
			c.finish(ctx, log, cur, []Status{StatusPending}, StatusFailed, contract.ErrBindingFailed, causeBindingFailed)
		}
		return c.base(cur, KindTooManyAttempts)
	}
	// Released back to PENDING by a transient failure, or held under a
	// stale claim (its holder died; the lease lets a retry take it over):
	// the user may retry.
	return c.base(s, KindTryAgain)
}

// busy reports whether another request is deciding s: it completes it under
// a live claim, or it used the last verification attempt and is about to
// complete or fail it.
func (c *Callback) busy(s *Session) bool {
	switch s.Status {
	case StatusCompleting:
		return c.claimLive(s)
	case StatusPending:
		return AttemptsExhausted(s.Attempts, MaxCodeAttempts) && s.OpenAttemptAt(c.d.Clock())
	}
	return false
}

// denied handles a redirect that carries an OAuth error instead of consent.
func (c *Callback) denied(ctx context.Context, p CallbackParams) *Outcome {
	log := c.d.Log
	code := p.Error
	if !isOAuthErrorCode(code) {
		code = "invalid"
	}
	if p.SessionID == "" || p.State == "" {
		// Without both we cannot tell which flow this is; the waiting task
		// runs into its timeout.
		log.WarnContext(ctx, "provider error without session_id/state", "oauthError", code)
		return &Outcome{Kind: KindDenied}
	}
	s, log, o := c.lookup(ctx, p)
	if o != nil {
		return o
	}
	if o := c.settled(ctx, log, s); o != nil {
		return o
	}
	if s.External {
		// No state proves that this error redirect is the session's own:
		// anyone holding the link could end the session for its user.
		log.WarnContext(ctx, "the provider reported an error for a session started elsewhere; nothing recorded", "oauthError", code)
		return c.base(s, KindDenied)
	}
	log.WarnContext(ctx, "the provider reported an error instead of consent", "oauthError", code)
	name := contract.ErrConsentDenied
	cause := "the user did not grant access at the provider"
	if code != "access_denied" {
		name = contract.ErrAuthorizationFailed
		cause = "the provider reported an authorization error"
	}
	if c.finish(ctx, log, s, []Status{StatusPending}, StatusFailed, name, cause) == nil {
		if cur, err := c.d.Store.Get(ctx, s.SessionURI); err == nil {
			if o := c.settled(ctx, log, cur); o != nil {
				return o
			}
		}
	}
	if name == contract.ErrConsentDenied {
		return c.base(s, KindDenied)
	}
	out := c.base(s, KindFailed)
	out.Reason = ReasonProviderError
	return out
}

// causeBindingFailed is SendTaskFailure's cause for BindingFailed.
const causeBindingFailed = "too many wrong verification codes"

// finish moves s to a terminal status with the failure its task is owed in
// the outbox and, if this request made that move, fails the waiting task
// inline (the resumer function does if this does not). It returns the
// updated session, or nil when the move did not happen (someone else
// settled it first).
func (c *Callback) finish(ctx context.Context, log *slog.Logger, s *Session, from []Status, to Status, name, cause string) *Session {
	claim := c.deliveryClaim(s)
	u, err := c.settle(ctx, s, from, to, name, Outbox{Error: name, Cause: cause}, claim)
	if err != nil {
		if !errors.Is(err, ErrConflict) {
			log.ErrorContext(ctx, "could not settle the session", "error", safeErr(err), "to", string(to))
		}
		return nil
	}
	if c.deliverInline(ctx, log, u, claim) {
		log.InfoContext(ctx, "workflow task failed", "error", name)
	}
	return u
}

// resume sends SendTaskSuccess for s outside the outbox: only when the
// completed write failed, so that no outbox exists.
func (c *Callback) resume(ctx context.Context, log *slog.Logger, s *Session) bool {
	if s.TaskToken == "" {
		return false
	}
	out := authorizedResult(s)
	err := c.d.Resumer.Succeed(ctx, s.TaskToken, out)
	switch {
	case err == nil:
		return true
	case errors.Is(err, ErrTaskGone):
		log.WarnContext(ctx, "workflow task no longer waiting; the token is in the vault for the next run")
	default:
		// The vault holds the token, so the workflow's next attempt succeeds
		// at once; the waiting task runs into its timeout.
		log.ErrorContext(ctx, "could not resume the workflow task", "error", safeErr(err))
	}
	return false
}
