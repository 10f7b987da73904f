// Package cont continues the user's agent once the user has authorized: the
// ContinueAgent step of the AuthorizeUser state machine. It invokes the
// agent in AgentCore Runtime (InvokeAgentRuntime) named by the workflow's
// continueWith, as the user who authorized (runtimeUserId), reads the
// agent's answer fully up to MaxResponseBytes, and returns a bounded
// Summary for the workflow's output. It depends on the Runtime port only;
// internal/adapters/agentruntime adapts the AWS SDK to it.
//
// Flows started with a userToken cannot continue this way (initiate refuses
// their continueWith): an agent behind a JWT authorizer is invoked with the
// user's JWT as a bearer token, not with SigV4 and runtimeUserId, and only
// the application holds that JWT. Nor can M2M flows, direct invocations
// (no task token) or deployments without session binding: only a user's
// consent in the same execution continues an agent for them.
package cont

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// Bounds of what is read and what is put in the workflow's output.
const (
	// MaxResponseBytes is the most of the agent's answer read; a longer
	// answer fails the step with contract.ErrAgentResponseTooLarge.
	MaxResponseBytes = 1 << 20
	// SummaryBytes is the most of the body the Summary carries.
	SummaryBytes = 16 * 1024
	// MaxSummaryJSON bounds the Summary as the workflow's state carries it
	// (JSON, where a control character or '<' takes six bytes), so that
	// the input, the authorization and the summary stay far below Step
	// Functions' 256 KiB.
	MaxSummaryJSON = 2 * SummaryBytes
)

// Request is the ContinueAgent step's input: the execution input's
// continueWith and the authorization task's result.
type Request struct {
	ContinueWith  *flow.ContinueWith `json:"continueWith"`
	Authorization *flow.Result       `json:"authorization"`
	// ExecutionID is the state machine execution's ARN ($$.Execution.Id):
	// without a runtimeSessionId of the caller's, the runtime session is
	// derived from it, so that a repeated invocation lands in the same
	// session and the agent can tell.
	ExecutionID string `json:"executionId,omitempty"`
}

// Invocation is one InvokeAgentRuntime call.
type Invocation struct {
	// AgentRuntime is the ARN, or the id with AccountID.
	AgentRuntime     string
	AccountID        string
	Qualifier        string
	RuntimeSessionID string
	// RuntimeUserID is the user the agent acts for ("" for M2M flows).
	RuntimeUserID string
	Payload       []byte
}

// Response is the runtime's answer; the caller closes Body.
type Response struct {
	StatusCode       int
	ContentType      string
	RuntimeSessionID string
	Body             io.ReadCloser
}

// Runtime is the slice of AgentCore Runtime the step uses. Errors are
// *flow.Failure values named contract.ErrAgentRuntime*.
type Runtime interface {
	Invoke(ctx context.Context, in Invocation) (*Response, error)
}

// Summary is what the workflow's output carries of the agent's answer.
type Summary struct {
	StatusCode       int    `json:"statusCode"`
	ContentType      string `json:"contentType,omitempty"`
	RuntimeSessionID string `json:"runtimeSessionId,omitempty"`
	// Bytes is the size of the whole body.
	Bytes int `json:"bytes"`
	// Body is a JSON body of at most SummaryBytes, as JSON.
	Body json.RawMessage `json:"body,omitempty"`
	// Text is otherwise the start (at most SummaryBytes, whole UTF-8
	// characters) of a text or JSON body; other content types are not
	// shown.
	Text string `json:"text,omitempty"`
	// Truncated: Text is not the whole body.
	Truncated bool `json:"truncated,omitempty"`
}

// Continuer runs the step.
type Continuer struct {
	Runtime Runtime
	// Allowed are the configured runtime ARNs (contract.EnvAgentRuntimeARNs);
	// Region is the function's region.
	Allowed []contract.AgentRuntimeTarget
	Region  string
	Log     *slog.Logger
}

// ParseRequest decodes the step's input strictly (exact member names, no
// unknown members, nothing after it).
func ParseRequest(raw []byte) (Request, error) {
	var r Request
	var env struct {
		ContinueWith  json.RawMessage `json:"continueWith"`
		Authorization json.RawMessage `json:"authorization"`
		ExecutionID   string          `json:"executionId,omitempty"`
	}
	if err := flow.DecodeStrict(raw, &env); err != nil {
		return r, flow.Fail(contract.ErrInvalidInput, "the ContinueAgent input is not {continueWith, authorization, executionId}")
	}
	r.ExecutionID = env.ExecutionID
	if len(env.ContinueWith) > 0 && string(env.ContinueWith) != "null" {
		r.ContinueWith = &flow.ContinueWith{}
		if err := r.ContinueWith.UnmarshalJSON(env.ContinueWith); err != nil {
			return r, flow.AsFailure(err, contract.ErrInvalidInput)
		}
	}
	if len(env.Authorization) > 0 && string(env.Authorization) != "null" {
		r.Authorization = &flow.Result{}
		if err := flow.DecodeStrict(env.Authorization, r.Authorization); err != nil {
			return r, flow.Fail(contract.ErrInvalidInput, "the ContinueAgent input's authorization is not a result of the authorization")
		}
	}
	return r, nil
}

// runtimeSessionID derives a runtime session id (33-256 characters) from
// the execution: the same for every attempt of one execution.
func runtimeSessionID(executionID string) string {
	sum := sha256.Sum256([]byte("consentflow runtime session\x00" + executionID))
	return "consentflow-" + hex.EncodeToString(sum[:])
}

