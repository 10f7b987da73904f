// Package eventbus publishes consentflow's events to Amazon EventBridge.
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

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// API is the subset of *eventbridge.Client used here.
type API interface {
	PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// Notifier implements flow.Notifier.
type Notifier struct {
	API API
	Bus string // name or ARN; "default" for the account's default bus
}

var _ flow.Notifier = Notifier{}

// AuthorizationRequired publishes one event; a partially failed PutEvents
// (FailedEntryCount > 0) is an error.
func (n Notifier) AuthorizationRequired(ctx context.Context, ev flow.AuthorizationRequired) error {
	detail, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	out, err := n.API.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{{
		Source:       aws.String(contract.EventSource),
		DetailType:   aws.String(contract.DetailTypeAuthorizationRequired),
		Detail:       aws.String(string(detail)),
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
