// Package runner starts the whole consentflow system on 127.0.0.1 for the
// local demo and the end-to-end tests: DynamoDB Local (table created as the
// CDK stack does), the AgentCore Identity emulator, the Step Functions and
// EventBridge stand-ins, and the callback function behind an API Gateway
// HTTP API stand-in; optionally (Options.Connect) the Amazon Connect
// stand-in and the callback's Connect route. The production handlers run
// unchanged; only the endpoints differ.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	awsconnect "github.com/aws/aws-sdk-go-v2/service/connect"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/consentflow/consentflow/internal/adapters/awsconf"
	"github.com/consentflow/consentflow/internal/app"
	"github.com/consentflow/consentflow/internal/app/callback"
	"github.com/consentflow/consentflow/internal/app/initiate"
	"github.com/consentflow/consentflow/internal/app/resumer"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/apigw"
	"github.com/consentflow/consentflow/internal/local/connectlocal"
	"github.com/consentflow/consentflow/internal/local/dynamolocal"
	"github.com/consentflow/consentflow/internal/local/emulator"
	"github.com/consentflow/consentflow/internal/local/eventslocal"
	"github.com/consentflow/consentflow/internal/local/sfnlocal"
	"github.com/consentflow/consentflow/internal/local/streamlocal"
	"github.com/consentflow/consentflow/internal/resume"
	"github.com/consentflow/consentflow/internal/state"
)

// Names used by the local stack (the CDK stack uses its own).
const (
	Region       = "us-east-1"
	Table        = "consentflow-sessions"
	WorkloadName = "consentflow-local"
	EventBus     = "consentflow"
	// SignInClientID is consentflow's client at the emulator's OpenID
	// provider (the sign-in binding modes).
	SignInClientID = "consentflow-local"
	// AppAudience is the audience of the application's own user JWTs
	// (JWT-cookie binding; mint them with Emulator.MintIDToken).
	AppAudience = "consentflow-app"
	// ConnectInstanceID is the Amazon Connect instance the Connect
	// stand-in knows (Options.Connect).
	ConnectInstanceID = "00fbeee1-123e-111e-93e3-11111bfbfcc1"
	// Account is the AWS account the local ARNs name.
	Account = "123456789012"
	// StateMachineARN names the local AuthorizeUser state machine: the
	// executions Stack.StartExecution starts are its executions.
	StateMachineARN = "arn:aws:states:" + Region + ":" + Account + ":stateMachine:AuthorizeUser"
)

// localStoreCallTimeout bounds each DynamoDB Local call of the local
// stack's functions: DynamoDB Local on a loaded 2-core machine can take
// seconds where AWS takes milliseconds (state.DefaultCallTimeout).
const localStoreCallTimeout = 15 * time.Second

// Options configure Start.
type Options struct {
	// Providers registered in the emulator (default: "github").
	Providers []string
	// Binding is "code" (default), "oidc", "oidc+code" or "none". The
	// sign-in modes sign in at the emulator's OpenID provider (client
	// SignInClientID, a public client, test users alice and bob).
	Binding string
	// ExternalSessions lets the callback complete sessions it did not
	// start (sign-in modes only).
	ExternalSessions bool
	// SignInTokenTTL replaces the lifetime of the ID tokens the emulator's
	// provider issues (zero: its default; negative: already expired).
	SignInTokenTTL time.Duration
	// AutoApprove skips the emulator's consent page.
	AutoApprove bool
	// Log receives the handlers' logs (default: discard).
	Log *slog.Logger
	// DynamoDB reuses a running DynamoDB Local instead of starting one.
	DynamoDB *dynamolocal.Instance
	// Table overrides the table name (tests sharing one DynamoDB Local).
	Table string
	// CompleteTimeout shortens the callback's CompleteResourceTokenAuth
	// budget (fault tests; zero: the production default).
	CompleteTimeout time.Duration
	// DynamoDBEndpoint, when set, is the URL the functions' DynamoDB client
	// (Clients.DynamoDB, and AWS_ENDPOINT_URL_DYNAMODB in Env) uses instead
	// of the instance's own endpoint: a proxy in front of it, e.g. one that
	// injects faults (fault tests). The table is created through it; the
	// stream poller's client (Clients.Streams) stays on the instance.
	// Empty: the instance's endpoint.
	DynamoDBEndpoint string
	// NoStreamPoller leaves the table's stream unpolled: Resumer is wired
	// but nothing calls it and Stream is nil, so a test can hand the
	// stream's records to a resumer itself (e.g. a built resumer binary)
	// without the poller delivering the outbox first.
	NoStreamPoller bool
	// Connect starts the Amazon Connect stand-in (internal/local/connectlocal,
	// instance ConnectInstanceID) and configures the callback's Connect
	// route (contract.ConnectCallbackPath) against it. Off by default.
	Connect bool
	// AgentRuntimeARNs are the agent runtimes a workflow may continue with
	// (AGENT_RUNTIME_ARNS in Env; register them in the emulator with
	// Emulator.AddAgentRuntime). Empty: initiate refuses continueWith.
	AgentRuntimeARNs []string
	// AppReturnURLs are the application URLs a workflow may name as its
	// returnTo (APP_RETURN_URLS in Env, for initiate and the callback;
	// https, or http on 127.0.0.1/localhost, e.g. an httptest server's).
	// Empty: initiate refuses returnTo. The demo sets none.
	AppReturnURLs []string
}