// Continue invokes the agent for an AUTHORIZED result and summarizes its
// answer. Errors are *flow.Failure values.
func (c *Continuer) Continue(ctx context.Context, r Request) (*Summary, error) {
	switch {
	case r.ContinueWith == nil:
		return nil, flow.Fail(contract.ErrInvalidInput, "continueWith is required")
	case r.Authorization == nil || r.Authorization.Status != flow.StatusAuthorized:
		return nil, flow.Fail(contract.ErrInvalidInput, "the authorization is not %s", flow.StatusAuthorized)
	case r.Authorization.UserID == "":
		return nil, flow.Fail(contract.ErrInvalidInput, "the authorization names no user: only a user's consent continues an agent")
	case !r.Authorization.Consented:
		// A token already in the vault proves nothing about who started the workflow:
		// acting for the user on it would let anyone who may start an execution invoke
		// the agent for any user (InvokeAgentRuntimeForUser is this function's, not theirs).
		return nil, flow.Fail(contract.ErrContinuationNeedsConsent, "the user did not consent in this workflow (the vault already held the token): the agent is not invoked for them")
	}
	if err := r.ContinueWith.Validate(); err != nil {
		return nil, err
	}
	if !r.ContinueWith.AllowedBy(c.Allowed, c.Region) {
		return nil, flow.Fail(contract.ErrInvalidInput, "continueWith names an agent runtime that is not configured (%s)", contract.EnvAgentRuntimeARNs)
	}
	cw := r.ContinueWith
	in := Invocation{
		AgentRuntime: cw.AgentRuntimeARN, AccountID: cw.AccountID, Qualifier: cw.Qualifier,
		RuntimeSessionID: cw.RuntimeSessionID, RuntimeUserID: r.Authorization.UserID, Payload: cw.Payload,
	}
	if in.AgentRuntime == "" {
		in.AgentRuntime = cw.AgentRuntimeID
	}
	if in.RuntimeSessionID == "" && r.ExecutionID != "" {
		in.RuntimeSessionID = runtimeSessionID(r.ExecutionID)
	}
	log := c.log().With("correlationId", r.Authorization.CorrelationID, "agentRuntime", cw.RuntimeID(), "forUser", in.RuntimeUserID != "")
	res, err := c.Runtime.Invoke(ctx, in)
	if err != nil {
		f := flow.AsFailure(err, contract.ErrAgentRuntimeUnavailable)
		log.WarnContext(ctx, "InvokeAgentRuntime failed", "error", f.Name, "detail", f.Message)
		return nil, f
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxResponseBytes+1))
	if err != nil {
		log.WarnContext(ctx, "reading the agent's answer failed", "error", err.Error())
		return nil, &flow.Failure{Name: contract.ErrAgentRuntimeUnavailable, Message: "the agent's answer broke off", Err: err}
	}
	if len(body) > MaxResponseBytes {
		log.WarnContext(ctx, "the agent's answer is too large", "limit", MaxResponseBytes)
		return nil, flow.Fail(contract.ErrAgentResponseTooLarge, "the agent's answer is larger than %d bytes", MaxResponseBytes)
	}
	s := summarize(res.StatusCode, res.ContentType, res.RuntimeSessionID, body)
	log.InfoContext(ctx, "agent continued", "statusCode", s.StatusCode, "contentType", s.ContentType, "bytes", s.Bytes)
	return s, nil
}

func (c *Continuer) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}

// Summarize bounds an answer for the workflow's output: a JSON body of at
// most SummaryBytes as JSON, otherwise the start of a JSON or text body as
// text, nothing of other content types; the Summary's JSON is at most
// MaxSummaryJSON bytes.
func Summarize(status int, contentType string, body []byte) *Summary {
	return summarize(status, contentType, "", body)
}

// maxHeaderValue bounds the agent's content type and the runtime session
// id in the Summary (the model's session id is at most 256 characters).
const maxHeaderValue = 256

func summarize(status int, contentType, sessionID string, body []byte) *Summary {
	s := &Summary{StatusCode: status, Bytes: len(body)}
	mt, _, err := mime.ParseMediaType(contentType)
	if err == nil && len(contentType) <= maxHeaderValue && utf8.ValidString(contentType) {
		s.ContentType = contentType // the agent's header: shown only when it is a media type
	}
	if len(sessionID) <= maxHeaderValue && flow.VisibleASCII(sessionID) {
		s.RuntimeSessionID = sessionID
	}
	isJSON := mt == "application/json" || strings.HasSuffix(mt, "+json")
	isText := strings.HasPrefix(mt, "text/") || isJSON
	if isJSON && len(body) <= SummaryBytes && json.Valid(body) {
		var buf bytes.Buffer
		if json.Compact(&buf, body) == nil {
			s.Body = buf.Bytes()
			if encodedLen(s) <= MaxSummaryJSON {
				return s
			}
			s.Body = nil // escaped, it is too large: its start as text
		}
	}
	if !isText {
		return s
	}
	cut := min(len(body), SummaryBytes)
	for {
		for cut > 0 && cut < len(body) && !utf8.RuneStart(body[cut]) {
			cut-- // do not cut a character in two
		}
		s.Text, s.Truncated = strings.ToValidUTF8(string(body[:cut]), "\uFFFD"), cut < len(body)
		over := encodedLen(s) - MaxSummaryJSON
		if over <= 0 || cut == 0 {
			return s
		}
		// Each byte cut saves at least one byte of JSON, at most six.
		cut -= max(over/6, 1)
		cut = max(cut, 0)
	}
}

func encodedLen(s *Summary) int {
	b, _ := json.Marshal(s)
	return len(b)
}
