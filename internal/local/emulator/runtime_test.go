package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"
)

const testRuntimeARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/calendar_agent-a1B2c3D4e5"

// fakeAgent serves the Runtime service contract and records what it got.
type fakeAgent struct {
	mu      sync.Mutex
	headers []http.Header
	bodies  []string
	status  int
	// location, with a 3xx status: where the agent redirects.
	location string
}

func (a *fakeAgent) start(t *testing.T) string {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/ping":
			_, _ = io.WriteString(w, `{"status":"Healthy"}`)
		case r.Method == http.MethodPost && r.URL.Path == "/invocations":
			b, _ := io.ReadAll(r.Body)
			a.mu.Lock()
			a.headers, a.bodies = append(a.headers, r.Header.Clone()), append(a.bodies, string(b))
			status, location := a.status, a.location
			a.mu.Unlock()
			if location != "" {
				w.Header().Set("Location", location)
			}
			if status != 0 {
				http.Error(w, "agent failed", status)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			for _, part := range []string{"data: one\n\n", "data: two\n\n"} {
				_, _ = io.WriteString(w, part)
				w.(http.Flusher).Flush()
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func withRuntime(a *fakeAgent, t *testing.T) func(*Config) {
	url := a.start(t)
	return func(c *Config) {
		c.AgentRuntimes = append(c.AgentRuntimes, AgentRuntime{ARN: testRuntimeARN, URL: url})
	}
}

func TestInvokeAgentRuntimeForwardsToTheAgent(t *testing.T) {
	a := &fakeAgent{}
	e := newEnv(t, withRuntime(a, t))
	ctx := context.Background()
	sid := strings.Repeat("s", 40)
	for _, in := range []*bedrockagentcore.InvokeAgentRuntimeInput{
		{AgentRuntimeArn: aws.String(testRuntimeARN), Payload: []byte(`{"prompt":"go on"}`), ContentType: aws.String("application/json"),
			RuntimeUserId: aws.String("github|4242"), RuntimeSessionId: aws.String(sid), Qualifier: aws.String("DEFAULT")},
		{AgentRuntimeArn: aws.String("calendar_agent-a1B2c3D4e5"), AccountId: aws.String("123456789012"), Payload: []byte(`{}`),
			RuntimeUserId: aws.String("github|4242")},
	} {
		out, err := e.client.InvokeAgentRuntime(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(out.Response)
		out.Response.Close()
		if string(body) != "data: one\n\ndata: two\n\n" || aws.ToString(out.ContentType) != "text/event-stream" ||
			aws.ToString(out.RuntimeSessionId) == "" {
			t.Fatalf("answer %q %+v", body, out)
		}
	}
	if len(a.headers) != 2 {
		t.Fatalf("agent got %d invocations", len(a.headers))
	}
	h := a.headers[0]
	if h.Get(HeaderRuntimeSessionID) != sid || h.Get(HeaderRuntimeUserID) != "github|4242" || a.bodies[0] != `{"prompt":"go on"}` ||
		h.Get("Content-Type") != "application/json" || h.Get("Authorization") != "" {
		t.Fatalf("agent got %v %q", h, a.bodies[0])
	}
	// The WorkloadAccessToken is a real one of the emulator: for the
	// runtime's own workload identity (named after its id) and the
	// invocation's user. That identity is not consentflow's: AgentCore
	// answers it, but with its own vault (here: no return URL registered).
	wat := h.Get(HeaderWorkloadToken)
	if u, ok := e.srv.tokens[wat]; !ok || u.workload != "calendar_agent-a1B2c3D4e5" || u.user.value != "github|4242" {
		t.Fatalf("token minted for %+v", u)
	}
	_, err := e.client.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: aws.String(wat), ResourceCredentialProviderName: aws.String(testProvider),
		Scopes: []string{"repo"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation, ResourceOauth2ReturnUrl: aws.String(testReturnURL),
	})
	var ve *types.ValidationException
	if !errors.As(err, &ve) {
		t.Fatalf("the runtime's token used consentflow's return URL: %v", err)
	}
	// A runtime's identity is linked to it: nobody mints tokens for it.
	_, err = e.client.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String("calendar_agent-a1B2c3D4e5"), UserId: aws.String("github|4242")})
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "linked to a service") {
		t.Fatalf("minting for the runtime's identity: %v", err)
	}
	if ping, err := e.srv.PingAgent(ctx, testRuntimeARN); err != nil || !strings.Contains(ping, "Healthy") {
		t.Fatalf("ping %q %v", ping, err)
	}
	if calls := e.srv.CallsTo(OpInvokeAgentRuntime); len(calls) != 2 || calls[0].Outcome != "invoked" || calls[0].UserKind != "userId" {
		t.Fatalf("calls %+v", calls)
	}
}

