// Package lambdaruntime is a Lambda Runtime API server for tests, so a real
// `bootstrap` binary (a provided.al2023 custom runtime, e.g. one built with
// aws-lambda-go and -tags lambda.norpc) can be run and invoked on loopback.
// The AWS Runtime Interface Emulator is not available here; the Runtime API
// is a small documented HTTP protocol, served here as documented:
//
//	GET  /2018-06-01/runtime/invocation/next
//	     long-polls; answers the event with headers
//	     Lambda-Runtime-Aws-Request-Id, Lambda-Runtime-Deadline-Ms,
//	     Lambda-Runtime-Invoked-Function-Arn, Lambda-Runtime-Trace-Id
//	POST /2018-06-01/runtime/invocation/{id}/response   -> 202
//	     (a streamed error reported through the trailers
//	     Lambda-Runtime-Function-Error-Type / -Body counts as an error)
//	POST /2018-06-01/runtime/invocation/{id}/error      -> 202
//	     header Lambda-Runtime-Function-Error-Type (optional),
//	     body {"errorMessage","errorType","stackTrace"}
//	POST /2018-06-01/runtime/init/error                 -> 202
//
// Unknown or already answered request ids get 400 (errorType
// "InvalidRequestID"); a response over 6 MB gets 413. Invoke queues an
// invocation and waits for its answer; StartProcess runs a bootstrap binary
// against the server (build.go builds one as the stack does).
//
// What it does NOT emulate: the Extensions and Telemetry APIs, log capture
// in CloudWatch format (the process's stdout/stderr are just kept), memory
// limits, freezing between invocations, the sandbox restart after a crash
// or timeout (a process that exits stays exited), concurrency (one process
// handles one invocation at a time, in queue order), client context and
// Cognito identity headers, response streaming, SnapStart, and IAM
// credentials (the process gets dummy ones).
package lambdaruntime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

const (
	apiPrefix = "/2018-06-01/runtime/"
	// MaxPayload is the synchronous invocation request/response limit.
	MaxPayload = 6291556
)

// Config configures a Server.
type Config struct {
	FunctionName string        // default "consentflow-test"
	Region       string        // default "us-east-1"
	AccountID    string        // default "123456789012"
	Timeout      time.Duration // the function timeout (deadline); default 30 s
}

// FunctionError is an error a function (or its runtime) reported.
type FunctionError struct {
	Type       string          // header Lambda-Runtime-Function-Error-Type, else the body's errorType
	Message    string          // errorMessage
	StackTrace json.RawMessage // stackTrace, as sent
	Body       []byte          // the raw body
}

func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// Response is the answer to one invocation: Payload on success, Error when
// the function reported one through the error route.
type Response struct {
	RequestID   string
	Payload     []byte
	ContentType string
	Error       *FunctionError
	Duration    time.Duration // from dispatch (GET next) to answer
}

var (
	// ErrTimeout: the function did not answer before its deadline.
	ErrTimeout = errors.New("lambdaruntime: function timed out")
	// ErrClosed: the server was closed.
	ErrClosed = errors.New("lambdaruntime: server closed")
)

type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	dispatch time.Time
	answer   chan Response
	answered bool
}

// Server is a Runtime API server on 127.0.0.1.
type Server struct {
	cfg    Config
	ln     net.Listener
	srv    *http.Server
	queue  chan *invocation
	closed chan struct{}
	once   sync.Once

	mu         sync.Mutex
	inflight   map[string]*invocation
	initErrors []FunctionError
	nexts      []time.Time // when GET next was received
	answers    []time.Time // when a response or error was received
}

// Start listens on 127.0.0.1:0 and serves the Runtime API.
func Start(cfg Config) (*Server, error) {
	if cfg.FunctionName == "" {
		cfg.FunctionName = "consentflow-test"
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "123456789012"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		ln:       ln,
		queue:    make(chan *invocation, 64),
		closed:   make(chan struct{}),
		inflight: map[string]*invocation{},
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Addr is host:port, the value of AWS_LAMBDA_RUNTIME_API.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Config returns the effective configuration.
func (s *Server) Config() Config { return s.cfg }

// FunctionARN is the Lambda-Runtime-Invoked-Function-Arn sent.
func (s *Server) FunctionARN() string {
	return "arn:aws:lambda:" + s.cfg.Region + ":" + s.cfg.AccountID + ":function:" + s.cfg.FunctionName
}

// Close stops the server; pending Invoke calls return ErrClosed.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		close(s.closed)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		err = s.srv.Shutdown(ctx)
		if err != nil {
			err = s.srv.Close()
		}
	})
	return err
}

// InitErrors returns the errors posted to /runtime/init/error.
func (s *Server) InitErrors() []FunctionError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]FunctionError(nil), s.initErrors...)
}

// firstAfter returns the first time in ts at or after t.
func firstAfter(ts []time.Time, t time.Time) (time.Time, bool) {
	for _, x := range ts {
		if !x.Before(t) {
			return x, true
		}
	}
	return time.Time{}, false
}

