// Package agentcore adapts the AgentCore Identity data plane
// (aws-sdk-go-v2 bedrockagentcore) to flow.Identity.
package agentcore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"
	"github.com/aws/smithy-go"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// API is the subset of *bedrockagentcore.Client used here.
type API interface {
	GetWorkloadAccessToken(context.Context, *bedrockagentcore.GetWorkloadAccessTokenInput, ...func(*bedrockagentcore.Options)) (*bedrockagentcore.GetWorkloadAccessTokenOutput, error)
	GetWorkloadAccessTokenForUserId(context.Context, *bedrockagentcore.GetWorkloadAccessTokenForUserIdInput, ...func(*bedrockagentcore.Options)) (*bedrockagentcore.GetWorkloadAccessTokenForUserIdOutput, error)
	GetWorkloadAccessTokenForJWT(context.Context, *bedrockagentcore.GetWorkloadAccessTokenForJWTInput, ...func(*bedrockagentcore.Options)) (*bedrockagentcore.GetWorkloadAccessTokenForJWTOutput, error)
	GetResourceOauth2Token(context.Context, *bedrockagentcore.GetResourceOauth2TokenInput, ...func(*bedrockagentcore.Options)) (*bedrockagentcore.GetResourceOauth2TokenOutput, error)
	CompleteResourceTokenAuth(context.Context, *bedrockagentcore.CompleteResourceTokenAuthInput, ...func(*bedrockagentcore.Options)) (*bedrockagentcore.CompleteResourceTokenAuthOutput, error)
}

// Identity implements flow.Identity.
type Identity struct{ API API }

var _ flow.Identity = Identity{}

// WorkloadAccessToken picks the operation by the kind of user reference.
func (c Identity) WorkloadAccessToken(ctx context.Context, workload string, u flow.UserRef) (string, error) {
	var tok *string
	var err error
	switch {
	case u.UserToken != "":
		var out *bedrockagentcore.GetWorkloadAccessTokenForJWTOutput
		out, err = c.API.GetWorkloadAccessTokenForJWT(ctx, &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{
			WorkloadName: aws.String(workload), UserToken: aws.String(u.UserToken)})
		if err == nil {
			tok = out.WorkloadAccessToken
		}
	case u.UserID != "":
		var out *bedrockagentcore.GetWorkloadAccessTokenForUserIdOutput
		out, err = c.API.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
			WorkloadName: aws.String(workload), UserId: aws.String(u.UserID)})
		if err == nil {
			tok = out.WorkloadAccessToken
		}
	default:
		var out *bedrockagentcore.GetWorkloadAccessTokenOutput
		out, err = c.API.GetWorkloadAccessToken(ctx, &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String(workload)})
		if err == nil {
			tok = out.WorkloadAccessToken
		}
	}
	if err != nil {
		return "", Classify(err)
	}
	if aws.ToString(tok) == "" {
		return "", &flow.Failure{Name: contract.ErrAgentCoreUnavailable, Message: "empty workload access token"}
	}
	return *tok, nil
}

// ResourceOAuth2Token calls GetResourceOauth2Token.
func (c Identity) ResourceOAuth2Token(ctx context.Context, wat string, r flow.TokenRequest) (flow.TokenResult, error) {
	in := &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken:          aws.String(wat),
		ResourceCredentialProviderName: aws.String(r.Provider),
		Scopes:                         r.Scopes,
		Oauth2Flow:                     types.Oauth2FlowType(r.Flow),
		CustomParameters:               r.CustomParameters,
	}
	if r.ForceAuthentication {
		in.ForceAuthentication = aws.Bool(true)
	}
	if r.ReturnURL != "" {
		in.ResourceOauth2ReturnUrl = aws.String(r.ReturnURL)
	}
	if r.CustomState != "" {
		in.CustomState = aws.String(r.CustomState)
	}
	if r.SessionURI != "" {
		in.SessionUri = aws.String(r.SessionURI)
	}
	out, err := c.API.GetResourceOauth2Token(ctx, in)
	if err != nil {
		return flow.TokenResult{}, Classify(err)
	}
	return flow.TokenResult{
		AccessToken:      aws.ToString(out.AccessToken),
		AuthorizationURL: aws.ToString(out.AuthorizationUrl),
		SessionURI:       aws.ToString(out.SessionUri),
		SessionStatus:    string(out.SessionStatus),
	}, nil
}

// CompleteResourceTokenAuth calls CompleteResourceTokenAuth with the exact
// identifier the workload token was minted for.
func (c Identity) CompleteResourceTokenAuth(ctx context.Context, sessionURI string, u flow.UserRef) error {
	var id types.UserIdentifier
	switch {
	case u.UserToken != "" && u.UserID == "":
		id = &types.UserIdentifierMemberUserToken{Value: u.UserToken}
	case u.UserID != "" && u.UserToken == "":
		id = &types.UserIdentifierMemberUserId{Value: u.UserID}
	default:
		return flow.Fail(contract.ErrValidationFailed, "exactly one user identifier is required")
	}
	_, err := c.API.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri: aws.String(sessionURI), UserIdentifier: id}, onlyRetryThrottling)
	if err != nil {
		var f *flow.Failure
		if errors.As(Classify(err), &f) && outcomeUnknown(err) {
			f.Err = fmt.Errorf("%w: %w", flow.ErrOutcomeUnknown, err)
			var ae smithy.APIError
			if !errors.As(err, &ae) {
				f.Err = fmt.Errorf("%w: %w", flow.ErrNoAnswer, f.Err)
			}
		}
		return f
	}
	return nil
}