func TestInvokeAgentRuntimeErrors(t *testing.T) {
	var followed atomic.Bool
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed.Store(true) }))
	t.Cleanup(other.Close)
	t.Cleanup(func() {
		if followed.Load() {
			t.Error("the emulator followed the agent's redirect")
		}
	})
	elsewhere := other.URL + "/collect"
	a := &fakeAgent{}
	e := newEnv(t, withRuntime(a, t))
	ctx := context.Background()
	valid := func() *bedrockagentcore.InvokeAgentRuntimeInput {
		return &bedrockagentcore.InvokeAgentRuntimeInput{AgentRuntimeArn: aws.String(testRuntimeARN), Payload: []byte(`{}`)}
	}
	var rnf *types.ResourceNotFoundException
	var ve *types.ValidationException
	var rce *types.RuntimeClientError
	var te *types.ThrottlingException
	var ise *types.InternalServerException
	for _, c := range []struct {
		name   string
		mod    func(*bedrockagentcore.InvokeAgentRuntimeInput)
		before func()
		want   any
	}{
		{"unknown runtime", func(in *bedrockagentcore.InvokeAgentRuntimeInput) {
			in.AgentRuntimeArn = aws.String("arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/other-a1B2c3D4e5")
		}, nil, &rnf},
		{"unknown id", func(in *bedrockagentcore.InvokeAgentRuntimeInput) {
			in.AgentRuntimeArn, in.AccountId = aws.String("calendar_agent-a1B2c3D4e5"), aws.String("210987654321")
		}, nil, &rnf},
		{"unknown qualifier", func(in *bedrockagentcore.InvokeAgentRuntimeInput) { in.Qualifier = aws.String("beta") }, nil, &rnf},
		{"id without account", func(in *bedrockagentcore.InvokeAgentRuntimeInput) {
			in.AgentRuntimeArn = aws.String("calendar_agent-a1B2c3D4e5")
		}, nil, &ve},
		{"account pattern", func(in *bedrockagentcore.InvokeAgentRuntimeInput) { in.AccountId = aws.String("12345") }, nil, &ve},
		{"session too short", func(in *bedrockagentcore.InvokeAgentRuntimeInput) { in.RuntimeSessionId = aws.String("short") }, nil, &ve},
		{"user too long", func(in *bedrockagentcore.InvokeAgentRuntimeInput) {
			in.RuntimeUserId = aws.String(strings.Repeat("u", 1025))
		}, nil, &ve},
		{"agent 500", nil, func() { a.status = 500 }, &rce},
		{"agent 400", nil, func() { a.status = 400 }, &rce},
		// The emulator follows no redirect: the WorkloadAccessToken would go along.
		{"agent redirects", nil, func() { a.status, a.location = 307, elsewhere }, &rce},
		{"throttled", nil, func() { a.status, a.location = 0, ""; e.srv.InjectFault(OpInvokeAgentRuntime, 1, Throttle) }, &te},
		{"internal", nil, func() { e.srv.InjectFault(OpInvokeAgentRuntime, 1, InternalError) }, &ise},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := valid()
			if c.mod != nil {
				c.mod(in)
			}
			if c.before != nil {
				a.mu.Lock()
				c.before()
				a.mu.Unlock()
			}
			_, err := e.client.InvokeAgentRuntime(ctx, in)
			if err == nil || !errors.As(err, c.want) {
				t.Fatalf("err %v, want %T", err, c.want)
			}
		})
	}
}

func TestAgentRuntimeConfig(t *testing.T) {
	for _, rt := range []AgentRuntime{
		{ARN: "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/*", URL: "http://127.0.0.1:8080"},
		{ARN: testRuntimeARN, URL: "ftp://127.0.0.1"},
		{ARN: testRuntimeARN, URL: "http://127.0.0.1:8080/invocations"},
		{ARN: testRuntimeARN, URL: "http://10.0.0.1:8080"},
		{ARN: testRuntimeARN, URL: "http://agent.example.com"},
		{ARN: testRuntimeARN, URL: "http://user@127.0.0.1:8080"},
		{ARN: testRuntimeARN, URL: "http://127.0.0.1:8080", Endpoints: []string{"1prod"}},
	} {
		if _, err := New(Config{AgentRuntimes: []AgentRuntime{rt}}); err == nil {
			t.Errorf("%+v accepted", rt)
		}
	}
	// A runtime's own workload identity is named after its id: not an existing one.
	if _, err := New(Config{Workloads: []Workload{{Name: "calendar_agent-a1B2c3D4e5"}},
		AgentRuntimes: []AgentRuntime{{ARN: testRuntimeARN, URL: "http://[::1]:8080"}}}); err == nil {
		t.Error("a runtime took over an existing workload identity")
	}
	var cfg Config
	if err := json.Unmarshal([]byte(`{"agentRuntimes":[{"arn":"`+testRuntimeARN+`","url":"http://127.0.0.1:8080"}]}`), &cfg); err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil || !s.linked["calendar_agent-a1B2c3D4e5"] {
		t.Fatalf("%v %+v", err, s)
	}
}
