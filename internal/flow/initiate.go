package flow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/consentflow/consentflow/internal/contract"
)

// Output statuses.
const (
	StatusAuthorized            = "AUTHORIZED"
	StatusAuthorizationRequired = "AUTHORIZATION_REQUIRED"
)

// Result is what initiate returns and what a resumed workflow receives.
// It never holds an OAuth token. In the callback pattern (task token) the
// Lambda's own return value lands in the execution history (TaskSubmitted),
// so there it carries no authorization URL and no code: those go to the
// application only through the AuthorizationRequired event.
type Result struct {
	Status           string     `json:"status"`
	Provider         string     `json:"provider"`
	Scopes           []string   `json:"scopes"`
	UserID           string     `json:"userId,omitempty"`
	CorrelationID    string     `json:"correlationId,omitempty"`
	AuthorizationURL string     `json:"authorizationUrl,omitempty"`
	ExpiresAt        *time.Time `json:"expiresAt,omitempty"`
	VerificationCode string     `json:"verificationCode,omitempty"`
	// Context is the caller's context object, unchanged (absent when none
	// was given).
	Context json.RawMessage `json:"context,omitempty"`
	// Consented: the user completed the consent of this workflow (the
	// callback bound the browser to the user and AgentCore completed the
	// session). False when the vault already held a token: nobody showed
	// up, so the ContinueAgent step does not act for the user on it.
	Consented bool `json:"consented,omitempty"`
}

// Config is the deployment's fixed configuration.
type Config struct {
	WorkloadName string
	ReturnURL    string
	Binding      BindingMode
	// UserTokens: the callback verifies users' JWTs (an issuer is
	// configured), so flows may be started with a userToken. Without it
	// such a flow could never be completed and is refused at once.
	UserTokens bool
	// AgentRuntimes are the AgentCore Runtime ARNs a workflow may continue
	// with (continueWith); none: continueWith is refused. Region is the
	// deployment's region, which an agentRuntimeId names implicitly.
	AgentRuntimes []contract.AgentRuntimeTarget
	Region        string
	// AppReturnURLs are the URLs a workflow may name as its returnTo
	// (returnto.go); none: returnTo is refused.
	AppReturnURLs []string
}

// Deps are the ports the flow needs.
type Deps struct {
	Identity Identity
	Store    SessionStore
	Resumer  Resumer
	Notifier Notifier
	Clock    Clock
	Random   Random
	Log      *slog.Logger
	// SignIn and Logins: the callback's sign-in binding modes.
	SignIn SignIn
	Logins LoginStore
	// UserTokens verifies the browser's JWT for flows started with a user
	// JWT (callback).
	UserTokens UserTokenVerifier
}

// Initiator starts authorizations (the initiate Lambda's logic).
type Initiator struct {
	cfg Config
	d   Deps
}

// NewInitiator checks the configuration and returns an Initiator.
// WorkloadName may be empty for an Initiator used only through StartSync,
// whose caller brings the workload access token; Initiate then refuses.
func NewInitiator(cfg Config, d Deps) (*Initiator, error) {
	if cfg.WorkloadName != "" {
		if err := ValidateWorkloadName(cfg.WorkloadName); err != nil {
			return nil, errors.New("workload name " + err.Error())
		}
	}
	if err := ValidateReturnURL(cfg.ReturnURL); err != nil {
		return nil, errors.New("return URL " + err.Error())
	}
	if !cfg.Binding.Valid() {
		return nil, errors.New("binding mode must be one of code, oidc, oidc+code, none")
	}
	if err := checkAppReturnURLs(cfg.AppReturnURLs); err != nil {
		return nil, err
	}
	return &Initiator{cfg: cfg, d: d}, nil
}

// Initiate runs one invocation. Errors are *Failure values whose Name a
// state machine can Retry/Catch on.
func (x *Initiator) Initiate(ctx context.Context, req Request) (*Result, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if x.cfg.WorkloadName == "" {
		return nil, Fail(contract.ErrMisconfigured, "no workload name configured")
	}
	if err := x.acceptsReturnTo(req.Input); err != nil {
		return nil, err
	}
	if err := x.acceptsUser(req.Input); err != nil {
		return nil, err
	}
	if err := x.acceptsContinuation(req); err != nil {
		return nil, err
	}
	in := req.Input
	log := x.d.Log.With("provider", in.Provider, "flow", in.Flow, "callbackPattern", req.TaskToken != "")

	existing, err := x.sessionOfTask(ctx, req.TaskToken)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		log.InfoContext(ctx, "retried invocation: reusing the session of this task", "correlationId", existing.CorrelationID)
		return x.announce(ctx, log, x.d.Notifier, existing, "")
	}
	state, res, err := x.requestToken(ctx, log, in)
	if err != nil {
		return nil, err
	}
	if res.AccessToken != "" {
		return x.authorized(ctx, log, req)
	}
	if err := verifyAuthorizationSession(ctx, log, res); err != nil {
		return nil, err
	}
	out, _, err := x.startSession(ctx, log, x.d.Notifier, req, state, res)
	return out, err
}

