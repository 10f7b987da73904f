package agentauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"

	"github.com/consentflow/consentflow/internal/adapters/agentcore"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// Flow is an OAuth2 flow of GetResourceOauth2Token.
type Flow string

const (
	// UserFederation acts for a user, with the user's consent (3-legged OAuth). It is the
	// default.
	UserFederation Flow = "USER_FEDERATION"
	// M2M acts for the agent itself (client credentials): no user, no consent.
	M2M Flow = "M2M"
)

// TokenRequest says which access token AccessToken gets.
type TokenRequest struct {
	// Provider is the name of the OAuth2 credential provider.
	Provider string
	// Scopes are the OAuth2 scopes to ask for (at least one for UserFederation).
	Scopes []string
	// Flow is UserFederation (the default) or M2M.
	Flow Flow
	// User is whom the token is for (UserFederation). The zero User is the user of the
	// AgentCore Runtime request in the context (Middleware).
	User User
	// CustomParameters are added to the provider's authorization request.
	CustomParameters map[string]string
	// ForceAuthentication discards the token in the vault and asks for consent again.
	ForceAuthentication bool
	// OnAuthURL is called when the user must consent, with the authorization URL to
	// show them, before AccessToken starts to wait. An error it returns ends
	// AccessToken with that error. When OnAuthURL is nil, AccessToken does not wait (no
	// one could show the user the link): it returns a *ConsentRequiredError.
	OnAuthURL func(ctx context.Context, u AuthURL) error
	// NoWait makes AccessToken return a *ConsentRequiredError, after OnAuthURL, instead
	// of waiting for the consent. Call AccessToken again once the user has consented.
	NoWait bool
}

// AuthURL is where the user consents.
type AuthURL struct {
	// URL is the authorization URL to open in the user's browser.
	URL string
	// VerificationCode is the one-time code the user must type on consentflow's
	// confirmation page, to prove that the browser belongs to the user the agent acts
	// for. Show it to the user next to URL, in the agent's own channel. It is empty
	// without consentflow (WithSessionsTable).
	VerificationCode string
	// ExpiresAt is when URL stops working (10 minutes after it was issued).
	ExpiresAt time.Time
}

// AccessToken returns an OAuth2 access token of req.Provider for req.User. When the
// token is in AgentCore's vault it returns it at once (one GetResourceOauth2Token
// call). When the user must consent, it calls req.OnAuthURL and then waits until the
// consent is complete, ctx ends, or the authorization fails (see the package
// documentation for how it waits).
func (c *Client) AccessToken(ctx context.Context, req TokenRequest) (string, error) {
	in, u, returnURL, err := c.tokenInput(ctx, req)
	if err != nil {
		return "", err
	}
	wat, err := c.workloadToken(ctx, u)
	if err != nil {
		return "", err
	}
	if c.consentflow != nil && in.Flow == flow.FlowUserFederation && (in.UserID != "" || in.UserToken != "") {
		return c.pushed(ctx, req, in, wat)
	}
	if c.consentflow != nil && in.Flow == flow.FlowUserFederation {
		c.log.InfoContext(ctx, "the workload token's user is unknown: waiting by polling, not through consentflow",
			"provider", req.Provider)
	}
	return c.polled(ctx, req, in, wat, returnURL)
}

