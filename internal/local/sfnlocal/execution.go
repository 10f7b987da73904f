package sfnlocal

import (
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Executions. The stand-in runs no state machine, but it plays what an
// execution hands a callback-pattern worker: StartExecution names an
// execution of a state machine (the ARN that $$.Execution.Id gives) and
// registers the task its waiting Task state opens, and Execution.Payload
// is the payload that state sends the worker, built as consentflow's
// stack builds it (infra/stack, state RequestAuthorization):
//
//	{"taskToken": $$.Task.Token, "executionArn": $$.Execution.Id, "input": $}

// MaxExecutionNameLen is the longest execution name (characters), per the
// StartExecution API reference.
const MaxExecutionNameLen = 80

// Execution is one execution started by StartExecution.
type Execution struct {
	// ARN is the execution's ARN ($$.Execution.Id):
	// arn:<partition>:states:<region>:<account>:execution:<state machine>:<name>.
	ARN string
	// TaskToken is the token of the task its waiting state opened. Treat
	// it as a secret and never log it.
	TaskToken string
}

// StartExecution starts an execution of the state machine stateMachineARN
// (arn:<partition>:states:<region>:<account>:stateMachine:<name>) named
// name (a random UUID when empty, as StartExecution without a name) up to
// its waiting Task state: it registers that state's task with opts (as
// NewTask does) and returns the execution. A name may be used once per
// state machine (the service's ExecutionAlreadyExists).
func (s *Server) StartExecution(stateMachineARN, name string, opts ...TaskOption) (Execution, error) {
	prefix, machine, ok := strings.Cut(stateMachineARN, ":stateMachine:")
	parts := strings.Split(prefix, ":")
	if !ok || len(parts) != 5 || parts[0] != "arn" || parts[2] != "states" || machine == "" || strings.ContainsAny(machine, ":/") {
		return Execution{}, errors.New("sfnlocal: a state machine ARN is arn:<partition>:states:<region>:<account>:stateMachine:<name>")
	}
	if name == "" {
		name = uuid.NewString()
	}
	if n := utf8.RuneCountInString(name); n < 1 || n > MaxExecutionNameLen || strings.ContainsAny(name, ":/ ") {
		return Execution{}, errors.New("sfnlocal: an execution name is 1..80 characters without ':', '/' or spaces")
	}
	arn := prefix + ":execution:" + machine + ":" + name
	s.mu.Lock()
	if s.executions[arn] {
		s.mu.Unlock()
		return Execution{}, errors.New("sfnlocal: execution already exists: " + arn)
	}
	s.executions[arn] = true
	s.mu.Unlock()
	token := newToken()
	if err := s.Register(token, append(opts, func(t *task) { t.execution = arn })...); err != nil {
		return Execution{}, err
	}
	return Execution{ARN: arn, TaskToken: token}, nil
}

// Payload is what the execution's waiting state sends the worker when the
// execution's input is input (a JSON value; consentflow's initiate wants an
// object): the task token, the execution's ARN and the input, in the
// fields consentflow's state machine uses.
func (e Execution) Payload(input json.RawMessage) (json.RawMessage, error) {
	return json.Marshal(struct {
		TaskToken    string          `json:"taskToken"`
		ExecutionARN string          `json:"executionArn"`
		Input        json.RawMessage `json:"input"`
	}{e.TaskToken, e.ARN, input})
}
