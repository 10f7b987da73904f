//go:build linux

package binaries_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/testenv/dynamotest"
	"html"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	cfevents "github.com/consentflow/consentflow/events"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/dynamolocal"
	"github.com/consentflow/consentflow/internal/local/emulator"
	"github.com/consentflow/consentflow/internal/local/eventslocal"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/local/sfnlocal"
	"github.com/consentflow/consentflow/internal/local/streamlocal"
	"github.com/consentflow/consentflow/internal/resume"
	"github.com/consentflow/consentflow/internal/state"
	"github.com/consentflow/consentflow/internal/testenv/lambdaruntime"
)

const (
	fnInitiate = "initiate"
	fnCallback = "callback"
	fnResumer  = "resumer"

	// unregisteredProvider is a provider the emulator does not know.
	unregisteredProvider = "not-registered"
)

var arches = []string{"amd64", "arm64"}

// buildDir holds the bootstraps, one build per function and arch per test
// binary; TestMain removes it.
var buildDir string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "consentflow-binaries-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		buildDir = dir
		defer os.RemoveAll(dir)
		defer dynamotest.StopShared()
		return m.Run()
	}()
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Building

type build struct {
	once sync.Once
	path string
	size int64
	took time.Duration
	err  error
}

var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
)

// bootstrap returns the path and size of fn's bootstrap for linux/arch,
// building it (as the stack does) on first use.
func bootstrap(t testing.TB, fn, arch string) (string, int64) {
	t.Helper()
	key := fn + "/" + arch
	buildsMu.Lock()
	b := builds[key]
	if b == nil {
		b = &build{}
		builds[key] = b
	}
	buildsMu.Unlock()
	b.once.Do(func() {
		root, err := dynamolocal.RepoRoot()
		if err != nil {
			b.err = err
			return
		}
		out := filepath.Join(buildDir, arch, fn)
		if b.err = os.MkdirAll(out, 0o755); b.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		if b.path, b.err = lambdaruntime.Build(ctx, root, "./functions/"+fn, arch, out); b.err != nil {
			return
		}
		b.took = time.Since(start)
		fi, err := os.Stat(b.path)
		if err != nil {
			b.err = err
			return
		}
		b.size = fi.Size()
		b.err = checkELF(b.path, arch)
	})
	if b.err != nil {
		t.Fatalf("build %s: %v", key, b.err)
	}
	return b.path, b.size
}

// checkELF verifies the binary is what the stack deploys: a static,
// stripped linux executable for arch.
func checkELF(path, arch string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		return fmt.Errorf("%s: machine %v, want %v", path, f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: dynamically linked (PT_INTERP)", path)
		}
	}
	if f.Section(".symtab") != nil {
		return fmt.Errorf("%s: not stripped (has .symtab)", path)
	}
	return nil
}

// wrapper returns the command that runs a linux/arch binary here: nothing
// for amd64, qemu-aarch64-static for arm64. A missing qemu fails the test
// unless CONSENTFLOW_SKIP_QEMU=1.
func wrapper(t testing.TB, arch string) []string {
	t.Helper()
	if arch != "arm64" {
		return nil
	}
	qemu := os.Getenv("CONSENTFLOW_QEMU")
	if qemu == "" {
		qemu = "/usr/bin/qemu-aarch64-static"
	}
	if _, err := os.Stat(qemu); err != nil {
		if os.Getenv("CONSENTFLOW_SKIP_QEMU") == "1" {
			t.Skipf("%s not installed and CONSENTFLOW_SKIP_QEMU=1", qemu)
		}
		t.Fatalf("%s is required to run the linux/arm64 bootstrap (install the Debian package qemu-user-static, "+
			"or set CONSENTFLOW_QEMU to its path); set CONSENTFLOW_SKIP_QEMU=1 to skip: %v", qemu, err)
	}
	return []string{qemu}
}

// ---------------------------------------------------------------------------
// The local system and the functions

// startStack starts the local stack on the shared DynamoDB Local, in a
// table of the test's own; configure, if any, adjusts its options.
func startStack(t testing.TB, configure ...func(*runner.Options)) *runner.Stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := runner.Options{
		// initiate-callback.json asks for google-calendar, initiate-sync.json for github.
		Providers: []string{"github", "google-calendar"},
		Binding:   "code",
		DynamoDB:  dynamotest.Shared(t),
		Table:     dynamotest.TableName(t),
	}
	for _, c := range configure {
		c(&o)
	}
	s, err := runner.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// envList turns the stack's environment into KEY=value entries, without
