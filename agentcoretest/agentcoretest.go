// Package agentcoretest runs a local Amazon Bedrock AgentCore Identity for tests, in the
// style of net/http/httptest: NewServer starts it on 127.0.0.1 and the real
// aws-sdk-go-v2 bedrockagentcore client talks to it through Config or Client.
//
// The server is an in-memory AgentCore Identity data plane (workload access tokens,
// GetResourceOauth2Token with its authorization sessions, CompleteResourceTokenAuth,
// GetResourceApiKey and the token vault) plus a fake OAuth provider whose consent page
// a test answers without a browser: Allow and Deny give the user's answer and return
// where the browser would go next (your callback, with session_id and state);
// AllowAndComplete also completes the session for its user, as your application's
// callback would. Requests are validated against the AWS service model's constraints
// and fail with the same error types as AWS.
//
//	srv := agentcoretest.NewServer(
//		agentcoretest.WithWorkload("my-agent", "https://app.example.com/oauth2/callback"),
//		agentcoretest.WithProvider("github"),
//	)
//	defer srv.Close()
//	client := bedrockagentcore.NewFromConfig(srv.Config())
//
// Tests can read what was called (Calls; never a token, user id or state), move the
// server's clock (Advance: authorization sessions are valid for 10 minutes) and make
// the next calls of an operation fail (InjectFault).
//
// A Server is safe for concurrent use.
package agentcoretest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"

	"github.com/consentflow/consentflow/internal/local/emulator"
)

// Region is the AWS Region of Config.
const Region = "us-east-1"

// Operation names, as used by InjectFault, CallsTo and Call.Op.
const (
	OpGetWorkloadAccessToken          = "GetWorkloadAccessToken"
	OpGetWorkloadAccessTokenForUserID = "GetWorkloadAccessTokenForUserId"
	OpGetWorkloadAccessTokenForJWT    = "GetWorkloadAccessTokenForJWT"
	OpGetResourceOauth2Token          = "GetResourceOauth2Token"
	OpCompleteResourceTokenAuth       = "CompleteResourceTokenAuth"
	OpGetResourceAPIKey               = "GetResourceApiKey"
	// OpInvokeAgentRuntime is AgentCore Runtime's InvokeAgentRuntime (WithAgentRuntime).
	OpInvokeAgentRuntime = "InvokeAgentRuntime"
	// OpAuthorize is the consent page being opened and OpConsent the user's answer on it
	// (also Allow and Deny). They appear in Calls but take no faults.
	OpAuthorize = "Authorize"
	OpConsent   = "Consent"
)

// SessionValidity is how long an authorization session and its URL stay valid.
const SessionValidity = 10 * time.Minute

// ErrNoSession is returned by Allow, Deny and AllowAndComplete when the authorization URL
// names no session that waits for the user's answer (unknown, already answered, or
// expired).
var ErrNoSession = errors.New("agentcoretest: no authorization session waits for an answer at that URL")

// Server is a running AgentCore Identity emulator.
type Server struct {
	// URL is the base URL of the server, http://127.0.0.1:PORT: the AgentCore
	// endpoint, and the origin of its authorization URLs.
	URL string

	emu    *emulator.Server
	stop   func() error
	client *bedrockagentcore.Client
}

// An Option configures NewServer.
type Option func(*config)

type config = emulator.Config

// WithWorkload registers the workload identity name with the return URLs it may use
// (resourceOauth2ReturnUrl; AWS refuses a user federation flow without one).
func WithWorkload(name string, returnURLs ...string) Option {
	return func(c *config) {
		c.Workloads = append(c.Workloads, emulator.Workload{Name: name, AllowedReturnURLs: returnURLs})
	}
}

// WithProvider registers an OAuth2 credential provider.
func WithProvider(name string) Option {
	return func(c *config) {
		c.Providers = append(c.Providers, emulator.Provider{Name: name})
	}
}

// WithAPIKeyProvider registers an API key credential provider whose key is apiKey (a
// random one when empty).
func WithAPIKeyProvider(name, apiKey string) Option {
	return func(c *config) {
		c.Providers = append(c.Providers, emulator.Provider{Name: name, Kind: emulator.APIKey, APIKey: apiKey})
	}
}

