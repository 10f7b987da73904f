// Package resumer wires the resumer function: it reads its configuration
// (the sessions table, the event bus), builds the DynamoDB, Step Functions
// and EventBridge clients and returns its driving adapter, an
// internal/resume Handler that delivers settled sessions' outboxes and
// publishes their completion events.
// functions/resumer only calls FromEnvironment and starts the runtime.
package resumer

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/consentflow/consentflow/internal/adapters/awsconf"
	"github.com/consentflow/consentflow/internal/adapters/eventbus"
	"github.com/consentflow/consentflow/internal/adapters/stepfunctions"
	"github.com/consentflow/consentflow/internal/app"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/resume"
	"github.com/consentflow/consentflow/internal/state"
)

// Clients are the AWS service clients the resumer function uses.
type Clients struct {
	DynamoDB *dynamodb.Client
	SFN      stepfunctions.API
	Events   eventbus.API
}

// ClientsFromConfig builds the clients from the shared configuration.
func ClientsFromConfig(cfg aws.Config) Clients {
	return Clients{DynamoDB: dynamodb.NewFromConfig(cfg), SFN: sfn.NewFromConfig(cfg), Events: eventbridge.NewFromConfig(cfg)}
}

// FromEnvironment is the production wiring.
func FromEnvironment(ctx context.Context, log *slog.Logger) (*resume.Handler, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration failed: %w", err)
	}
	return New(ClientsFromConfig(cfg), os.Getenv, log)
}

// New wires the resumer handler from configuration: contract.EnvSessionsTable
// (required) and contract.EnvEventBusName (default
// contract.DefaultEventBusName), the bus its completion events go to.
func New(cl Clients, get app.Getenv, log *slog.Logger, opts ...app.Option) (*resume.Handler, error) {
	o := app.Apply(opts)
	table, err := app.Required(get, contract.EnvSessionsTable)
	if err != nil {
		return nil, err
	}
	if cl.Events == nil {
		return nil, fmt.Errorf("configuration: the resumer needs an EventBridge client for its completion events")
	}
	bus := app.Or(get, contract.EnvEventBusName, contract.DefaultEventBusName)
	return &resume.Handler{
		Deliverer: &flow.Deliverer{
			Store:   state.New(cl.DynamoDB, table, state.WithClock(o.Clock)),
			Resumer: stepfunctions.Resumer{API: cl.SFN},
			Clock:   o.Clock,
			Log:     log,
		},
		Announcer: &flow.Announcer{Notifier: eventbus.Notifier{API: cl.Events, Bus: bus}, Log: log},
		Log:       log,
		Clock:     o.Clock,
	}, nil
}
