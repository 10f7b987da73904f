package cont

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// Handler is the continue function's driving adapter: Step Functions
// invokes it with the Request; a failure is a Lambda error whose errorType
// is its name (contract.ErrAgentRuntime*, contract.ErrInvalidInput), on
// which the state machine retries (throttling) or catches.
type Handler struct {
	Continuer *Continuer
	Log       *slog.Logger
}

// Handle is the Lambda handler.
func (h *Handler) Handle(ctx context.Context, event json.RawMessage) (*Summary, error) {
	r, err := ParseRequest(event)
	if err == nil {
		var s *Summary
		if s, err = h.Continuer.Continue(ctx, r); err == nil {
			return s, nil
		}
	}
	f := flow.AsFailure(err, contract.ErrAgentRuntimeUnavailable)
	if h.Log != nil {
		h.Log.WarnContext(ctx, "continue failed", "error", f.Name, "detail", f.Message)
	}
	return nil, messages.InvokeResponse_Error{Type: f.Name, Message: f.Message}
}
