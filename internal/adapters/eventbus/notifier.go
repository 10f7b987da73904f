// Package eventbus publishes consentflow's events (package events) to
// Amazon EventBridge.
package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"

	"github.com/consentflow/consentflow/events"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// API is the subset of *eventbridge.Client used here.
type API interface {
	PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Notifier implements flow.Notifier (initiate) and flow.CompletionNotifier
// (resumer): one PutEvents entry per event, source contract.EventSource.
type Notifier struct {
	API API
	Bus string // name or ARN; "default" for the account's default bus
}

var (
	_ flow.Notifier           = Notifier{}
	_ flow.CompletionNotifier = Notifier{}
)

// AuthorizationRequired publishes one event; a partially failed PutEvents
// (FailedEntryCount > 0) is an error.
func (n Notifier) AuthorizationRequired(ctx context.Context, ev flow.AuthorizationRequired) error {
	return n.put(ctx, contract.DetailTypeAuthorizationRequired, ev)
}

// AuthorizationCompleted publishes one event, as AuthorizationRequired.
func (n Notifier) AuthorizationCompleted(ctx context.Context, ev events.AuthorizationCompleted) error {
	return n.put(ctx, contract.DetailTypeAuthorizationCompleted, ev)
}

// AuthorizationFailed publishes one event, as AuthorizationRequired.
func (n Notifier) AuthorizationFailed(ctx context.Context, ev events.AuthorizationFailed) error {
	return n.put(ctx, contract.DetailTypeAuthorizationFailed, ev)
}

// put publishes detail as one entry. Errors name the API's error code,
// never the entry's content or the service's message.
func (n Notifier) put(ctx context.Context, detailType string, detail any) error {
	b, err := json.Marshal(detail)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	out, err := n.API.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		Source:       aws.String(contract.EventSource),
		DetailType:   aws.String(detailType),
		Detail:       aws.String(string(b)),
		EventBusName: aws.String(n.Bus),
	}}})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return fmt.Errorf("PutEvents: %s", ae.ErrorCode())
		}
		return fmt.Errorf("PutEvents: request failed (%T)", errors.Unwrap(err))
	}
	if out.FailedEntryCount > 0 {
		code := ""
		if len(out.Entries) > 0 {
			code = aws.ToString(out.Entries[0].ErrorCode)
		}
		return fmt.Errorf("PutEvents: entry rejected (%s)", code)
	}
	return nil
}
