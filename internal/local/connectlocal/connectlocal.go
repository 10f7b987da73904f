// Package connectlocal is a minimal, local stand-in for the one Amazon
// Connect operation consentflow calls: UpdateParticipantAuthentication. It
// is reached through the real aws-sdk-go-v2 service/connect client
// (BaseEndpoint, or AWS_ENDPOINT_URL_CONNECT, = the server's URL) and
// speaks the operation's restJson1 protocol: POST
// /contact/update-participant-authentication with a JSON body {State,
// InstanceId, Code, Error, ErrorDescription}, signed with SigV4 for the
// "connect" service (the caller's IAM credentials; the operation takes no
// participant or connection token), answered 200 with {}.
//
// What it does:
//   - knows one instance (Config.InstanceID) and the authentications
//     waiting in its chats: StartAuthentication registers one and returns
//     its state, as the Authenticate Customer block would put it in the
//     Cognito sign-in URL (GetAuthenticationUrl);
//   - checks every request against the operation's model constraints
//     (InstanceId 1-100, State 1-1000, Code 1-2048, Error and
//     ErrorDescription 1-2048 of [\x20-\x21\x23-\x5B\x5D-\x7E]) and the
//     documented use (a code or an error);
//   - applies the first update of a waiting authentication (the code or
//     the error is recorded: Authentication), and refuses later ones;
//   - records every call, the refused ones too (Calls), with the values it
//     received: it is a test tool, and those values are secrets elsewhere;
//   - InjectFault makes the next calls fail (any error type and status,
//     optionally after applying the update, as a lost answer looks) or
//     answer late, to test fault handling;
//   - errors are encoded as restJson1 services encode them: the HTTP status
//     of the error shape, X-Amzn-ErrorType: <shape>, a body
//     {"Message": ...}; every answer carries X-Amzn-RequestId.
//
// Which error Connect returns for each refusal is an assumption, not
// confirmed against AWS: a second update of the same state answers
// ConflictException (409), an unknown or expired state and a request with
// both or neither of Code and Error InvalidRequestException (400), a
// constraint violation InvalidParameterException (400), another instance
// AccessDeniedException (403, as IAM answers a role scoped to one
// instance's ARN).
//
// What it does NOT do: contacts, flows, the Authenticate Customer block's
// branches and timeout, Amazon Cognito (a code is never redeemed), the
// Customer Profiles import and its asynchronous result, chat messages and
// events, the Connect Participant Service (GetAuthenticationUrl), any other
// Connect operation, IAM (the SigV4 signature is required but never
// verified), real throttling or request limits (only InjectFault), and
// Regions. An authentication is valid only on the Server that started it.
package connectlocal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Path is the operation's request URI.
const Path = "/contact/update-participant-authentication"

// The operation's error shapes (connect-2017-08-08) and their statuses.
const (
	InvalidRequest   = "InvalidRequestException"   // 400
	InvalidParameter = "InvalidParameterException" // 400
	Conflict         = "ConflictException"         // 409
	InternalService  = "InternalServiceException"  // 500
	Throttling       = "ThrottlingException"       // 429
	AccessDenied     = "AccessDeniedException"     // 403
)

// statusOf is each error shape's HTTP status in the model.
var statusOf = map[string]int{
	InvalidRequest: 400, InvalidParameter: 400, Conflict: 409,
	InternalService: 500, Throttling: 429, AccessDenied: 403,
}

const (
	signingName = "connect"
	maxBody     = 64 << 10
)

// AuthStatus is an authentication's state in the stand-in.
type AuthStatus string

// Authentication states.
const (
	// Waiting: the chat's Authenticate Customer block waits for the
	// customer's sign-in.
	Waiting AuthStatus = "WAITING"
	// CodeReceived: an update carried a code (Connect would now fetch the
	// identity from Cognito, asynchronously).
	CodeReceived AuthStatus = "CODE_RECEIVED"
	// ErrorReceived: an update carried an error (the block's error branch
	// would run).
	ErrorReceived AuthStatus = "ERROR_RECEIVED"
	// Expired: Expire ended it.
	Expired AuthStatus = "EXPIRED"
)

