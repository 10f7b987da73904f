// Package invoke presents the initiate flow as a Lambda function invoked
// directly (by Step Functions, with or without .waitForTaskToken): it parses
// the event, calls the domain, and turns failures into Lambda errors whose
// errorType is the failure's name (contract.Err*), so a state machine can
// Retry/Catch on it. It is the initiate function's driving adapter, as
// internal/web is the callback function's.
package invoke

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// Domain is the slice of *flow.Initiator the handler needs.
type Domain interface {
	Initiate(ctx context.Context, req flow.Request) (*flow.Result, error)
}

var _ Domain = (*flow.Initiator)(nil)

// Handler turns invocation events into domain calls.
type Handler struct {
	Domain Domain
	Log    *slog.Logger
}

// Handle is the Lambda handler. A failure is returned as
// messages.InvokeResponse_Error{Type: <failure name>, Message: <its safe
// message>}; an unclassified error counts as contract.ErrAgentCoreUnavailable
// (retryable) and its text is not returned.
func (h *Handler) Handle(ctx context.Context, event json.RawMessage) (*flow.Result, error) {
	req, err := flow.ParseRequest(event)
	if err == nil {
		var res *flow.Result
		if res, err = h.Domain.Initiate(ctx, req); err == nil {
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
	h.Log.WarnContext(ctx, "initiate failed", attrs...)
	return nil, messages.InvokeResponse_Error{Type: f.Name, Message: f.Message}
}
