package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Operation names, as used by InjectFault and reported in Call.Op.
const (
	OpGetWorkloadAccessToken          = "GetWorkloadAccessToken"
	OpGetWorkloadAccessTokenForUserID = "GetWorkloadAccessTokenForUserId"
	OpGetWorkloadAccessTokenForJWT    = "GetWorkloadAccessTokenForJWT"
	OpGetResourceOauth2Token          = "GetResourceOauth2Token"
	OpCompleteResourceTokenAuth       = "CompleteResourceTokenAuth"
	OpGetResourceAPIKey               = "GetResourceApiKey"

	// OpAuthorize is the consent page (GET /identities/oauth2/authorize) and OpConsent the
	// Allow/Deny form post. They appear in Calls but take no faults.
	OpAuthorize = "Authorize"
	OpConsent   = "Consent"
)

// SessionTTL is how long an authorization session (and its URL) stays valid after creation.
const SessionTTL = 10 * time.Minute

// WorkloadTokenTTL is how long a workload access token minted by the emulator is accepted.
// AWS does not document the lifetime; one hour is the emulator's choice.
const WorkloadTokenTTL = time.Hour

// AuthorizePath is the path of the consent page, the same path AWS uses.
const AuthorizePath = "/identities/oauth2/authorize"

// CallsPath serves Calls() as JSON (GET, read-only, no secrets) for out-of-process tests.
const CallsPath = "/_emulator/calls"

// ProviderKind is the kind of a credential provider.
type ProviderKind string

const (
	OAuth2 ProviderKind = "oauth2"
	APIKey ProviderKind = "apikey"
)

// Workload is a workload identity.
type Workload struct {
	Name              string   `json:"name"`
	AllowedReturnURLs []string `json:"allowedReturnUrls,omitempty"`
}

// Provider is a credential provider.
type Provider struct {
	Name string       `json:"name"`
	Kind ProviderKind `json:"kind,omitempty"` // default OAuth2
	// APIKey is the key GetResourceApiKey returns for an APIKey provider; a random one is
	// generated when empty.
	APIKey string `json:"apiKey,omitempty"`
}

// Config configures a Server. Its JSON form is what `agentcore-local --config` reads.
type Config struct {
	Workloads   []Workload `json:"workloads,omitempty"`
	Providers   []Provider `json:"providers,omitempty"`
	AutoApprove bool       `json:"autoApprove,omitempty"`
	// PublicURL is the origin (scheme://host[:port]) put in authorization URLs. When empty
	// the origin of the API request (its Host header) is used.
	PublicURL string `json:"publicUrl,omitempty"`
	// DoubleEncodeSessionID percent-encodes session_id twice in the redirect to the return
	// URL. Whether AWS encodes it once or twice is unconfirmed; callbacks should accept both,
	// and this switch lets their tests check the second form.
	DoubleEncodeSessionID bool `json:"doubleEncodeSessionId,omitempty"`
	// Clock replaces time.Now (expiry tests). Advance adds to it.
	Clock func() time.Time `json:"-"`
	// Logger receives one line per request; never tokens, JWTs, state or codes. nil: silent.
	Logger *slog.Logger `json:"-"`
	// IdP configures the test OpenID Connect provider served on the same origin (idp.go).
	IdP IdPConfig `json:"idp,omitempty"`
	// AgentRuntimes are the agent runtimes InvokeAgentRuntime forwards to
	// (runtime.go).
	AgentRuntimes []AgentRuntime `json:"agentRuntimes,omitempty"`
}

// Call is a read-only, non-secret summary of one request the emulator served.
type Call struct {
	Op         string    `json:"op"`
	Time       time.Time `json:"time"` // emulator clock
	RequestID  string    `json:"requestId,omitempty"`
	HTTPStatus int       `json:"httpStatus"`
	ErrorType  string    `json:"errorType,omitempty"` // "" on success
	Workload   string    `json:"workload,omitempty"`
	Provider   string    `json:"provider,omitempty"`
	UserKind   string    `json:"userKind,omitempty"` // "userId", "userToken" or ""
	Flow       string    `json:"flow,omitempty"`
	Client     string    `json:"client,omitempty"` // IdP client id (OIDC* operations)
	// Outcome says what happened: "vault-hit", "session-started", "session-in-progress",
	// "session-failed", "token-issued", "completed", "allowed", "denied", "page-shown",
	// "auto-approved", "fault", or "denied:<why>" for a refused CompleteResourceTokenAuth
	// or GetWorkloadAccessTokenForJWT. The IdP's endpoints (OIDC* operations) report
	// "served", "page-shown", "signed-in", "signed-in-as", "session-reused",
	// "token-issued", "invalid-client", "invalid-redirect-uri", "invalid-sign-in" or
	// "error:<OAuth error code>".
	Outcome string `json:"outcome,omitempty"`
}

// FaultKind selects what an injected fault does.
type FaultKind int