// acceptsUser refuses flows the callback could not complete: a userToken
// when no JWT issuer is configured to verify the browser's JWT. (In every
// binding mode a JWT flow is bound by the browser's verified JWT, which
// must be the very JWT the flow was started with; a sign-in proves only a
// user id.)
func (x *Initiator) acceptsUser(in Input) error {
	if in.UserToken == "" {
		return nil
	}
	if !x.cfg.UserTokens {
		return invalid("userToken", "is not accepted: no JWT issuer is configured to verify users' JWTs (%s)", contract.EnvUserTokenIssuer)
	}
	return nil
}

// acceptsContinuation refuses a continueWith that the ContinueAgent step
// could not or must not carry out: none is configured, it names another
// runtime or endpoint, the call is not the state machine's (no task
// token), or no consent could ever prove the user's presence (BINDING_MODE
// none). With agent runtimes configured the state machine keeps the input
// beside the authorization and the agent's summary, so the input must
// leave room for them in Step Functions' 256 KiB.
func (x *Initiator) acceptsContinuation(req Request) error {
	in := req.Input
	if len(x.cfg.AgentRuntimes) > 0 {
		// Measured as Step Functions writes JSON: without escaping '<', '>' and '&'.
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(in); err != nil || buf.Len() > MaxInputWithAgentRuntimes {
			return Fail(contract.ErrInvalidInput, "the input is larger than %d bytes of JSON: with agent runtimes configured the workflow state also carries the authorization and the agent's answer (256 KiB in all)", MaxInputWithAgentRuntimes)
		}
	}
	switch {
	case in.ContinueWith == nil:
		return nil
	case len(x.cfg.AgentRuntimes) == 0:
		return invalid("continueWith", "is not accepted: no agent runtime is configured (%s, CDK context agentRuntimeArns)", contract.EnvAgentRuntimeARNs)
	case !in.ContinueWith.AllowedBy(x.cfg.AgentRuntimes, x.cfg.Region):
		return invalid("continueWith", "names an agent runtime or endpoint that is not configured (%s)", contract.EnvAgentRuntimeARNs)
	case req.TaskToken == "":
		return invalid("continueWith", "is carried out by the state machine only (a direct invocation has no ContinueAgent step)")
	case x.cfg.Binding == BindingNone:
		return invalid("continueWith", "is not accepted with %s=%s: without session binding a consent does not prove who the user is", contract.EnvBindingMode, BindingNone)
	}
	return nil
}

// sessionOfTask returns the session a previous invocation created for the
// task token, or nil when there is none (or no task token).
func (x *Initiator) sessionOfTask(ctx context.Context, taskToken string) (*Session, error) {
	if taskToken == "" {
		return nil, nil
	}
	s, err := x.d.Store.GetByTaskToken(ctx, taskToken)
	switch {
	case err == nil:
		return s, nil
	case errors.Is(err, ErrNotFound):
		return nil, nil
	default:
		return nil, storeFailure(err)
	}
}

// requestToken asks AgentCore for the token, with a fresh customState for
// the user-federation flow. It returns that state and AgentCore's answer.
func (x *Initiator) requestToken(ctx context.Context, log *slog.Logger, in Input) (string, TokenResult, error) {
	user := UserRef{UserID: in.UserID, UserToken: in.UserToken}
	wat, err := x.d.Identity.WorkloadAccessToken(ctx, x.cfg.WorkloadName, user)
	if err != nil {
		return "", TokenResult{}, x.identityFailure(ctx, log, "GetWorkloadAccessToken", err)
	}
	return x.askToken(ctx, log, wat, in)
}

