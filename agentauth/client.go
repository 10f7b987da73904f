// Package agentauth gets OAuth2 access tokens and API keys for Go agents from Amazon
// Bedrock AgentCore Identity, the Go counterpart of the Python SDK's get_token,
// @requires_access_token and @requires_api_key.
//
// Client.AccessToken returns the token from AgentCore's vault at once when the user has
// consented before. Otherwise the user must consent in a browser: AccessToken calls
// TokenRequest.OnAuthURL with the authorization URL before it starts to wait, so the
// agent can show the link (in a chat message, a streamed answer, an e-mail), and then
// waits until the consent is complete:
//
//   - With consentflow (WithSessionsTable): the session is registered in consentflow's
//     sessions table exactly as consentflow's initiate function registers it, with a
//     one-time verification code that OnAuthURL shows the user next to the link, and
//     consentflow's callback proves that the browser belongs to that user before it
//     completes the session. AccessToken watches the session's record (cheap, strongly
//     consistent reads with backoff) and fetches the token once the callback has
//     completed it: no GetResourceOauth2Token calls while waiting, and the token arrives
//     within about two seconds of the completion.
//   - Without: it polls GetResourceOauth2Token like the official SDKs (every 5 seconds,
//     for up to 600 seconds by default; WithPolling), and your application's callback
//     completes the session.
//
// Failures are typed: *ConsentRequiredError when the caller asked not to wait,
// *AuthorizationError when the user denied consent, the session expired or the binding
// failed (errors.Is with ErrConsentDenied, ErrExpired, ErrBindingFailed,
// ErrAuthorizationFailed), and *APIError for refused or failed calls to AgentCore
// Identity or the sessions table (errors.Is with ErrThrottled, ErrAccessDenied, ...).
// No token, key, state or verification code ever appears in an error or a log line.
//
// Agents served by AgentCore Runtime get their workload access token and user id in
// request headers: Middleware puts them in the request's context, where AccessToken and
// APIKey find them when the request names no user. WithAccessToken and WithAPIKey wrap
// a function so that it receives the credential, like the Python decorators.
//
// Package agentcoretest runs a local AgentCore Identity for tests of code that uses
// this package.
package agentauth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/consentflow/consentflow/internal/adapters/agentcore"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/state"
)

// Defaults of the polling fallback, the official SDKs' values.
const (
	DefaultPollInterval = 5 * time.Second
	DefaultPollTimeout  = 600 * time.Second
)

// Client gets credentials from AgentCore Identity. It is safe for concurrent use.
type Client struct {
	api       *bedrockagentcore.Client
	identity  agentcore.Identity
	workload  string
	returnURL string
	pollEvery time.Duration
	pollFor   time.Duration
	log       *slog.Logger
	clock     func() time.Time
	// consentflow is set with WithSessionsTable: sessions are registered
	// in consentflow's table and awaited there.
	consentflow *flow.Initiator
}

type options struct {
	workload, returnURL, table string
	pollEvery, pollFor         time.Duration
	log                        *slog.Logger
	clock                      func() time.Time
}

// An Option configures New.
type Option func(*options)

// WithWorkloadName names the workload identity the client mints workload access tokens
// for (GetWorkloadAccessTokenForUserId, ...ForJWT, or GetWorkloadAccessToken). Agents
// outside AgentCore Runtime need it. In Runtime the request's token (see Middleware) is for
// the runtime's own workload identity, which sees only the tokens obtained under it; with
// WithWorkloadName the client mints instead for the named identity and the invocation's
// user id (the runtimeUserId, which AgentCore authorized with InvokeAgentRuntimeForUser).
// That is how an agent reads tokens users consented to through consentflow: name
// consentflow's workload identity (the stack's WorkloadName output; the agent's execution
// role needs the stack's AgentTokenPolicy) and WithReturnURL (consentflow's CallbackUrl).
// The user id header is trusted only on a request that also carries a workload access
// token, as AgentCore Runtime's invocations do. That is a presence check, not proof: the
// header names the user truly only when nothing but AgentCore Runtime can reach the agent
// (its port must not be exposed otherwise), since the execution role can mint tokens for any
// user id. M2M tokens need GetWorkloadAccessToken, which the stack's AgentTokenPolicy does
// not grant.
func WithWorkloadName(name string) Option { return func(o *options) { o.workload = name } }

// WithReturnURL sets the URL AgentCore sends the user's browser back to after consent
// (resourceOauth2ReturnUrl; it must be registered on the workload identity). With
// consentflow it is consentflow's CallbackUrl. Without it, AccessToken uses the
// OAuth2CallbackUrl of the AgentCore Runtime request in its context.
func WithReturnURL(url string) Option { return func(o *options) { o.returnURL = url } }

// WithSessionsTable names consentflow's DynamoDB sessions table: consent sessions are
// then registered there and awaited without polling AgentCore (see the package
// documentation). It requires WithReturnURL with consentflow's CallbackUrl, and
// permission to read and write the table (dynamodb:GetItem, PutItem, UpdateItem).
func WithSessionsTable(name string) Option { return func(o *options) { o.table = name } }

// WithPolling sets how often and for how long AccessToken polls GetResourceOauth2Token
// when it waits without consentflow (default DefaultPollInterval, DefaultPollTimeout).
func WithPolling(interval, timeout time.Duration) Option {
	return func(o *options) { o.pollEvery, o.pollFor = interval, timeout }
}

// WithLogger makes the client log what it does to l (never a credential). By default it
// logs nothing.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock replaces time.Now, for tests that move time (authorization sessions expire
// after 10 minutes).
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// New returns a client that calls AgentCore Identity (and, with WithSessionsTable,
// DynamoDB) with cfg.
func New(cfg aws.Config, opts ...Option) (*Client, error) {
	o := options{pollEvery: DefaultPollInterval, pollFor: DefaultPollTimeout}
	for _, f := range opts {
		f(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.clock == nil {
		o.clock = time.Now
	}
	if o.workload != "" {
		if err := flow.ValidateWorkloadName(o.workload); err != nil {
			return nil, fmt.Errorf("agentauth: workload name %w", err)
		}
	}
	if o.returnURL != "" {
		if err := flow.ValidateReturnURL(o.returnURL); err != nil {
			return nil, fmt.Errorf("agentauth: return URL %w", err)
		}
	}
	if o.pollEvery <= 0 || o.pollFor <= 0 {
		return nil, errors.New("agentauth: the poll interval and timeout must be positive")
	}
	api := bedrockagentcore.NewFromConfig(cfg)
	c := &Client{
		api: api, identity: agentcore.Identity{API: api},
		workload: o.workload, returnURL: o.returnURL,
		pollEvery: o.pollEvery, pollFor: o.pollFor,
		log: o.log, clock: o.clock,
	}
	if o.table != "" {
		if o.returnURL == "" {
			return nil, errors.New("agentauth: WithSessionsTable needs WithReturnURL (consentflow's CallbackUrl)")
		}
		store := state.New(dynamodb.NewFromConfig(cfg), o.table, state.WithClock(o.clock))
		ini, err := flow.NewInitiator(
			flow.Config{WorkloadName: o.workload, ReturnURL: o.returnURL, Binding: flow.BindingCode},
			flow.Deps{Identity: c.identity, Store: store, Clock: o.clock, Random: randomBytes, Log: o.log})
		if err != nil {
			return nil, fmt.Errorf("agentauth: %w", err)
		}
		c.consentflow = ini
	}
	return c, nil
}

func randomBytes(b []byte) error {
	_, err := rand.Read(b)
	return err
}