// Authentication is one waiting (or answered) authentication.
type Authentication struct {
	State            string
	Status           AuthStatus
	Code             string
	Error            string
	ErrorDescription string
	// Updates counts the updates that named this state (applied or not).
	Updates int
}

// Call is one request the stand-in received. Result is "" when the update
// was applied and answered 200, else the error shape answered.
type Call struct {
	InstanceID       string
	State            string
	Code             string
	Error            string
	ErrorDescription string
	Result           string
	At               time.Time
}

// Fault is an injected failure of the next call.
type Fault struct {
	// Type is the error shape answered (e.g. Throttling); "" answers
	// normally (with Delay only: a slow answer).
	Type string
	// Status replaces the shape's model status (0: the model's; 500 for
	// unknown shapes).
	Status int
	// Delay holds the answer back (the request's context still ends it).
	Delay time.Duration
	// AfterApply applies the update first, then answers the error: an
	// answer lost on its way back.
	AfterApply bool
}

// Config configures a Server.
type Config struct {
	// InstanceID is the one instance the stand-in knows.
	InstanceID string
	// Clock stamps the calls (default time.Now).
	Clock func() time.Time
}

// Server is the stand-in. The zero value is not usable: call New.
type Server struct {
	mu     sync.Mutex
	cfg    Config
	auths  map[string]*Authentication
	calls  []Call
	faults []Fault
}

// New returns a Server for cfg.InstanceID.
func New(cfg Config) *Server {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Server{cfg: cfg, auths: map[string]*Authentication{}}
}

// InstanceID is the instance the stand-in knows.
func (s *Server) InstanceID() string { return s.cfg.InstanceID }

