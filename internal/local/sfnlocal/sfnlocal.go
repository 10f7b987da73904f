// Package sfnlocal is a minimal, local stand-in for the three AWS Step
// Functions operations a callback-pattern worker calls: SendTaskSuccess,
// SendTaskFailure and SendTaskHeartbeat. It is reached through the real
// aws-sdk-go-v2 sfn client (BaseEndpoint = the server's URL) and speaks the
// service's awsJson1_0 protocol: POST /, X-Amz-Target:
// AWSStepFunctions.<Operation>, Content-Type application/x-amz-json-1.0.
//
// What it does:
//   - keeps a table of open tasks, each known by its task token (NewTask
//     mints a realistic random token; Register adopts a given one;
//     StartExecution also names the execution that waits on it, and
//     Execution.Payload builds what the waiting state sends the worker:
//     see execution.go);
//   - SendTaskSuccess / SendTaskFailure close a task, recording a Result
//     (SUCCEEDED with the output, or FAILED with error and cause) that Wait
//     and Results return; SendTaskHeartbeat counts heartbeats and restarts
//     the heartbeat timer;
//   - a task may have a timeout and a heartbeat timeout; when one passes the
//     task is closed FAILED with error "States.Timeout", as a Task state with
//     TimeoutSeconds / HeartbeatSeconds does;
//   - errors are encoded as the service encodes them for awsJson1_0 (HTTP
//     400, body {"__type": <shape>, "message": ...}, plus X-Amzn-ErrorType),
//     so the SDK returns *types.InvalidToken, *types.TaskTimedOut,
//     *types.InvalidOutput, *types.TaskDoesNotExist:
//   - an unknown token: InvalidToken;
//   - a token whose task is already closed (resumed, failed or timed out):
//     TaskTimedOut. The service documents TaskTimedOut as "The task token
//     has either expired or the task associated with the token has already
//     been closed" (SFN API reference, SendTaskSuccess / TaskTimedOut);
//   - output that is not JSON: InvalidOutput;
//   - length constraints from the SFN API reference: taskToken 1..2048,
//     error <= 256, cause <= 32768 (characters), output <= 262144 bytes
//     (UTF-8): ValidationException, as the service reports constraint
//     violations (the SDK has no client-side length checks);
//   - InjectError makes the next call of an operation fail with any error,
//     e.g. TaskDoesNotExist or ThrottlingException, to test fault handling.
//
// What it does NOT emulate: state machines, executions (beyond their
// names and the payload of the waiting state) and their history,
// Amazon States Language, input/output processing (ResultPath etc.),
// Retry/Catch, activities (GetActivityTask), execution-level timeouts,
// the 1-year maximum wait, KMS errors other than by InjectError, IAM
// authorization (it only checks that the request is SigV4-signed for the
// "states" service, never the signature), throttling, and the real token
// format (tokens here are opaque random strings of similar length and
// alphabet). A token is valid only on the Server that minted or registered
// it.
package sfnlocal

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/consentflow/consentflow/internal/local/awsjson"
)

const (
	contentType  = "application/x-amz-json-1.0"
	targetPrefix = "AWSStepFunctions"
	signingName  = "states"

	// Limits from the Step Functions API reference.
	MaxTaskTokenLen = 2048   // characters
	MaxErrorLen     = 256    // characters
	MaxCauseLen     = 32768  // characters
	MaxOutputBytes  = 262144 // bytes, UTF-8

	// TimeoutError is the error a task closed by its timeout fails with.
	TimeoutError = "States.Timeout"
)

// Status is a closed task's outcome.
type Status string

const (
	StatusSucceeded Status = "SUCCEEDED"
	StatusFailed    Status = "FAILED"
)

// Result is the outcome of one task. Token is the task token: treat it as a
// secret and never log it.
type Result struct {
	Token string
	// ExecutionARN is the execution the task belongs to (StartExecution);
	// empty for NewTask and Register.
	ExecutionARN string
	Status       Status
	Output       json.RawMessage // SUCCEEDED only: the output exactly as sent
	Error        string          // FAILED only
	Cause        string          // FAILED only
	Heartbeats   int
	ClosedAt     time.Time
}

// ErrUnknownTask: Wait was given a token the Server never registered.
var ErrUnknownTask = errors.New("sfnlocal: unknown task token")

// TaskOption configures one task.
type TaskOption func(*task)

// WithTimeout closes the task with States.Timeout d after it is registered
// (a Task state's TimeoutSeconds).
func WithTimeout(d time.Duration) TaskOption { return func(t *task) { t.timeout = d } }

