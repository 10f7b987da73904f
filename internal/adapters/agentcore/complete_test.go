package agentcore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"
	"github.com/aws/smithy-go"

	"github.com/consentflow/consentflow/internal/flow"
)

// fakeAPI answers CompleteResourceTokenAuth and GetResourceOauth2Token.
type fakeAPI struct {
	API
	completeErr error
	completeOpt bedrockagentcore.Options
	token       *bedrockagentcore.GetResourceOauth2TokenOutput
	tokenIn     *bedrockagentcore.GetResourceOauth2TokenInput
}

func (f *fakeAPI) CompleteResourceTokenAuth(_ context.Context, _ *bedrockagentcore.CompleteResourceTokenAuthInput, opts ...func(*bedrockagentcore.Options)) (*bedrockagentcore.CompleteResourceTokenAuthOutput, error) {
	f.completeOpt = bedrockagentcore.Options{RetryMaxAttempts: 3}
	for _, o := range opts {
		o(&f.completeOpt)
	}
	if f.completeErr != nil {
		return nil, f.completeErr
	}
	return &bedrockagentcore.CompleteResourceTokenAuthOutput{}, nil
}

func (f *fakeAPI) GetResourceOauth2Token(_ context.Context, in *bedrockagentcore.GetResourceOauth2TokenInput, _ ...func(*bedrockagentcore.Options)) (*bedrockagentcore.GetResourceOauth2TokenOutput, error) {
	f.tokenIn = in
	return f.token, nil
}

// Complete is never retried by the SDK, and a failure says whether its
// outcome is unknown (no answer, or a server error) or a definite refusal.
func TestCompleteOutcomeUnknown(t *testing.T) {
	op := func(err error) error {
		return &smithy.OperationError{ServiceID: "Bedrock AgentCore", OperationName: "CompleteResourceTokenAuth", Err: err}
	}
	for _, tc := range []struct {
		err     error
		unknown bool
	}{
		{fmt.Errorf("request canceled: %w", context.DeadlineExceeded), true},
		{errors.New("read tcp: connection reset by peer"), true},
		{errors.New("unexpected EOF"), true},
		{&types.InternalServerException{Message: aws.String("x")}, true},
		{&smithy.GenericAPIError{Code: "ServiceUnavailable", Fault: smithy.FaultServer}, true},
		{&types.AccessDeniedException{Message: aws.String("Invalid or expired session")}, false},
		{&types.ThrottlingException{Message: aws.String("x")}, false},
		{&types.ValidationException{Message: aws.String("x")}, false},
	} {
		api := &fakeAPI{completeErr: op(tc.err)}
		err := Identity{API: api}.CompleteResourceTokenAuth(context.Background(), "urn:ietf:params:oauth:request_uri:x", flow.UserRef{UserID: "u"})
		var f *flow.Failure
		if !errors.As(err, &f) {
			t.Fatalf("%v: not a Failure: %v", tc.err, err)
		}
		if got := errors.Is(err, flow.ErrOutcomeUnknown); got != tc.unknown {
			t.Errorf("%v: outcome unknown = %v, want %v", tc.err, got, tc.unknown)
		}
		// No answer at all (not even a 5xx): the call may still be running.
		var ae smithy.APIError
		if got, want := errors.Is(err, flow.ErrNoAnswer), tc.unknown && !errors.As(tc.err, &ae); got != want {
			t.Errorf("%v: no answer = %v, want %v", tc.err, got, want)
		}
		// The SDK may retry only a throttled Complete.
		_, throttled := tc.err.(*types.ThrottlingException)
		if got := api.completeOpt.Retryer.IsErrorRetryable(op(tc.err)); got != throttled {
			t.Errorf("%v: SDK retries it: %v", tc.err, got)
		}
		// Its waits fit the callback's budget.
		for attempt := 1; attempt <= 3; attempt++ {
			if d, err := api.completeOpt.Retryer.RetryDelay(attempt, op(tc.err)); err != nil || d > completeMaxBackoff {
				t.Errorf("retry delay %v %v after attempt %d", d, err, attempt)
			}
		}
	}
}

func TestSessionVaultState(t *testing.T) {
	req := flow.TokenRequest{Provider: "github", Scopes: []string{"repo"}, Flow: flow.FlowUserFederation,
		ReturnURL: "https://cb.example/oauth2/callback", SessionURI: "urn:ietf:params:oauth:request_uri:s"}
	for want, out := range map[flow.VaultState]*bedrockagentcore.GetResourceOauth2TokenOutput{
		flow.VaultStored:  {AccessToken: aws.String(secret)},
		flow.VaultPending: {AuthorizationUrl: aws.String("https://x"), SessionUri: aws.String(req.SessionURI), SessionStatus: types.SessionStatusInProgress},
		flow.VaultFailed:  {SessionUri: aws.String(req.SessionURI), SessionStatus: types.SessionStatusFailed},
	} {
		api := &fakeAPI{token: out}
		got, err := Identity{API: api}.SessionVaultState(context.Background(), "wat", req)
		if err != nil || got != want {
			t.Errorf("%+v: got %v %v, want %v", out, got, err, want)
		}
		in := api.tokenIn
		if aws.ToString(in.SessionUri) != req.SessionURI || aws.ToString(in.ResourceOauth2ReturnUrl) != req.ReturnURL ||
			aws.ToString(in.WorkloadIdentityToken) != "wat" || in.Oauth2Flow != types.Oauth2FlowTypeUserFederation {
			t.Errorf("request %+v", in)
		}
	}
	if _, err := (Identity{API: &fakeAPI{}}).SessionVaultState(context.Background(), "wat", flow.TokenRequest{}); err == nil {
		t.Error("a vault check without a session was accepted")
	}
}
