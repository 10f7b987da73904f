// Package agentruntime adapts AgentCore Runtime's InvokeAgentRuntime
// (aws-sdk-go-v2 bedrockagentcore) to cont.Runtime.
package agentruntime

import (
	"context"
	"errors"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/consentflow/consentflow/internal/cont"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// API is the subset of *bedrockagentcore.Client used here.
type API interface {
	InvokeAgentRuntime(context.Context, *bedrockagentcore.InvokeAgentRuntimeInput, ...func(*bedrockagentcore.Options)) (*bedrockagentcore.InvokeAgentRuntimeOutput, error)
}

// Runtime implements cont.Runtime.
type Runtime struct{ API API }

var _ cont.Runtime = Runtime{}

// Invoke calls InvokeAgentRuntime once: the SDK does not retry it (an
// invocation that failed with a server error may have run the agent), so
// the state machine retries only throttling, after which nothing ran.
func (r Runtime) Invoke(ctx context.Context, in cont.Invocation) (*cont.Response, error) {
	req := &bedrockagentcore.InvokeAgentRuntimeInput{
		AgentRuntimeArn: aws.String(in.AgentRuntime),
		Payload:         in.Payload,
		ContentType:     aws.String("application/json"),
		Accept:          aws.String("application/json, text/event-stream"),
	}
	opt := func(v string) *string {
		if v == "" {
			return nil
		}
		return aws.String(v)
	}
	req.AccountId, req.Qualifier = opt(in.AccountID), opt(in.Qualifier)
	req.RuntimeSessionId, req.RuntimeUserId = opt(in.RuntimeSessionID), opt(in.RuntimeUserID)
	out, err := r.API.InvokeAgentRuntime(ctx, req, func(o *bedrockagentcore.Options) {
		o.RetryMaxAttempts = 1
		// A runtime ARN names its region: the call goes there (and is signed for it),
		// not to the function's region. The id form is in the function's region.
		if t, ok := contract.ParseAgentRuntimeTarget(in.AgentRuntime); ok {
			o.Region = t.Region
		}
	})
	if err != nil {
		return nil, Classify(err)
	}
	status := http.StatusOK
	if out.StatusCode != nil {
		status = int(*out.StatusCode)
	}
	return &cont.Response{StatusCode: status, ContentType: aws.ToString(out.ContentType),
		RuntimeSessionID: aws.ToString(out.RuntimeSessionId), Body: out.Response}, nil
}

// Classify maps an SDK error to a named flow.Failure. Upstream messages are
// dropped (an agent's error may quote its input); the error code is kept.
func Classify(err error) error {
	var (
		te  *types.ThrottlingException
		sq  *types.ServiceQuotaExceededException
		rc  *types.RetryableConflictException
		ve  *types.ValidationException
		rce *types.RuntimeClientError
		ade *types.AccessDeniedException
		rnf *types.ResourceNotFoundException
		ise *types.InternalServerException
	)
	switch {
	case errors.As(err, &te), errors.As(err, &sq), errors.As(err, &rc):
		return &flow.Failure{Name: contract.ErrAgentRuntimeThrottled, Message: "AgentCore Runtime throttled the invocation (" + code(err) + ")", Err: err}
	case errors.As(err, &ve):
		return &flow.Failure{Name: contract.ErrAgentRuntimeRejected, Message: "AgentCore Runtime rejected the request (ValidationException)", Err: err}
	case errors.As(err, &rce):
		return &flow.Failure{Name: contract.ErrAgentRuntimeRejected, Message: "the agent failed the invocation (RuntimeClientError)", Err: err}
	case errors.As(err, &ade):
		return &flow.Failure{Name: contract.ErrAgentRuntimeAccessDenied, Message: "AgentCore Runtime denied the invocation (needs InvokeAgentRuntime and InvokeAgentRuntimeForUser)", Err: err}
	case errors.As(err, &rnf):
		return &flow.Failure{Name: contract.ErrAgentRuntimeNotFound, Message: "agent runtime or endpoint not found", Err: err}
	case errors.As(err, &ise):
		return &flow.Failure{Name: contract.ErrAgentRuntimeUnavailable, Message: "AgentCore Runtime internal error", Err: err}
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusTooManyRequests {
		return &flow.Failure{Name: contract.ErrAgentRuntimeThrottled, Message: "AgentCore Runtime throttled the invocation (HTTP 429)", Err: err}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultClient {
		return &flow.Failure{Name: contract.ErrAgentRuntimeRejected, Message: "AgentCore Runtime refused the invocation (" + ae.ErrorCode() + ")", Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &flow.Failure{Name: contract.ErrAgentRuntimeUnavailable, Message: "no answer from AgentCore Runtime in time", Err: err}
	}
	return &flow.Failure{Name: contract.ErrAgentRuntimeUnavailable, Message: "AgentCore Runtime unavailable (" + code(err) + ")", Err: err}
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "no answer"
}
