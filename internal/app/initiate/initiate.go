// Package initiate wires the initiate function: it reads its configuration
// (environment variables named in internal/contract), builds the AWS clients
// and adapters it uses (AgentCore Identity, DynamoDB, Step Functions,
// EventBridge) and returns its driving adapter, an internal/invoke Handler.
// functions/initiate only calls FromEnvironment and starts the runtime.
package initiate

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/consentflow/consentflow/internal/adapters/agentcore"
	"github.com/consentflow/consentflow/internal/adapters/awsconf"
	"github.com/consentflow/consentflow/internal/adapters/eventbus"
	"github.com/consentflow/consentflow/internal/adapters/stepfunctions"
	"github.com/consentflow/consentflow/internal/app"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/invoke"
	"github.com/consentflow/consentflow/internal/state"
)

// Clients are the AWS service clients the initiate function uses.
type Clients struct {
	AgentCore agentcore.API
	DynamoDB  *dynamodb.Client
	SFN       stepfunctions.API
	Events    eventbus.API
}

// ClientsFromConfig builds the clients from the shared configuration
// (endpoint overrides come from the SDK's AWS_ENDPOINT_URL_* settings).
func ClientsFromConfig(cfg aws.Config) Clients {
	return Clients{
		AgentCore: bedrockagentcore.NewFromConfig(cfg),
		DynamoDB:  dynamodb.NewFromConfig(cfg),
		SFN:       sfn.NewFromConfig(cfg),
		Events:    eventbridge.NewFromConfig(cfg),
	}
}

// FromEnvironment is the production wiring: the SDK's default configuration
// and os.Getenv.
func FromEnvironment(ctx context.Context, log *slog.Logger) (*invoke.Handler, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration failed: %w", err)
	}
	return New(ClientsFromConfig(cfg), os.Getenv, log)
}

// New wires the initiate handler from configuration.
func New(cl Clients, get app.Getenv, log *slog.Logger, opts ...app.Option) (*invoke.Handler, error) {
	o := app.Apply(opts)
	c, err := app.ReadCommon(get)
	if err != nil {
		return nil, err
	}
	bus := app.Or(get, contract.EnvEventBusName, contract.DefaultEventBusName)
	if c.Binding == flow.BindingNone {
		log.Warn("binding mode none: callbacks complete without proof that the browser belongs to the user")
	}
	runtimes, err := flow.ParseAgentRuntimeARNs(get(contract.EnvAgentRuntimeARNs))
	if err != nil {
		return nil, fmt.Errorf("configuration: %s: %w", contract.EnvAgentRuntimeARNs, err)
	}
	appURLs, err := app.AppReturnURLs(get)
	if err != nil {
		return nil, err
	}
	x, err := flow.NewInitiator(flow.Config{WorkloadName: c.WorkloadName, ReturnURL: c.ReturnURL, Binding: c.Binding,
		UserTokens: get(contract.EnvUserTokenIssuer) != "", AgentRuntimes: runtimes, Region: get("AWS_REGION"),
		AppReturnURLs: appURLs}, flow.Deps{
		Identity: agentcore.Identity{API: cl.AgentCore},
		Store:    state.New(cl.DynamoDB, c.Table, o.StoreOptions()...),
		Resumer:  stepfunctions.Resumer{API: cl.SFN},
		Notifier: eventbus.Notifier{API: cl.Events, Bus: bus},
		Clock:    o.Clock,
		Random:   app.RandomBytes,
		Log:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("configuration: %w (%s / %s)", err, contract.EnvWorkloadName, contract.EnvReturnURL)
	}
	return &invoke.Handler{Domain: x, Log: log}, nil
}
