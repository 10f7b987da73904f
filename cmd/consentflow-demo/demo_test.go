package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"github.com/consentflow/consentflow/internal/testenv/chromiumtest"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/local/dynamolocal"
)

func TestMask(t *testing.T) {
	tok := "abcdEFGHijklMNOPqrstUVWXyz0123456789_-abcdEFGHijklMNOPqrstUVWXyz"
	if got := Mask(tok); got != "abcd…(64 chars)" {
		t.Fatalf("Mask = %q", got)
	}
	if got := Mask("short"); strings.Contains(got, "sho") {
		t.Fatalf("Mask of a short secret shows it: %q", got)
	}
}

func TestSplitScopes(t *testing.T) {
	got := strings.Join(splitScopes(" repo, read:user  gist,"), "|")
	if got != "repo|read:user|gist" {
		t.Fatalf("splitScopes = %q", got)
	}
}

// build compiles the demo into a fresh temporary directory.
func build(t *testing.T) string {
	t.Helper()
	if dynamolocal.Skipped() {
		t.Skipf("the demo needs DynamoDB Local (%s=1)", dynamolocal.EnvSkip)
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Fatal("no go command to build the demo")
		}
	}
	bin := filepath.Join(t.TempDir(), "consentflow-demo")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// demoCmd runs the demo binary; it dies with the test binary.
