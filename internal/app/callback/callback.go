// Package callback wires the callback function: it reads its configuration
// (environment variables named in internal/contract), builds the AWS clients
// and adapters it uses (AgentCore Identity, DynamoDB, Step Functions; never
// EventBridge) and returns its driving adapter, an internal/web Handler.
// functions/callback only calls FromEnvironment and starts the runtime.
package callback

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/consentflow/consentflow/internal/adapters/agentcore"
	"github.com/consentflow/consentflow/internal/adapters/awsconf"
	"github.com/consentflow/consentflow/internal/adapters/stepfunctions"
	"github.com/consentflow/consentflow/internal/app"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/state"
	"github.com/consentflow/consentflow/internal/web"
)

// Clients are the AWS service clients the callback function uses.
type Clients struct {
	AgentCore agentcore.API
	DynamoDB  *dynamodb.Client
	SFN       stepfunctions.API
}

// ClientsFromConfig builds the clients from the shared configuration
// (endpoint overrides come from the SDK's AWS_ENDPOINT_URL_* settings).
func ClientsFromConfig(cfg aws.Config) Clients {
	return Clients{
		AgentCore: bedrockagentcore.NewFromConfig(cfg),
		DynamoDB:  dynamodb.NewFromConfig(cfg),
		SFN:       sfn.NewFromConfig(cfg),
	}
}

// FromEnvironment is the production wiring: the SDK's default configuration
// and os.Getenv.
func FromEnvironment(ctx context.Context, log *slog.Logger) (*web.Handler, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration failed: %w", err)
	}
	return New(ClientsFromConfig(cfg), os.Getenv, log)
}

// New wires the callback handler from configuration.
func New(cl Clients, get app.Getenv, log *slog.Logger, opts ...app.Option) (*web.Handler, error) {
	o := app.Apply(opts)
	// The workload identity and the callback's own registered URL let the
	// callback ask AgentCore's vault whether a session completed when
	// CompleteResourceTokenAuth's answer was lost or refused.
	c, err := app.ReadCommon(get)
	if err != nil {
		return nil, err
	}
	cookie := app.Or(get, contract.EnvUserTokenCookie, contract.DefaultUserTokenCookie)
	cfg := flow.CallbackConfig{Binding: c.Binding, WorkloadName: c.WorkloadName, ReturnURL: c.ReturnURL, CompleteTimeout: o.CompleteTimeout}
	cb, err := flow.NewCallback(cfg, flow.Deps{
		Identity: agentcore.Identity{API: cl.AgentCore},
		Store:    state.New(cl.DynamoDB, c.Table, o.StoreOptions()...),
		Resumer:  stepfunctions.Resumer{API: cl.SFN},
		Clock:    o.Clock,
		Random:   app.RandomBytes,
		Log:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("configuration: %w (%s / %s)", err, contract.EnvWorkloadName, contract.EnvReturnURL)
	}
	return &web.Handler{Domain: cb, UserTokenCookie: cookie, Log: log}, nil
}
