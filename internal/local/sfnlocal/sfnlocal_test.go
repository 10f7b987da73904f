package sfnlocal_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/consentflow/consentflow/internal/local/sfnlocal"
)

func setup(t *testing.T) (*sfnlocal.Server, *sfn.Client) {
	t.Helper()
	s := sfnlocal.New()
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	t.Cleanup(s.Close)
	c := sfn.New(sfn.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(ts.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local-secret", ""),
		RetryMaxAttempts: 1,
	})
	return s, c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSendTaskSuccessResumesTask(t *testing.T) {
	s, c := setup(t)
	tok := s.NewTask()
	if len(tok) < 600 || len(tok) > sfnlocal.MaxTaskTokenLen {
		t.Fatalf("token length %d, want a realistic 600..2048", len(tok))
	}
	out := `{"status":"AUTHORIZED","scopes":["a","b"]}`
	if _, err := c.SendTaskSuccess(ctx(t), &sfn.SendTaskSuccessInput{TaskToken: &tok, Output: &out}); err != nil {
		t.Fatalf("SendTaskSuccess: %v", err)
	}
	r, err := s.Wait(ctx(t), tok)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != sfnlocal.StatusSucceeded || string(r.Output) != out || r.Error != "" {
		t.Fatalf("result = %+v", r)
	}
	if got := s.Results(); len(got) != 1 || got[0].Token != tok {
		t.Fatalf("Results() = %d entries", len(got))
	}
	if s.Calls()["SendTaskSuccess"] != 1 {
		t.Fatalf("calls = %v", s.Calls())
	}
}

func TestSendTaskFailure(t *testing.T) {
	s, c := setup(t)
	tok := s.NewTask()
	done := make(chan sfnlocal.Result, 1)
	go func() {
		r, err := s.Wait(context.Background(), tok)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	_, err := c.SendTaskFailure(ctx(t), &sfn.SendTaskFailureInput{
		TaskToken: &tok, Error: aws.String("consentflow.BindingFailed"), Cause: aws.String("too many wrong codes"),
	})
	if err != nil {
		t.Fatalf("SendTaskFailure: %v", err)
	}
	select {
	case r := <-done:
		if r.Status != sfnlocal.StatusFailed || r.Error != "consentflow.BindingFailed" || r.Cause != "too many wrong codes" || r.Output != nil {
			t.Fatalf("result = %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return after SendTaskFailure")
	}
}

func TestUnknownTokenIsInvalidToken(t *testing.T) {
	s, c := setup(t)
	_ = s.NewTask()
	bogus := "AQCnot-a-registered-token"
	_, err := c.SendTaskSuccess(ctx(t), &sfn.SendTaskSuccessInput{TaskToken: &bogus, Output: aws.String("{}")})
	var it *types.InvalidToken
	if !errors.As(err, &it) {
		t.Fatalf("err = %T %v, want *types.InvalidToken", err, err)
	}
	_, err = c.SendTaskHeartbeat(ctx(t), &sfn.SendTaskHeartbeatInput{TaskToken: &bogus})
	if !errors.As(err, &it) {
		t.Fatalf("heartbeat err = %v, want *types.InvalidToken", err)
	}
	if _, err := s.Wait(ctx(t), bogus); !errors.Is(err, sfnlocal.ErrUnknownTask) {
		t.Fatalf("Wait(unknown) = %v", err)
	}
}

func TestClosedTaskIsTaskTimedOut(t *testing.T) {
	s, c := setup(t)
	tok := s.NewTask()
	if _, err := c.SendTaskSuccess(ctx(t), &sfn.SendTaskSuccessInput{TaskToken: &tok, Output: aws.String(`{"n":1}`)}); err != nil {
		t.Fatal(err)
	}
	var tto *types.TaskTimedOut
	_, err := c.SendTaskSuccess(ctx(t), &sfn.SendTaskSuccessInput{TaskToken: &tok, Output: aws.String(`{"n":2}`)})
	if !errors.As(err, &tto) {
		t.Fatalf("second success: err = %T %v, want *types.TaskTimedOut", err, err)
	}
	_, err = c.SendTaskFailure(ctx(t), &sfn.SendTaskFailureInput{TaskToken: &tok, Error: aws.String("x")})
	if !errors.As(err, &tto) {
		t.Fatalf("failure after success: err = %v, want *types.TaskTimedOut", err)
	}
	_, err = c.SendTaskHeartbeat(ctx(t), &sfn.SendTaskHeartbeatInput{TaskToken: &tok})
	if !errors.As(err, &tto) {
		t.Fatalf("heartbeat after success: err = %v, want *types.TaskTimedOut", err)
	}
	// The first outcome stands.
	r, _ := s.Wait(ctx(t), tok)
	if string(r.Output) != `{"n":1}` || len(s.Results()) != 1 {
		t.Fatalf("result overwritten: %+v", r)
	}
}

func TestTimeoutClosesTask(t *testing.T) {
	s, c := setup(t)
	tok := s.NewTask(sfnlocal.WithTimeout(50 * time.Millisecond))
	r, err := s.Wait(ctx(t), tok)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != sfnlocal.StatusFailed || r.Error != sfnlocal.TimeoutError {
		t.Fatalf("result = %+v", r)
	}
	var tto *types.TaskTimedOut
	_, err = c.SendTaskSuccess(ctx(t), &sfn.SendTaskSuccessInput{TaskToken: &tok, Output: aws.String(`{}`)})
	if !errors.As(err, &tto) {
		t.Fatalf("late success: err = %v, want *types.TaskTimedOut", err)
	}
}

func TestExpireAndHeartbeat(t *testing.T) {
	s, c := setup(t)
	tok := s.NewTask(sfnlocal.WithHeartbeatTimeout(300 * time.Millisecond))
	for i := 0; i < 4; i++ {
		time.Sleep(100 * time.Millisecond)
		if _, err := c.SendTaskHeartbeat(ctx(t), &sfn.SendTaskHeartbeatInput{TaskToken: &tok}); err != nil {
			t.Fatalf("heartbeat %d: %v (heartbeats must keep the task open)", i, err)
		}
	}
	if r, closed, known := s.Lookup(tok); !known || closed || r.Heartbeats != 4 {
		t.Fatalf("Lookup = %+v closed=%v known=%v", r, closed, known)
	}
	// Without heartbeats it times out.
	r, err := s.Wait(ctx(t), tok)
	if err != nil || r.Error != sfnlocal.TimeoutError || r.Heartbeats != 4 {
		t.Fatalf("Wait = %+v, %v", r, err)
	}

	tok2 := s.NewTask()
	if !s.Expire(tok2) || s.Expire(tok2) {
		t.Fatal("Expire must close an open task exactly once")
	}
	var tto *types.TaskTimedOut
	_, err = c.SendTaskSuccess(ctx(t), &sfn.SendTaskSuccessInput{TaskToken: &tok2, Output: aws.String(`{}`)})
	if !errors.As(err, &tto) {
		t.Fatalf("after Expire: %v", err)
	}
}

func TestValidation(t *testing.T) {
	s, c := setup(t)
	tok := s.NewTask()
	var io *types.InvalidOutput
	_, err := c.SendTaskSuccess(ctx(t), &sfn.SendTaskSuccessInput{TaskToken: &tok, Output: aws.String(`{"unterminated":`)})
	if !errors.As(err, &io) {
		t.Fatalf("bad JSON: err = %T %v, want *types.InvalidOutput", err, err)
	}
	cases := []struct {
		name string
		call func() error
	}{
		{"token too long", func() error {
			long := strings.Repeat("A", sfnlocal.MaxTaskTokenLen+1)
			_, err := c.SendTaskHeartbeat(ctx(t), &sfn.SendTaskHeartbeatInput{TaskToken: &long})
			return err
		}},
		{"output too large", func() error {
			big := `"` + strings.Repeat("x", sfnlocal.MaxOutputBytes) + `"`
			_, err := c.SendTaskSuccess(ctx(t), &sfn.SendTaskSuccessInput{TaskToken: &tok, Output: &big})
			return err
		}},
		{"error too long", func() error {
			_, err := c.SendTaskFailure(ctx(t), &sfn.SendTaskFailureInput{TaskToken: &tok, Error: aws.String(strings.Repeat("e", 257))})
			return err
		}},
		{"cause too long", func() error {
			_, err := c.SendTaskFailure(ctx(t), &sfn.SendTaskFailureInput{TaskToken: &tok, Cause: aws.String(strings.Repeat("c", 32769))})
			return err
		}},
	}
	for _, tc := range cases {
		var ae smithy.APIError
		if err := tc.call(); !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" {
			t.Errorf("%s: err = %v, want ValidationException", tc.name, err)
		}
	}
	// Limits are inclusive: exactly 256 / 32768 characters pass.
	_, err = c.SendTaskFailure(ctx(t), &sfn.SendTaskFailureInput{
		TaskToken: &tok, Error: aws.String(strings.Repeat("é", 256)), Cause: aws.String(strings.Repeat("c", 32768)),
	})
	if err != nil {
		t.Fatalf("at the limits: %v", err)
	}
	if _, closed, _ := s.Lookup(tok); !closed {
		t.Fatal("task must be closed after a valid SendTaskFailure")
	}
}

func TestInjectError(t *testing.T) {
	s, c := setup(t)
	tok := s.NewTask()
	s.InjectError("SendTaskSuccess", "TaskDoesNotExist", http.StatusBadRequest, "Task does not exist")
	var tdne *types.TaskDoesNotExist
	_, err := c.SendTaskSuccess(ctx(t), &sfn.SendTaskSuccessInput{TaskToken: &tok, Output: aws.String(`{}`)})
	if !errors.As(err, &tdne) {
		t.Fatalf("err = %T %v, want *types.TaskDoesNotExist", err, err)
	}
	if _, closed, _ := s.Lookup(tok); closed {
		t.Fatal("an injected error must leave the task open")
	}
	if _, err := c.SendTaskSuccess(ctx(t), &sfn.SendTaskSuccessInput{TaskToken: &tok, Output: aws.String(`{}`)}); err != nil {
		t.Fatalf("injection must be one-shot: %v", err)
	}
}

func TestRejectsUnsignedAndUnknownOperations(t *testing.T) {
	s := sfnlocal.New()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/", strings.NewReader(`{"taskToken":"x","output":"{}"}`))
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "AWSStepFunctions.SendTaskSuccess")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 || resp.Header.Get("X-Amzn-ErrorType") != "MissingAuthenticationTokenException" {
		t.Fatalf("unsigned: %d %q", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}

	_, c := setup(t)
	_, err = c.StartExecution(ctx(t), &sfn.StartExecutionInput{StateMachineArn: aws.String("arn:aws:states:eu-west-1:123456789012:stateMachine:x")})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "UnknownOperationException" {
		t.Fatalf("StartExecution: %v, want UnknownOperationException", err)
	}
}