// askToken is requestToken with the workload access token wat already
// minted for in's user.
func (x *Initiator) askToken(ctx context.Context, log *slog.Logger, wat string, in Input) (string, TokenResult, error) {
	state, err := newState(x.d.Random)
	if err != nil {
		return "", TokenResult{}, errNoRandomness(err)
	}
	tr := TokenRequest{
		Provider: in.Provider, Scopes: in.Scopes, Flow: in.Flow,
		CustomParameters: in.CustomParameters, ForceAuthentication: in.ForceAuthentication,
	}
	if in.Flow == FlowUserFederation {
		tr.ReturnURL = x.cfg.ReturnURL
		tr.CustomState = state
	}
	res, err := x.d.Identity.ResourceOAuth2Token(ctx, wat, tr)
	if err != nil {
		return "", TokenResult{}, x.identityFailure(ctx, log, "GetResourceOauth2Token", err)
	}
	return state, res, nil
}

// authorized answers when the vault already holds a token: no consent is
// needed, and a waiting workflow is resumed at once.
func (x *Initiator) authorized(ctx context.Context, log *slog.Logger, req Request) (*Result, error) {
	in := req.Input
	out := &Result{Status: StatusAuthorized, Provider: in.Provider, Scopes: in.Scopes, UserID: in.UserID,
		CorrelationID: correlationID(in), Context: in.Context}
	log.InfoContext(ctx, "token already in the vault: no consent needed")
	if req.TaskToken == "" {
		return out, nil
	}
	err := x.d.Resumer.Succeed(ctx, req.TaskToken, out)
	switch {
	case errors.Is(err, ErrTaskGone):
		log.WarnContext(ctx, "workflow task no longer waiting", "error", err.Error())
	case err != nil:
		return nil, AsFailure(err, contract.ErrAgentCoreUnavailable)
	}
	return out, nil
}

// verifyAuthorizationSession checks that AgentCore, having no token,
// answered with an authorization session the user can consent to.
func verifyAuthorizationSession(ctx context.Context, log *slog.Logger, res TokenResult) error {
	if res.SessionStatus == "FAILED" {
		log.WarnContext(ctx, "AgentCore reported the authorization session as FAILED")
		return Fail(contract.ErrAuthorizationFailed, "AgentCore reported the authorization session as failed")
	}
	if res.AuthorizationURL == "" || !ValidSessionURI(res.SessionURI) {
		log.ErrorContext(ctx, "AgentCore answered with neither a token nor a usable session")
		return Fail(contract.ErrAuthorizationFailed, "AgentCore answered with neither a token nor a usable session")
	}
	return nil
}

// startSession stores the new authorization session (only digests of its
// secrets) and announces it through n. If a concurrent retry of the same
// task stored one first, that one is announced instead. It also returns
// the sessionUri of the announced session.
func (x *Initiator) startSession(ctx context.Context, log *slog.Logger, n Notifier, req Request, state string, res TokenResult) (*Result, string, error) {
	s, code, err := x.newSession(req, state, res)
	if err != nil {
		return nil, "", err
	}
	existing, err := x.d.Store.Create(ctx, s)
	switch {
	case errors.Is(err, ErrTaskExists):
		// A concurrent retry of the same task won the race: use its session;
		// ours is left to expire at AgentCore.
		log.InfoContext(ctx, "concurrent invocation created the session first", "correlationId", existing.CorrelationID)
		s, code = existing, ""
	case err != nil:
		return nil, "", storeFailure(err)
	default:
		log.InfoContext(ctx, "authorization session created", "correlationId", s.CorrelationID, "binding", string(s.Binding))
	}
	out, err := x.announce(ctx, log, n, s, code)
	return out, s.SessionURI, err
}

// newSession builds the PENDING session for AgentCore's answer res, and its
// verification code in BindingCode mode.
func (x *Initiator) newSession(req Request, state string, res TokenResult) (*Session, string, error) {
	in := req.Input
	now := x.d.Clock()
	s := &Session{
		SessionURI:       res.SessionURI,
		Context:          string(in.Context),
		ExecutionARN:     req.ExecutionARN,
		ReturnTo:         in.ReturnTo,
		StateHash:        Hash(state),
		UserID:           in.UserID,
		Provider:         in.Provider,
		Scopes:           in.Scopes,
		TaskToken:        req.TaskToken,
		AuthorizationURL: res.AuthorizationURL,
		Binding:          x.cfg.Binding,
		Status:           StatusPending,
		CreatedAt:        now,
		ExpiresAt:        now.Add(contract.SessionValidity),
	}
	s.CorrelationID = correlationID(in)
	if in.ContinueWith != nil && req.TaskToken != "" {
		// Only the state machine's ContinueAgent step invokes the agent
		// (acceptsContinuation): the pages name it to the person
		// consenting. A synchronous start (StartSync) continues with none.
		s.ContinueAgent = in.ContinueWith.AgentName()
	}
	if in.UserToken != "" {
		s.UserTokenHash = Hash(in.UserToken)
	}
	if !s.Binding.NeedsCode() {
		return s, "", nil
	}
	code, err := newCode(x.d.Random)
	if err != nil {
		return nil, "", errNoRandomness(err)
	}
	s.CodeHash = codeHash(s.SessionURI, code)
	return s, code, nil
}