// tokenInput checks req (with consentflow's rules) and resolves its user
// and return URL, from the AgentCore Runtime invocation in ctx when req
// names none.
func (c *Client) tokenInput(ctx context.Context, req TokenRequest) (flow.Input, User, string, error) {
	in := flow.Input{
		Provider: req.Provider, Scopes: req.Scopes, Flow: string(req.Flow),
		CustomParameters: req.CustomParameters, ForceAuthentication: req.ForceAuthentication,
	}
	if in.Flow == "" {
		in.Flow = flow.FlowUserFederation
	}
	u, returnURL := req.User, c.returnURL
	inv, fromCtx := FromContext(ctx)
	switch {
	case fromCtx && u.isZero() && c.workload != "":
		// The request's token is for the runtime's own workload identity: mint for the
		// named one and the invocation's user. AgentCore Runtime's invocations carry a
		// workload access token; the user id header is trusted only beside one (a presence
		// check: the agent must be reachable through AgentCore Runtime only).
		switch {
		case inv.WorkloadToken == "":
			return in, u, "", invalidRequest("not an AgentCore Runtime invocation (no " + HeaderWorkloadAccessToken +
				"): set TokenRequest.User")
		case inv.UserID == "" && in.Flow != flow.FlowM2M:
			return in, u, "", invalidRequest("the AgentCore Runtime invocation names no user (no " + HeaderUserID +
				"): invoke the agent with runtimeUserId, or set TokenRequest.User")
		}
		u = User{ID: inv.UserID}
	case fromCtx && u.isZero():
		u = User{ID: inv.UserID, WorkloadToken: inv.WorkloadToken}
	}
	if fromCtx && returnURL == "" && c.workload == "" {
		// Runtime's OAuth2CallbackUrl is registered on the runtime's own identity, not on
		// a named one: with WithWorkloadName the return URL is WithReturnURL's.
		returnURL = inv.CallbackURL
	}
	if in.Flow == flow.FlowM2M {
		if in.Scopes == nil {
			in.Scopes = []string{}
		}
		if req.User.ID != "" || req.User.JWT != "" {
			return in, u, "", invalidRequest("an M2M token is for the agent itself: give no user id or JWT")
		}
		u.ID, u.JWT = "", ""
	}
	in.UserID, in.UserToken = u.ID, u.JWT
	check := flow.Request{Input: in}
	if in.Flow == flow.FlowUserFederation {
		switch {
		case u.isZero():
			return in, u, "", invalidRequest("no user: set TokenRequest.User, or serve the request through Middleware in AgentCore Runtime")
		case u.ID != "" && u.JWT != "":
			return in, u, "", invalidRequest("set either the user's ID or JWT, not both")
		case u.ID == "" && u.JWT == "":
			check.Input.UserID = "-" // the workload token stands for its user
		}
		if returnURL == "" {
			return in, u, "", invalidRequest("no return URL: use WithReturnURL")
		}
	}
	if err := check.Validate(); err != nil {
		return in, u, "", failure(ctx, req.Provider, err)
	}
	in.Flow = check.Input.Flow
	return in, u, returnURL, nil
}

// workloadToken returns u's workload access token, minting one when u
// brings none.
func (c *Client) workloadToken(ctx context.Context, u User) (string, error) {
	if u.WorkloadToken != "" {
		return u.WorkloadToken, nil
	}
	if c.workload == "" {
		return "", invalidRequest("no workload access token: use WithWorkloadName, set User.WorkloadToken, or serve the request through Middleware in AgentCore Runtime")
	}
	wat, err := c.identity.WorkloadAccessToken(ctx, c.workload, flow.UserRef{UserID: u.ID, UserToken: u.JWT})
	if err != nil {
		return "", failure(ctx, "", err)
	}
	return wat, nil
}

// authURLNotifier hands consentflow's AuthorizationRequired to OnAuthURL.
type authURLNotifier struct {
	fn  func(context.Context, AuthURL) error
	err error // what fn returned
}

func (n *authURLNotifier) AuthorizationRequired(ctx context.Context, ev flow.AuthorizationRequired) error {
	if n.fn == nil {
		return nil
	}
	n.err = n.fn(ctx, AuthURL{URL: ev.AuthorizationURL, VerificationCode: ev.VerificationCode, ExpiresAt: ev.ExpiresAt})
	return n.err
}