// the variables named in drop, with set applied on top.
func envList(env map[string]string, drop []string, set map[string]string) []string {
	m := map[string]string{}
	for k, v := range env {
		m[k] = v
	}
	for _, k := range drop {
		delete(m, k)
	}
	for k, v := range set {
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// function is one bootstrap process under its own Runtime API server.
type function struct {
	name, arch string
	size       int64
	srv        *lambdaruntime.Server
	proc       *lambdaruntime.Process
	ids        []string // request ids of the invocations, in order
	errBodies  []string // bodies posted on the error route, compacted JSON
}

// startFunction builds (once) and starts fn for arch with env. The process
// is stopped and the server closed when the test ends.
func startFunction(t testing.TB, fn, arch string, env []string) *function {
	t.Helper()
	wrap := wrapper(t, arch)
	path, size := bootstrap(t, fn, arch)
	srv, err := lambdaruntime.Start(lambdaruntime.Config{
		FunctionName: "consentflow-" + fn + "-" + arch,
		Region:       runner.Region,
		Timeout:      60 * time.Second, // arm64 runs emulated
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	p := srv.MustStartProcess(t, lambdaruntime.ProcessConfig{Path: path, Wrapper: wrap, Env: env})
	return &function{name: fn, arch: arch, size: size, srv: srv, proc: p}
}

// invoke sends payload and returns the answer (a function error is in
// Response.Error).
func (f *function) invoke(t testing.TB, payload []byte) lambdaruntime.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r, err := f.srv.Invoke(ctx, payload)
	if err != nil {
		t.Fatalf("invoke %s (linux/%s): %v\noutput:\n%s", f.name, f.arch, err, f.proc.Output())
	}
	f.ids = append(f.ids, r.RequestID)
	if r.Error != nil {
		f.errBodies = append(f.errBodies, compactJSON(r.Error.Body))
	}
	return r
}

func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Compact(&buf, b) != nil {
		return string(b)
	}
	return buf.String()
}

// firstResponse is the time from process start to the first answer.
func (f *function) firstResponse(t testing.TB) time.Duration {
	t.Helper()
	d, ok := f.proc.StartToFirstResponse()
	if !ok {
		t.Fatalf("%s (linux/%s): no first response recorded", f.name, f.arch)
	}
	return d
}

func (f *function) alive(t testing.TB) {
	t.Helper()
	select {
	case <-f.proc.Exited():
		t.Fatalf("%s (linux/%s) exited: %v\noutput:\n%s", f.name, f.arch, f.proc.ExitErr(), f.proc.Output())
	default:
	}
}

// ---------------------------------------------------------------------------
// Samples

func sample(t testing.TB, name string) []byte {
	t.Helper()
	root, err := dynamolocal.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withField returns the JSON object doc with key set to value.
func withField(t testing.TB, doc []byte, key string, value any) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = mustJSON(t, value)
	return mustJSON(t, m)
}

// callbackEvent is the API Gateway sample name with the live query (and,
// for POST, the form body code=<code>, base64 as API Gateway sends it).
func callbackEvent(t testing.TB, name, rawQuery, code string) (events.APIGatewayV2HTTPRequest, []byte) {
	t.Helper()
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(sample(t, name), &req); err != nil {
		t.Fatal(err)
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		t.Fatal(err)
	}
	req.RawQueryString = rawQuery
	req.QueryStringParameters = map[string]string{}
	for k, v := range q {
		req.QueryStringParameters[k] = strings.Join(v, ",")
	}
	if req.RequestContext.HTTP.Method == http.MethodPost {
		form := url.Values{"code": {code}}.Encode()
		req.Body = base64.StdEncoding.EncodeToString([]byte(form))
		req.IsBase64Encoded = true
		req.Headers["content-length"] = strconv.Itoa(len(form))
	}
	return req, mustJSON(t, req)
}

// ---------------------------------------------------------------------------
// The browser's part (a plain HTTP client at the emulator's consent page)

var (
	formRe    = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	hiddenRe  = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
	outcomeRe = regexp.MustCompile(`data-outcome="([a-z]+)"`)
	h1Re      = regexp.MustCompile(`<h1>([^<]*)</h1>`)
)

// consent opens authURL, allows at the provider page and returns the URL
// the browser is redirected to (our callback with session_id and state).
func consent(t testing.TB, s *runner.Stack, authURL string) *url.URL {
	t.Helper()
	c := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("consent page: %d", resp.StatusCode)
	}
	m := formRe.FindSubmatch(body)
	if m == nil {
		t.Fatal("no consent form on the emulator's page")
	}
	action, err := url.Parse(html.UnescapeString(string(m[1])))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"decision": {"allow"}}
	for _, h := range hiddenRe.FindAllSubmatch(body, -1) {
		form.Set(string(h[1]), html.UnescapeString(string(h[2])))
	}
	base, _ := url.Parse(authURL)
	resp, err = c.PostForm(base.ResolveReference(action).String(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("consent POST: %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, s.CallbackURL+"?") {
		t.Fatalf("redirected to %q, not to the callback %s", loc, s.CallbackURL)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func outcomeOf(body string) string {
	m := outcomeRe.FindStringSubmatch(body)
	h := h1Re.FindStringSubmatch(body)
	if m == nil || h == nil {
		return "?"
	}
	return m[1] + ": " + h[1]
}

// checkPage asserts an API Gateway response is a 200 HTML page with the
// security headers; it returns the page.
func checkPage(t testing.TB, r lambdaruntime.Response) string {
	t.Helper()
	return checkPageWith(t, r, "same-origin")
}

// connectPage is checkPage for the Connect route's pages.
func connectPage(t testing.TB, r lambdaruntime.Response) string {
	t.Helper()
	return checkPageWith(t, r, "no-referrer")
}

func checkPageWith(t testing.TB, r lambdaruntime.Response, referrer string) string {
	t.Helper()
	if r.Error != nil {
		t.Fatalf("callback reported an error: %+v", r.Error)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(r.Payload, &resp); err != nil {
		t.Fatalf("callback response is not an API Gateway response: %v\n%.300s", err, r.Payload)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("statusCode %d, want 200 (%s)", resp.StatusCode, outcomeOf(resp.Body))
	}
	if resp.IsBase64Encoded {
		t.Error("HTML body is base64-encoded")
	}
	want := map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
		// same-origin on the callback's pages (their forms carry their
		// origin), no-referrer on the Connect pages (connectPage).
		"Referrer-Policy": referrer,
	}
	for k, v := range want {
		if got := resp.Headers[k]; got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if csp := resp.Headers["Content-Security-Policy"]; !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
	low := strings.ToLower(resp.Body)
	if !strings.HasPrefix(strings.TrimSpace(low), "<!doctype html>") || !strings.Contains(low, "</html>") {
		t.Errorf("body is not an HTML document: %.200q", resp.Body)
	}
	return resp.Body
}

// ---------------------------------------------------------------------------
// Logs

// checkLogs asserts every output line of f is a JSON object; that once
// the first invocation started, every line carries the request id of one of
// f's invocations, in invocation order; that the lines of the session's
// invocations carry its correlation id; and that no other invocation's
// lines do, except the announcing ones (the resumer given the session's
// settling record again), which log it at least once. It returns the
// parsed lines.
func checkLogs(t testing.TB, f *function, sessionInvocations []string, correlationID string, announcing ...string) []map[string]any {
	t.Helper()
	announces := map[string]bool{}
	for _, id := range announcing {
		announces[id] = true
	}
	order := map[string]int{}
	for i, id := range f.ids {
		order[id] = i
	}
	session := map[string]bool{}
	for _, id := range sessionInvocations {
		session[id] = true
	}
	var lines []map[string]any
	withCID := map[string]int{}
	last, inInvocations := -1, false
	sc := bufio.NewScanner(strings.NewReader(f.proc.Output()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		raw := strings.TrimSpace(sc.Text())
		if raw == "" {
			continue
		}
		if f.runtimeErrorEcho(raw) {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			// Not printed: it could hold anything.
			t.Errorf("%s (linux/%s) output line %d is not a JSON object (%d bytes)", f.name, f.arch, n, len(raw))
			continue
		}
		lines = append(lines, m)
		for _, k := range []string{"timestamp", "level", "message"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s (linux/%s) log line %d has no %q: %v", f.name, f.arch, n, k, keys(m))
			}
		}
		id, _ := m["requestId"].(string)
		if id == "" {
			if inInvocations {
				t.Errorf("%s (linux/%s) log line %d (%v) inside an invocation has no requestId", f.name, f.arch, n, m["message"])
			}
			continue
		}
		inInvocations = true
		i, ok := order[id]
		switch {
		case !ok:
			t.Errorf("%s (linux/%s) log line %d has requestId %q, not one of the invocations", f.name, f.arch, n, id)
		case i < last:
			t.Errorf("%s (linux/%s) log line %d belongs to invocation %d after invocation %d logged", f.name, f.arch, n, i, last)
		default:
			last = i
		}
		cid, _ := m["correlationId"].(string)
		if session[id] {
			if cid != correlationID {
				t.Errorf("%s (linux/%s) log line %d (%v) of the session's invocation has correlationId %q, want %q",
					f.name, f.arch, n, m["message"], cid, correlationID)
			} else {
				withCID[id]++
			}
		} else if cid == correlationID && correlationID != "" {
			if announces[id] {
				withCID[id]++
			} else {
				t.Errorf("%s (linux/%s) log line %d of another invocation carries the session's correlationId", f.name, f.arch, n)
			}
		}
	}
	for _, id := range append(sessionInvocations, announcing...) {
		if withCID[id] == 0 {
			t.Errorf("%s (linux/%s): the session's invocation %s logged no line with its correlationId", f.name, f.arch, id)
		}
	}
	return lines
}

// runtimeErrorEcho reports whether line is aws-lambda-go's own echo of an
// error payload f posted on the error route: reportFailure logs it through
// the standard logger, which main.go routes into the JSON slog handler, so
// it is a JSON line without a request id (log.Printf has no context). It
// is accepted only when its message is exactly one of the error bodies the
// Runtime API received from f.
func (f *function) runtimeErrorEcho(line string) bool {
	var j struct {
		Message   string `json:"message"`
		RequestID string `json:"requestId"`
	}
	if json.Unmarshal([]byte(line), &j) != nil || j.RequestID != "" {
		return false
	}
	payload := compactJSON([]byte(j.Message))
	for _, b := range f.errBodies {
		if payload == b {
			return true
		}
	}
	return false
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// checkNoSecrets asserts no secret value appears in text (named where).
func checkNoSecrets(t testing.TB, where, text string, secrets map[string]string) {
	t.Helper()
	for name, v := range secrets {
		if v == "" {
			t.Errorf("secret %q is empty: the check would be vacuous", name)
			continue
		}
		if strings.Contains(text, v) {
			t.Errorf("%s appears in %s", name, where)
		}
	}
}

// ---------------------------------------------------------------------------
// Tests

// figures collects the measurements printed by each arch's test.
type figures struct {
	arch                   string
	initiateSize, cbSize   int64
	initiateReady, cbReady time.Duration // start -> first GET next (init done)
	initiateFirst, cbFirst time.Duration // start -> first answer
}

func (f figures) String() string {
	return fmt.Sprintf("linux/%s: initiate %d bytes (%.1f MiB), start->ready %v, start->first response %v; "+
		"callback %d bytes (%.1f MiB), start->ready %v, start->first response %v",
		f.arch, f.initiateSize, mib(f.initiateSize), f.initiateReady.Round(time.Millisecond), f.initiateFirst.Round(time.Millisecond),
		f.cbSize, mib(f.cbSize), f.cbReady.Round(time.Millisecond), f.cbFirst.Round(time.Millisecond))
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// TestBinaries runs the whole flow through the two real bootstraps, for
// each arch: initiate (callback pattern, sync, errors), consent at the
// emulator, callback GET then POST, the workflow resumed, then the logs.
func TestBinaries(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the bootstrap binaries")
	}
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) { testFlow(t, arch) })
	}
}

func testFlow(t *testing.T, arch string) {
	wrapper(t, arch) // skip or fail before building
	s := startStack(t)
	env := envList(s.Env, nil, nil)

	// The samples' own values, replaced by live ones below.
	var cbSample struct {
		TaskToken    string     `json:"taskToken"`
		ExecutionARN string     `json:"executionArn"`
		Input        flow.Input `json:"input"`
	}
	if err := json.Unmarshal(sample(t, "initiate-callback.json"), &cbSample); err != nil {
		t.Fatal(err)
	}
	var getSample events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(sample(t, "callback-get.json"), &getSample); err != nil {
		t.Fatal(err)
	}
	idTokenCookie := ""
	for _, c := range getSample.Cookies {
		if v, ok := strings.CutPrefix(c, "id_token="); ok {
			idTokenCookie = v
		}
	}

	// 1. initiate, callback pattern: initiate-callback.json with the task
	// token and the ARN of an execution the Step Functions stand-in
	// started. Queued at once after the process starts, so this is the
	// cold start.
	initiate := startFunction(t, fnInitiate, arch, env)
	if !flow.ValidExecutionARN(cbSample.ExecutionARN) {
		t.Fatalf("initiate-callback.json: executionArn %q", cbSample.ExecutionARN)
	}
	exec, err := s.StartExecution(sfnlocal.WithTimeout(5 * time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	taskToken := exec.TaskToken
	r := initiate.invoke(t, withField(t, withField(t, sample(t, "initiate-callback.json"), "taskToken", taskToken), "executionArn", exec.ARN))
	if r.Error != nil {
		t.Fatalf("initiate (callback pattern): %+v\noutput:\n%s", r.Error, initiate.proc.Output())
	}
	sessionInitiate := r.RequestID
	var res map[string]any
	if err := json.Unmarshal(r.Payload, &res); err != nil {
		t.Fatalf("initiate response is not JSON: %v: %.300s", err, r.Payload)
	}
	if res["status"] != flow.StatusAuthorizationRequired || res["provider"] != cbSample.Input.Provider || res["userId"] != cbSample.Input.UserID {
		t.Errorf("initiate (callback pattern) response %v", res)
	}
	for _, k := range []string{"authorizationUrl", "verificationCode"} {
		if _, ok := res[k]; ok {
			t.Errorf("callback-pattern response carries %q (it lands in the execution history)", k)
		}
	}
	correlationID, _ := res["correlationId"].(string)
	if correlationID == "" {
		t.Fatalf("initiate response has no correlationId: %v", res)
	}
	if strings.Contains(string(r.Payload), taskToken) {
		t.Error("the task token is in the initiate response")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	ev, err := s.Events.WaitFor(ctx, eventslocal.Match{DetailType: "AuthorizationRequired"})
	cancel()
	if err != nil {
		t.Fatalf("no AuthorizationRequired event: %v", err)
	}
	var ar flow.AuthorizationRequired
	if err := json.Unmarshal(ev.Detail, &ar); err != nil {
		t.Fatal(err)
	}
	if ar.CorrelationID != correlationID || ar.AuthorizationURL == "" || ar.VerificationCode == "" || ev.EventBusName != runner.EventBus ||
		ar.ExecutionARN != exec.ARN {
		t.Fatalf("AuthorizationRequired event on %q: %+v", ev.EventBusName, ar)
	}
	if strings.Contains(string(ev.Detail), taskToken) {
		t.Error("the task token is in the AuthorizationRequired event")
	}

	// 2. initiate, synchronous: the bare input of initiate-sync.json gets
	// the URL and the code in the response.
	r = initiate.invoke(t, sample(t, "initiate-sync.json"))
	if r.Error != nil {
		t.Fatalf("initiate (sync): %+v", r.Error)
	}
	var syncRes flow.Result
	if err := json.Unmarshal(r.Payload, &syncRes); err != nil {
		t.Fatalf("initiate (sync) response: %v: %.300s", err, r.Payload)
	}
	if syncRes.Status != flow.StatusAuthorizationRequired || syncRes.AuthorizationURL == "" || syncRes.VerificationCode == "" ||
		syncRes.CorrelationID == "" || syncRes.ExpiresAt == nil || syncRes.Provider != "github" {
		t.Errorf("initiate (sync) response %s", r.Payload)
	}

	// 3. Errors go through the runtime API's error route, typed.
	for _, c := range []struct {
		name, payload, want string
	}{
		{"no provider", `{"userId":"u"}`, contract.ErrInvalidInput},
		{"unknown field", `{"nope":1}`, contract.ErrInvalidInput},
		{"not JSON object", `[1,2]`, contract.ErrInvalidInput},
		{"token without input", `{"taskToken":"` + taskToken + `"}`, contract.ErrInvalidInput},
		{"unregistered provider", string(withField(t, sample(t, "initiate-sync.json"), "provider", unregisteredProvider)), contract.ErrResourceNotFound},
	} {
		r := initiate.invoke(t, []byte(c.payload))
		if r.Error == nil {
			t.Errorf("%s: answered %.200s, want error %s", c.name, r.Payload, c.want)
			continue
		}
		if r.Error.Type != c.want || r.Error.Message == "" || r.Payload != nil {
			t.Errorf("%s: error %q (%q), want type %s", c.name, r.Error.Type, r.Error.Message, c.want)
		}
		checkNoSecrets(t, c.name+" error", string(r.Error.Body), map[string]string{"task token": taskToken})
	}
	initiate.alive(t) // a returned error does not end the runtime

	// 4. The user consents at the provider (the emulator's page).
	cbURL := consent(t, s, ar.AuthorizationURL)
	state := cbURL.Query().Get("state")
	if state == "" || cbURL.Query().Get("session_id") == "" {
		t.Fatalf("callback URL without session_id/state: %v", cbURL.Query())
	}

	// 5. The callback function: GET shows the confirmation page, POST with
	// the code completes the session and resumes the workflow.
	cb := startFunction(t, fnCallback, arch, env)
	getReq, getEv := callbackEvent(t, "callback-get.json", cbURL.RawQuery, "")
	r = cb.invoke(t, getEv)
	sessionGet := r.RequestID
	page := checkPage(t, r)
	if o := outcomeOf(page); !strings.HasPrefix(o, "confirm") {
		t.Errorf("GET outcome %q, want the confirmation page", o)
	}
	if n := len(s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != 0 {
		t.Errorf("GET completed the session (%d CompleteResourceTokenAuth calls)", n)
	}
	checkNoSecrets(t, "the GET page", page, map[string]string{"state": state, "task token": taskToken})
	if getReq.QueryStringParameters["state"] != state {
		t.Fatal("GET event built without the live state")
	}

	_, postEv := callbackEvent(t, "callback-post.json", cbURL.RawQuery, ar.VerificationCode)
	r = cb.invoke(t, postEv)
	sessionPost := r.RequestID
	page = checkPage(t, r)
	if o := outcomeOf(page); o != "ok: Connected" {
		t.Errorf("POST outcome %q, want ok: Connected", o)
	}
	checkNoSecrets(t, "the POST page", page, map[string]string{"state": state, "task token": taskToken, "code": ar.VerificationCode})
	cb.alive(t)

	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	tr, err := s.SFN.Wait(ctx, taskToken)
	cancel()
	if err != nil {
		t.Fatalf("workflow task not resumed: %v", err)
	}
	var out flow.Result
	_ = json.Unmarshal(tr.Output, &out)
	if tr.Status != sfnlocal.StatusSucceeded || out.Status != flow.StatusAuthorized || out.Provider != cbSample.Input.Provider ||
		out.CorrelationID != correlationID {
		t.Fatalf("task result %s %s/%s output %s", tr.Status, tr.Error, tr.Cause, tr.Output)
	}
	if n := len(s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != 1 {
		t.Errorf("CompleteResourceTokenAuth called %d times, want 1", n)
	}

	// 6. The token is in the vault (fetched with the emulator's SDK client).
	access := vaultToken(t, s, cbSample.Input)
	if strings.Contains(string(tr.Output), access) {
		t.Error("the access token is in the workflow output")
	}

	// 7. Logs: JSON, request ids, correlation ids, no secret.
	il := checkLogs(t, initiate, []string{sessionInitiate}, correlationID)
	cl := checkLogs(t, cb, []string{sessionGet, sessionPost}, correlationID)
	if len(il) == 0 || len(cl) == 0 {
		t.Errorf("no log lines captured (initiate %d, callback %d)", len(il), len(cl))
	}
	code := ar.VerificationCode
	secrets := map[string]string{
		"state":                              state,
		"verification code":                  code,
		"verification code without dash":     strings.ReplaceAll(code, "-", ""),
		"task token":                         taskToken,
		"access token":                       access,
		"id_token cookie":                    idTokenCookie,
		"authorization URL":                  ar.AuthorizationURL,
		"sync verification code":             syncRes.VerificationCode,
		"sync verification code (no dash)":   strings.ReplaceAll(syncRes.VerificationCode, "-", ""),
		"lower-case verification code":       strings.ToLower(code),
		"lower-case code without dash":       strings.ToLower(strings.ReplaceAll(code, "-", "")),
		"form body with the verification cd": url.Values{"code": {code}}.Encode(),
	}
	checkNoSecrets(t, "the initiate output", initiate.proc.Output(), secrets)
	checkNoSecrets(t, "the callback output", cb.proc.Output(), secrets)

	// 8. Figures.
	fg := figures{
		arch:         arch,
		initiateSize: initiate.size, initiateFirst: initiate.firstResponse(t),
		cbSize: cb.size, cbFirst: cb.firstResponse(t),
	}
	fg.initiateReady, _ = initiate.proc.StartToReady()
	fg.cbReady, _ = cb.proc.StartToReady()
	t.Logf("%v", fg)
	t.Logf("log lines: initiate %d, callback %d", len(il), len(cl))
	if testing.Verbose() {
		fmt.Printf("consentflow bootstraps %v\n", fg)
	}
}

// vaultToken fetches the access token the flow stored for in, through the
// real SDK client against the emulator.
func vaultToken(t testing.TB, s *runner.Stack, in flow.Input) string {
	t.Helper()
	ac := s.Clients.AgentCore
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wat, err := ac.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String(runner.WorkloadName), UserId: aws.String(in.UserID)})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ac.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken:          wat.WorkloadAccessToken,
		ResourceCredentialProviderName: aws.String(in.Provider),
		Scopes:                         in.Scopes,
		CustomParameters:               in.CustomParameters,
		Oauth2Flow:                     types.Oauth2FlowTypeUserFederation,
		ResourceOauth2ReturnUrl:        aws.String(s.CallbackURL),
	})
	if err != nil {
		t.Fatalf("vault: %v", err)
	}
	if aws.ToString(tok.AccessToken) == "" {
		t.Fatalf("no access token in the vault (authorizationUrl %v)", tok.AuthorizationUrl != nil)
	}
	return aws.ToString(tok.AccessToken)
}

// ---------------------------------------------------------------------------
// The resumer: records of the table's real stream

// streamRecords returns every record of s's table stream so far, converted
// (streamlocal.Record) to the event records Lambda hands the resumer, with
// the field the event source mapping adds (eventSourceARN).
func streamRecords(t testing.TB, s *runner.Stack) []events.DynamoDBEventRecord {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tbl, err := s.Clients.DynamoDB.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.Table)})
	if err != nil {
		t.Fatal(err)
	}
	arn := tbl.Table.LatestStreamArn
	desc, err := s.Clients.Streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: arn})
	if err != nil {
		t.Fatal(err)
	}
	var out []events.DynamoDBEventRecord
	for _, sh := range desc.StreamDescription.Shards {
		it, err := s.Clients.Streams.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
			StreamArn: arn, ShardId: sh.ShardId, ShardIteratorType: streamtypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		for next := it.ShardIterator; next != nil; {
			page, err := s.Clients.Streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: next})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Records {
				er := streamlocal.Record(r)
				er.EventSourceArn = aws.ToString(arn)
				out = append(out, er)
			}
			if len(page.Records) == 0 {
				break // caught up with an open shard
			}
			next = page.NextShardIterator
		}
	}
	return out
}

