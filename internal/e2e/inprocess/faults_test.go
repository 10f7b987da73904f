package inprocess

// The fault matrix: the whole local stack (DynamoDB Local, the AgentCore
// Identity emulator through the real SDK, the production handlers behind
// the API Gateway stand-in, the resumer fed by the table's stream) driven
// through failures of each dependency at each step of a confirmation.
//
// Every row asserts three things: what the user sees (HTTP status and page
// outcome), what the workflow receives (the task's one result, or that it
// still waits where that is the documented behaviour, then how it is
// resolved), and that the final state is consistent (final):
//   - no token in AgentCore's vault without the task resumed AUTHORIZED
//     (except when the task timed out before the user confirmed: then the
//     token is in the vault for the workflow's next run, which is checked);
//   - no task resumed AUTHORIZED without the token in the vault;
//   - no session record left COMPLETING (or PENDING): every record ends
//     settled, its outbox delivered;
//   - exactly one result accepted by Step Functions per task.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/emulator"
	"github.com/consentflow/consentflow/internal/local/eventslocal"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/local/sfnlocal"
	"github.com/consentflow/consentflow/internal/testenv/dynamotest"
)

// ---------------------------------------------------------------------------
// A fault-injecting reverse proxy in front of DynamoDB Local.

// dbMode is how the proxy fails a request.
type dbMode int

const (
	// dbInternalError answers HTTP 500 InternalServerError; the request
	// never reaches the table.
	dbInternalError dbMode = iota
	// dbCut closes the connection without an answer; the request never
	// reaches the table.
	dbCut
	// dbHang holds the request until the client gives up; it never
	// reaches the table.
	dbHang
	// dbLost forwards the request (it takes effect), then closes the
	// connection: the answer is lost.
	dbLost
)

// DynamoDB operations as their X-Amz-Target names them.
const (
	opGetItem            = "DynamoDB_20120810.GetItem"
	opUpdateItem         = "DynamoDB_20120810.UpdateItem"
	opTransactWriteItems = "DynamoDB_20120810.TransactWriteItems"
)

// Request matchers on the body (internal/state's expressions).
var (
	// isClaim: the COMPLETING claim (Store.Claim).
	isClaim = func(body string) bool { return strings.Contains(body, "SET #status = :completing") }
	// isCompletedWrite: the decision's write, COMPLETED with its outbox
	// (Store.Settle to COMPLETED).
	isCompletedWrite = func(body string) bool { return strings.Contains(body, "SET #status = :completed") }
)

type dbFault struct {
	op    string
	match func(body string) bool // nil: any request of op
	n     int
	mode  dbMode
}

type dynamoProxy struct {
	url    string
	target string
	client *http.Client
	done   chan struct{}

	mu      sync.Mutex
	faults  []*dbFault
	applied map[string]int // faults applied per operation
}

// newDynamoProxy serves a proxy to target on 127.0.0.1 until the test ends.
func newDynamoProxy(t *testing.T, target string) *dynamoProxy {
	p := &dynamoProxy{
		target:  strings.TrimSuffix(target, "/"),
		client:  &http.Client{Transport: &http.Transport{}},
		done:    make(chan struct{}),
		applied: map[string]int{},
	}
	srv := httptest.NewServer(p)
	p.url = srv.URL
	t.Cleanup(func() {
		close(p.done)
		srv.CloseClientConnections()
		srv.Close()
	})
	return p
}

// fail makes the next n requests of op (an X-Amz-Target) whose body
// matches fail as mode says. Faults queue up in the order given.
func (p *dynamoProxy) fail(op string, n int, mode dbMode, match func(string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = append(p.faults, &dbFault{op: op, match: match, n: n, mode: mode})
}

// clear drops the faults not used up.
func (p *dynamoProxy) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.faults = nil
}

// count is how many requests of op the proxy failed so far.
func (p *dynamoProxy) count(op string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applied[op]
}