// WithAgentRuntime registers an agent runtime: InvokeAgentRuntime for arn (or its id with
// accountId) is forwarded to the local agent at url (http://127.0.0.1:PORT), which serves
// the AgentCore Runtime contract (POST /invocations, GET /ping). The agent receives the
// X-Amzn-Bedrock-AgentCore-Runtime-Session-Id and -User-Id headers and a WorkloadAccessToken
// minted for the invocation's runtimeUserId and the runtime's own workload identity, and its
// answer is streamed back. As in AgentCore, that identity is named after the runtime id,
// linked to the runtime (GetWorkloadAccessToken* refuse it), and sees only the tokens
// obtained under it: an agent reading tokens users consented to through consentflow mints
// for consentflow's workload identity (agentauth.WithWorkloadName). url must be on this
// machine. An unknown runtime is a ResourceNotFoundException, an agent answering 4xx/5xx (or
// not at all) a RuntimeClientError (HTTP 424).
func WithAgentRuntime(arn, url string) Option {
	return func(c *config) {
		c.AgentRuntimes = append(c.AgentRuntimes, emulator.AgentRuntime{ARN: arn, URL: url})
	}
}

// AddAgentRuntime registers an agent runtime on the running server (see WithAgentRuntime).
func (s *Server) AddAgentRuntime(arn, url string) error {
	return s.emu.AddAgentRuntime(emulator.AgentRuntime{ARN: arn, URL: url})
}

// WithAutoApprove makes opening an authorization URL consent at once: the browser is
// redirected to the return URL without seeing the consent page.
func WithAutoApprove() Option {
	return func(c *config) { c.AutoApprove = true }
}

// WithClock replaces time.Now as the server's clock (Advance adds to it).
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.Clock = now }
}

// WithLogger makes the server log one line per request to l (never a token, user id,
// state or key). By default it is silent.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.Logger = l }
}

// NewServer starts a server on a free port of 127.0.0.1. The caller must Close it. Like
// httptest.NewServer, it panics when it cannot start, here also when an option is
// invalid (a workload or provider name AWS would refuse, a relative return URL).
func NewServer(opts ...Option) *Server {
	var cfg emulator.Config
	for _, o := range opts {
		o(&cfg)
	}
	emu, err := emulator.New(cfg)
	if err != nil {
		panic("agentcoretest: " + err.Error())
	}
	base, stop, err := emu.Start("127.0.0.1:0")
	if err != nil {
		panic("agentcoretest: failed to listen on a port: " + err.Error())
	}
	s := &Server{URL: base, emu: emu, stop: stop}
	s.client = bedrockagentcore.NewFromConfig(s.Config())
	return s
}

// Close shuts the server down, waiting for the requests in progress.
func (s *Server) Close() { _ = s.stop() }

// Config returns an AWS configuration for clients of this server: Region, static fake
// credentials, and the server as the Bedrock AgentCore endpoint. Its BaseEndpoint also
// points at the server; to reach another local service with the same configuration
// (say, DynamoDB Local), set BaseEndpoint to that service's URL: AgentCore clients keep
// using the server.
func (s *Server) Config() aws.Config {
	return aws.Config{
		Region:        Region,
		Credentials:   credentials.NewStaticCredentialsProvider("AKIDAGENTCORETEST", "agentcoretest-secret", ""),
		BaseEndpoint:  aws.String(s.URL),
		ConfigSources: []any{endpointSource(s.URL)},
	}
}

// endpointSource names the server as the Bedrock AgentCore endpoint, as a service-specific
// endpoint setting (AWS_ENDPOINT_URL_BEDROCK_AGENTCORE) would.
type endpointSource string

// GetServiceBaseEndpoint is how the SDK's clients look up service-specific endpoints.
func (e endpointSource) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	if sdkID == bedrockagentcore.ServiceID {
		return string(e), true, nil
	}
	return "", false, nil
}

// Client returns a bedrockagentcore client of this server (made from Config).
func (s *Server) Client() *bedrockagentcore.Client { return s.client }

// AddWorkload registers a workload identity, or more return URLs of a registered one, on
// the running server.
func (s *Server) AddWorkload(name string, returnURLs ...string) error {
	return s.emu.AddWorkload(emulator.Workload{Name: name, AllowedReturnURLs: returnURLs})
}

