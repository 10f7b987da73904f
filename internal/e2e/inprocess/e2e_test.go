// Package inprocess runs the whole consent flow in-process against real emulators:
// DynamoDB Local, the AgentCore Identity emulator (through the real SDK),
// the Step Functions and EventBridge stand-ins, and the production handlers
// behind the API Gateway stand-in. A plain HTTP client plays the browser;
// the Chromium tests live in internal/e2e/browser.
package inprocess

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/testenv/dynamotest"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"

	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/emulator"
	"github.com/consentflow/consentflow/internal/local/eventslocal"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/local/sfnlocal"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	t    testing.TB
	s    *runner.Stack
	logs *syncBuffer
	http *http.Client
}

func start(t *testing.T, binding string, opts ...func(*runner.Options)) *fixture {
	t.Helper()
	logs := &syncBuffer{}
	o := runner.Options{
		Binding:  binding,
		Log:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		DynamoDB: dynamotest.Shared(t),
		Table:    dynamotest.TableName(t),
	}
	for _, f := range opts {
		f(&o)
	}
	s, err := runner.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &fixture{t: t, s: s, logs: logs, http: &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// authorization is one started flow as the application sees it.
type authorization struct {
	taskToken string
	execution string // the execution's ARN; empty for a direct invocation
	event     flow.AuthorizationRequired
	callback  string // the URL the provider redirected the browser to
}

// initiate starts an execution on the Step Functions stand-in and invokes
// initiate with the payload its task sends (taskToken, executionArn,
// input); it returns what the AuthorizationRequired event told.
func (f *fixture) initiate(input string) authorization {
	f.t.Helper()
	exec, err := f.s.StartExecution()
	if err != nil {
		f.t.Fatal(err)
	}
	tok := exec.TaskToken
	payload, err := exec.Payload(json.RawMessage(input))
	if err != nil {
		f.t.Fatal(err)
	}
	sub := f.s.Events.Subscribe(eventslocal.Match{DetailType: "AuthorizationRequired"})
	defer sub.Close()
	res, err := f.s.Initiate(context.Background(), payload)
	if err != nil {
		f.t.Fatalf("initiate: %v", err)
	}
	if res.Status != flow.StatusAuthorizationRequired {
		f.t.Fatalf("status %s", res.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ev eventslocal.Event
	select {
	case ev = <-sub.C:
	case <-ctx.Done():
		f.t.Fatal("no AuthorizationRequired event")
	}
	var a authorization
	a.taskToken, a.execution = tok, exec.ARN
	if err := json.Unmarshal(ev.Detail, &a.event); err != nil {
		f.t.Fatal(err)
	}
	if a.event.ExecutionARN != exec.ARN {
		f.t.Fatalf("AuthorizationRequired names execution %q, want %q", a.event.ExecutionARN, exec.ARN)
	}
	return a
}

var (
	formRe   = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// consent opens the authorization URL and clicks Allow or Deny at the
// emulator's provider page; it returns the redirect to our callback.
func (f *fixture) consent(a *authorization, decision string) {
	f.t.Helper()
	resp, body := f.do("GET", a.event.AuthorizationURL, "")
	if resp.StatusCode != 200 {
		f.t.Fatalf("consent page: %d", resp.StatusCode)
	}
	m := formRe.FindStringSubmatch(body)
	if m == nil {
		f.t.Fatalf("no consent form")
	}
	action, _ := url.Parse(html.UnescapeString(m[1]))
	form := url.Values{"decision": {decision}}
	for _, h := range hiddenRe.FindAllStringSubmatch(body, -1) {
		form.Set(h[1], html.UnescapeString(h[2]))
	}
	base, _ := url.Parse(a.event.AuthorizationURL)
	resp, _ = f.do("POST", base.ResolveReference(action).String(), form.Encode())
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		f.t.Fatalf("consent POST: %d", resp.StatusCode)
	}
	a.callback = resp.Header.Get("Location")
	if !strings.HasPrefix(a.callback, f.s.CallbackURL+"?") {
		f.t.Fatalf("redirected to %q, not to the callback", a.callback)
	}
}

func (f *fixture) do(method, u, form string, cookies ...*http.Cookie) (*http.Response, string) {
	f.t.Helper()
	var body io.Reader
	if form != "" {
		body = strings.NewReader(form)
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func outcomeOf(body string) string {
	m := regexp.MustCompile(`data-outcome="([a-z]+)"`).FindStringSubmatch(body)
	h := regexp.MustCompile(`<h1>([^<]*)</h1>`).FindStringSubmatch(body)
	if m == nil || h == nil {
		return "?"
	}
	return m[1] + ": " + h[1]
}

func (f *fixture) waitTask(tok string) sfnlocal.Result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := f.s.SFN.Wait(ctx, tok)
	if err != nil {
		f.t.Fatalf("task not resumed: %v", err)
	}
	return r
}

func (f *fixture) assertNoSecrets(secrets map[string]string) {
	f.t.Helper()
	logs := f.logs.String()
	if !strings.Contains(logs, "correlationId") {
		f.t.Fatal("handler logs lack correlation ids")
	}
	for name, v := range secrets {
		if v != "" && strings.Contains(logs, v) {
			f.t.Errorf("%s appears in the logs", name)
		}
	}
}

func TestWholeFlowUserID(t *testing.T) {
	f := start(t, "code")
	a := f.initiate(`{"userId":"user-42","provider":"github","scopes":["repo","read:user"]}`)
	if a.event.VerificationCode == "" || a.event.CorrelationID == "" {
		t.Fatalf("event %+v", a.event)
	}
	f.consent(&a, "allow")

	resp, body := f.do("GET", a.callback, "")
	if resp.StatusCode != 200 || !strings.HasPrefix(outcomeOf(body), "confirm") {
		t.Fatalf("GET callback: %d %s", resp.StatusCode, outcomeOf(body))
	}
	if resp.Header.Get("Cache-Control") != "no-store" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatal("security headers missing through the gateway")
	}
	if n := len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != 0 {
		t.Fatal("GET completed the session")
	}
	cbURL, _ := url.Parse(a.callback)
	state := cbURL.Query().Get("state")
	if strings.Contains(body, state) {
		t.Fatal("state rendered into the page")
	}

	resp, body = f.do("POST", a.callback, url.Values{"code": {strings.ToLower(a.event.VerificationCode)}}.Encode())
	if resp.StatusCode != 200 || outcomeOf(body) != "ok: Connected" {
		t.Fatalf("POST callback: %d %s", resp.StatusCode, outcomeOf(body))
	}
	r := f.waitTask(a.taskToken)
	var out map[string]any
	_ = json.Unmarshal(r.Output, &out)
	if r.Status != sfnlocal.StatusSucceeded || out["status"] != "AUTHORIZED" || out["provider"] != "github" {
		t.Fatalf("task result %+v", r)
	}

	// The token is in the vault: the same request now returns it at once.
	ac := f.s.Clients.AgentCore
	wat, err := ac.GetWorkloadAccessTokenForUserId(context.Background(), &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String(runner.WorkloadName), UserId: aws.String("user-42")})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ac.GetResourceOauth2Token(context.Background(), &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: wat.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("github"),
		Scopes: []string{"repo", "read:user"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation,
		ResourceOauth2ReturnUrl: aws.String(f.s.CallbackURL)})
	if err != nil || aws.ToString(tok.AccessToken) == "" {
		t.Fatalf("vault: %v", err)
	}
	if strings.Contains(string(r.Output), aws.ToString(tok.AccessToken)) {
		t.Fatal("access token in the workflow output")
	}

	// A second authorization for the same user and scopes needs no consent.
	tok2 := f.s.SFN.NewTask()
	res, err := f.s.Initiate(context.Background(), json.RawMessage(`{"taskToken":"`+tok2+`","input":{"userId":"user-42","provider":"github","scopes":["read:user","repo"]}}`))
	if err != nil || res.Status != flow.StatusAuthorized {
		t.Fatalf("second run: %v %+v", err, res)
	}
	if r := f.waitTask(tok2); r.Status != sfnlocal.StatusSucceeded {
		t.Fatalf("second task %+v", r)
	}

	// Replays answer from the record and call nothing.
	for _, m := range []string{"GET", "POST"} {
		_, body := f.do(m, a.callback, url.Values{"code": {a.event.VerificationCode}}.Encode())
		if outcomeOf(body) != "ok: Already connected" {
			t.Fatalf("%s replay: %s", m, outcomeOf(body))
		}
	}
	if n := len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != 1 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
	f.assertNoSecrets(map[string]string{
		"state": state, "code": a.event.VerificationCode, "task token": a.taskToken,
		"access token": aws.ToString(tok.AccessToken), "authorization URL": a.event.AuthorizationURL,
	})
}

func TestWholeFlowJWTCookieBinding(t *testing.T) {
	f := start(t, "code")
	// The emulator verifies user JWTs: real ones from its IdP.
	mint := func(sub string) string {
		tok, err := f.s.Emulator.MintIDToken(sub, "consentflow-app", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	jwt := mint("alice")
	a := f.initiate(`{"userToken":"` + jwt + `","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	form := url.Values{"code": {a.event.VerificationCode}}.Encode()
	other := mint("mallory")
	resp, body := f.do("POST", a.callback, form, &http.Cookie{Name: "id_token", Value: other})
	if resp.StatusCode != 403 || !strings.Contains(outcomeOf(body), "Signed in as someone else") {
		t.Fatalf("other user: %d %s", resp.StatusCode, outcomeOf(body))
	}
	resp, body = f.do("POST", a.callback, form, &http.Cookie{Name: "id_token", Value: jwt})
	if resp.StatusCode != 200 || outcomeOf(body) != "ok: Connected" {
		t.Fatalf("right user: %d %s", resp.StatusCode, outcomeOf(body))
	}
	if r := f.waitTask(a.taskToken); r.Status != sfnlocal.StatusSucceeded {
		t.Fatalf("%+v", r)
	}
	f.assertNoSecrets(map[string]string{"jwt": jwt, "other jwt": other, "code": a.event.VerificationCode})
}

// The flow's own JWT, valid when the flow started, has expired by the time
// the browser confirms: verified, it is refused, and nothing is completed.
func TestJWTCookieExpiredAtTheCallback(t *testing.T) {
	f := start(t, "code")
	jwt, err := f.s.Emulator.MintIDToken("alice", "consentflow-app", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a := f.initiate(`{"userToken":"` + jwt + `","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	time.Sleep(5 * time.Second) // past exp (whole seconds), by the wall clock the verifier uses
	form := url.Values{"code": {a.event.VerificationCode}}.Encode()
	resp, body := f.do("POST", a.callback, form, &http.Cookie{Name: "id_token", Value: jwt})
	if resp.StatusCode != 403 || !strings.Contains(outcomeOf(body), "Signed in as someone else") {
		t.Fatalf("expired JWT: %d %s", resp.StatusCode, outcomeOf(body))
	}
	if n := len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != 0 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
	f.assertNoSecrets(map[string]string{"jwt": jwt, "code": a.event.VerificationCode})
}

func TestConcurrentConfirmationsCompleteOnce(t *testing.T) {
	f := start(t, "code")
	a := f.initiate(`{"userId":"user-7","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	form := url.Values{"code": {a.event.VerificationCode}}.Encode()
	var wg sync.WaitGroup
	outcomes := make([]string, 50)
	for i := range outcomes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", a.callback, strings.NewReader(form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := f.http.Do(req)
			if err != nil {
				outcomes[i] = err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			outcomes[i] = outcomeOf(string(b))
		}()
	}
	wg.Wait()
	count := map[string]int{}
	for _, o := range outcomes {
		count[o]++
	}
	if count["ok: Connected"] != 1 || count["ok: Already connected"] != 49 {
		t.Fatalf("outcomes %v", count)
	}
	if n := len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != 1 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
	if n := f.s.SFN.Calls()["SendTaskSuccess"]; n != 1 {
		t.Fatalf("SendTaskSuccess called %d times", n)
	}
}

func TestDenyAtProviderFailsTask(t *testing.T) {
	f := start(t, "code")
	a := f.initiate(`{"userId":"user-8","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "deny")
	resp, body := f.do("GET", a.callback, "")
	if resp.StatusCode != 200 || !strings.Contains(outcomeOf(body), "Access not granted") {
		t.Fatalf("%d %s", resp.StatusCode, outcomeOf(body))
	}
	r := f.waitTask(a.taskToken)
	if r.Status != sfnlocal.StatusFailed || r.Error != contract.ErrConsentDenied {
		t.Fatalf("%+v", r)
	}
}

func TestExpiredSessionFailsTaskOnce(t *testing.T) {
	f := start(t, "code")
	a := f.initiate(`{"userId":"user-9","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	f.s.Advance(contract.SessionValidity + time.Second)
	for i := 0; i < 2; i++ {
		resp, body := f.do("POST", a.callback, url.Values{"code": {a.event.VerificationCode}}.Encode())
		if resp.StatusCode != 410 {
			t.Fatalf("%d %s", resp.StatusCode, outcomeOf(body))
		}
	}
	r := f.waitTask(a.taskToken)
	if r.Status != sfnlocal.StatusFailed || r.Error != contract.ErrExpired {
		t.Fatalf("%+v", r)
	}
	if n := f.s.SFN.Calls()["SendTaskFailure"]; n != 1 {
		t.Fatalf("SendTaskFailure called %d times", n)
	}
	if n := len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != 0 {
		t.Fatal("expired session completed")
	}
}

func TestWrongCodeFiveTimes(t *testing.T) {
	f := start(t, "code")
	a := f.initiate(`{"userId":"user-10","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	for i := 1; i <= 5; i++ {
		resp, body := f.do("POST", a.callback, url.Values{"code": {fmt.Sprintf("ZZZZZ-ZZZZ%d", i+1)}}.Encode())
		if resp.StatusCode != 403 {
			t.Fatalf("attempt %d: %d %s", i, resp.StatusCode, outcomeOf(body))
		}
	}
	r := f.waitTask(a.taskToken)
	if r.Status != sfnlocal.StatusFailed || r.Error != contract.ErrBindingFailed {
		t.Fatalf("%+v", r)
	}
}

func TestAgentCoreThrottlingThenRetry(t *testing.T) {
	f := start(t, "code")
	a := f.initiate(`{"userId":"user-11","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	// More failures than the SDK's standard retryer absorbs (3 attempts).
	f.s.Emulator.InjectFault(emulator.OpCompleteResourceTokenAuth, 3, emulator.Throttle)
	form := url.Values{"code": {a.event.VerificationCode}}.Encode()
	resp, body := f.do("POST", a.callback, form)
	if resp.StatusCode != 503 {
		t.Fatalf("throttled: %d %s", resp.StatusCode, outcomeOf(body))
	}
	resp, body = f.do("POST", a.callback, form)
	if resp.StatusCode != 200 || outcomeOf(body) != "ok: Connected" {
		t.Fatalf("retry: %d %s", resp.StatusCode, outcomeOf(body))
	}
	if r := f.waitTask(a.taskToken); r.Status != sfnlocal.StatusSucceeded {
		t.Fatalf("%+v", r)
	}
}
