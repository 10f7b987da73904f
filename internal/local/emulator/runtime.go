package emulator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/consentflow/consentflow/internal/contract"
)

// AgentCore Runtime's data plane: InvokeAgentRuntime
// (POST /runtimes/{agentRuntimeArn}/invocations, restJson1, the payload as
// the raw body, the other members in headers and the query). The emulator
// forwards each invocation to a local agent process that follows the
// AgentCore Runtime service contract (HTTP POST /invocations, GET /ping),
// as the service forwards it to the agent's microVM, and streams its answer
// back.

// OpInvokeAgentRuntime is AgentCore Runtime's invocation operation.
const OpInvokeAgentRuntime = "InvokeAgentRuntime"

// Headers of the Runtime service contract: what the agent receives.
const (
	HeaderRuntimeSessionID  = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
	HeaderRuntimeUserID     = "X-Amzn-Bedrock-AgentCore-Runtime-User-Id"
	HeaderWorkloadToken     = "WorkloadAccessToken"
	HeaderOAuth2CallbackURL = "OAuth2CallbackUrl"
)

// AgentRuntime registers an agent runtime: invocations of ARN go to the
// local agent at URL.
type AgentRuntime struct {
	// ARN is arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>.
	ARN string `json:"arn"`
	// URL is the agent's origin (http://127.0.0.1:8080): it serves
	// POST /invocations and GET /ping.
	URL string `json:"url"`
	// The agent runs as a workload identity of its own, named after the
	// runtime id, which AgentCore creates and links to the runtime: the
	// WorkloadAccessToken header is minted for it and the invocation's
	// user, and GetWorkloadAccessToken* refuse it (a linked identity mints
	// no tokens for callers). So the agent does not see tokens other
	// workload identities obtained, consentflow's included: it mints its
	// own for consentflow's workload (agentauth.WithWorkloadName).
	// OAuth2CallbackURL, when set, is passed in the OAuth2CallbackUrl header.
	OAuth2CallbackURL string `json:"oauth2CallbackUrl,omitempty"`
	// Endpoints are the runtime's endpoints besides DEFAULT (the qualifiers
	// InvokeAgentRuntime accepts; all go to the same agent here).
	Endpoints []string `json:"endpoints,omitempty"`
}

// forwarder forwards invocations to local agents; it follows no redirect
// (the WorkloadAccessToken header would go along).
var forwarder = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// maxRuntimePayload bounds the invocation body the emulator reads (the
// model's Body allows 100,000,000 bytes).
const maxRuntimePayload = 16 << 20

// AddAgentRuntime registers (or replaces) an agent runtime on a running
// server, with the same checks as Config.AgentRuntimes.
func (s *Server) AddAgentRuntime(rt AgentRuntime) error {
	rtID, ok := contract.ParseAgentRuntimeARN(rt.ARN)
	if !ok {
		return fmt.Errorf("emulator: agent runtime ARN %q is not arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>", rt.ARN)
	}
	u, err := url.Parse(rt.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("emulator: agent runtime %s: url %q is not an http(s) origin", rt.ARN, rt.URL)
	}
	// The emulator forwards invocations (with workload access tokens) only to local agents.
	if ip := net.ParseIP(u.Hostname()); u.Hostname() != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("emulator: agent runtime %s: url %q is not on this machine (127.0.0.1, ::1 or localhost)", rt.ARN, rt.URL)
	}
	for _, e := range rt.Endpoints {
		if !contract.ValidRuntimeEndpointName(e) {
			return fmt.Errorf("emulator: agent runtime %s: endpoint %q is not an endpoint name", rt.ARN, e)
		}
	}
	workload := rtID.ID
	rt.URL = strings.TrimRight(rt.URL, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, exists := s.workloads[workload]; exists && !s.linked[workload] {
		return fmt.Errorf("emulator: agent runtime %s: a workload identity named %q exists; a runtime's own is named after its id", rt.ARN, workload)
	}
	if s.runtimes == nil {
		s.runtimes = map[string]AgentRuntime{}
	}
	if s.linked == nil {
		s.linked = map[string]bool{}
	}
	s.runtimes[rt.ARN] = rt
	s.linked[workload] = true
	if s.workloads[workload] == nil {
		s.workloads[workload] = map[string]bool{}
	}
	return nil
}