func demoCmd(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

var (
	maskedLine = regexp.MustCompile(`access token: ([A-Za-z0-9_-]{4})…\((\d+) chars\) \(masked\)`)
	// Task tokens are "AQC" + base64 (sfnlocal.NewTask).
	taskTokenRe = regexp.MustCompile(`AQC[A-Za-z0-9+/=]{20,}`)
	// Any long random-looking run: tokens, states, workload tokens.
	longRunRe = regexp.MustCompile(`[A-Za-z0-9_+=-]{32,}`)
	uuidRe    = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	portRe    = regexp.MustCompile(`http://127\.0\.0\.1:(\d+)`)
)

func TestDemoAuto(t *testing.T) {
	// The completion event names the execution the demo started.
	demoAuto(t, []string{"verification code:", "execution arn:aws:states:us-east-1:123456789012:execution:AuthorizeUser:",
		`"executionArn":"arn:aws:states:us-east-1:123456789012:execution:AuthorizeUser:`},
		"--auto", "--user", "demo-test-user", "--scopes", "repo,read:user")
}

// The whole loop (make demo; AGENT=0 leaves it out): after consent the ContinueAgent step
// invokes the example agent through the emulator's InvokeAgentRuntime; the
// agent gets the user's token from the vault and the provider's protected
// API answers who the user is.
var derivedSessionRe = regexp.MustCompile(`consentflow-[0-9a-f]{64}`)

func TestDemoAutoAgent(t *testing.T) {
	demoAuto(t, []string{"starting the example agent", "the page says: \"After you connect, the agent “demo_agent” continues",
		`"runtimeSessionId":"consentflow-`, "ContinueAgent: InvokeAgentRuntime as \"demo-agent-user\"",
		"the agent answered:", `"status":"DONE"`, `"user":"demo-agent-user"`},
		"--auto", "--agent", "--user", "demo-agent-user")
}

// The sign-in binding: the demo's user signs in at the emulator's OpenID
// provider (make demo BINDING=oidc).
func TestDemoAutoSignIn(t *testing.T) {
	demoAuto(t, []string{"sign-in provider (OpenID)", "signing in as \"demo-oidc-user\"", "sign-in page: HTTP 200"},
		"--auto", "--binding", "oidc", "--user", "demo-oidc-user")
}

func demoAuto(t *testing.T, extra []string, args ...string) {
	chromiumtest.Require(t)
	bin := build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := demoCmd(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	out := stdout.String()
	t.Logf("demo --auto: %v in %v", err, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("demo --auto failed: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	m := maskedLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no masked token line in stdout:\n%s", out)
	}
	for _, wantLine := range append([]string{"==> starting DynamoDB Local", "authorization URL:",
		"task SUCCEEDED", `"status":"AUTHORIZED"`, "answer: HTTP 200, \"Connected\"", "==> stopped"}, extra...) {
		if !strings.Contains(out, wantLine) {
			t.Errorf("stdout lacks %q", wantLine)
		}
	}
	// No secret in the output: the masked token's prefix is never followed
	// by more of the token, no task token, and no other long random string
	// except inside the authorization URL that the person must be shown.
	all := out + stderr.String()
	if regexp.MustCompile(regexp.QuoteMeta(m[1]) + `[A-Za-z0-9_-]{8,}`).MatchString(all) {
		t.Error("the access token appears unmasked")
	}
	if taskTokenRe.MatchString(all) {
		t.Error("a task token appears in the output")
	}
	for _, line := range strings.Split(all, "\n") {
		if strings.Contains(line, "authorization URL:") {
			continue
		}
		// Correlation ids (UUIDs) and the runtime session derived from the
		// execution's ARN (a hash of it) are not secrets.
		line = derivedSessionRe.ReplaceAllString(line, "<runtime session>")
		if s := longRunRe.FindString(uuidRe.ReplaceAllString(line, "<uuid>")); s != "" {
			t.Errorf("a long random-looking string (%d chars) in the output", len(s))
		}
	}
	// The resumer announced the completed session.
	if !strings.Contains(out, "==> AuthorizationCompleted event published") {
		t.Error("stdout lacks the AuthorizationCompleted event")
	}
	assertNotListening(t, out)
}

func TestDemoInterrupt(t *testing.T) {
	bin := build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := demoCmd(ctx, bin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { err := cmd.Wait(); pw.Close(); exited <- err }()

	// Read until the authorization URL is printed, keeping all output.
	var out strings.Builder
	sawURL := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := false
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if !once && strings.Contains(sc.Text(), "authorization URL:") {
				once = true
				close(sawURL)
			}
		}
		if !once {
			close(sawURL)
		}
	}()
	select {
	case <-sawURL:
	case <-time.After(2 * time.Minute):
		t.Fatal("the demo printed no authorization URL")
	}
	select {
	case err := <-exited:
		t.Fatalf("the demo exited before the interrupt: %v\n%s", err, stderr.String())
	default:
	}
	// Give the output a moment to be read past the URL line.
	time.Sleep(200 * time.Millisecond)
	sent := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("the demo did not exit within 20s of SIGINT")
	}
	took := time.Since(sent)
	t.Logf("exited %v after SIGINT: %v", took.Round(time.Millisecond), err)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit %v, want status 130", err)
	}
	if took > 10*time.Second {
		t.Errorf("took %v to stop", took)
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr does not say it was interrupted: %q", stderr.String())
	}
	// The reader goroutine finishes when the pipe closes.
	time.Sleep(100 * time.Millisecond)
	assertNotListening(t, out.String())
}

func TestDemoTimeoutFailsWithReason(t *testing.T) {
	bin := build(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := demoCmd(ctx, bin, "--timeout", "1s") // nobody consents
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stderr.String(), "FAILED: the workflow did not resume AUTHORIZED") ||
		!strings.Contains(stderr.String(), "States.Timeout") {
		t.Errorf("no clear reason on stderr: %q", stderr.String())
	}
	assertNotListening(t, stdout.String())
}

// assertNotListening checks that none of the ports the demo printed (it
// prints every server it starts) accepts connections any more.
func assertNotListening(t *testing.T, out string) {
	t.Helper()
	ports := map[string]bool{}
	for _, m := range portRe.FindAllStringSubmatch(out, -1) {
		ports[m[1]] = true
	}
	if len(ports) < 5 {
		t.Fatalf("expected the demo to print at least 5 servers, found %d in:\n%s", len(ports), out)
	}
	for p := range ports {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, time.Second)
		if err == nil {
			c.Close()
			t.Errorf("127.0.0.1:%s still accepts connections", p)
		}
	}
}