// sessionRecord is one stream record of a session and its new image.
type sessionRecord struct {
	rec     events.DynamoDBEventRecord
	session *flow.Session
}

// waitSessionRecords polls the stream until the records of sessionURI
// (in stream order) satisfy done, and returns them.
func waitSessionRecords(t testing.TB, s *runner.Stack, sessionURI string, what string, done func([]sessionRecord) bool) []sessionRecord {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var recs []sessionRecord
		for _, r := range streamRecords(t, s) {
			if r.Change.NewImage == nil {
				continue
			}
			if ss, err := resume.Session(r.Change.NewImage); err == nil && ss.SessionURI == sessionURI {
				recs = append(recs, sessionRecord{r, ss})
			}
		}
		if done(recs) {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the table's stream never showed %s (%d records of the session)", what, len(recs))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// streamEvent is the DynamoDB stream event of recs, as Lambda sends it.
func streamEvent(t testing.TB, recs ...sessionRecord) []byte {
	t.Helper()
	ev := events.DynamoDBEvent{}
	for _, r := range recs {
		ev.Records = append(ev.Records, r.rec)
	}
	return mustJSON(t, ev)
}

// awaitCompleted returns the next AuthorizationCompleted event of
// correlationID published on s's bus, passing over those of other sessions
// (a batch handed over again announces its settling record again: at least
// once).
func awaitCompleted(ctx context.Context, t testing.TB, s *runner.Stack, correlationID string) cfevents.AuthorizationCompleted {
	t.Helper()
	for {
		ev, err := s.Events.WaitFor(ctx, eventslocal.Match{DetailType: cfevents.DetailTypeAuthorizationCompleted})
		if err != nil {
			t.Fatalf("no AuthorizationCompleted event for %s: %v", correlationID, err)
		}
		var c cfevents.AuthorizationCompleted
		if err := json.Unmarshal(ev.Detail, &c); err != nil {
			t.Fatalf("AuthorizationCompleted %s: %v", ev.Detail, err)
		}
		if c.CorrelationID == correlationID {
			return c
		}
	}
}

// batchFailures decodes the resumer's answer: the sequence numbers of the
// batch item failures.
func batchFailures(t testing.TB, what string, r lambdaruntime.Response) []string {
	t.Helper()
	if r.Error != nil {
		t.Fatalf("%s: resumer reported an error: %+v", what, r.Error)
	}
	var resp events.DynamoDBEventResponse
	if err := json.Unmarshal(r.Payload, &resp); err != nil {
		t.Fatalf("%s: resumer response is not a DynamoDBEventResponse: %v: %.300s", what, err, r.Payload)
	}
	var seqs []string
	for _, f := range resp.BatchItemFailures {
		seqs = append(seqs, f.ItemIdentifier)
	}
	return seqs
}

// TestResumer runs the resumer's bootstrap, for each arch, on records taken
// from the table's real stream on DynamoDB Local: a session settled
// COMPLETED whose inline SendTaskSuccess Step Functions refused (so the
// outbox is owed), the same batch again, a record of the session before it
// settled (no outbox), a record after it was resumed, the events/ sample,
// and a payload that is not an event. The stack runs without its stream
// poller, so the binary is the only resumer.
func TestResumer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the bootstrap binaries")
	}
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) { testResumer(t, arch) })
	}
}

