package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/consentflow/consentflow/agentauth"
	"github.com/consentflow/consentflow/examples/agent"
	"github.com/consentflow/consentflow/internal/app/continuation"
	"github.com/consentflow/consentflow/internal/cont"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/emulator"
	"github.com/consentflow/consentflow/internal/local/runner"
)

// demoRuntimeARN is the agent runtime the demo registers in the emulator: the example agent.
const demoRuntimeARN = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/demo_agent-a1B2c3D4e5"

// startAgent runs examples/agent on 127.0.0.1 (as AgentCore Runtime runs the agent's
// container) and registers it as demoRuntimeARN. The emulator gives the runtime its own
// workload identity, as AgentCore does; the vault keeps the user's token under consentflow's,
// so the agent mints for that one (agentauth.WithWorkloadName). It returns a stop function.
func startAgent(s *runner.Stack, cfg config) (func(), error) {
	awsCfg := aws.Config{
		Region:       runner.Region,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIALOCALEXAMPLE", "local-secret-not-used", ""),
		BaseEndpoint: aws.String(s.EmulatorURL),
	}
	client, err := agentauth.New(awsCfg, agentauth.WithReturnURL(s.CallbackURL), agentauth.WithWorkloadName(runner.WorkloadName))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := agent.Handler(client, agent.Settings{Provider: cfg.provider, Scopes: cfg.scopes,
		APIURL: s.EmulatorURL + emulator.ProviderAPIPath + cfg.provider + "/userinfo"}, slog.New(slog.DiscardHandler))
	srv := &http.Server{Handler: agentauth.Middleware(h), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
	if err := s.Emulator.AddAgentRuntime(emulator.AgentRuntime{ARN: demoRuntimeARN, URL: "http://" + ln.Addr().String()}); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// continueWith is the demo's continueWith input: the example agent, asked to read the
// user's profile at the provider.
func continueWith() map[string]any {
	return map[string]any{
		"agentRuntimeArn": demoRuntimeARN,
		"payload":         map[string]any{"prompt": "The user connected: who are they at the provider?"},
	}
}

// continueAgent plays the state machine's ContinueAgent step: the production continue
// handler (internal/cont through internal/app/continuation), with the AUTHORIZED result and
// the execution's ARN (from which the runtime session is derived), through the emulator's
// InvokeAgentRuntime to the example agent.
func continueAgent(ctx context.Context, s *runner.Stack, executionARN string, output json.RawMessage) (*cont.Summary, error) {
	env := map[string]string{contract.EnvAgentRuntimeARNs: demoRuntimeARN, "AWS_REGION": runner.Region}
	h, err := continuation.New(emulator.NewClient(s.EmulatorURL), func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	var cw flow.ContinueWith
	b, _ := json.Marshal(continueWith())
	if err := json.Unmarshal(b, &cw); err != nil {
		return nil, err
	}
	event, err := json.Marshal(map[string]any{"continueWith": &cw, "authorization": output, "executionId": executionARN})
	if err != nil {
		return nil, err
	}
	sum, err := h.Handle(ctx, event)
	if err != nil {
		return nil, fmt.Errorf("the ContinueAgent step failed: %v", err)
	}
	return sum, nil
}