// WithHeartbeatTimeout closes the task with States.Timeout when no
// heartbeat (or registration) happened for d (a Task state's
// HeartbeatSeconds).
func WithHeartbeatTimeout(d time.Duration) TaskOption {
	return func(t *task) { t.heartbeatTimeout = d }
}

type task struct {
	token            string
	timeout          time.Duration
	heartbeatTimeout time.Duration
	timer            *time.Timer
	hbTimer          *time.Timer
	heartbeats       int
	execution        string
	done             chan struct{}
	result           *Result
}

// Server is the stand-in. The zero value is not usable: call New.
type Server struct {
	mu         sync.Mutex
	tasks      map[string]*task
	executions map[string]bool
	results    []Result
	faults     map[string][]*awsjson.Error
	calls      map[string]int
	now        func() time.Time
}

// New returns an empty Server.
func New() *Server {
	return &Server{
		tasks:      map[string]*task{},
		executions: map[string]bool{},
		faults:     map[string][]*awsjson.Error{},
		calls:      map[string]int{},
		now:        time.Now,
	}
}

// NewTask registers a task under a fresh random token and returns the
// token. Real tokens are opaque base64-like strings several hundred
// characters long (with '+', '/' and '='); these are too, so code that
// mishandles such characters fails here as it would in AWS.
func (s *Server) NewTask(opts ...TaskOption) string {
	token := newToken()
	if err := s.Register(token, opts...); err != nil {
		panic(err) // 2^4096 collision
	}
	return token
}

// newToken is a fresh random task token.
func newToken() string {
	var b [512]byte
	_, _ = rand.Read(b[:])
	return "AQC" + base64.StdEncoding.EncodeToString(b[:])
}

// Register adds an open task known by token. A token may be registered only
// once and must satisfy the API's length constraint.
func (s *Server) Register(token string, opts ...TaskOption) error {
	if n := utf8.RuneCountInString(token); n < 1 || n > MaxTaskTokenLen {
		return errors.New("sfnlocal: task token length must be 1..2048")
	}
	t := &task{token: token, done: make(chan struct{})}
	for _, o := range opts {
		o(t)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[token]; ok {
		return errors.New("sfnlocal: task token already registered")
	}
	s.tasks[token] = t
	if t.timeout > 0 {
		t.timer = time.AfterFunc(t.timeout, func() { s.timeOut(t, "task timed out") })
	}
	if t.heartbeatTimeout > 0 {
		t.hbTimer = time.AfterFunc(t.heartbeatTimeout, func() { s.timeOut(t, "no heartbeat within HeartbeatSeconds") })
	}
	return nil
}

// Expire closes an open task now with States.Timeout, as if its timeout had
// passed. It reports whether the task was open.
func (s *Server) Expire(token string) bool {
	s.mu.Lock()
	t, ok := s.tasks[token]
	s.mu.Unlock()
	if !ok {
		return false
	}
	return s.timeOut(t, "task timed out")
}

func (s *Server) timeOut(t *task, cause string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.result != nil {
		return false
	}
	s.closeLocked(t, Result{Status: StatusFailed, Error: TimeoutError, Cause: cause})
	return true
}

// closeLocked records r as t's result. s.mu must be held.
func (s *Server) closeLocked(t *task, r Result) {
	r.Token = t.token
	r.ExecutionARN = t.execution
	r.Heartbeats = t.heartbeats
	r.ClosedAt = s.now()
	t.result = &r
	if t.timer != nil {
		t.timer.Stop()
	}
	if t.hbTimer != nil {
		t.hbTimer.Stop()
	}
	s.results = append(s.results, r)
	close(t.done)
}

// Wait blocks until the task is closed (by SendTaskSuccess,
// SendTaskFailure or a timeout) and returns its Result, or until ctx ends.
func (s *Server) Wait(ctx context.Context, token string) (Result, error) {
	s.mu.Lock()
	t, ok := s.tasks[token]
	s.mu.Unlock()
	if !ok {
		return Result{}, ErrUnknownTask
	}
	select {
	case <-t.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return *t.result, nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// Lookup returns the task's result if it is closed (closed=true), or its
// heartbeat count so far if it is open. known is false for an unknown token.
func (s *Server) Lookup(token string) (r Result, closed, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[token]
	if !ok {
		return Result{}, false, false
	}
	if t.result == nil {
		return Result{Token: token, ExecutionARN: t.execution, Heartbeats: t.heartbeats}, false, true
	}
	return *t.result, true, true
}

// Results returns every closed task's Result in the order they closed.
func (s *Server) Results() []Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Result(nil), s.results...)
}

// Calls returns how many requests each operation received (including the
// rejected ones), e.g. Calls()["SendTaskSuccess"].
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		m[k] = v
	}
	return m
}