func testResumer(t *testing.T, arch string) {
	wrapper(t, arch) // skip or fail before building
	s := startStack(t, func(o *runner.Options) { o.NoStreamPoller = true })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sfnCalls := func() int { return s.SFN.Calls()["SendTaskSuccess"] + s.SFN.Calls()["SendTaskFailure"] }
	results := func(tok string) []sfnlocal.Result {
		var rs []sfnlocal.Result
		for _, r := range s.SFN.Results() {
			if r.Token == tok {
				rs = append(rs, r)
			}
		}
		return rs
	}
	store := state.New(s.Clients.DynamoDB, s.Table)

	// 1. A real settled session whose inline delivery did not happen: the
	// stack's own (in-process) initiate and callback, the user's consent
	// at the emulator, and Step Functions refusing the callback's inline
	// SendTaskSuccess with an error the SDK does not retry.
	taskToken := s.SFN.NewTask(sfnlocal.WithTimeout(5 * time.Minute))
	res, err := s.Initiate(ctx, withField(t, sample(t, "initiate-callback.json"), "taskToken", taskToken))
	if err != nil {
		t.Fatalf("initiate: %v", err)
	}
	ev, err := s.Events.WaitFor(ctx, eventslocal.Match{DetailType: "AuthorizationRequired"})
	if err != nil {
		t.Fatalf("no AuthorizationRequired event: %v", err)
	}
	var ar flow.AuthorizationRequired
	if err := json.Unmarshal(ev.Detail, &ar); err != nil {
		t.Fatal(err)
	}
	cbURL := consent(t, s, ar.AuthorizationURL)
	sessionURI := cbURL.Query().Get("session_id")
	s.SFN.InjectError("SendTaskSuccess", "KmsThrottlingException", http.StatusBadRequest, "Rate exceeded (KMS)")
	resp, err := http.PostForm(cbURL.String(), url.Values{"code": {ar.VerificationCode}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if o := outcomeOf(string(body)); resp.StatusCode != http.StatusOK || o != "ok: Connected" {
		t.Fatalf("callback POST: %d %s", resp.StatusCode, o)
	}
	if n := sfnCalls(); n != 1 {
		t.Fatalf("%d SendTask* calls after the callback, want the 1 refused inline attempt", n)
	}
	if _, closed, _ := s.SFN.Lookup(taskToken); closed {
		t.Fatal("the task was resumed inline despite the refusal")
	}
	rec, err := store.Get(ctx, sessionURI)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != flow.StatusCompleted || rec.Outbox.Output == "" || !rec.ResumedAt.IsZero() || !rec.DeliveryClaimedAt.IsZero() {
		t.Fatalf("record after the refused inline send: status %s, outbox %v, resumedAt %v, claim %v",
			rec.Status, !rec.Outbox.Empty(), rec.ResumedAt, rec.DeliveryClaimedAt)
	}

	// 2. The session's records on the stream: from the initiate (no outbox
	// yet) to the released delivery claim (due).
	recs := waitSessionRecords(t, s, sessionURI, "the released delivery claim", func(rs []sessionRecord) bool {
		return len(rs) > 0 && rs[len(rs)-1].session.DeliveryDue() && rs[len(rs)-1].session.DeliveryClaimedAt.IsZero()
	})
	pending := recs[0]
	if pending.session.Status.Terminal() || !pending.session.Outbox.Empty() || pending.rec.EventName != "INSERT" {
		t.Fatalf("first record of the session: %s %s, outbox %v", pending.rec.EventName, pending.session.Status, !pending.session.Outbox.Empty())
	}
	var settled []sessionRecord // the batch after the decision
	var seqs []string
	for _, r := range recs {
		if r.session.Status.Terminal() {
			settled = append(settled, r)
			seqs = append(seqs, r.rec.Change.SequenceNumber)
		}
	}
	dueEvent := streamEvent(t, settled...)

	// 3. The resumer bootstrap, cold, on that batch while Step Functions
	// still refuses: every record of the session is a batch item failure
	// and the claim is given back.
	resumer := startFunction(t, fnResumer, arch, envList(s.Env, nil, nil))
	s.SFN.InjectError("SendTaskSuccess", "KmsThrottlingException", http.StatusBadRequest, "Rate exceeded (KMS)")
	r := resumer.invoke(t, dueEvent)
	refusedID := r.RequestID
	if got := batchFailures(t, "refused", r); strings.Join(got, ",") != strings.Join(seqs, ",") {
		t.Errorf("batch item failures %v after a refused send, want the session's records %v", got, seqs)
	}
	if rec, err = store.Get(ctx, sessionURI); err != nil || !rec.ResumedAt.IsZero() || !rec.DeliveryClaimedAt.IsZero() {
		t.Fatalf("record after the resumer's refused send: %v, resumedAt %v, claim %v", err, rec.ResumedAt, rec.DeliveryClaimedAt)
	}
	// The batch's settling record (old image COMPLETING, new COMPLETED)
	// was announced all the same: the binary published the session's
	// AuthorizationCompleted on the stack's bus.
	completed := awaitCompleted(ctx, t, s, res.CorrelationID)
	if completed.UserID != ar.UserID || completed.Provider != "google-calendar" || completed.External || completed.At.IsZero() ||
		completed.ExecutionARN == "" || completed.ExecutionARN != ar.ExecutionARN {
		t.Errorf("AuthorizationCompleted %+v (AuthorizationRequired named execution %q)", completed, ar.ExecutionARN)
	}

	// 4. The same batch again (the event source mapping's retry): the task
	// succeeds, once, with the decision's output, and the record says so.
	r = resumer.invoke(t, dueEvent)
	deliveredID := r.RequestID
	if got := batchFailures(t, "delivery", r); len(got) != 0 {
		t.Errorf("batch item failures %v, want none", got)
	}
	rs := results(taskToken)
	var out flow.Result
	if len(rs) == 1 {
		_ = json.Unmarshal(rs[0].Output, &out)
	}
	if len(rs) != 1 || rs[0].Status != sfnlocal.StatusSucceeded || out.Status != flow.StatusAuthorized ||
		out.CorrelationID != res.CorrelationID || out.Provider != "google-calendar" {
		t.Fatalf("task results %+v, want one SUCCEEDED AUTHORIZED for %s", rs, res.CorrelationID)
	}
	if string(rs[0].Output) != rec.Outbox.Output {
		t.Errorf("task output %s, want the outbox %s", rs[0].Output, rec.Outbox.Output)
	}
	if rec, err = store.Get(ctx, sessionURI); err != nil || rec.ResumedAt.IsZero() {
		t.Fatalf("record not marked resumed: %v", err)
	}
	if n := sfnCalls(); n != 3 {
		t.Errorf("%d SendTask* calls, want 3 (inline refused, resumer refused, resumer delivered)", n)
	}
	// The retried batch announced its settling record again (at least once).
	awaitCompleted(ctx, t, s, res.CorrelationID)

	// 5. Nothing more is sent: the same batch a third time, the session's
	// record before it settled (no outbox), and its record after resumedAt.
	// The batches holding the settling record announce it again.
	resumed := waitSessionRecords(t, s, sessionURI, "resumedAt", func(rs []sessionRecord) bool {
		return len(rs) > 0 && !rs[len(rs)-1].session.ResumedAt.IsZero()
	})
	var announced []string // the later invocations that announced the session again
	for _, c := range []struct {
		name     string
		event    []byte
		settling bool
	}{
		{"the same batch again", dueEvent, true},
		{"a record without an outbox", streamEvent(t, pending), false},
		{"the resumed record", streamEvent(t, resumed[len(resumed)-1]), false},
		{"all the session's records", streamEvent(t, resumed...), true},
	} {
		r := resumer.invoke(t, c.event)
		if got := batchFailures(t, c.name, r); len(got) != 0 {
			t.Errorf("%s: batch item failures %v", c.name, got)
		}
		if c.settling {
			announced = append(announced, r.RequestID)
			awaitCompleted(ctx, t, s, res.CorrelationID)
		}
		if n, rs := sfnCalls(), results(taskToken); n != 3 || len(rs) != 1 {
			t.Fatalf("%s: %d SendTask* calls, %d results, want 3 and 1", c.name, n, len(rs))
		}
	}

	// 6. The events/ sample: the record that settled a session this table
	// does not know (nothing owed, nothing sent; its completion event
	// published), with only attributes the live records have.
	smp := sample(t, "resumer-stream.json")
	var smpEv events.DynamoDBEvent
	if err := json.Unmarshal(smp, &smpEv); err != nil || len(smpEv.Records) == 0 {
		t.Fatalf("resumer-stream.json: %v (%d records)", err, len(smpEv.Records))
	}
	live := map[string]events.DynamoDBAttributeValue{} // every attribute of the live settled records
	for _, r := range settled {
		maps.Copy(live, r.rec.Change.NewImage)
	}
	for _, sr := range smpEv.Records {
		ss, err := resume.Session(sr.Change.NewImage)
		if err != nil || !ss.DeliveryDue() {
			t.Errorf("resumer-stream.json record %s: not a due session (%v)", sr.EventID, err)
		}
		for k := range sr.Change.NewImage {
			if _, ok := live[k]; !ok {
				t.Errorf("resumer-stream.json has attribute %q, which a live settled record does not", k)
			}
		}
	}
	liveOld := settled[0].rec.Change.OldImage
	for _, sr := range smpEv.Records {
		old, err := resume.Session(sr.Change.OldImage)
		if err != nil || !old.Status.Open() {
			t.Errorf("resumer-stream.json record %s: the old image is not an open session (%v)", sr.EventID, err)
		}
		for k := range sr.Change.OldImage {
			if _, ok := liveOld[k]; !ok {
				t.Errorf("resumer-stream.json's old image has attribute %q, which a live settling record's does not", k)
			}
		}
	}
	if got := batchFailures(t, "the sample", resumer.invoke(t, smp)); len(got) != 0 {
		t.Errorf("the sample: batch item failures %v", got)
	}
	// The sample settles its session: the binary announced it.
	smpSession, _ := resume.Session(smpEv.Records[0].Change.NewImage)
	if c := awaitCompleted(ctx, t, s, smpSession.CorrelationID); !c.At.Equal(smpEv.Records[0].Change.ApproximateCreationDateTime.Time) {
		t.Errorf("the sample's AuthorizationCompleted at %v, want the record's ApproximateCreationDateTime %v", c.At, smpEv.Records[0].Change.ApproximateCreationDateTime.Time)
	} else if c.ExecutionARN == "" || c.ExecutionARN != smpSession.ExecutionARN {
		t.Errorf("the sample's AuthorizationCompleted names execution %q, want the record's %q", c.ExecutionARN, smpSession.ExecutionARN)
	}
	if n := sfnCalls(); n != 3 {
		t.Errorf("the sample: %d SendTask* calls, want 3", n)
	}

	// 7. A payload that is not a stream event goes to the error route; the
	// runtime keeps running.
	if r := resumer.invoke(t, []byte(`[1,2]`)); r.Error == nil || r.Error.Type == "" {
		t.Errorf("a non-event answered %.200s, want an error", r.Payload)
	}
	resumer.alive(t)

	// 8. Logs: JSON, request ids, the session's correlation id on the
	// invocations that worked on it (delivered or announced it), no task
	// token anywhere.
	lines := checkLogs(t, resumer, []string{refusedID, deliveredID}, res.CorrelationID, announced...)
	checkNoSecrets(t, "the resumer output", resumer.proc.Output(), map[string]string{
		"task token": taskToken, "verification code": ar.VerificationCode,
	})

	// 9. Figures.
	ready, _ := resumer.proc.StartToReady()
	fg := fmt.Sprintf("linux/%s: resumer %d bytes (%.1f MiB), start->ready %v, start->first response %v",
		arch, resumer.size, mib(resumer.size), ready.Round(time.Millisecond), resumer.firstResponse(t).Round(time.Millisecond))
	t.Logf("%s; log lines %d", fg, len(lines))
	if testing.Verbose() {
		fmt.Printf("consentflow bootstraps %s\n", fg)
	}
}

// TestMisconfigurationFailsInit starts each bootstrap with a broken
// configuration: it must exit non-zero before asking for an invocation,
// and say which variable is wrong.
func TestMisconfigurationFailsInit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the bootstrap binaries")
	}
	s := startStack(t)
	cases := []struct {
		name    string
		fns     []string
		drop    []string
		set     map[string]string
		naming  string
		initErr bool
	}{
		{name: "no SESSIONS_TABLE", fns: []string{fnInitiate, fnCallback, fnResumer}, drop: []string{contract.EnvSessionsTable}, naming: contract.EnvSessionsTable},
		{name: "no WORKLOAD_NAME", fns: []string{fnInitiate}, drop: []string{contract.EnvWorkloadName}, naming: contract.EnvWorkloadName},
		{name: "bad BINDING_MODE", fns: []string{fnInitiate, fnCallback}, set: map[string]string{contract.EnvBindingMode: "maybe"}, naming: contract.EnvBindingMode},
	}
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			wrapper(t, arch)
			for _, c := range cases {
				for _, fn := range c.fns {
					t.Run(fn+"/"+strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
						f := startFunction(t, fn, arch, envList(s.Env, c.drop, c.set))
						select {
						case <-f.proc.Exited():
						case <-time.After(60 * time.Second):
							t.Fatalf("still running with %s\noutput:\n%s", c.name, f.proc.Output())
						}
						err := f.proc.ExitErr()
						var ee interface{ ExitCode() int }
						if err == nil || !errors.As(err, &ee) || ee.ExitCode() <= 0 {
							t.Errorf("exit status %v, want a non-zero exit code", err)
						}
						out := f.proc.Output()
						initErrs := f.srv.InitErrors()
						named := strings.Contains(out, c.naming)
						for _, ie := range initErrs {
							named = named || strings.Contains(ie.Message, c.naming)
						}
						if !named {
							t.Errorf("neither the output nor an init error names %s:\n%s", c.naming, out)
						}
						if _, ready := f.proc.StartToReady(); ready {
							t.Error("asked for an invocation despite the broken configuration")
						}
						// The failure is a JSON log line at level ERROR.
						checkLogs(t, f, nil, "")
						if !strings.Contains(out, `"level":"ERROR"`) {
							t.Errorf("no ERROR log line:\n%s", out)
						}
						t.Logf("exit: %v; init errors: %d; output: %s", err, len(initErrs), strings.TrimSpace(out))
					})
				}
			}
		})
	}
}