// onlyRetryThrottling lets the SDK retry CompleteResourceTokenAuth only
// when AgentCore throttled it (a definite "not done"). Any other retry could
// repeat a call that took effect (refused as "already completed") or put two
// calls in flight for one session; the domain retries after it has found
// out the truth.
//
// The backoff between attempts is short (at most completeMaxBackoff) and
// takes no retry quota, so the retries fit well inside the callback's
// budget: a deadline that expired during a backoff would read as "no
// answer" although no call was in flight.
func onlyRetryThrottling(o *bedrockagentcore.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.Retryables = []retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			var te *types.ThrottlingException
			return aws.BoolTernary(errors.As(err, &te))
		})}
		so.Backoff = retry.NewExponentialJitterBackoff(completeMaxBackoff)
		so.RateLimiter = ratelimit.None
	})
}

// completeMaxBackoff bounds each wait between throttled attempts of
// CompleteResourceTokenAuth (3 attempts: at most twice this in all).
const completeMaxBackoff = 250 * time.Millisecond

// outcomeUnknown reports whether a failed call may have taken effect: no
// answer arrived (timeout, cancellation, connection lost) or AgentCore
// answered with a server error. A modeled client error (validation, access
// denied, throttling...) is a definite refusal.
func outcomeUnknown(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorFault() == smithy.FaultServer
	}
	return true
}

// SessionVaultState calls GetResourceOauth2Token for the session and maps
// its answer: a token means the session was completed (the token itself is
// dropped here), sessionStatus FAILED that AgentCore gave it up, anything
// else that it still waits.
func (c Identity) SessionVaultState(ctx context.Context, wat string, r flow.TokenRequest) (flow.VaultState, error) {
	if r.SessionURI == "" {
		return 0, flow.Fail(contract.ErrValidationFailed, "no session to look up")
	}
	res, err := c.ResourceOAuth2Token(ctx, wat, r)
	switch {
	case err != nil:
		return 0, err
	case res.AccessToken != "":
		return flow.VaultStored, nil
	case res.SessionStatus == string(types.SessionStatusFailed):
		return flow.VaultFailed, nil
	}
	return flow.VaultPending, nil
}

// Classify maps an SDK error to a named flow.Failure. The upstream message
// is deliberately dropped: AWS validation messages may quote input values
// (tokens, state). Only the error code and, for validation errors, the
// names of the offending fields are kept.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var (
		ve  *types.ValidationException
		ade *types.AccessDeniedException
		rnf *types.ResourceNotFoundException
		ue  *types.UnauthorizedException
		te  *types.ThrottlingException
		ise *types.InternalServerException
	)
	switch {
	case errors.As(err, &ve):
		var names []string
		for _, f := range ve.FieldList {
			names = append(names, aws.ToString(f.Name))
		}
		msg := "AgentCore rejected the request (" + string(ve.Reason) + ")"
		if len(names) > 0 {
			msg += ": fields " + strings.Join(names, ", ")
		}
		return &flow.Failure{Name: contract.ErrValidationFailed, Message: msg, Err: err}
	case errors.As(err, &ade):
		return &flow.Failure{Name: contract.ErrAccessDenied, Message: "AgentCore denied access", Err: err}
	case errors.As(err, &rnf):
		return &flow.Failure{Name: contract.ErrResourceNotFound, Message: "AgentCore resource not found (workload identity or credential provider)", Err: err}
	case errors.As(err, &ue):
		return &flow.Failure{Name: contract.ErrUnauthorized, Message: "AgentCore did not accept the user token", Err: err}
	case errors.As(err, &te):
		return &flow.Failure{Name: contract.ErrThrottled, Message: "AgentCore throttled the request", Err: err}
	case errors.As(err, &ise):
		return &flow.Failure{Name: contract.ErrAgentCoreUnavailable, Message: "AgentCore internal error", Err: err}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if ae.ErrorFault() == smithy.FaultServer {
			return &flow.Failure{Name: contract.ErrAgentCoreUnavailable, Message: "AgentCore error " + ae.ErrorCode(), Err: err}
		}
		return &flow.Failure{Name: contract.ErrAccessDenied, Message: "AgentCore error " + ae.ErrorCode(), Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &flow.Failure{Name: contract.ErrAgentCoreUnavailable, Message: "AgentCore call timed out", Err: err}
	}
	return &flow.Failure{Name: contract.ErrAgentCoreUnavailable, Message: fmt.Sprintf("AgentCore unreachable (%T)", errors.Unwrap(err)), Err: err}
}