// pushed registers the session in consentflow's table as its initiate
// function does and waits for consentflow's callback to settle it.
func (c *Client) pushed(ctx context.Context, req TokenRequest, in flow.Input, wat string) (string, error) {
	n := &authURLNotifier{fn: req.OnAuthURL}
	st, err := c.consentflow.StartSync(ctx, in, wat, n)
	if n.err != nil {
		return "", fmt.Errorf("agentauth: OnAuthURL: %w", n.err)
	}
	if err != nil {
		return "", failure(ctx, req.Provider, err)
	}
	if st.AccessToken != "" {
		return st.AccessToken, nil
	}
	log := c.log.With("provider", req.Provider, "correlationId", st.Result.CorrelationID)
	if req.NoWait || req.OnAuthURL == nil {
		log.InfoContext(ctx, "consent required; not waiting")
		return "", &ConsentRequiredError{Provider: req.Provider, AuthURL: AuthURL{
			URL: st.Result.AuthorizationURL, VerificationCode: st.Result.VerificationCode, ExpiresAt: *st.Result.ExpiresAt}}
	}
	log.InfoContext(ctx, "consent required; waiting for consentflow's callback")
	s, err := c.consentflow.Await(ctx, st.SessionURI)
	if err != nil {
		return "", failure(ctx, req.Provider, err)
	}
	switch {
	case s.Status == flow.StatusCompleted, s.MayHaveCompleted():
		// Once, with the session: the token the consent put in the vault.
		tok, err := c.identity.ResourceOAuth2Token(ctx, wat, flow.TokenRequest{
			Provider: in.Provider, Scopes: in.Scopes, Flow: in.Flow, CustomParameters: in.CustomParameters,
			ReturnURL: c.returnURL, SessionURI: st.SessionURI,
		})
		switch {
		case err != nil:
			return "", failure(ctx, req.Provider, err)
		case tok.AccessToken != "":
			log.InfoContext(ctx, "consent completed; token fetched")
			return tok.AccessToken, nil
		case s.Status == flow.StatusExpired:
			return "", &AuthorizationError{Provider: req.Provider, Err: ErrExpired}
		}
		log.ErrorContext(ctx, "consentflow completed the session but the vault has no token", "sessionStatus", tok.SessionStatus)
		return "", &AuthorizationError{Provider: req.Provider, Err: ErrAuthorizationFailed}
	case s.Status == flow.StatusExpired:
		log.InfoContext(ctx, "authorization session expired")
		return "", &AuthorizationError{Provider: req.Provider, Err: ErrExpired}
	}
	log.InfoContext(ctx, "authorization failed", "reason", s.FailureReason)
	return "", &AuthorizationError{Provider: req.Provider, Err: reasonOf(s.FailureReason)}
}

// polled asks GetResourceOauth2Token and, when the user must consent,
// polls it with the session like the official SDKs, until the token is
// there, the session fails, the poll timeout passes or ctx ends.
func (c *Client) polled(ctx context.Context, req TokenRequest, in flow.Input, wat, returnURL string) (string, error) {
	tr := flow.TokenRequest{
		Provider: in.Provider, Scopes: in.Scopes, Flow: in.Flow,
		CustomParameters: in.CustomParameters, ForceAuthentication: in.ForceAuthentication,
	}
	if in.Flow == flow.FlowUserFederation {
		tr.ReturnURL = returnURL
	}
	res, err := c.identity.ResourceOAuth2Token(ctx, wat, tr)
	switch {
	case err != nil:
		return "", failure(ctx, req.Provider, err)
	case res.AccessToken != "":
		return res.AccessToken, nil
	case res.SessionStatus == "FAILED" || res.AuthorizationURL == "" || !flow.ValidSessionURI(res.SessionURI):
		return "", &AuthorizationError{Provider: req.Provider, Err: ErrAuthorizationFailed}
	}
	au := AuthURL{URL: res.AuthorizationURL, ExpiresAt: c.clock().Add(contract.SessionValidity)}
	if req.OnAuthURL != nil {
		if err := req.OnAuthURL(ctx, au); err != nil {
			return "", fmt.Errorf("agentauth: OnAuthURL: %w", err)
		}
	}
	log := c.log.With("provider", req.Provider)
	if req.NoWait || req.OnAuthURL == nil {
		log.InfoContext(ctx, "consent required; not waiting")
		return "", &ConsentRequiredError{Provider: req.Provider, AuthURL: au}
	}
	log.InfoContext(ctx, "consent required; polling AgentCore", "interval", c.pollEvery, "timeout", c.pollFor)
	// Follow-ups name the session and must not force a new one.
	tr.SessionURI, tr.ForceAuthentication = res.SessionURI, false
	pctx, cancel := context.WithTimeout(ctx, c.pollFor)
	defer cancel()
	tick := time.NewTicker(c.pollEvery)
	defer tick.Stop()
	for {
		select {
		case <-pctx.Done():
			if ctx.Err() != nil {
				return "", fmt.Errorf("agentauth: %w", ctx.Err())
			}
			log.InfoContext(ctx, "no consent before the poll timeout")
			return "", fmt.Errorf("agentauth: %s: no consent within %v: %w", req.Provider, c.pollFor, context.DeadlineExceeded)
		case <-tick.C:
		}
		res, err := c.identity.ResourceOAuth2Token(pctx, wat, tr)
		if pctx.Err() != nil {
			continue // the timeout or ctx: reported above
		}
		if err != nil {
			err = failure(ctx, req.Provider, err)
			var ae *APIError
			if !errors.As(err, &ae) || !ae.Retryable() {
				return "", err
			}
			log.WarnContext(ctx, "polling AgentCore failed; polling on", "error", ae.Message)
			continue
		}
		switch {
		case res.AccessToken != "":
			log.InfoContext(ctx, "consent completed; token fetched")
			return res.AccessToken, nil
		case res.SessionStatus == "FAILED":
			log.InfoContext(ctx, "AgentCore reports the authorization session as failed")
			return "", &AuthorizationError{Provider: req.Provider, Err: ErrAuthorizationFailed}
		default:
			log.DebugContext(ctx, "consent still pending")
		}
	}
}