// AddProvider registers an OAuth2 credential provider on the running server.
func (s *Server) AddProvider(name string) error {
	return s.emu.AddProvider(emulator.Provider{Name: name})
}

// AddAPIKeyProvider registers an API key credential provider on the running server (a
// random key when apiKey is empty).
func (s *Server) AddAPIKeyProvider(name, apiKey string) error {
	return s.emu.AddProvider(emulator.Provider{Name: name, Kind: emulator.APIKey, APIKey: apiKey})
}

// SetAutoApprove switches WithAutoApprove's behaviour on or off.
func (s *Server) SetAutoApprove(on bool) { s.emu.SetAutoApprove(on) }

// Allow gives the user's consent on the provider's page of authURL (an authorization URL
// GetResourceOauth2Token returned) and returns where the browser goes next: the
// session's return URL with session_id and, when the flow sent customState, state. The
// session then waits for CompleteResourceTokenAuth, which your callback calls.
func (s *Server) Allow(authURL string) (string, error) { return s.decide(authURL, true) }

// Deny refuses consent on the provider's page of authURL; the session fails. It returns
// where the browser goes next: the return URL with error=access_denied,
// error_description, session_id and state.
func (s *Server) Deny(authURL string) (string, error) { return s.decide(authURL, false) }

func (s *Server) decide(authURL string, allow bool) (string, error) {
	uri, err := requestURI(authURL)
	if err != nil {
		return "", err
	}
	return s.answer(uri, allow)
}

// answer gives the user's answer on the page of the session uri.
func (s *Server) answer(uri string, allow bool) (string, error) {
	back, err := s.emu.Decide(uri, allow)
	if errors.Is(err, emulator.ErrNoSession) {
		return "", ErrNoSession
	}
	return back, err
}

// AllowAndComplete gives the user's consent on the page of authURL and completes the
// session for the user it was started for (CompleteResourceTokenAuth), as your
// application's callback would after checking that user: the token is then in the
// vault. It stands in for the browser and the callback in tests of an agent alone. It
// does not visit the return URL.
func (s *Server) AllowAndComplete(ctx context.Context, authURL string) error {
	uri, err := requestURI(authURL)
	if err != nil {
		return err
	}
	if _, err := s.answer(uri, true); err != nil {
		return err
	}
	kind, value, ok := s.emu.SessionUser(uri)
	if !ok {
		return ErrNoSession
	}
	var id types.UserIdentifier = &types.UserIdentifierMemberUserId{Value: value}
	if kind == "userToken" {
		id = &types.UserIdentifierMemberUserToken{Value: value}
	}
	_, err = s.client.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri: aws.String(uri), UserIdentifier: id})
	if err != nil {
		return fmt.Errorf("agentcoretest: CompleteResourceTokenAuth: %w", err)
	}
	return nil
}

// requestURI returns the session named by an authorization URL.
func requestURI(authURL string) (string, error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", errors.New("agentcoretest: the authorization URL does not parse")
	}
	uri := u.Query().Get("request_uri")
	if uri == "" || u.Path != emulator.AuthorizePath {
		return "", errors.New("agentcoretest: not an authorization URL (no request_uri)")
	}
	return uri, nil
}

// Now returns the server's current time.
func (s *Server) Now() time.Time { return s.emu.Now() }

// Advance moves the server's clock forward by d: sessions older than SessionValidity
// expire, and so do workload access tokens older than an hour.
func (s *Server) Advance(d time.Duration) { s.emu.Advance(d) }

// A Call is what the server recorded about one request it served. It never holds a
// token, a user id, a JWT, state or a key.
type Call struct {
	Op         string    // an Op* name
	Time       time.Time // the server's clock
	RequestID  string    // X-Amzn-Requestid of the answer
	HTTPStatus int       // the answer's status code
	ErrorType  string    // "" on success, else e.g. "ThrottlingException"
	Workload   string    // the workload identity the call was for, if any
	Provider   string    // the credential provider it named, if any
	UserKind   string    // "userId", "userToken" or "" (no user)
	Flow       string    // USER_FEDERATION, M2M, ...
	// Outcome says what happened: "vault-hit", "session-started", "session-in-progress",
	// "session-failed", "token-issued", "completed", "allowed", "denied", "page-shown",
	// "auto-approved", "fault", or "denied:<why>" for a refused completion.
	Outcome string
}

