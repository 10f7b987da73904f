package agentauth_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/consentflow/consentflow/agentauth"
	"github.com/consentflow/consentflow/agentcoretest"
	"github.com/consentflow/consentflow/internal/app"
	"github.com/consentflow/consentflow/internal/app/callback"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/local/apigw"
	"github.com/consentflow/consentflow/internal/state"
	"github.com/consentflow/consentflow/internal/testenv/dynamotest"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

const workload = "agentauth-test"

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stack is consentflow's callback (the production handler behind the API
// Gateway stand-in) on DynamoDB Local, with agentcoretest as AgentCore
// Identity: what an agent using agentauth talks to.
type stack struct {
	t           testing.TB
	srv         *agentcoretest.Server
	cfg         aws.Config // AgentCore: srv; everything else: DynamoDB Local
	callbackURL string
	table       string
	store       *state.Store
	logs        *syncBuffer
	browser     *http.Client
}

func newStack(t testing.TB) *stack {
	t.Helper()
	db := dynamotest.Shared(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, table: dynamotest.TableName(t), logs: &syncBuffer{},
		callbackURL: "http://" + ln.Addr().String() + contract.CallbackPath}
	s.srv = agentcoretest.NewServer(
		agentcoretest.WithWorkload(workload, s.callbackURL),
		agentcoretest.WithProvider("github"),
		agentcoretest.WithAPIKeyProvider("weather", "wk-123"),
	)
	t.Cleanup(s.srv.Close)
	s.cfg = s.srv.Config()
	s.cfg.BaseEndpoint = aws.String(db.Endpoint())
	ddb := dynamodb.NewFromConfig(s.cfg)
	ctx := context.Background()
	if err := state.EnsureTable(ctx, ddb, s.table); err != nil {
		t.Fatal(err)
	}
	s.store = state.New(ddb, s.table, state.WithClock(s.srv.Now), state.WithCallTimeout(15*time.Second))

	env := map[string]string{
		contract.EnvSessionsTable: s.table,
		contract.EnvWorkloadName:  workload,
		contract.EnvReturnURL:     s.callbackURL,
		contract.EnvBindingMode:   contract.BindingCode,
	}
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cb, err := callback.New(callback.Clients{
		AgentCore: bedrockagentcore.NewFromConfig(s.cfg), DynamoDB: ddb, SFN: sfn.NewFromConfig(s.cfg),
	}, func(k string) string { return env[k] }, log, app.WithClock(s.srv.Now), app.WithStoreCallTimeout(15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	gw, err := apigw.New(apigw.Config{Routes: []apigw.Route{
		{Key: "GET " + contract.CallbackPath, Handler: cb.Handle},
		{Key: "POST " + contract.CallbackPath, Handler: cb.Handle},
	}})
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: gw, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	s.browser = &http.Client{Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return s
}

// client is an agentauth client of the stack: push waiting through
// consentflow's table unless polling is asked for.
func (s *stack) client(push bool, opts ...agentauth.Option) *agentauth.Client {
	s.t.Helper()
	base := []agentauth.Option{
		agentauth.WithWorkloadName(workload),
		agentauth.WithReturnURL(s.callbackURL),
		agentauth.WithClock(s.srv.Now),
		agentauth.WithLogger(slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}
	if push {
		base = append(base, agentauth.WithSessionsTable(s.table))
	}
	c, err := agentauth.New(s.cfg, append(base, opts...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

var (
	outcomeRe = regexp.MustCompile(`data-outcome="([a-z]+)"`)
	headingRe = regexp.MustCompile(`<h1>([^<]*)</h1>`)
)

// visit is the browser at the callback: the method, the callback URL the
// provider redirected to, and the form (POST). It returns the page's
// outcome.
func (s *stack) visit(method, u string, form url.Values) string {
	s.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		s.t.Error(err)
		return ""
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := s.browser.Do(req)
	if err != nil {
		s.t.Error(err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m, h := outcomeRe.FindSubmatch(b), headingRe.FindSubmatch(b)
	if m == nil || h == nil {
		return "?"
	}
	return string(m[1]) + ": " + string(h[1])
}

// consent is the user: consents at the provider, comes back to the
// callback and types code there (a wrong one when asked). It returns the
// outcome of the POST.
func (s *stack) consent(au agentauth.AuthURL, code string) string {
	s.t.Helper()
	back, err := s.srv.Allow(au.URL)
	if err != nil {
		s.t.Error(err)
		return ""
	}
	if !strings.HasPrefix(back, s.callbackURL+"?") {
		s.t.Errorf("redirected to %q", back)
	}
	if o := s.visit("GET", back, nil); o != "confirm: Confirm the connection" {
		s.t.Errorf("confirmation page: %s", o)
	}
	return s.visit("POST", back, url.Values{"code": {code}})
}

// countOp counts the calls of op in calls.
func countOp(calls []agentcoretest.Call, op string) int {
	n := 0
	for _, c := range calls {
		if c.Op == op {
			n++
		}
	}
	return n
}

// noSecrets fails when a secret appears in the logs.
func (s *stack) noSecrets(secrets ...string) {
	s.t.Helper()
	logs := s.logs.String()
	for _, v := range secrets {
		if v != "" && strings.Contains(logs, v) {
			s.t.Errorf("a secret (%d characters) appears in the logs", len(v))
		}
	}
}