const (
	FaultThrottling FaultKind = iota + 1 // 429 ThrottlingException
	FaultInternal                        // 500 InternalServerException
	FaultDelay                           // wait Delay, then serve the request normally
	// FaultDropResponse serves the request (its effects happen) and then
	// closes the connection without an answer: the caller cannot know the
	// outcome.
	FaultDropResponse
	// FaultSlow waits Delay even if the caller gives up meanwhile, then
	// serves the request (its effects happen) and answers whoever is left:
	// a call that outlives its caller's budget.
	FaultSlow
)

// Fault is one injected failure.
type Fault struct {
	Kind  FaultKind
	Delay time.Duration // FaultDelay only
}

var (
	// Throttle makes a call fail with ThrottlingException (HTTP 429).
	Throttle = Fault{Kind: FaultThrottling}
	// InternalError makes a call fail with InternalServerException (HTTP 500).
	InternalError = Fault{Kind: FaultInternal}
)

// Delay makes a call wait d before it is served normally.
func Delay(d time.Duration) Fault { return Fault{Kind: FaultDelay, Delay: d} }

// DropResponse makes a call take effect and then lose its answer.
var DropResponse = Fault{Kind: FaultDropResponse}

// Slow makes a call take effect after d, even if its caller gave up.
func Slow(d time.Duration) Fault { return Fault{Kind: FaultSlow, Delay: d} }

// ParseFault parses "throttle", "internal", "drop-response",
// "delay=DURATION" or "slow=DURATION".
func ParseFault(s string) (Fault, error) {
	switch {
	case s == "throttle" || s == "throttling":
		return Throttle, nil
	case s == "internal":
		return InternalError, nil
	case s == "drop-response":
		return DropResponse, nil
	case strings.HasPrefix(s, "slow="):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "slow="))
		if err != nil || d < 0 {
			return Fault{}, fmt.Errorf("bad slow %q", s)
		}
		return Slow(d), nil
	case strings.HasPrefix(s, "delay="):
		d, err := time.ParseDuration(strings.TrimPrefix(s, "delay="))
		if err != nil || d < 0 {
			return Fault{}, fmt.Errorf("bad delay %q", s)
		}
		return Delay(d), nil
	}
	return Fault{}, fmt.Errorf("unknown fault %q (want throttle, internal or delay=DURATION)", s)
}

var apiOps = map[string]bool{
	OpGetWorkloadAccessToken: true, OpGetWorkloadAccessTokenForUserID: true,
	OpGetWorkloadAccessTokenForJWT: true, OpGetResourceOauth2Token: true,
	OpCompleteResourceTokenAuth: true, OpGetResourceAPIKey: true,
	OpInvokeAgentRuntime: true,
}

// IsOperation reports whether op names one of the emulated API operations: the six of
// AgentCore Identity and AgentCore Runtime's InvokeAgentRuntime.
func IsOperation(op string) bool { return apiOps[op] }

