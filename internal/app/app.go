// Package app builds the Lambda handlers from configuration (environment
// variables) and the AWS adapters. functions/*/main.go only call it.
package app

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/consentflow/consentflow/internal/adapters/agentcore"
	"github.com/consentflow/consentflow/internal/adapters/eventbus"
	"github.com/consentflow/consentflow/internal/adapters/stepfunctions"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/state"
	"github.com/consentflow/consentflow/internal/web"
)

// Getenv reads configuration (os.Getenv in production, a map in tests).
type Getenv func(string) string

func required(get Getenv, name string) (string, error) {
	v := get(name)
	if v == "" {
		return "", fmt.Errorf("configuration: %s is not set", name)
	}
	return v, nil
}

func binding(get Getenv) (flow.BindingMode, error) {
	switch v := get(contract.EnvBindingMode); v {
	case "", contract.BindingCode:
		return flow.BindingCode, nil
	case contract.BindingNone:
		return flow.BindingNone, nil
	default:
		return "", fmt.Errorf("configuration: %s must be \"code\" or \"none\"", contract.EnvBindingMode)
	}
}

func randomBytes(b []byte) error {
	_, err := rand.Read(b)
	return err
}

// Clients are the AWS service clients the handlers use.
type Clients struct {
	AgentCore agentcore.API
	DynamoDB  *dynamodb.Client
	SFN       stepfunctions.API
	Events    eventbus.API
}

// ClientsFromConfig builds every client from the one shared configuration
// (endpoint overrides come from the SDK's AWS_ENDPOINT_URL_* settings).
func ClientsFromConfig(cfg aws.Config) Clients {
	return Clients{
		AgentCore: bedrockagentcore.NewFromConfig(cfg),
		DynamoDB:  dynamodb.NewFromConfig(cfg),
		SFN:       sfn.NewFromConfig(cfg),
		Events:    eventbridge.NewFromConfig(cfg),
	}
}

// Option adjusts wiring for local runs and tests.
type Option func(*options)

type options struct{ clock flow.Clock }

// WithClock replaces time.Now (local expiry tests).
func WithClock(c flow.Clock) Option { return func(o *options) { o.clock = c } }

func apply(opts []Option) options {
	o := options{clock: time.Now}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// InitiateHandler is the initiate Lambda's handler.
type InitiateHandler func(ctx context.Context, event json.RawMessage) (*flow.Result, error)

// NewInitiate wires the initiate handler from configuration.
func NewInitiate(cl Clients, get Getenv, log *slog.Logger, opts ...Option) (InitiateHandler, error) {
	o := apply(opts)
	table, err := required(get, contract.EnvSessionsTable)
	if err != nil {
		return nil, err
	}
	workload, err := required(get, contract.EnvWorkloadName)
	if err != nil {
		return nil, err
	}
	returnURL, err := required(get, contract.EnvReturnURL)
	if err != nil {
		return nil, err
	}
	mode, err := binding(get)
	if err != nil {
		return nil, err
	}
	bus := get(contract.EnvEventBusName)
	if bus == "" {
		bus = contract.DefaultEventBusName
	}
	if mode == flow.BindingNone {
		log.Warn("binding mode none: callbacks complete without proof that the browser belongs to the user")
	}
	x, err := flow.NewInitiator(flow.Config{WorkloadName: workload, ReturnURL: returnURL, Binding: mode}, flow.Deps{
		Identity: agentcore.Identity{API: cl.AgentCore},
		Store:    state.New(cl.DynamoDB, table, state.WithClock(o.clock)),
		Resumer:  stepfunctions.Resumer{API: cl.SFN},
		Notifier: eventbus.Notifier{API: cl.Events, Bus: bus},
		Clock:    o.clock,
		Random:   randomBytes,
		Log:      log,
	})
	if err != nil {
		return nil, fmt.Errorf("configuration: %w (%s / %s)", err, contract.EnvWorkloadName, contract.EnvReturnURL)
	}
	return Initiate(x, log), nil
}

// Initiate adapts an Initiator to the Lambda handler signature: failures
// become Lambda errors whose errorType is the failure's name, so a state
// machine can Retry/Catch on it.
func Initiate(x *flow.Initiator, log *slog.Logger) InitiateHandler {
	return func(ctx context.Context, event json.RawMessage) (*flow.Result, error) {
		req, err := flow.ParseRequest(event)
		if err == nil {
			var res *flow.Result
			if res, err = x.Initiate(ctx, req); err == nil {
				return res, nil
			}
		}
		f := flow.AsFailure(err, contract.ErrAgentCoreUnavailable)
		attrs := []any{"error", f.Name, "detail", f.Message, "retryable", f.Retryable()}
		if f.Err != nil && f.Name == contract.ErrStoreUnavailable {
			// Store adapter errors carry the operation and the SDK's error text:
			// DynamoDB messages name tables and conditions, never item values.
			attrs = append(attrs, "cause", f.Err.Error())
		}
		log.WarnContext(ctx, "initiate failed", attrs...)
		return nil, messages.InvokeResponse_Error{Type: f.Name, Message: f.Message}
	}
}

// CallbackHandler is the callback Lambda's handler.
type CallbackHandler func(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// NewCallback wires the callback handler from configuration.
func NewCallback(cl Clients, get Getenv, log *slog.Logger, opts ...Option) (CallbackHandler, error) {
	o := apply(opts)
	table, err := required(get, contract.EnvSessionsTable)
	if err != nil {
		return nil, err
	}
	mode, err := binding(get)
	if err != nil {
		return nil, err
	}
	cookie := get(contract.EnvUserTokenCookie)
	if cookie == "" {
		cookie = contract.DefaultUserTokenCookie
	}
	cb, err := flow.NewCallback(flow.CallbackConfig{Binding: mode}, flow.Deps{
		Identity: agentcore.Identity{API: cl.AgentCore},
		Store:    state.New(cl.DynamoDB, table, state.WithClock(o.clock)),
		Resumer:  stepfunctions.Resumer{API: cl.SFN},
		Clock:    o.clock,
		Random:   randomBytes,
		Log:      log,
	})
	if err != nil {
		return nil, errors.New("configuration: " + err.Error())
	}
	h := &web.Handler{Domain: cb, UserTokenCookie: cookie, Log: log}
	return h.Handle, nil
}
