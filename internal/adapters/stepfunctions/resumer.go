// Package stepfunctions adapts Step Functions' task-token API to flow.Resumer.
package stepfunctions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/consentflow/consentflow/internal/flow"
)

// API is the subset of *sfn.Client used here.
type API interface {
	SendTaskSuccess(context.Context, *sfn.SendTaskSuccessInput, ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error)
	SendTaskFailure(context.Context, *sfn.SendTaskFailureInput, ...func(*sfn.Options)) (*sfn.SendTaskFailureOutput, error)
}

// Resumer implements flow.Resumer.
type Resumer struct{ API API }

var _ flow.Resumer = Resumer{}

// Succeed sends SendTaskSuccess with output as JSON.
func (r Resumer) Succeed(ctx context.Context, taskToken string, output any) error {
	b, err := json.Marshal(output)
	if err != nil {
		return fmt.Errorf("encode task output: %w", err)
	}
	_, err = r.API.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(taskToken), Output: aws.String(string(b))})
	return classify("SendTaskSuccess", err)
}

// Fail sends SendTaskFailure.
func (r Resumer) Fail(ctx context.Context, taskToken, name, cause string) error {
	_, err := r.API.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(taskToken), Error: aws.String(name), Cause: aws.String(cause)})
	return classify("SendTaskFailure", err)
}

// classify maps "the task is not waiting" errors to flow.ErrTaskGone and
// strips everything else to the error code (never the task token).
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var (
		tto *types.TaskTimedOut
		it  *types.InvalidToken
		tne *types.TaskDoesNotExist
	)
	if errors.As(err, &tto) || errors.As(err, &it) || errors.As(err, &tne) {
		return fmt.Errorf("%s: %w", op, flow.ErrTaskGone)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return fmt.Errorf("%s: %s", op, ae.ErrorCode())
	}
	return fmt.Errorf("%s: request failed (%T)", op, errors.Unwrap(err))
}