// Server is an in-memory AgentCore Identity data plane plus a fake OAuth provider.
// All methods are safe for concurrent use.
type Server struct {
	mu          sync.Mutex
	clock       func() time.Time
	offset      time.Duration
	autoApprove bool
	publicURL   string
	doubleEnc   bool
	log         *slog.Logger

	workloads map[string]map[string]bool // name -> allowed return URLs
	linked    map[string]bool            // workloads linked to an agent runtime
	providers map[string]Provider
	tokens    map[string]*workloadToken
	sessions  map[string]*session
	vault     map[string]string
	faults    map[string][]Fault
	calls     []Call
	idp       *idp
	runtimes  map[string]AgentRuntime // by ARN
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	s := &Server{
		clock:       cfg.Clock,
		autoApprove: cfg.AutoApprove,
		publicURL:   strings.TrimRight(cfg.PublicURL, "/"),
		doubleEnc:   cfg.DoubleEncodeSessionID,
		log:         cfg.Logger,
		workloads:   map[string]map[string]bool{},
		providers:   map[string]Provider{},
		tokens:      map[string]*workloadToken{},
		sessions:    map[string]*session{},
		vault:       map[string]string{},
		faults:      map[string][]Fault{},
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var err error
	if s.idp, err = newIdP(cfg.IdP); err != nil {
		return nil, err
	}
	if s.publicURL != "" {
		u, err := url.Parse(s.publicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("emulator: publicUrl %q is not an http(s) origin", cfg.PublicURL)
		}
	}
	for _, w := range cfg.Workloads {
		var errs []fieldError
		validateString(shapes["WorkloadIdentityNameType"], "name", w.Name, &errs)
		if len(errs) > 0 {
			return nil, fmt.Errorf("emulator: workload name %q: %s", w.Name, errs[0].Message)
		}
		urls := s.workloads[w.Name]
		if urls == nil {
			urls = map[string]bool{}
			s.workloads[w.Name] = urls
		}
		for _, u := range w.AllowedReturnURLs {
			validateString(shapes["ResourceOauth2ReturnUrlType"], "url", u, &errs)
			if pu, err := url.Parse(u); err != nil || pu.Scheme == "" || pu.Host == "" {
				errs = append(errs, fieldError{"url", "must be an absolute URL"})
			}
			if len(errs) > 0 {
				return nil, fmt.Errorf("emulator: return URL %q of workload %q: %s", u, w.Name, errs[0].Message)
			}
			urls[u] = true
		}
	}
	for _, p := range cfg.Providers {
		var errs []fieldError
		validateString(shapes["CredentialProviderName"], "name", p.Name, &errs)
		if len(errs) > 0 {
			return nil, fmt.Errorf("emulator: provider name %q: %s", p.Name, errs[0].Message)
		}
		if _, dup := s.providers[p.Name]; dup {
			return nil, fmt.Errorf("emulator: provider %q defined twice", p.Name)
		}
		switch p.Kind {
		case "":
			p.Kind = OAuth2
		case OAuth2:
		case APIKey:
			if p.APIKey == "" {
				p.APIKey = randomAPIKey()
			}
		default:
			return nil, fmt.Errorf("emulator: provider %q: unknown kind %q (want %q or %q)", p.Name, p.Kind, OAuth2, APIKey)
		}
		s.providers[p.Name] = p
	}
	for _, rt := range cfg.AgentRuntimes {
		if err := s.AddAgentRuntime(rt); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// now is the emulator clock; callers hold s.mu.
func (s *Server) now() time.Time { return s.clock().Add(s.offset) }

// Now returns the emulator's current time.
func (s *Server) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

// SetClock replaces the clock (nil: time.Now) and resets any Advance offset.
func (s *Server) SetClock(clock func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if clock == nil {
		clock = time.Now
	}
	s.clock, s.offset = clock, 0
}

// Advance moves the emulator clock forward by d.
func (s *Server) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.offset += d
}

// SetAutoApprove switches auto-approval: when on, opening the authorization URL consents
// at once and redirects to the return URL without showing the page.
func (s *Server) SetAutoApprove(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.autoApprove = on
}

// InjectFault makes the next n calls of operation op fail (or wait) as f says. Faults
// queue up per operation in the order injected; each call consumes one. It panics when op
// is not one of the Op* API operation names.
func (s *Server) InjectFault(op string, n int, f Fault) {
	if !apiOps[op] {
		panic(fmt.Sprintf("emulator: InjectFault: unknown operation %q", op))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.faults[op] = append(s.faults[op], f)
	}
}

// ClearFaults removes every pending injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string][]Fault{}
}

// Calls returns a copy of the calls served so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsTo returns the calls of one operation.
func (s *Server) CallsTo(op string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Op == op {
			out = append(out, c)
		}
	}
	return out
}

// ResetCalls forgets the recorded calls.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

func (s *Server) record(c Call) {
	s.mu.Lock()
	c.Time = s.now()
	s.calls = append(s.calls, c)
	s.mu.Unlock()
	level := slog.LevelInfo
	if c.HTTPStatus >= 500 {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, "request",
		"op", c.Op, "status", c.HTTPStatus, "errorType", c.ErrorType, "requestId", c.RequestID,
		"workload", c.Workload, "provider", c.Provider, "userKind", c.UserKind, "flow", c.Flow,
		"client", c.Client, "outcome", c.Outcome)
}

// takeFault pops the next fault for op, if any.
func (s *Server) takeFault(op string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.faults[op]
	if len(q) == 0 {
		return Fault{}, false
	}
	s.faults[op] = q[1:]
	return q[0], true
}

// Handler serves the restJson1 API, the authorize/consent pages and the test IdP on one
// origin.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(AuthorizePath, s.serveAuthorize)
	mux.HandleFunc(CallsPath, s.serveCalls)
	mux.HandleFunc(ProviderAPIPath, s.serveProviderAPI)
	s.idpRoutes(mux)
	mux.HandleFunc("/", s.serveAPI)
	return mux
}

// Start serves Handler on addr ("" means 127.0.0.1:0, a free loopback port) and returns
// the base URL (http://HOST:PORT) and a function that shuts the server down gracefully.
func (s *Server) Start(addr string) (baseURL string, stop func() error, err error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	return s.Serve(ln)
}

// Serve serves Handler on ln in the background, like Start. The first listener served
// gives the IdP its issuer when Config.PublicURL is empty (see Issuer).
func (s *Server) Serve(ln net.Listener) (baseURL string, stop func() error, err error) {
	s.setListenURL(ln.Addr())
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	var once sync.Once
	var stopErr error
	stop = func() error {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			stopErr = hs.Shutdown(ctx)
			if serr := <-done; stopErr == nil && !errors.Is(serr, http.ErrServerClosed) {
				stopErr = serr
			}
		})
		return stopErr
	}
	return "http://" + ln.Addr().String(), stop, nil
}