func (p *dynamoProxy) take(op, body string) (dbMode, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, f := range p.faults {
		if f.op != op || (f.match != nil && !f.match(body)) {
			continue
		}
		if f.n--; f.n <= 0 {
			p.faults = append(p.faults[:i:i], p.faults[i+1:]...)
		}
		p.applied[op]++
		return f.mode, true
	}
	return 0, false
}

func (p *dynamoProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	mode, faulty := p.take(r.Header.Get("X-Amz-Target"), string(body))
	if !faulty {
		p.forward(w, r, body)
		return
	}
	switch mode {
	case dbInternalError:
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amzn-ErrorType", "InternalServerError")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error (injected)"}`)
		return
	case dbHang:
		select {
		case <-r.Context().Done():
		case <-p.done:
		}
	case dbLost:
		req, err := p.outbound(context.WithoutCancel(r.Context()), r, body)
		if err == nil {
			if resp, err := p.client.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
	}
}

func (p *dynamoProxy) outbound(ctx context.Context, r *http.Request, body []byte) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = r.Header.Clone()
	return req, nil
}

func (p *dynamoProxy) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	req, err := p.outbound(r.Context(), r, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	resp, err := p.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// startProxied starts the stack with its DynamoDB client behind a fault
// proxy.
func startProxied(t *testing.T, opts ...func(*runner.Options)) (*fixture, *dynamoProxy) {
	t.Helper()
	p := newDynamoProxy(t, dynamotest.Shared(t).Endpoint())
	f := start(t, "code", append([]func(*runner.Options){func(o *runner.Options) { o.DynamoDBEndpoint = p.url }}, opts...)...)
	return f, p
}

// ---------------------------------------------------------------------------
// Fixture helpers.

const (
	faultUser  = "user-faults"
	faultInput = `{"userId":"` + faultUser + `","provider":"github","scopes":["repo"]}`
)

var faultScopes = []string{"repo"}

// page answers "<HTTP status> <outcome>" for a request to a's callback.
func (f *fixture) page(method string, a authorization, form string) string {
	f.t.Helper()
	resp, body := f.do(method, a.callback, form)
	return fmt.Sprintf("%d %s", resp.StatusCode, outcomeOf(body))
}

func codeForm(a authorization) string {
	return url.Values{"code": {a.event.VerificationCode}}.Encode()
}

func (f *fixture) expectPage(what, got, want string) {
	f.t.Helper()
	if got != want {
		f.t.Fatalf("%s: page %q, want %q", what, got, want)
	}
}

// sessionURI is a's AgentCore session, as the callback received it.
func sessionURI(t testing.TB, a authorization) string {
	u, err := url.Parse(a.callback)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("session_id")
}

// waiting fails unless the task is still open.
func (f *fixture) waiting(tok string) {
	f.t.Helper()
	if r, closed, _ := f.s.SFN.Lookup(tok); closed {
		f.t.Fatalf("task already closed: %+v", r)
	}
}

// vaultHas asks AgentCore's vault, through the real SDK, whether a's
// session left its token there.
func (f *fixture) vaultHas(a authorization) bool {
	f.t.Helper()
	ctx := context.Background()
	ac := f.s.Clients.AgentCore
	wat, err := ac.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String(runner.WorkloadName), UserId: aws.String(faultUser)})
	if err != nil {
		f.t.Fatalf("vault check: %v", err)
	}
	out, err := ac.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: wat.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("github"),
		Scopes: faultScopes, Oauth2Flow: types.Oauth2FlowTypeUserFederation,
		ResourceOauth2ReturnUrl: aws.String(f.s.CallbackURL), SessionUri: aws.String(sessionURI(f.t, a))})
	if err != nil {
		f.t.Fatalf("vault check: %v", err)
	}
	return aws.ToString(out.AccessToken) != ""
}

// outcome is how a row ends.
type outcome struct {
	task sfnlocal.Status // the task's one result
	err  string          // its error, FAILED only
}

var (
	authorized = outcome{task: sfnlocal.StatusSucceeded}
	// timedOut: the task ran into its own timeout (the workflow gave up
	// before the user confirmed); the token stays in the vault for the
	// workflow's next run.
	timedOut = outcome{task: sfnlocal.StatusFailed, err: sfnlocal.TimeoutError}
)

// final checks that a's authorization ended as want and consistently (see
// the file's comment).
func (f *fixture) final(a authorization, want outcome) {
	f.t.Helper()
	r := f.waitTaskFor(a.taskToken, 20*time.Second)
	if r.Status != want.task || r.Error != want.err {
		f.t.Fatalf("task result %s %s, want %s %s", r.Status, r.Error, want.task, want.err)
	}
	resumedAuthorized := r.Status == sfnlocal.StatusSucceeded && strings.Contains(string(r.Output), `"status":"AUTHORIZED"`)
	if r.Status == sfnlocal.StatusSucceeded && !resumedAuthorized {
		f.t.Fatalf("task output %s", r.Output)
	}
	f.oneResult(a.taskToken)

	vault := f.vaultHas(a)
	switch {
	case resumedAuthorized && !vault:
		f.t.Fatal("task resumed AUTHORIZED without a token in the vault")
	case vault && !resumedAuthorized && want != timedOut:
		f.t.Fatalf("token in the vault, task %s %s", r.Status, r.Error)
	case want == timedOut && !vault:
		f.t.Fatal("no token in the vault")
	case want == timedOut:
		// The workflow's next run finds the token at once.
		tok := f.s.SFN.NewTask()
		res, err := f.s.Initiate(context.Background(), json.RawMessage(`{"taskToken":"`+tok+`","input":`+faultInput+`}`))
		if err != nil || res.Status != flow.StatusAuthorized {
			f.t.Fatalf("next run: %v %+v", err, res)
		}
		if r := f.waitTask(tok); r.Status != sfnlocal.StatusSucceeded {
			f.t.Fatalf("next run's task %+v", r)
		}
	}

	rec := f.record(a)
	if rec.Status != flow.StatusCompleted {
		f.t.Fatalf("session record %s at the end, want %s", rec.Status, flow.StatusCompleted)
	}
	if rec.Outbox.Output == "" {
		f.t.Fatal("completed session without its outbox")
	}
	if rec.ResumedAt.IsZero() {
		f.waitResumed(a)
	}
}

// ---------------------------------------------------------------------------
// AgentCore CompleteResourceTokenAuth.

func TestFaultsCompleteResourceTokenAuth(t *testing.T) {
	const budget = 300 * time.Millisecond
	for _, tc := range []struct {
		name  string
		fault emulator.Fault
		n     int
		// budget shortens Complete's budget (zero: the production 4 s,
		// which the SDK's throttling retries fit in).
		budget time.Duration
		// first is the page the confirmation gets.
		first string
		// then drives the row to its end (retries, the stack's clock).
		then func(f *fixture, a authorization)
		// calls is how many Complete calls the emulator served in all (a
		// call abandoned during a Delay is not served).
		calls int
	}{
		{
			// A definite "not done": the session is released at once.
			name: "429 beyond the SDK's retries", fault: emulator.Throttle, n: 3,
			first: "503 error: Temporary problem",
			then: func(f *fixture, a authorization) {
				f.expectPage("retry", f.page("POST", a, codeForm(a)), "200 ok: Connected")
			},
			calls: 4,
		},
		{
			// Outcome unknown, but the vault shows the session still
			// waiting: released for a retry.
			name: "500", fault: emulator.InternalError, n: 1,
			first: "503 error: Temporary problem",
			then: func(f *fixture, a authorization) {
				f.expectPage("retry", f.page("POST", a, codeForm(a)), "200 ok: Connected")
			},
			calls: 2,
		},
		{
			// No answer within the budget and nothing in the vault yet:
			// the claim is kept (the call may still land), the user's
			// immediate retry calls nothing. The call never lands; after
			// the claim's lease a retry completes.
			name: "timeout: Delay past the budget, never lands", budget: budget,
			fault: emulator.Delay(3 * budget), n: 1,
			first: "409 wait: Still completing",
			then: func(f *fixture, a authorization) {
				f.expectPage("immediate retry", f.page("POST", a, codeForm(a)), "409 wait: Still completing")
				time.Sleep(4 * budget)
				if f.vaultHas(a) {
					f.t.Fatal("the abandoned Complete took effect")
				}
				f.waiting(a.taskToken)
				f.s.Advance(flow.ClaimLease + time.Second)
				f.expectPage("retry after the lease", f.page("POST", a, codeForm(a)), "200 ok: Connected")
			},
			calls: 1,
		},
		{
			// The same timeout, but the call lands after the callback gave
			// up, and the user never comes back: the session is found
			// completed when it is next seen after its expiry.
			name: "timeout: Slow past the budget, lands, nobody retries", budget: budget,
			fault: emulator.Slow(3 * budget), n: 1,
			first: "409 wait: Still completing",
			then: func(f *fixture, a authorization) {
				time.Sleep(4 * budget)
				f.waiting(a.taskToken)
				f.s.Advance(contract.SessionValidity + flow.ClaimLease)
				f.expectPage("GET after the expiry", f.page("GET", a, ""), "200 ok: Already connected")
			},
			calls: 1,
		},
		{
			// Ambiguous: the call lands, its answer is lost; the vault
			// says completed.
			name: "ambiguous: DropResponse", fault: emulator.DropResponse, n: 1,
			first: "200 ok: Connected",
			then:  func(*fixture, authorization) {},
			calls: 1,
		},
		{
			// Ambiguous: the call lands late; the user's retry after the
			// lease is refused as already completed, and the vault decides.
			name: "ambiguous: Slow that lands later, retry after the lease", budget: budget,
			fault: emulator.Slow(3 * budget), n: 1,
			first: "409 wait: Still completing",
			then: func(f *fixture, a authorization) {
				time.Sleep(4 * budget)
				f.waiting(a.taskToken)
				f.s.Advance(flow.ClaimLease + time.Second)
				f.expectPage("retry after the lease", f.page("POST", a, codeForm(a)), "200 ok: Connected")
				calls := f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)
				if last := calls[len(calls)-1]; last.ErrorType != "AccessDeniedException" {
					f.t.Fatalf("second Complete %+v, want refused as already completed", last)
				}
			},
			calls: 2,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, "code", func(o *runner.Options) { o.CompleteTimeout = tc.budget })
			a := f.initiate(faultInput)
			f.consent(&a, "allow")
			f.s.Emulator.InjectFault(emulator.OpCompleteResourceTokenAuth, tc.n, tc.fault)
			f.expectPage("confirmation", f.page("POST", a, codeForm(a)), tc.first)
			if tc.first != "200 ok: Connected" {
				f.waiting(a.taskToken)
			}
			tc.then(f, a)
			f.final(a, authorized)
			if n := len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != tc.calls {
				t.Fatalf("CompleteResourceTokenAuth called %d times, want %d", n, tc.calls)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// DynamoDB, before, during and after the claim.

func TestFaultsDynamoDBCallback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		op    string
		match func(string) bool
		n     int
		mode  dbMode
		// sfnThrottled: SendTaskSuccess is throttled beyond the SDK's
		// retries too.
		sfnThrottled bool
		first        string
		// then drives the row to its end, after the proxy's faults are
		// cleared.
		then func(f *fixture, a authorization)
	}{
		{
			// The session lookup fails: nothing was reserved or claimed.
			name: "before the claim: session lookup 500 beyond the SDK's retries",
			op:   opGetItem, n: 3, mode: dbInternalError,
			first: "503 error: Temporary problem",
			then:  retryConnects,
		},
		{
			name: "before the claim: session lookup connection cut beyond the SDK's retries",
			op:   opGetItem, n: 3, mode: dbCut,
			first: "503 error: Temporary problem",
			then:  retryConnects,
		},
		{
			// The attempt was reserved, the claim failed: nothing called.
			name: "during the claim: claim write 500 beyond the SDK's retries",
			op:   opUpdateItem, match: isClaim, n: 3, mode: dbInternalError,
			first: "503 error: Temporary problem",
			then:  retryConnects,
		},
		{
			// The claim lands but its answer is lost; the SDK's retry finds
			// the session claimed (by this very request) and waits for
			// "the winner": the user is told to wait, and the claim's
			// lease lets a later retry take the session over.
			name: "during the claim: claim applied, answer lost",
			op:   opUpdateItem, match: isClaim, n: 1, mode: dbLost,
			first: "409 wait: Still completing",
			then: func(f *fixture, a authorization) {
				if rec := f.record(a); rec.Status != flow.StatusCompleting {
					f.t.Fatalf("record %s, want COMPLETING (the lost claim)", rec.Status)
				}
				f.s.Advance(flow.ClaimLease + time.Second)
				f.expectPage("retry after the lease", f.page("POST", a, codeForm(a)), "200 ok: Connected")
			},
		},
		{
			// The decision's write fails: no outbox, so the callback sends
			// inline itself; the session stays COMPLETING until it is next
			// seen (here after its expiry), then it is recorded COMPLETED.
			name: "after the claim: COMPLETED write 500 on every try",
			op:   opUpdateItem, match: isCompletedWrite, n: 1000, mode: dbInternalError,
			first: "200 ok: Connected",
			then:  resumedInlineThenSettledLater,
		},
		{
			name: "after the claim: COMPLETED write hangs",
			op:   opUpdateItem, match: isCompletedWrite, n: 1000, mode: dbHang,
			first: "200 ok: Connected",
			then:  resumedInlineThenSettledLater,
		},
		{
			// Both the write and the inline send fail: the task waits
			// until the session is next seen (after the claim's lease or
			// its expiry), which records it COMPLETED with its outbox.
			name: "after the claim: COMPLETED write hangs and SendTaskSuccess is throttled",
			op:   opUpdateItem, match: isCompletedWrite, n: 1000, mode: dbHang, sfnThrottled: true,
			first: "200 ok: Connected",
			then: func(f *fixture, a authorization) {
				f.waiting(a.taskToken)
				if rec := f.record(a); rec.Status != flow.StatusCompleting {
					f.t.Fatalf("record %s, want COMPLETING", rec.Status)
				}
				f.s.Advance(contract.SessionValidity + flow.ClaimLease)
				f.expectPage("GET after the expiry", f.page("GET", a, ""), "200 ok: Already connected")
			},
		},
		{
			// The decision's write lands but its answer is lost: the
			// callback reads the conflict as "settled by another request"
			// and leaves the outbox to the resumer, which waits out the
			// callback's delivery claim.
			name: "after the claim: COMPLETED write applied, answer lost",
			op:   opUpdateItem, match: isCompletedWrite, n: 1, mode: dbLost,
			first: "200 ok: Connected",
			then: func(f *fixture, a authorization) {
				f.s.Advance(flow.DeliveryLease + time.Second)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, p := startProxied(t)
			a := f.initiate(faultInput)
			f.consent(&a, "allow")
			p.fail(tc.op, tc.n, tc.mode, tc.match)
			if tc.sfnThrottled {
				f.throttle("SendTaskSuccess", 3)
			}
			f.expectPage("confirmation", f.page("POST", a, codeForm(a)), tc.first)
			if p.count(tc.op) == 0 {
				t.Fatalf("no %s failed (mode %d): the row tested nothing", tc.op, tc.mode)
			}
			p.clear()
			if tc.first != "200 ok: Connected" {
				f.waiting(a.taskToken)
				if n := len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != 0 {
					t.Fatalf("CompleteResourceTokenAuth called %d times before the claim held", n)
				}
			}
			tc.then(f, a)
			f.final(a, authorized)
			if n := len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != 1 {
				t.Fatalf("CompleteResourceTokenAuth called %d times, want 1", n)
			}
		})
	}
}

// retryConnects: the user's retry completes.
func retryConnects(f *fixture, a authorization) {
	f.t.Helper()
	f.expectPage("retry", f.page("POST", a, codeForm(a)), "200 ok: Connected")
}

// resumedInlineThenSettledLater: the task was resumed inline, outside the
// outbox; the record stays COMPLETING until the session is next seen after
// its expiry, which finds the token in the vault and records COMPLETED
// (its outbox's send is refused as the task is closed: delivered).
func resumedInlineThenSettledLater(f *fixture, a authorization) {
	f.t.Helper()
	if r := f.waitTask(a.taskToken); r.Status != sfnlocal.StatusSucceeded {
		f.t.Fatalf("task %+v, want resumed inline", r)
	}
	if rec := f.record(a); rec.Status != flow.StatusCompleting {
		f.t.Fatalf("record %s, want COMPLETING", rec.Status)
	}
	f.s.Advance(contract.SessionValidity + flow.ClaimLease)
	f.expectPage("GET after the expiry", f.page("GET", a, ""), "200 ok: Already connected")
}

// The session's first write at initiate (TransactWriteItems: the session
// and its task record) fails or loses its answer.
func TestFaultsDynamoDBInitiate(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		mode dbMode
		// err is the first invocation's error name ("" for success).
		err string
	}{
		// Nothing written: a retryable error; the state machine's retry
		// starts the session.
		{name: "session write 500 beyond the SDK's retries", n: 3, mode: dbInternalError, err: contract.ErrStoreUnavailable},
		// Written, answer lost: the SDK's retry finds the task's session
		// (this invocation's own) and announces it.
		{name: "session write applied, answer lost", n: 1, mode: dbLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, p := startProxied(t)
			tok := f.s.SFN.NewTask()
			p.fail(opTransactWriteItems, tc.n, tc.mode, nil)
			_, err := f.invoke(tok, faultInput)
			p.clear()
			if p.count(opTransactWriteItems) == 0 {
				t.Fatal("no TransactWriteItems failed")
			}
			if tc.err == "" && err != nil {
				t.Fatalf("initiate: %v", err)
			}
			if tc.err != "" {
				f.expectInvokeError(err, tc.err)
				if _, err := f.invoke(tok, faultInput); err != nil {
					t.Fatalf("retried initiate: %v", err)
				}
			}
			a := f.announced(tok)
			f.consent(&a, "allow")
			f.expectPage("confirmation", f.page("POST", a, codeForm(a)), "200 ok: Connected")
			f.final(a, authorized)
		})
	}
}

// invoke runs the initiate handler for task token tok.
func (f *fixture) invoke(tok, input string) (*flow.Result, error) {
	return f.s.Initiate(context.Background(), json.RawMessage(`{"taskToken":"`+tok+`","input":`+input+`}`))
}

// expectInvokeError checks that err is the Lambda error name, retryable.
func (f *fixture) expectInvokeError(err error, name string) {
	f.t.Helper()
	var le messages.InvokeResponse_Error
	if !errors.As(err, &le) || le.Type != name {
		f.t.Fatalf("initiate error %v, want %s", err, name)
	}
	if !contract.Retryable(le.Type) {
		f.t.Fatalf("%s is not retryable", le.Type)
	}
}

// announced returns the one AuthorizationRequired event published so far,
// as the authorization of task tok.
func (f *fixture) announced(tok string) authorization {
	f.t.Helper()
	var evs []eventslocal.Event
	for _, ev := range f.s.Events.Events() {
		if ev.DetailType == "AuthorizationRequired" {
			evs = append(evs, ev)
		}
	}
	if len(evs) != 1 {
		f.t.Fatalf("%d AuthorizationRequired events, want 1", len(evs))
	}
	a := authorization{taskToken: tok}
	if err := json.Unmarshal(evs[0].Detail, &a.event); err != nil {
		f.t.Fatal(err)
	}
	return a
}

// ---------------------------------------------------------------------------
// Step Functions SendTaskSuccess.

func TestFaultsSendTaskSuccess(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(f *fixture, a authorization)
		want   outcome
		// sends is how many SendTaskSuccess calls the row makes in all.
		sends int
	}{
		{
			// The inline send gives up; the resumer delivers the outbox.
			name:   "Throttling beyond the SDK's retries",
			before: func(f *fixture, a authorization) { f.throttle("SendTaskSuccess", 3) },
			want:   authorized, sends: 4,
		},
		{
			// The workflow gave up waiting before the user confirmed: the
			// send is refused with TaskTimedOut, which counts as delivered
			// (nobody sends again); the token waits in the vault for the
			// workflow's next run.
			name: "TaskTimedOut",
			before: func(f *fixture, a authorization) {
				if !f.s.SFN.Expire(a.taskToken) {
					f.t.Fatal("task not open")
				}
			},
			want: timedOut, sends: 1,
		},
		{
			// Step Functions does not know the token: counts as delivered,
			// nobody sends again; the workflow waits into its own timeout
			// (modelled by expiring the task afterwards).
			name: "InvalidToken",
			before: func(f *fixture, a authorization) {
				f.s.SFN.InjectError("SendTaskSuccess", "InvalidToken", 400, "Invalid Token: 'Invalid token'")
			},
			want: timedOut, sends: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, "code")
			a := f.initiate(faultInput)
			f.consent(&a, "allow")
			tc.before(f, a)
			f.expectPage("confirmation", f.page("POST", a, codeForm(a)), "200 ok: Connected")
			if tc.want == timedOut {
				f.waitResumed(a)
				time.Sleep(300 * time.Millisecond) // let the stream's records reach the resumer
				f.s.SFN.Expire(a.taskToken)        // InvalidToken: the workflow's own timeout
			}
			f.final(a, tc.want)
			want := tc.sends
			if tc.want == timedOut {
				want++ // final's next run
			}
			if n := f.s.SFN.Calls()["SendTaskSuccess"]; n != want {
				t.Fatalf("SendTaskSuccess called %d times, want %d", n, want)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// EventBridge PutEvents.

// PutEvents fails at initiate beyond the SDK's retries: the invocation fails
// with the retryable consentflow.NotifyFailed, nobody got a link; the state
// machine's retry (same task token) reuses the stored session, announces it
// with a fresh verification code, and the flow completes.
func TestFaultsPutEventsAtInitiate(t *testing.T) {
	f := start(t, "code")
	tok := f.s.SFN.NewTask()
	for range 3 {
		f.s.Events.InjectError("InternalException", 500, "Internal error (injected)")
	}
	_, err := f.invoke(tok, faultInput)
	f.expectInvokeError(err, contract.ErrNotifyFailed)
	if n := len(f.s.Events.Events()); n != 0 {
		t.Fatalf("%d events published", n)
	}
	res, err := f.invoke(tok, faultInput)
	if err != nil || res.Status != flow.StatusAuthorizationRequired {
		t.Fatalf("retried initiate: %v %+v", err, res)
	}
	if res.AuthorizationURL != "" || res.VerificationCode != "" {
		t.Fatal("the callback pattern's result carries the link or the code")
	}
	a := f.announced(tok)
	if a.event.CorrelationID != res.CorrelationID {
		t.Fatal("the retry's event names another session than its result")
	}
	if n := len(f.s.Emulator.CallsTo(emulator.OpGetResourceOauth2Token)); n != 1 {
		t.Fatalf("GetResourceOauth2Token called %d times: the retry started a second session", n)
	}
	f.waiting(tok)
	f.consent(&a, "allow")
	f.expectPage("confirmation", f.page("POST", a, codeForm(a)), "200 ok: Connected")
	f.final(a, authorized)
}