// InjectError makes the next call of operation (e.g. "SendTaskSuccess")
// fail with the given error type and HTTP status before anything else is
// checked; the task is left as it was. Injections queue up per operation.
func (s *Server) InjectError(operation, errType string, status int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[operation] = append(s.faults[operation], awsjson.Errorf(status, errType, "%s", message))
}

// Close stops the timers of the open tasks. Open tasks stay open.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tasks {
		if t.timer != nil {
			t.timer.Stop()
		}
		if t.hbTimer != nil {
			t.hbTimer.Stop()
		}
	}
}

// Handler returns the http.Handler serving the awsJson1_0 API.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

type sendTaskInput struct {
	TaskToken *string `json:"taskToken"`
	Output    *string `json:"output"`
	Error     *string `json:"error"`
	Cause     *string `json:"cause"`
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	req, e := awsjson.Decode(r, contentType, targetPrefix, signingName, 2*MaxOutputBytes+64*1024)
	if e != nil {
		awsjson.WriteError(w, contentType, e)
		return
	}
	if e := s.dispatch(req); e != nil {
		awsjson.WriteError(w, contentType, e)
		return
	}
	awsjson.WriteJSON(w, contentType, nil)
}

func (s *Server) dispatch(req *awsjson.Request) *awsjson.Error {
	switch req.Operation {
	case "SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat":
	default:
		return awsjson.Errorf(http.StatusBadRequest, "UnknownOperationException",
			"operation %s is not emulated by sfnlocal", req.Operation)
	}
	s.mu.Lock()
	s.calls[req.Operation]++
	if q := s.faults[req.Operation]; len(q) > 0 {
		s.faults[req.Operation] = q[1:]
		s.mu.Unlock()
		return q[0]
	}
	s.mu.Unlock()

	var in sendTaskInput
	if err := json.Unmarshal(req.Body, &in); err != nil {
		return awsjson.Errorf(http.StatusBadRequest, "SerializationException", "request body is not a JSON object")
	}
	if e := validate(req.Operation, &in); e != nil {
		return e
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[*in.TaskToken]
	if !ok {
		return awsjson.Errorf(http.StatusBadRequest, "InvalidToken", "Invalid Token: 'Invalid token'")
	}
	if t.result != nil {
		return awsjson.Errorf(http.StatusBadRequest, "TaskTimedOut", "Task Timed Out: 'Provided task does not exist anymore'")
	}
	switch req.Operation {
	case "SendTaskSuccess":
		s.closeLocked(t, Result{Status: StatusSucceeded, Output: json.RawMessage(*in.Output)})
	case "SendTaskFailure":
		var r Result
		r.Status = StatusFailed
		if in.Error != nil {
			r.Error = *in.Error
		}
		if in.Cause != nil {
			r.Cause = *in.Cause
		}
		s.closeLocked(t, r)
	case "SendTaskHeartbeat":
		t.heartbeats++
		if t.hbTimer != nil {
			t.hbTimer.Reset(t.heartbeatTimeout)
		}
	}
	return nil
}

func validate(op string, in *sendTaskInput) *awsjson.Error {
	if in.TaskToken == nil {
		return validationError("taskToken", "Member must not be null")
	}
	if n := utf8.RuneCountInString(*in.TaskToken); n < 1 || n > MaxTaskTokenLen {
		return validationError("taskToken", "Member must have length between 1 and 2048")
	}
	switch op {
	case "SendTaskSuccess":
		if in.Output == nil {
			return validationError("output", "Member must not be null")
		}
		if len(*in.Output) > MaxOutputBytes {
			return validationError("output", "Member must have length less than or equal to 262144")
		}
		if !json.Valid([]byte(*in.Output)) {
			return awsjson.Errorf(http.StatusBadRequest, "InvalidOutput", "Invalid Output: output is not valid JSON")
		}
	case "SendTaskFailure":
		if in.Error != nil && utf8.RuneCountInString(*in.Error) > MaxErrorLen {
			return validationError("error", "Member must have length less than or equal to 256")
		}
		if in.Cause != nil && utf8.RuneCountInString(*in.Cause) > MaxCauseLen {
			return validationError("cause", "Member must have length less than or equal to 32768")
		}
	}
	return nil
}

func validationError(field, constraint string) *awsjson.Error {
	return awsjson.Errorf(http.StatusBadRequest, "ValidationException",
		"1 validation error detected: Value at '%s' failed to satisfy constraint: %s", field, constraint)
}