// APIKey returns the API key of the API key credential provider for user
// (GetResourceApiKey). The zero User is the user of the AgentCore Runtime request in
// ctx (Middleware), or else none: an API key is the agent's, not a user's.
func (c *Client) APIKey(ctx context.Context, provider string, user User) (string, error) {
	if provider == "" {
		return "", invalidRequest("no provider")
	}
	if user.ID != "" && user.JWT != "" {
		return "", invalidRequest("set either the user's ID or JWT, not both")
	}
	if inv, ok := FromContext(ctx); ok && user.isZero() {
		switch {
		case c.workload == "":
			user = User{ID: inv.UserID, WorkloadToken: inv.WorkloadToken}
		case inv.WorkloadToken == "":
			// As for AccessToken: the user id header counts only beside a workload
			// access token.
			return "", invalidRequest("not an AgentCore Runtime invocation (no " + HeaderWorkloadAccessToken + "): set the user")
		default:
			user = User{ID: inv.UserID}
		}
	}
	wat, err := c.workloadToken(ctx, user)
	if err != nil {
		return "", err
	}
	out, err := c.api.GetResourceApiKey(ctx, &bedrockagentcore.GetResourceApiKeyInput{
		WorkloadIdentityToken: aws.String(wat), ResourceCredentialProviderName: aws.String(provider)})
	if err != nil {
		return "", failure(ctx, provider, agentcore.Classify(err))
	}
	if aws.ToString(out.ApiKey) == "" {
		return "", &APIError{Err: ErrUnavailable, Message: "AgentCore returned an empty API key"}
	}
	return *out.ApiKey, nil
}

// WithAccessToken returns fn with an access token: each call gets one with
// c.AccessToken(ctx, req) (waiting for consent as it does) and passes it to fn. It is
// the counterpart of the Python SDK's @requires_access_token.
func WithAccessToken[In, Out any](c *Client, req TokenRequest, fn func(ctx context.Context, token string, in In) (Out, error)) func(ctx context.Context, in In) (Out, error) {
	return func(ctx context.Context, in In) (Out, error) {
		tok, err := c.AccessToken(ctx, req)
		if err != nil {
			var zero Out
			return zero, err
		}
		return fn(ctx, tok, in)
	}
}

// WithAPIKey returns fn with an API key: each call gets the key of provider with
// c.APIKey(ctx, provider, User{}) and passes it to fn. It is the counterpart of the
// Python SDK's @requires_api_key.
func WithAPIKey[In, Out any](c *Client, provider string, fn func(ctx context.Context, apiKey string, in In) (Out, error)) func(ctx context.Context, in In) (Out, error) {
	return func(ctx context.Context, in In) (Out, error) {
		key, err := c.APIKey(ctx, provider, User{})
		if err != nil {
			var zero Out
			return zero, err
		}
		return fn(ctx, key, in)
	}
}