// BenchmarkColdStart reports, as ns/op, the time from starting the amd64
// bootstrap to its first response (a real invocation against the local
// stack: initiate-sync.json, and callback-get.json and resumer-stream.json
// for a session the store does not know), and as ready-ns/op the time from
// the start to its first GET next (init done). The process is stopped after
// each start.
func BenchmarkColdStart(b *testing.B) {
	s := startStack(b)
	env := envList(s.Env, nil, nil)
	payloads := map[string][]byte{
		fnInitiate: sample(b, "initiate-sync.json"),
		fnCallback: sample(b, "callback-get.json"),
		fnResumer:  sample(b, "resumer-stream.json"),
	}
	for _, fn := range []string{fnInitiate, fnCallback, fnResumer} {
		b.Run(fn+"/amd64", func(b *testing.B) {
			path, size := bootstrap(b, fn, "amd64")
			var total, ready time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// A Runtime API server per start: the killed previous
				// process's pending GET next must not take the invocation
				// before the server notices its connection closed.
				srv, err := lambdaruntime.Start(lambdaruntime.Config{FunctionName: "consentflow-" + fn + "-bench", Region: runner.Region})
				if err != nil {
					b.Fatal(err)
				}
				p, err := srv.StartProcess(lambdaruntime.ProcessConfig{Path: path, Env: env})
				if err != nil {
					srv.Close()
					b.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				r, err := srv.Invoke(ctx, payloads[fn])
				cancel()
				d, ok := p.StartToFirstResponse()
				rd, rok := p.StartToReady()
				out := p.Output()
				_ = p.Stop()
				_ = srv.Close()
				if err != nil || r.Error != nil || !ok || !rok {
					b.Fatalf("invoke: %v %+v (recorded %v, ready %v)\n%s", err, r.Error, ok, rok, out)
				}
				total += d
				ready += rd
			}
			b.StopTimer()
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
			b.ReportMetric(float64(ready.Nanoseconds())/float64(b.N), "ready-ns/op")
			b.ReportMetric(float64(size), "bytes")
		})
	}
}