// StartAuthentication registers an authentication waiting for the
// customer's sign-in and returns its state: an opaque random token (the
// real one's format is not documented; this one is URL-safe base64 with
// '-' and '_', as a URL would carry it, 64 characters).
func (s *Server) StartAuthentication() string {
	var b [48]byte
	_, _ = rand.Read(b[:])
	state := base64.RawURLEncoding.EncodeToString(b[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	s.auths[state] = &Authentication{State: state, Status: Waiting}
	return state
}

// Authentication returns the authentication with state, if any.
func (s *Server) Authentication(state string) (Authentication, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.auths[state]
	if !ok {
		return Authentication{}, false
	}
	return *a, true
}

// Expire ends a waiting authentication (the block's timeout); later
// updates are refused as for an unknown state. It reports whether the
// authentication was waiting.
func (s *Server) Expire(state string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.auths[state]
	if !ok || a.Status != Waiting {
		return false
	}
	a.Status = Expired
	return true
}

// Calls returns every call received, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// InjectFault queues f for the next call (faults apply in order, one per
// call, before the request is checked unless AfterApply).
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// ClearFaults drops the faults not used yet.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// InjectError queues a plain error answer of shape errType for the next
// call.
func (s *Server) InjectError(errType string) { s.InjectFault(Fault{Type: errType}) }

// Handler returns the http.Handler serving the operation.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// input is the request body. Pointers tell absent from empty.
type input struct {
	InstanceID       *string `json:"InstanceId"`
	State            *string `json:"State"`
	Code             *string `json:"Code"`
	Error            *string `json:"Error"`
	ErrorDescription *string `json:"ErrorDescription"`
}

// apiError is an error answer.
type apiError struct {
	typ    string
	status int
	msg    string
}

func errorf(typ, format string, args ...any) *apiError {
	return &apiError{typ: typ, status: statusOf[typ], msg: fmt.Sprintf(format, args...)}
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != Path {
		writeError(w, &apiError{typ: "UnknownOperationException", status: http.StatusNotFound,
			msg: "connectlocal serves POST " + Path + " only"})
		return
	}
	if e := checkEnvelope(r); e != nil {
		writeError(w, e)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		writeError(w, errorf(InvalidRequest, "the request body could not be read or is too large"))
		return
	}
	var in input
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&in); err != nil {
		writeError(w, &apiError{typ: "SerializationException", status: http.StatusBadRequest, msg: "the body is not a JSON object of the operation's input"})
		return
	}

	s.mu.Lock()
	call := Call{At: s.cfg.Clock(), InstanceID: deref(in.InstanceID), State: deref(in.State), Code: deref(in.Code),
		Error: deref(in.Error), ErrorDescription: deref(in.ErrorDescription)}
	var fault *Fault
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		fault = &f
	}
	var e *apiError
	switch {
	case fault != nil && !fault.AfterApply && fault.Type != "":
		e = fault.err()
	default:
		e = s.applyLocked(&in)
		if e == nil && fault != nil && fault.AfterApply && fault.Type != "" {
			e = fault.err()
		}
	}
	if e != nil {
		call.Result = e.typ
	}
	s.calls = append(s.calls, call)
	s.mu.Unlock()

	if fault != nil && fault.Delay > 0 {
		select {
		case <-time.After(fault.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if e != nil {
		writeError(w, e)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-RequestId", requestID())
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("{}"))
}

func (f *Fault) err() *apiError {
	st := f.Status
	if st == 0 {
		if st = statusOf[f.Type]; st == 0 {
			st = http.StatusInternalServerError
		}
	}
	return &apiError{typ: f.Type, status: st, msg: "injected by connectlocal"}
}

// checkEnvelope checks the content type and that the request is
// SigV4-signed for Connect (the signature itself is not verified).
func checkEnvelope(r *http.Request) *apiError {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return &apiError{typ: "SerializationException", status: http.StatusBadRequest, msg: "unexpected Content-Type " + ct}
	}
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !strings.Contains(auth, "/"+signingName+"/aws4_request") {
		return &apiError{typ: "MissingAuthenticationTokenException", status: http.StatusForbidden,
			msg: "the request is not SigV4-signed for service connect"}
	}
	return nil
}

// applyLocked validates in and applies it to its authentication. s.mu
// must be held.
func (s *Server) applyLocked(in *input) *apiError {
	if e := validate(in); e != nil {
		return e
	}
	if *in.InstanceID != s.cfg.InstanceID {
		return errorf(AccessDenied, "not authorized to perform connect:UpdateParticipantAuthentication on this instance")
	}
	a, ok := s.auths[*in.State]
	if ok {
		a.Updates++
	}
	switch {
	case !ok || a.Status == Expired:
		return errorf(InvalidRequest, "no authentication is waiting for this state")
	case a.Status != Waiting:
		return errorf(Conflict, "the authentication was already updated")
	case in.Code != nil:
		a.Status, a.Code = CodeReceived, *in.Code
	default:
		a.Status, a.Error, a.ErrorDescription = ErrorReceived, *in.Error, deref(in.ErrorDescription)
	}
	return nil
}

// validate applies the model's constraints and the documented use.
func validate(in *input) *apiError {
	length := func(field string, v *string, required bool, max int) *apiError {
		if v == nil {
			if required {
				return errorf(InvalidParameter, "%s is required", field)
			}
			return nil
		}
		if n := utf8.RuneCountInString(*v); n < 1 || n > max {
			return errorf(InvalidParameter, "%s must have length between 1 and %d", field, max)
		}
		return nil
	}
	pattern := func(field string, v *string) *apiError {
		if v == nil {
			return nil
		}
		for i := 0; i < len(*v); i++ {
			if c := (*v)[i]; c < 0x20 || c > 0x7E || c == '"' || c == '\\' {
				return errorf(InvalidParameter, "%s must match ^[\\x20-\\x21\\x23-\\x5B\\x5D-\\x7E]*$", field)
			}
		}
		return nil
	}
	for _, e := range []*apiError{
		length("InstanceId", in.InstanceID, true, 100),
		length("State", in.State, true, 1000),
		length("Code", in.Code, false, 2048),
		length("Error", in.Error, false, 2048),
		length("ErrorDescription", in.ErrorDescription, false, 2048),
		pattern("Error", in.Error),
		pattern("ErrorDescription", in.ErrorDescription),
	} {
		if e != nil {
			return e
		}
	}
	if (in.Code == nil) == (in.Error == nil) {
		return errorf(InvalidRequest, "exactly one of Code and Error is required")
	}
	return nil
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-RequestId", requestID())
	w.Header().Set("X-Amzn-ErrorType", e.typ)
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"Message": e.msg})
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// requestID is a fresh request id in the UUID form AWS uses.
func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