// Stack is a running local system.
type Stack struct {
	DynamoDB    *dynamolocal.Instance
	Emulator    *emulator.Server
	SFN         *sfnlocal.Server
	Events      *eventslocal.Server
	EmulatorURL string
	SFNURL      string
	EventsURL   string
	// CallbackURL is the return URL registered on the workload identity.
	CallbackURL string
	// LoginCallbackURL is the sign-in provider's redirect URI.
	LoginCallbackURL string
	// ConnectCallbackURL is the redirect URI of the Connect route (the one
	// a Cognito app client would redirect to); set with Options.Connect.
	ConnectCallbackURL string
	// Connect is the Amazon Connect stand-in and ConnectURL its endpoint;
	// nil and "" without Options.Connect.
	Connect    *connectlocal.Server
	ConnectURL string
	Table      string
	// Env is the functions' environment for child processes (the built
	// bootstrap binaries): endpoints, region, dummy credentials, config.
	Env map[string]string
	// Clients reach the local services through the real SDK clients.
	Clients Clients
	// Initiate is the production initiate handler wired to the stack.
	Initiate func(ctx context.Context, event json.RawMessage) (*flow.Result, error)
	// Resumer is the production resumer handler, fed by Stream.
	Resumer *resume.Handler
	// Stream polls the table's stream into Resumer (the event source
	// mapping's stand-in); nil with Options.NoStreamPoller.
	Stream *streamlocal.Poller

	clock   *Clock
	ownsDB  bool
	servers []*http.Server
	once    sync.Once
}

// Clients are the SDK clients of every service the stack runs; each
// function's wiring gets the ones it uses.
type Clients struct {
	AgentCore *bedrockagentcore.Client
	DynamoDB  *dynamodb.Client
	SFN       *sfn.Client
	Events    *eventbridge.Client
	Streams   *dynamodbstreams.Client
	// Connect reaches the Connect stand-in (nil without Options.Connect).
	Connect *awsconnect.Client
}

// Clock is a settable clock shared by the emulator and the handlers.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now returns the wall clock plus the offset.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves time forward for the emulator and the handlers at once.
func (s *Stack) Advance(d time.Duration) {
	s.clock.mu.Lock()
	s.clock.offset += d
	s.clock.mu.Unlock()
}

// Now is the stack's current time.
func (s *Stack) Now() time.Time { return s.clock.Now() }

// StartExecution plays the start of an execution of StateMachineARN (a
// fresh name) up to its RequestAuthorization task, whose task it registers
// on the Step Functions stand-in with opts. The execution's Payload is what
// that task sends initiate: pass it to Initiate (or the initiate binary).
func (s *Stack) StartExecution(opts ...sfnlocal.TaskOption) (sfnlocal.Execution, error) {
	return s.SFN.StartExecution(StateMachineARN, "", opts...)
}

