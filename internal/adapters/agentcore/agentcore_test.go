package agentcore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"
	"github.com/aws/smithy-go"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

const secret = "state-or-token-that-must-not-leak"

func TestClassify(t *testing.T) {
	msg := aws.String("Value '" + secret + "' at 'customState' failed to satisfy constraint")
	cases := []struct {
		err       error
		name      string
		retryable bool
	}{
		{&types.ValidationException{Message: msg, Reason: types.ValidationExceptionReasonFieldValidationFailed,
			FieldList: []types.ValidationExceptionField{{Name: aws.String("customState"), Message: msg}}}, contract.ErrValidationFailed, false},
		{&types.AccessDeniedException{Message: msg}, contract.ErrAccessDenied, false},
		{&types.ResourceNotFoundException{Message: msg}, contract.ErrResourceNotFound, false},
		{&types.UnauthorizedException{Message: msg}, contract.ErrUnauthorized, false},
		{&types.ThrottlingException{Message: msg}, contract.ErrThrottled, true},
		{&types.InternalServerException{Message: msg}, contract.ErrAgentCoreUnavailable, true},
		{&smithy.GenericAPIError{Code: "ServiceUnavailable", Message: secret, Fault: smithy.FaultServer}, contract.ErrAgentCoreUnavailable, true},
		{&smithy.GenericAPIError{Code: "MissingAuthenticationTokenException", Message: secret, Fault: smithy.FaultClient}, contract.ErrAccessDenied, false},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), contract.ErrAgentCoreUnavailable, true},
		{errors.New("connection refused " + secret), contract.ErrAgentCoreUnavailable, true},
	}
	for _, tc := range cases {
		wrapped := &smithy.OperationError{ServiceID: "Bedrock AgentCore", OperationName: "GetResourceOauth2Token", Err: tc.err}
		var f *flow.Failure
		if !errors.As(Classify(wrapped), &f) {
			t.Fatalf("%T: not a Failure", tc.err)
		}
		if f.Name != tc.name || f.Retryable() != tc.retryable {
			t.Errorf("%T: got %s retryable=%v, want %s retryable=%v", tc.err, f.Name, f.Retryable(), tc.name, tc.retryable)
		}
		if strings.Contains(f.Error(), secret) {
			t.Errorf("%T: upstream message echoed: %q", tc.err, f.Error())
		}
	}
	if Classify(nil) != nil {
		t.Fatal("nil error classified")
	}
}

func TestCompleteNeedsExactlyOneIdentifier(t *testing.T) {
	id := Identity{}
	for _, u := range []flow.UserRef{{}, {UserID: "a", UserToken: "b.c.d"}} {
		var f *flow.Failure
		if err := id.CompleteResourceTokenAuth(context.Background(), "urn:ietf:params:oauth:request_uri:x", u); !errors.As(err, &f) || f.Name != contract.ErrValidationFailed {
			t.Fatalf("%+v: %v", u, err)
		}
	}
}
