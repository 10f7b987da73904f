// Command agent runs the example agent (package agent) on port 8080, as AgentCore Runtime
// runs an agent's container: POST /invocations and GET /ping.
//
// Settings (environment): AGENT_WORKLOAD_NAME (consentflow's workload identity, the stack's
// WorkloadName output: the users' tokens are in the vault under it, and the runtime's own
// identity does not see them; the execution role attaches the stack's AgentTokenPolicyArn),
// AGENT_PROVIDER (credential provider), AGENT_SCOPES (space-separated), AGENT_API_URL (the
// provider API to call), AGENT_RETURN_URL (consentflow's CallbackUrl, the return URL
// registered on its workload identity), PORT (default 8080). The agent must be reachable only
// through AgentCore Runtime: it trusts the invocation's user id header. AWS configuration as usual (locally
// AWS_ENDPOINT_URL_BEDROCK_AGENTCORE names the emulator).
package main

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/consentflow/consentflow/agentauth"
	"github.com/consentflow/consentflow/examples/agent"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Error("AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	workload := os.Getenv("AGENT_WORKLOAD_NAME")
	if workload == "" {
		log.Error("AGENT_WORKLOAD_NAME is required: consentflow's workload identity (the stack's WorkloadName output)")
		os.Exit(1)
	}
	returnURL := os.Getenv("AGENT_RETURN_URL")
	if returnURL == "" {
		log.Error("AGENT_RETURN_URL is required: consentflow's CallbackUrl (registered on its workload identity)")
		os.Exit(1)
	}
	opts := []agentauth.Option{agentauth.WithWorkloadName(workload), agentauth.WithReturnURL(returnURL)}
	client, err := agentauth.New(cfg, opts...)
	if err != nil {
		log.Error("agentauth", "error", err.Error())
		os.Exit(1)
	}
	s := agent.Settings{Provider: os.Getenv("AGENT_PROVIDER"), Scopes: strings.Fields(os.Getenv("AGENT_SCOPES")), APIURL: os.Getenv("AGENT_API_URL")}
	if s.Provider == "" || len(s.Scopes) == 0 || s.APIURL == "" {
		log.Error("AGENT_PROVIDER, AGENT_SCOPES and AGENT_API_URL are required")
		os.Exit(1)
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{Addr: ":" + port, Handler: agentauth.Middleware(agent.Handler(client, s, log)), ReadHeaderTimeout: 10 * time.Second}
	log.Info("agent listening", "port", port)
	if err := srv.ListenAndServe(); err != nil {
		log.Error("serve", "error", err.Error())
		os.Exit(1)
	}
}