// Start brings everything up on 127.0.0.1 with free ports. Close stops it.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if len(o.Providers) == 0 {
		o.Providers = []string{"github"}
	}
	if o.Binding == "" {
		o.Binding = contract.BindingCode
	}
	s := &Stack{clock: &Clock{}, Table: o.Table}
	if s.Table == "" {
		s.Table = Table
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()

	if o.DynamoDB != nil {
		s.DynamoDB = o.DynamoDB
	} else {
		if s.DynamoDB, err = dynamolocal.Start(ctx); err != nil {
			return nil, fmt.Errorf("DynamoDB Local: %w", err)
		}
		s.ownsDB = true
	}

	// The callback server's address must be known before the emulator
	// registers it as an allowed return URL.
	cbLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.CallbackURL = "http://" + cbLn.Addr().String() + contract.CallbackPath
	s.LoginCallbackURL = "http://" + cbLn.Addr().String() + contract.LoginCallbackPath

	// So is the emulator's: its origin is the IdP's issuer (Config.PublicURL), which
	// the tests' minted JWTs carry.
	emuLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cbLn.Close()
		return nil, err
	}
	providers := make([]emulator.Provider, 0, len(o.Providers))
	for _, p := range o.Providers {
		providers = append(providers, emulator.Provider{Name: p})
	}
	if s.Emulator, err = emulator.New(emulator.Config{
		Workloads:   []emulator.Workload{{Name: WorkloadName, AllowedReturnURLs: []string{s.CallbackURL}}},
		Providers:   providers,
		AutoApprove: o.AutoApprove,
		Clock:       s.clock.Now,
		PublicURL:   "http://" + emuLn.Addr().String(),
		IdP:         emulator.IdPConfig{IDTokenTTL: o.SignInTokenTTL},
	}); err != nil {
		cbLn.Close()
		emuLn.Close()
		return nil, err
	}
	if s.EmulatorURL, err = s.serve(s.Emulator.Handler(), emuLn); err != nil {
		cbLn.Close()
		return nil, err
	}
	s.SFN = sfnlocal.New()
	if s.SFNURL, err = s.serve(s.SFN.Handler(), nil); err != nil {
		cbLn.Close()
		return nil, err
	}
	s.Events = eventslocal.New()
	if s.EventsURL, err = s.serve(s.Events.Handler(), nil); err != nil {
		cbLn.Close()
		return nil, err
	}

	if o.Connect {
		s.Connect = connectlocal.New(connectlocal.Config{InstanceID: ConnectInstanceID, Clock: s.clock.Now})
		if s.ConnectURL, err = s.serve(s.Connect.Handler(), nil); err != nil {
			cbLn.Close()
			return nil, err
		}
		s.ConnectCallbackURL = "http://" + cbLn.Addr().String() + contract.ConnectCallbackPath
	}

	s.Clients = s.clients(o.DynamoDBEndpoint)
	// DynamoDB Local keeps one database per access key and region: create
	// the table with the credentials the functions use.
	if err := state.EnsureTable(ctx, s.Clients.DynamoDB, s.Table); err != nil {
		cbLn.Close()
		return nil, err
	}
	s.Env = map[string]string{
		"AWS_REGION":                         Region,
		"AWS_ACCESS_KEY_ID":                  "AKIALOCALEXAMPLE",
		"AWS_SECRET_ACCESS_KEY":              "local-secret-not-used",
		"AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": s.EmulatorURL,
		"AWS_ENDPOINT_URL_DYNAMODB":          dynamoEndpoint(s.DynamoDB, o.DynamoDBEndpoint),
		"AWS_ENDPOINT_URL_SFN":               s.SFNURL,
		"AWS_ENDPOINT_URL_EVENTBRIDGE":       s.EventsURL,
		contract.EnvSessionsTable:            s.Table,
		contract.EnvWorkloadName:             WorkloadName,
		contract.EnvReturnURL:                s.CallbackURL,
		contract.EnvEventBusName:             EventBus,
		contract.EnvBindingMode:              o.Binding,
		contract.EnvUserTokenIssuer:          s.Emulator.Issuer(),
		contract.EnvUserTokenAudience:        AppAudience,
		"AWS_LAMBDA_LOG_FORMAT":              "JSON",
	}
	if b, _ := flow.ParseBindingMode(o.Binding); b.NeedsSignIn() {
		if err := s.Emulator.AddIdPClient(emulator.IdPClient{ClientID: SignInClientID, RedirectURIs: []string{s.LoginCallbackURL}}); err != nil {
			cbLn.Close()
			return nil, err
		}
		s.Env[contract.EnvOIDCIssuer] = s.Emulator.Issuer()
		s.Env[contract.EnvOIDCClientID] = SignInClientID
	}
	if o.ExternalSessions {
		s.Env[contract.EnvExternalSessions] = "true"
	}
	if o.Connect {
		s.Env["AWS_ENDPOINT_URL_CONNECT"] = s.ConnectURL
		s.Env[contract.EnvConnectInstanceID] = ConnectInstanceID
	}
	if len(o.AgentRuntimeARNs) > 0 {
		s.Env[contract.EnvAgentRuntimeARNs] = strings.Join(o.AgentRuntimeARNs, ",")
	}
	if len(o.AppReturnURLs) > 0 {
		s.Env[contract.EnvAppReturnURLs] = strings.Join(o.AppReturnURLs, ",")
	}
	get := func(k string) string { return s.Env[k] }
	in, err := initiate.New(initiate.Clients{
		AgentCore: s.Clients.AgentCore, DynamoDB: s.Clients.DynamoDB, SFN: s.Clients.SFN, Events: s.Clients.Events,
	}, get, o.Log, app.WithClock(s.clock.Now), app.WithStoreCallTimeout(localStoreCallTimeout))
	if err != nil {
		cbLn.Close()
		return nil, err
	}
	s.Initiate = in.Handle
	cbClients := callback.Clients{AgentCore: s.Clients.AgentCore, DynamoDB: s.Clients.DynamoDB, SFN: s.Clients.SFN}
	if s.Clients.Connect != nil {
		cbClients.Connect = s.Clients.Connect
	}
	cb, err := callback.New(cbClients, get, o.Log, app.WithClock(s.clock.Now), app.WithCompleteTimeout(o.CompleteTimeout),
		app.WithStoreCallTimeout(localStoreCallTimeout))
	if err != nil {
		cbLn.Close()
		return nil, err
	}
	routes := []apigw.Route{
		{Key: "GET " + contract.CallbackPath, Handler: apigw.Handler(cb.Handle)},
		{Key: "POST " + contract.CallbackPath, Handler: apigw.Handler(cb.Handle)},
		{Key: "GET " + contract.LoginCallbackPath, Handler: apigw.Handler(cb.Handle)},
		{Key: "POST " + contract.LoginCallbackPath, Handler: apigw.Handler(cb.Handle)},
	}
	if o.Connect {
		routes = append(routes, apigw.Route{Key: "GET " + contract.ConnectCallbackPath, Handler: apigw.Handler(cb.Handle)})
	}
	gw, err := apigw.New(apigw.Config{Routes: routes, Region: Region})
	if err != nil {
		cbLn.Close()
		return nil, err
	}
	if _, err := s.serve(gw, cbLn); err != nil {
		return nil, err
	}
	if s.Resumer, err = resumer.New(resumer.Clients{DynamoDB: s.Clients.DynamoDB, SFN: s.Clients.SFN, Events: s.Clients.Events}, get, o.Log,
		app.WithClock(s.clock.Now)); err != nil {
		return nil, err
	}
	if o.NoStreamPoller {
		return s, nil
	}
	if s.Stream, err = streamlocal.Start(ctx, streamlocal.Config{
		DynamoDB: s.Clients.DynamoDB, Streams: s.Clients.Streams, Table: s.Table, Handler: s.Resumer.Handle, Log: o.Log,
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// serve runs h on ln (or a fresh loopback listener) and returns its URL.
func (s *Stack) serve(h http.Handler, ln net.Listener) (string, error) {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return "", err
		}
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	s.servers = append(s.servers, srv)
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// dynamoEndpoint is the functions' DynamoDB endpoint: override, or the
// instance's own.
func dynamoEndpoint(db *dynamolocal.Instance, override string) string {
	if override != "" {
		return override
	}
	return db.Endpoint()
}

func (s *Stack) clients(dynamoOverride string) Clients {
	cfg := aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("AKIALOCALEXAMPLE", "local-secret-not-used", ""),
		Retryer:     func() aws.Retryer { return retry.NewStandard() },
		// As the functions' shared configuration (awsconf.Load) does.
		HTTPClient: awsconf.PlainRequestBodies(awshttp.NewBuildableClient()),
	}
	var conn *awsconnect.Client
	if s.ConnectURL != "" {
		conn = awsconnect.NewFromConfig(cfg, func(o *awsconnect.Options) { o.BaseEndpoint = aws.String(s.ConnectURL) })
	}
	return Clients{
		Connect:   conn,
		AgentCore: bedrockagentcore.NewFromConfig(cfg, func(o *bedrockagentcore.Options) { o.BaseEndpoint = aws.String(s.EmulatorURL) }),
		DynamoDB: dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
			o.BaseEndpoint = aws.String(dynamoEndpoint(s.DynamoDB, dynamoOverride))
		}),
		SFN:     sfn.NewFromConfig(cfg, func(o *sfn.Options) { o.BaseEndpoint = aws.String(s.SFNURL) }),
		Events:  eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) { o.BaseEndpoint = aws.String(s.EventsURL) }),
		Streams: dynamodbstreams.NewFromConfig(cfg, func(o *dynamodbstreams.Options) { o.BaseEndpoint = aws.String(s.DynamoDB.Endpoint()) }),
	}
}

// Close stops every server and, if the stack started it, DynamoDB Local.
func (s *Stack) Close() {
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, srv := range s.servers {
			if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				_ = srv.Close()
			}
		}
		if s.Stream != nil {
			s.Stream.Stop()
		}
		if s.SFN != nil {
			s.SFN.Close()
		}
		if s.ownsDB && s.DynamoDB != nil {
			s.DynamoDB.Stop()
		}
	})
}