// runtimeHeaders are InvokeAgentRuntimeRequest's header members and their
// shapes.
var runtimeHeaders = []struct{ member, header, shape string }{
	{"contentType", "Content-Type", "MimeType"},
	{"accept", "Accept", "MimeType"},
	{"mcpSessionId", "Mcp-Session-Id", "StringType"},
	{"runtimeSessionId", HeaderRuntimeSessionID, "SessionType"},
	{"mcpProtocolVersion", "Mcp-Protocol-Version", "StringType"},
	{"mcpMethod", "Mcp-Method", "StringType"},
	{"mcpName", "Mcp-Name", "StringType"},
	{"runtimeUserId", HeaderRuntimeUserID, "StringType"},
	{"traceId", "X-Amzn-Trace-Id", "InvokeAgentRuntimeRequestTraceIdString"},
	{"traceParent", "traceparent", "InvokeAgentRuntimeRequestTraceParentString"},
	{"traceState", "tracestate", "InvokeAgentRuntimeRequestTraceStateString"},
	{"baggage", "baggage", "InvokeAgentRuntimeRequestBaggageString"},
}

// runtimeTarget parses /runtimes/{agentRuntimeArn}/invocations from the
// escaped path (the label is percent-encoded: an ARN holds '/').
func runtimeTarget(r *http.Request) (string, bool) {
	p := r.URL.EscapedPath()
	if !strings.HasPrefix(p, "/runtimes/") || !strings.HasSuffix(p, "/invocations") {
		return "", false
	}
	label := strings.TrimSuffix(strings.TrimPrefix(p, "/runtimes/"), "/invocations")
	v, err := url.PathUnescape(label)
	if err != nil || v == "" {
		return "", false
	}
	return v, true
}