// Invoke queues payload as an invocation and waits for the function's
// answer. A function error is returned in Response.Error with a nil error;
// the error result is for ctx ending, the deadline passing unanswered
// (ErrTimeout) or the server closing (ErrClosed).
func (s *Server) Invoke(ctx context.Context, payload []byte) (Response, error) {
	if len(payload) > MaxPayload {
		return Response{}, fmt.Errorf("lambdaruntime: payload of %d bytes exceeds %d", len(payload), MaxPayload)
	}
	inv := &invocation{id: uuid.NewString(), payload: payload, answer: make(chan Response, 1)}
	select {
	case s.queue <- inv:
	case <-ctx.Done():
		return Response{}, ctx.Err()
	case <-s.closed:
		return Response{}, ErrClosed
	}
	// Wait for dispatch+answer; once dispatched, also bound by the deadline.
	var deadline <-chan time.Time
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case r := <-inv.answer:
			return r, nil
		case <-ctx.Done():
			s.abandon(inv)
			return Response{}, ctx.Err()
		case <-s.closed:
			return Response{}, ErrClosed
		case <-deadline:
			s.abandon(inv)
			return Response{RequestID: inv.id}, ErrTimeout
		case <-poll.C:
			if deadline == nil {
				s.mu.Lock()
				dl := inv.deadline
				s.mu.Unlock()
				if !dl.IsZero() {
					deadline = time.After(time.Until(dl) + 200*time.Millisecond)
				}
			}
		}
	}
}

// abandon marks an invocation as answered so a late answer gets 400.
func (s *Server) abandon(inv *invocation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv.answered = true
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, apiPrefix)
	if !ok {
		writeErr(w, http.StatusNotFound, "UnknownPath", "unknown path")
		return
	}
	switch {
	case rest == "invocation/next" && r.Method == http.MethodGet:
		s.next(w, r)
	case rest == "init/error" && r.Method == http.MethodPost:
		body, _ := io.ReadAll(io.LimitReader(r.Body, MaxPayload))
		fe := parseFunctionError(r.Header, body)
		s.mu.Lock()
		s.initErrors = append(s.initErrors, *fe)
		s.mu.Unlock()
		writeAccepted(w)
	case strings.HasPrefix(rest, "invocation/") && r.Method == http.MethodPost:
		parts := strings.Split(strings.TrimPrefix(rest, "invocation/"), "/")
		if len(parts) != 2 || (parts[1] != "response" && parts[1] != "error") {
			writeErr(w, http.StatusNotFound, "UnknownPath", "unknown path")
			return
		}
		s.answer(w, r, parts[0], parts[1] == "error")
	default:
		writeErr(w, http.StatusNotFound, "UnknownPath", "unknown path")
	}
}

func (s *Server) next(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	s.mu.Lock()
	s.nexts = append(s.nexts, now)
	s.mu.Unlock()
	var inv *invocation
	select {
	case inv = <-s.queue:
	case <-r.Context().Done():
		return
	case <-s.closed:
		writeErr(w, http.StatusInternalServerError, "ServerClosed", "runtime API closed")
		return
	}
	s.mu.Lock()
	if inv.answered { // abandoned before dispatch
		s.mu.Unlock()
		s.next(w, r)
		return
	}
	inv.dispatch = time.Now()
	inv.deadline = inv.dispatch.Add(s.cfg.Timeout)
	s.inflight[inv.id] = inv
	s.mu.Unlock()

	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", s.FunctionARN())
	h.Set("Lambda-Runtime-Trace-Id", traceID(inv.dispatch))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(inv.payload)
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, id string, isError bool) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxPayload+1))
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.inflight[id]
	if !ok || inv.answered {
		writeErr(w, http.StatusBadRequest, "InvalidRequestID", "Invalid request ID")
		return
	}
	resp := Response{RequestID: id, ContentType: r.Header.Get("Content-Type"), Duration: now.Sub(inv.dispatch)}
	switch {
	case err != nil:
		resp.Error = &FunctionError{Type: "Runtime.ResponseReadError", Message: err.Error()}
	case len(body) > MaxPayload:
		resp.Error = &FunctionError{Type: "Function.ResponseSizeTooLarge", Message: "Response payload size exceeded maximum allowed payload size (6291556 bytes)."}
		writeErr(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "Exceeded maximum allowed payload size (6291556 bytes).")
	case isError:
		resp.Error = parseFunctionError(r.Header, body)
	case r.Trailer.Get("Lambda-Runtime-Function-Error-Type") != "":
		resp.Error = &FunctionError{Type: r.Trailer.Get("Lambda-Runtime-Function-Error-Type"), Body: []byte(r.Trailer.Get("Lambda-Runtime-Function-Error-Body"))}
	default:
		resp.Payload = body
	}
	inv.answered = true
	delete(s.inflight, id)
	s.answers = append(s.answers, now)
	inv.answer <- resp
	if resp.Error == nil || resp.Error.Type != "Function.ResponseSizeTooLarge" {
		writeAccepted(w)
	}
}

func parseFunctionError(h http.Header, body []byte) *FunctionError {
	fe := &FunctionError{Body: body}
	var b struct {
		Message    string          `json:"errorMessage"`
		Type       string          `json:"errorType"`
		StackTrace json.RawMessage `json:"stackTrace"`
	}
	if json.Unmarshal(body, &b) == nil {
		fe.Message, fe.Type, fe.StackTrace = b.Message, b.Type, b.StackTrace
	}
	if t := h.Get("Lambda-Runtime-Function-Error-Type"); t != "" {
		fe.Type = t
	}
	if fe.Type == "" {
		fe.Type = "Unhandled"
	}
	return fe
}

func writeAccepted(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

func writeErr(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"errorMessage": msg, "errorType": typ})
	_, _ = w.Write(b)
}

func traceID(now time.Time) string {
	var root [12]byte
	var parent [8]byte
	_, _ = rand.Read(root[:])
	_, _ = rand.Read(parent[:])
	return fmt.Sprintf("Root=1-%08x-%s;Parent=%s;Sampled=0",
		now.Unix(), hex.EncodeToString(root[:]), hex.EncodeToString(parent[:]))
}
