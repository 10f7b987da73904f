package stepfunctions

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

const token = "AQB4-secret-task-token"

type fakeSFN struct {
	err     error
	success *sfn.SendTaskSuccessInput
	failure *sfn.SendTaskFailureInput
}

func (f *fakeSFN) SendTaskSuccess(_ context.Context, in *sfn.SendTaskSuccessInput, _ ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error) {
	f.success = in
	return &sfn.SendTaskSuccessOutput{}, f.err
}

func (f *fakeSFN) SendTaskFailure(_ context.Context, in *sfn.SendTaskFailureInput, _ ...func(*sfn.Options)) (*sfn.SendTaskFailureOutput, error) {
	f.failure = in
	return &sfn.SendTaskFailureOutput{}, f.err
}

func TestSucceedSendsJSON(t *testing.T) {
	f := &fakeSFN{}
	if err := (Resumer{API: f}).Succeed(context.Background(), token, map[string]string{"status": "AUTHORIZED"}); err != nil {
		t.Fatal(err)
	}
	if aws.ToString(f.success.Output) != `{"status":"AUTHORIZED"}` || aws.ToString(f.success.TaskToken) != token {
		t.Fatalf("%+v", f.success)
	}
}

func TestTaskGoneAndOtherErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		gone bool
	}{
		{&types.TaskTimedOut{Message: aws.String(token)}, true},
		{&types.InvalidToken{Message: aws.String(token)}, true},
		{&types.TaskDoesNotExist{Message: aws.String(token)}, true},
		{&smithy.GenericAPIError{Code: "ThrottlingException", Message: token}, false},
		{errors.New("dial tcp: " + token), false},
	} {
		f := &fakeSFN{err: &smithy.OperationError{ServiceID: "SFN", OperationName: "SendTaskFailure", Err: tc.err}}
		err := (Resumer{API: f}).Fail(context.Background(), token, contract.ErrExpired, "expired")
		if errors.Is(err, flow.ErrTaskGone) != tc.gone {
			t.Errorf("%T: gone=%v", tc.err, errors.Is(err, flow.ErrTaskGone))
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("%T: task token in error %q", tc.err, err)
		}
	}
}
