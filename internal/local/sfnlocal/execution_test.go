package sfnlocal_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/sfnlocal"
)

const machineARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:AuthorizeUser"

// An execution is named as $$.Execution.Id names it, its task closes like
// any other, and its result knows the execution.
func TestStartExecution(t *testing.T) {
	s, c := setup(t)
	e, err := s.StartExecution(machineARN, "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if e.ARN != "arn:aws:states:eu-west-1:123456789012:execution:AuthorizeUser:run-1" || !flow.ValidExecutionARN(e.ARN) {
		t.Fatalf("ARN %q", e.ARN)
	}
	if len(e.TaskToken) < 600 || len(e.TaskToken) > sfnlocal.MaxTaskTokenLen {
		t.Fatalf("token length %d", len(e.TaskToken))
	}
	if r, closed, known := s.Lookup(e.TaskToken); !known || closed || r.ExecutionARN != e.ARN {
		t.Fatalf("Lookup = %+v %v %v", r, closed, known)
	}
	out := `{"status":"AUTHORIZED"}`
	if _, err := c.SendTaskSuccess(ctx(t), &sfn.SendTaskSuccessInput{TaskToken: &e.TaskToken, Output: &out}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Wait(ctx(t), e.TaskToken)
	if err != nil || r.Status != sfnlocal.StatusSucceeded || r.ExecutionARN != e.ARN {
		t.Fatalf("result %+v, %v", r, err)
	}
	if tok := s.NewTask(); tok == "" {
		t.Fatal("no token")
	} else if r, _, _ := s.Lookup(tok); r.ExecutionARN != "" {
		t.Fatalf("a plain task has execution %q", r.ExecutionARN)
	}
}

func TestStartExecutionNames(t *testing.T) {
	s, _ := setup(t)
	a, err := s.StartExecution(machineARN, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.StartExecution(machineARN, "")
	if err != nil || a.ARN == b.ARN || !flow.ValidExecutionARN(a.ARN) {
		t.Fatalf("generated names: %q %q %v", a.ARN, b.ARN, err)
	}
	if _, err := s.StartExecution(machineARN, "dup"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StartExecution(machineARN, "dup"); err == nil {
		t.Error("a name used twice")
	}
	if _, err := s.StartExecution(strings.Replace(machineARN, "AuthorizeUser", "Other", 1), "dup"); err != nil {
		t.Errorf("the same name on another state machine: %v", err)
	}
	for _, bad := range []string{"", "AuthorizeUser", "arn:aws:states:eu-west-1:123456789012:execution:AuthorizeUser:x",
		"arn:aws:lambda:eu-west-1:123456789012:stateMachine:AuthorizeUser", "arn:aws:states:eu-west-1:123456789012:stateMachine:"} {
		if _, err := s.StartExecution(bad, ""); err == nil {
			t.Errorf("state machine ARN %q accepted", bad)
		}
	}
	for _, bad := range []string{strings.Repeat("n", 81), "a:b", "a/b", "a b"} {
		if _, err := s.StartExecution(machineARN, bad); err == nil {
			t.Errorf("execution name %q accepted", bad)
		}
	}
}

// The payload is the envelope consentflow's state machine sends initiate,
// and initiate's parser takes it.
func TestExecutionPayload(t *testing.T) {
	s, _ := setup(t)
	e, err := s.StartExecution(machineARN, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Payload(json.RawMessage(`{"userId":"u","provider":"github","scopes":["repo"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p, &m); err != nil || len(m) != 3 {
		t.Fatalf("payload %s: %v", p, err)
	}
	req, err := flow.ParseRequest(p)
	if err != nil || req.Validate() != nil {
		t.Fatalf("ParseRequest: %v", err)
	}
	if req.TaskToken != e.TaskToken || req.ExecutionARN != e.ARN || req.Input.UserID != "u" {
		t.Fatalf("request %+v", req)
	}
	if _, err := e.Payload(json.RawMessage(`{`)); err == nil {
		t.Error("a payload with malformed input")
	}
}