// announce publishes AuthorizationRequired for s through n unless that
// was already done, then builds the result. code is the session's fresh verification
// code, or "" for a session found in the store: if that one was never
// announced, its code is unknown (only a digest is kept), so a new code is
// drawn and replaces the digest when the announcement is recorded.
func (x *Initiator) announce(ctx context.Context, log *slog.Logger, n Notifier, s *Session, code string) (*Result, error) {
	log = log.With("correlationId", s.CorrelationID)
	if s.Status != StatusPending {
		log.WarnContext(ctx, "session of this task is no longer pending", "status", string(s.Status))
		return nil, Fail(contract.ErrAuthorizationFailed, "the authorization session of this task is %s", s.Status)
	}
	newHash := ""
	if s.NotifiedAt.IsZero() {
		if code == "" && s.Binding.NeedsCode() {
			var err error
			if code, err = newCode(x.d.Random); err != nil {
				return nil, errNoRandomness(err)
			}
			newHash = codeHash(s.SessionURI, code)
		}
		ev := AuthorizationRequired{
			CorrelationID: s.CorrelationID, UserID: s.UserID, Provider: s.Provider, Scopes: s.Scopes,
			AuthorizationURL: s.AuthorizationURL, ExpiresAt: s.ExpiresAt.UTC(), VerificationCode: code,
			Context: s.context(), ExecutionARN: s.ExecutionARN,
		}
		if err := n.AuthorizationRequired(ctx, ev); err != nil {
			log.ErrorContext(ctx, "publishing AuthorizationRequired failed", "error", safeErr(err))
			return nil, &Failure{Name: contract.ErrNotifyFailed, Message: "could not publish the AuthorizationRequired event", Err: err}
		}
		if _, err := x.d.Store.MarkNotified(ctx, s.SessionURI, newHash, x.d.Clock()); err != nil {
			if !errors.Is(err, ErrConflict) {
				return nil, storeFailure(err)
			}
			// Another invocation announced it meanwhile; its code stands.
			log.WarnContext(ctx, "session was announced concurrently")
			code = ""
		}
		log.InfoContext(ctx, "AuthorizationRequired published")
	} else {
		code = "" // already announced: the code went out with that event
	}
	exp := s.ExpiresAt.UTC()
	out := &Result{
		Status: StatusAuthorizationRequired, Provider: s.Provider, Scopes: s.Scopes,
		UserID: s.UserID, CorrelationID: s.CorrelationID, ExpiresAt: &exp, Context: s.context(),
	}
	if s.TaskToken == "" {
		out.AuthorizationURL = s.AuthorizationURL
		out.VerificationCode = code
	}
	return out, nil
}

func (x *Initiator) identityFailure(ctx context.Context, log *slog.Logger, op string, err error) error {
	f := AsFailure(err, contract.ErrAgentCoreUnavailable)
	log.WarnContext(ctx, "AgentCore call failed", "operation", op, "error", f.Name, "retryable", f.Retryable())
	return f
}

// errNoRandomness: the system's random source failed (retryable).
func errNoRandomness(err error) error {
	return &Failure{Name: contract.ErrAgentCoreUnavailable, Message: "no randomness", Err: err}
}

func storeFailure(err error) error {
	return &Failure{Name: contract.ErrStoreUnavailable, Message: "session store unavailable", Err: err}
}

// safeErr renders an error for logs: a Failure's safe text, otherwise the
// error's text (adapter errors carry no request payloads).
func safeErr(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Error()
	}
	return err.Error()
}

// correlationID is the caller's correlationId, or a fresh UUID when it gave
// none: every result and every event carries one.
func correlationID(in Input) string {
	if in.CorrelationID != "" {
		return in.CorrelationID
	}
	return uuid.NewString()
}
