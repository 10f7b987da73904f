package agent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"

	"github.com/consentflow/consentflow/agentauth"
	"github.com/consentflow/consentflow/agentcoretest"
)

const (
	runtimeARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/example_agent-a1B2c3D4e5"
	workload   = "consentflow"
	returnURL  = "https://consent.example.com/oauth2/callback"
)

// The whole loop an agent sees, against agentcoretest: invoked through
// InvokeAgentRuntime for a user who has not consented it answers
// CONSENT_REQUIRED; once the user has consented under consentflow's
// workload identity (as consentflow would complete the session) it fetches
// the token from the vault with a workload access token it mints for that
// identity and the invocation's user, and calls the provider's protected
// API, which accepts only tokens of its vault. With the token AgentCore
// Runtime hands it (its own workload identity's) it would not see it.
func TestAgentThroughInvokeAgentRuntime(t *testing.T) {
	srv := agentcoretest.NewServer(agentcoretest.WithWorkload(workload, returnURL), agentcoretest.WithProvider("github"))
	defer srv.Close()
	settings := Settings{Provider: "github", Scopes: []string{"repo"}, APIURL: srv.URL + "/provider/github/userinfo"}
	client, err := agentauth.New(srv.Config(), agentauth.WithReturnURL(returnURL), agentauth.WithWorkloadName(workload))
	if err != nil {
		t.Fatal(err)
	}
	agent := httptest.NewServer(agentauth.Middleware(Handler(client, settings, slog.New(slog.DiscardHandler))))
	defer agent.Close()
	if err := srv.AddAgentRuntime(runtimeARN, agent.URL); err != nil {
		t.Fatal(err)
	}
	// The same agent without WithWorkloadName: it uses the runtime's own token.
	own, err := agentauth.New(srv.Config(), agentauth.WithReturnURL(returnURL))
	if err != nil {
		t.Fatal(err)
	}
	ownAgent := httptest.NewServer(agentauth.Middleware(Handler(own, settings, slog.New(slog.DiscardHandler))))
	defer ownAgent.Close()
	const ownARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/own_token_agent-a1B2c3D4e5"
	if err := srv.AddAgentRuntime(ownARN, ownAgent.URL); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	invokeAs := func(arn, user string) Answer {
		t.Helper()
		in := &bedrockagentcore.InvokeAgentRuntimeInput{
			AgentRuntimeArn: aws.String(arn), ContentType: aws.String("application/json"),
			Payload: []byte(`{"prompt":"who am I at GitHub?"}`),
		}
		if user != "" {
			in.RuntimeUserId = aws.String(user)
		}
		out, err := srv.Client().InvokeAgentRuntime(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Response.Close()
		b, _ := io.ReadAll(out.Response)
		var a Answer
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("answer %s: %v", b, err)
		}
		return a
	}
	invoke := func() Answer { t.Helper(); return invokeAs(runtimeARN, "github|4242") }
	a := invoke()
	if a.Status != "CONSENT_REQUIRED" || a.AuthorizationURL == "" {
		t.Fatalf("before consent: %+v", a)
	}
	if err := srv.AllowAndComplete(ctx, a.AuthorizationURL); err != nil {
		t.Fatal(err)
	}
	a = invoke()
	var api struct {
		Provider string   `json:"provider"`
		User     string   `json:"user"`
		Scopes   []string `json:"scopes"`
	}
	if err := json.Unmarshal(a.Provider, &api); err != nil || a.Status != "DONE" || api.User != "github|4242" || api.Provider != "github" {
		t.Fatalf("after consent: %+v (%s) %v", a, a.Provider, err)
	}
	// The runtime's own workload identity does not see the token obtained under
	// consentflow's: its GetResourceOauth2Token starts a consent of its own, which AgentCore
	// refuses here (no return URL is registered on the runtime's identity), so the agent fails.
	if out, err := srv.Client().InvokeAgentRuntime(ctx, &bedrockagentcore.InvokeAgentRuntimeInput{
		AgentRuntimeArn: aws.String(ownARN), RuntimeUserId: aws.String("github|4242"),
		ContentType: aws.String("application/json"), Payload: []byte(`{}`),
	}); err == nil {
		b, _ := io.ReadAll(out.Response)
		t.Fatalf("with the runtime's own token the agent answered %s", b)
	}
	if c := srv.CallsTo(agentcoretest.OpGetResourceOauth2Token); len(c) == 0 || c[len(c)-1].Workload != "own_token_agent-a1B2c3D4e5" {
		t.Fatalf("calls %+v", c)
	}
	// Without runtimeUserId there is no user to mint for: the agent fails, it guesses nobody.
	if _, err := srv.Client().InvokeAgentRuntime(ctx, &bedrockagentcore.InvokeAgentRuntimeInput{
		AgentRuntimeArn: aws.String(runtimeARN), ContentType: aws.String("application/json"), Payload: []byte(`{}`),
	}); err == nil {
		t.Fatal("an invocation without a user got an answer")
	}
	// The provider API refuses anything but a vault token.
	res, err := agent.Client().Get(srv.URL + "/provider/github/userinfo")
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("without a token: %v %v", res, err)
	}
	// Outside Runtime (no WorkloadAccessToken) the agent refuses.
	res, err = agent.Client().Post(agent.URL+"/invocations", "application/json", nil)
	if err != nil || res.StatusCode != 400 {
		t.Fatalf("plain request: %v %v", res, err)
	}
	if res, err := agent.Client().Get(agent.URL + "/ping"); err != nil || res.StatusCode != 200 {
		t.Fatalf("ping: %v %v", res, err)
	}
}