// Calls returns the calls served so far, oldest first.
func (s *Server) Calls() []Call {
	in := s.emu.Calls()
	out := make([]Call, len(in))
	for i, c := range in {
		out[i] = Call{Op: c.Op, Time: c.Time, RequestID: c.RequestID, HTTPStatus: c.HTTPStatus, ErrorType: c.ErrorType,
			Workload: c.Workload, Provider: c.Provider, UserKind: c.UserKind, Flow: c.Flow, Outcome: c.Outcome}
	}
	return out
}

// CallsTo returns the calls of operation op, oldest first.
func (s *Server) CallsTo(op string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the calls recorded so far.
func (s *Server) ResetCalls() { s.emu.ResetCalls() }

// A Fault is what an injected failure does to a call.
type Fault struct{ f emulator.Fault }

var (
	// Throttle fails the call with ThrottlingException (HTTP 429).
	Throttle = Fault{emulator.Throttle}
	// InternalError fails the call with InternalServerException (HTTP 500).
	InternalError = Fault{emulator.InternalError}
	// DropResponse serves the call (its effects happen) and closes the connection
	// without an answer: the caller cannot know the outcome.
	DropResponse = Fault{emulator.DropResponse}
)

// Delay makes the call wait d before it is served normally (unless its caller gives up
// meanwhile: then it has no effect).
func Delay(d time.Duration) Fault { return Fault{emulator.Delay(d)} }

// Slow makes the call wait d even if its caller gives up, then serves it: a call that
// outlives its caller's deadline and still takes effect.
func Slow(d time.Duration) Fault { return Fault{emulator.Slow(d)} }

// InjectFault makes the next n calls of operation op (an Op* API operation) fail as f
// says. Faults queue per operation in the order injected. The SDK retries throttling
// and internal errors (3 attempts by default), so fewer faults than attempts end in
// success. It panics when op is not an API operation.
func (s *Server) InjectFault(op string, n int, f Fault) {
	if !emulator.IsOperation(op) {
		panic(fmt.Sprintf("agentcoretest: InjectFault: unknown operation %q", op))
	}
	s.emu.InjectFault(op, n, f.f)
}

// ClearFaults drops every injected fault not consumed yet.
func (s *Server) ClearFaults() { s.emu.ClearFaults() }

// The server is also a test OpenID Connect provider at its URL (discovery at
// /.well-known/openid-configuration, JWKS, an authorization endpoint with a sign-in page
// that lists the test users, a token endpoint with PKCE), which issues the user JWTs
// that GetWorkloadAccessTokenForJWT accepts: it verifies them as AWS does for a trusted
// issuer, and trusts only this one. The test users are alice and bob (emails
// alice@example.com and bob@example.com, verified) unless WithTestUser names others.

// WithTestUser adds a test user of the identity provider (email verified when not empty).
// Once any is added, only the added users exist.
func WithTestUser(subject, email string) Option {
	return func(c *config) {
		c.IdP.Users = append(c.IdP.Users, emulator.TestUser{Subject: subject, Email: email, EmailVerified: email != ""})
	}
}

// WithIdPClient registers an OAuth client of the identity provider: your application's
// sign-in, with the redirect URIs it may use; an empty secret makes a public client
// (PKCE alone).
func WithIdPClient(clientID, secret string, redirectURIs ...string) Option {
	return func(c *config) {
		c.IdP.Clients = append(c.IdP.Clients, emulator.IdPClient{ClientID: clientID, ClientSecret: secret, RedirectURIs: redirectURIs})
	}
}

// Issuer is the identity provider's issuer URL (the server's URL).
func (s *Server) Issuer() string { return s.emu.Issuer() }

// UserJWT returns an ID token for subject (with a test user's email when it names one)
// and audience, valid for ttl (a ttl of zero or less gives one that has already expired),
// signed as the provider signs them: the userToken of GetWorkloadAccessTokenForJWT, or
// your application's session JWT.
func (s *Server) UserJWT(subject, audience string, ttl time.Duration) (string, error) {
	return s.emu.MintIDToken(subject, audience, ttl)
}

// SignInAs makes the next sign-in at the identity provider sign subject in at once,
// without the sign-in page (a browserless test's stand-in for the person's choice).
func (s *Server) SignInAs(subject string) error { return s.emu.SignInAs(subject) }