// BenchmarkInvocationCPU reports, as cpu-ns/op, the CPU time (user and
// system, all threads, from /proc/<pid>/stat) a warm amd64 bootstrap spends
// per invocation under the Runtime API, with Go's default GOMAXPROCS (the
// number of CPUs: Go >= 1.25 rounds a cgroup CPU limit below 2 up to 2) and
// with GOMAXPROCS=1, which the stack sets. The payloads are those of
// BenchmarkColdStart. Use -benchtime=300x or more: the kernel counts CPU
// time in clock ticks.
func BenchmarkInvocationCPU(b *testing.B) {
	s := startStack(b)
	payloads := map[string][]byte{
		fnInitiate: sample(b, "initiate-sync.json"),
		fnCallback: sample(b, "callback-get.json"),
		fnResumer:  sample(b, "resumer-stream.json"),
	}
	for _, fn := range []string{fnInitiate, fnCallback, fnResumer} {
		for _, procs := range []string{"default", "1"} {
			b.Run(fn+"/amd64/GOMAXPROCS="+procs, func(b *testing.B) {
				var set map[string]string
				if procs != "default" {
					set = map[string]string{"GOMAXPROCS": procs}
				}
				f := startFunction(b, fn, "amd64", envList(s.Env, nil, set))
				for range 5 { // warm: connections, first-use allocations
					if r := f.invoke(b, payloads[fn]); r.Error != nil {
						b.Fatalf("%+v", r.Error)
					}
				}
				before := cpuTime(b, f.proc.Pid())
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if r := f.invoke(b, payloads[fn]); r.Error != nil {
						b.Fatalf("%+v", r.Error)
					}
				}
				b.StopTimer()
				cpu := cpuTime(b, f.proc.Pid()) - before
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime is the user+system time of process pid and all its threads.
func cpuTime(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces), from field 3:
	// utime and stime are fields 14 and 15, in clock ticks (USER_HZ, 100).
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
