// Package continuation wires the continue function (the ContinueAgent step):
// it reads its configuration (contract.EnvAgentRuntimeARNs, required, and
// AWS_REGION), builds the bedrockagentcore client and returns its driving
// adapter, an internal/cont Handler. functions/continue only calls
// FromEnvironment and starts the runtime.
package continuation

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"

	"github.com/consentflow/consentflow/internal/adapters/agentruntime"
	"github.com/consentflow/consentflow/internal/adapters/awsconf"
	"github.com/consentflow/consentflow/internal/cont"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// FromEnvironment is the production wiring.
func FromEnvironment(ctx context.Context, log *slog.Logger) (*cont.Handler, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration failed: %w", err)
	}
	return New(bedrockagentcore.NewFromConfig(cfg), os.Getenv, log)
}

// New wires the continue handler: api is AgentCore's data plane client,
// get reads the configuration (os.Getenv). It does not use internal/app,
// which links the sessions store this function has no use for.
func New(api agentruntime.API, get func(string) string, log *slog.Logger) (*cont.Handler, error) {
	allowed, err := flow.ParseAgentRuntimeARNs(get(contract.EnvAgentRuntimeARNs))
	if err != nil {
		return nil, fmt.Errorf("configuration: %s: %w", contract.EnvAgentRuntimeARNs, err)
	}
	if len(allowed) == 0 {
		return nil, fmt.Errorf("configuration: %s is required (the agent runtime ARNs, comma-separated)", contract.EnvAgentRuntimeARNs)
	}
	c := &cont.Continuer{Runtime: agentruntime.Runtime{API: api}, Allowed: allowed, Region: get("AWS_REGION"), Log: log}
	return &cont.Handler{Continuer: c, Log: log}, nil
}
