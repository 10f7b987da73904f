// Package connect adapts Amazon Connect's UpdateParticipantAuthentication
// (aws-sdk-go-v2 service/connect) to connectauth.Connect.
//
// The operation is restJson1 (POST /contact/update-participant-authentication,
// a JSON body {State, InstanceId, Code, Error, ErrorDescription}) signed
// with SigV4 for the "connect" service: the caller's IAM credentials, no
// participant or connection token (those belong to the Connect Participant
// Service's GetAuthenticationUrl, which the chat client calls).
package connect

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconnect "github.com/aws/aws-sdk-go-v2/service/connect"
	"github.com/aws/aws-sdk-go-v2/service/connect/types"
	"github.com/aws/smithy-go"

	"github.com/consentflow/consentflow/internal/connectauth"
)

// API is the subset of *awsconnect.Client used here.
type API interface {
	UpdateParticipantAuthentication(context.Context, *awsconnect.UpdateParticipantAuthenticationInput, ...func(*awsconnect.Options)) (*awsconnect.UpdateParticipantAuthenticationOutput, error)
}

// Participants implements connectauth.Connect.
type Participants struct {
	API API
	// Region, when set, is the Connect instance's Region (the client's
	// own otherwise).
	Region string
}

var _ connectauth.Connect = Participants{}

// Retry policy: the SDK's standard retryer (throttling, 5xx, broken
// connections; 3 attempts) with short backoffs and no retry quota, so the
// attempts fit inside the domain's call budget (connectauth.DefaultCallTimeout).
const (
	maxAttempts = 3
	maxBackoff  = 400 * time.Millisecond
)

// UpdateParticipantAuthentication forwards u; a failure is a
// *connectauth.CallError (Classify).
func (p Participants) UpdateParticipantAuthentication(ctx context.Context, u connectauth.Update) error {
	in := &awsconnect.UpdateParticipantAuthenticationInput{
		InstanceId: aws.String(u.InstanceID),
		State:      aws.String(u.State),
	}
	if u.Code != "" {
		in.Code = aws.String(u.Code)
	}
	if u.Error != "" {
		in.Error = aws.String(u.Error)
	}
	if u.ErrorDescription != "" {
		in.ErrorDescription = aws.String(u.ErrorDescription)
	}
	_, err := p.API.UpdateParticipantAuthentication(ctx, in, p.options)
	return Classify(err)
}

func (p Participants) options(o *awsconnect.Options) {
	if p.Region != "" {
		o.Region = p.Region
	}
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.MaxAttempts = maxAttempts
		so.MaxBackoff = maxBackoff
		so.Backoff = retry.NewExponentialJitterBackoff(maxBackoff)
		so.RateLimiter = ratelimit.None
	})
}

// Classify maps an SDK error to a *connectauth.CallError. The service's
// message is dropped (it may quote input); only the error code is kept.
//
//   - ConflictException -> ErrConflict;
//   - ThrottlingException, InternalServiceException, any other server
//     error, a timeout, a broken connection -> ErrTransient (the SDK has
//     already retried what it retries);
//   - InvalidRequestException, InvalidParameterException -> ErrRefused;
//   - AccessDeniedException and any other client error -> ErrDenied.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	var (
		conflict *types.ConflictException
		throttle *types.ThrottlingException
		internal *types.InternalServiceException
		badReq   *types.InvalidRequestException
		badParam *types.InvalidParameterException
		denied   *types.AccessDeniedException
	)
	fail := func(class error, code string) error { return &connectauth.CallError{Class: class, Code: code} }
	switch {
	case errors.As(err, &conflict):
		return fail(connectauth.ErrConflict, "ConflictException")
	case errors.As(err, &throttle):
		return fail(connectauth.ErrTransient, "ThrottlingException")
	case errors.As(err, &internal):
		return fail(connectauth.ErrTransient, "InternalServiceException")
	case errors.As(err, &badReq):
		return fail(connectauth.ErrRefused, "InvalidRequestException")
	case errors.As(err, &badParam):
		return fail(connectauth.ErrRefused, "InvalidParameterException")
	case errors.As(err, &denied):
		return fail(connectauth.ErrDenied, "AccessDeniedException")
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if ae.ErrorFault() == smithy.FaultServer {
			return fail(connectauth.ErrTransient, ae.ErrorCode())
		}
		var re interface{ HTTPStatusCode() int }
		if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
			return fail(connectauth.ErrTransient, ae.ErrorCode())
		}
		return fail(connectauth.ErrDenied, ae.ErrorCode())
	}
	var ip *smithy.InvalidParamsError
	if errors.As(err, &ip) {
		// The SDK's own required-field check: Validate runs first, so
		// this is a programming error, never worth a retry.
		return fail(connectauth.ErrDenied, "InvalidParams")
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fail(connectauth.ErrTransient, "timeout")
	}
	return fail(connectauth.ErrTransient, fmt.Sprintf("unreachable (%T)", unwrapAll(err)))
}

// unwrapAll is the innermost error of a chain (for a type name in the log).
func unwrapAll(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