func (s *Server) serveRuntime(w http.ResponseWriter, r *http.Request, target string) {
	reqID := uuid.NewString()
	w.Header().Set("X-Amzn-Requestid", reqID)
	call := Call{Op: OpInvokeAgentRuntime, RequestID: reqID}
	fail := func(e *apiError) {
		writeError(w, e)
		call.HTTPStatus, call.ErrorType = e.status, e.typ
		s.record(call)
	}
	if e := checkSigV4(r); e != nil {
		fail(e)
		return
	}
	if r.Method != http.MethodPost {
		fail(&apiError{status: 404, typ: "UnknownOperationException", msg: "Unknown operation " + r.Method + " " + r.URL.Path})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRuntimePayload))
	if err != nil {
		fail(&apiError{status: 413, typ: "ValidationException", reason: "CannotParse", msg: "Request body too large"})
		return
	}
	if f, ok := s.takeFault(OpInvokeAgentRuntime); ok {
		call.Outcome = "fault"
		switch f.Kind {
		case FaultThrottling:
			fail(&apiError{status: 429, typ: "ThrottlingException", msg: "Rate exceeded"})
			return
		case FaultInternal:
			fail(&apiError{status: 500, typ: "InternalServerException", msg: "Internal server error (injected)"})
			return
		case FaultDelay, FaultSlow:
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
	}
	// Validation, as the service does before anything runs.
	var errs []fieldError
	for _, h := range runtimeHeaders {
		if vs, ok := r.Header[http.CanonicalHeaderKey(h.header)]; ok {
			validateString(shapes[h.shape], h.member, strings.Join(vs, ","), &errs)
		}
	}
	q := r.URL.Query()
	account, hasAccount := q.Get("accountId"), q.Has("accountId")
	if hasAccount {
		validateString(shapes["InvokeAgentRuntimeRequestAccountIdString"], "accountId", account, &errs)
	}
	if len(errs) > 0 {
		fail(errFields(errs))
		return
	}
	arn := target
	if !strings.HasPrefix(target, "arn:") {
		if !hasAccount {
			fail(errValidation("accountId is required when agentRuntimeArn is an agent runtime ID", fieldError{"accountId", "Member is required when agentRuntimeArn is an ID"}))
			return
		}
		arn = ""
		s.mu.Lock()
		for a := range s.runtimes {
			if t, _ := contract.ParseAgentRuntimeARN(a); t.Account == account && t.ID == target {
				arn = a
			}
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	rt, found := s.runtimes[arn]
	s.mu.Unlock()
	if !found {
		fail(errNotFound("No agent runtime found for the given identifier"))
		return
	}
	if qual := q.Get("qualifier"); q.Has("qualifier") && qual != contract.DefaultRuntimeEndpoint && !slices.Contains(rt.Endpoints, qual) {
		fail(errNotFound("No endpoint " + qual + " found for the agent runtime"))
		return
	}
	sessionID := r.Header.Get(HeaderRuntimeSessionID)
	if sessionID == "" {
		sessionID = uuid.NewString() // the service draws one, as the SDK does
	}
	userID := r.Header.Get(HeaderRuntimeUserID)

	// The workload access token the agent gets: for the invocation's user,
	// or (without one) for the workload alone.
	s.mu.Lock()
	u := user{}
	if userID != "" {
		u = user{kind: "userId", value: userID, vaultID: "uid\x00" + userID}
	}
	tok := randomToken(96)
	rtID, _ := contract.ParseAgentRuntimeARN(rt.ARN)
	workload := rtID.ID
	s.tokens[tok] = &workloadToken{workload: workload, user: u, expires: s.now().Add(WorkloadTokenTTL)}
	s.mu.Unlock()
	call.Workload, call.UserKind = workload, u.kind

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	fwd, err := http.NewRequestWithContext(ctx, http.MethodPost, rt.URL+"/invocations", strings.NewReader(string(body)))
	if err != nil {
		fail(&apiError{status: 500, typ: "InternalServerException", msg: "Internal server error"})
		return
	}
	for _, h := range []string{"Content-Type", "Accept", "Mcp-Session-Id", "Mcp-Protocol-Version", "Mcp-Method", "Mcp-Name",
		"X-Amzn-Trace-Id", "traceparent", "tracestate", "baggage"} {
		if v := r.Header.Get(h); v != "" {
			fwd.Header.Set(h, v)
		}
	}
	fwd.Header.Set(HeaderRuntimeSessionID, sessionID)
	if userID != "" {
		fwd.Header.Set(HeaderRuntimeUserID, userID)
	}
	fwd.Header.Set(HeaderWorkloadToken, tok)
	if rt.OAuth2CallbackURL != "" {
		fwd.Header.Set(HeaderOAuth2CallbackURL, rt.OAuth2CallbackURL)
	}
	res, err := forwarder.Do(fwd)
	if err != nil {
		if errors.Is(r.Context().Err(), context.Canceled) {
			return // the caller left
		}
		call.Outcome = "agent-unreachable"
		fail(&apiError{status: 424, typ: "RuntimeClientError", msg: "The agent runtime did not answer (is the local agent running at " + rt.URL + "?)"})
		return
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		call.Outcome = fmt.Sprintf("agent-error:%d", res.StatusCode)
		fail(&apiError{status: 424, typ: "RuntimeClientError",
			msg: fmt.Sprintf("Received error (%d) from runtime. Please check your CloudWatch logs for more information.", res.StatusCode)})
		return
	}
	ct := res.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set(HeaderRuntimeSessionID, sessionID)
	w.WriteHeader(http.StatusOK)
	call.HTTPStatus, call.Outcome = http.StatusOK, "invoked"
	s.record(call)
	// Stream the answer as it comes (server-sent events, chunked JSON).
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 32*1024)
	for {
		n, rerr := res.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if rerr != nil {
			return
		}
	}
}

// PingAgent asks the local agent of a registered runtime for GET /ping, as
// the service does before it routes invocations to a new session.
func (s *Server) PingAgent(ctx context.Context, arn string) (string, error) {
	s.mu.Lock()
	rt, ok := s.runtimes[arn]
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("emulator: no agent runtime %s", arn)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rt.URL+"/ping", nil)
	if err != nil {
		return "", err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("emulator: agent %s: /ping answered %d", arn, res.StatusCode)
	}
	return string(b), nil
}
