//go:build linux

package binaries_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/consentflow/consentflow/internal/local/connectlocal"
	"github.com/consentflow/consentflow/internal/local/runner"
)

// TestConnectRoute runs the callback bootstrap (linux/amd64) under the
// Runtime API with the Connect route configured (CONNECT_INSTANCE_ID,
// AWS_ENDPOINT_URL_CONNECT at the stand-in) and feeds it the
// events/connect-callback.json sample with a live state: the page, one
// Connect call through the binary's own SDK client, a replay answered from
// the table, and JSON logs with request ids but without the code or the
// state.
func TestConnectRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the bootstrap binaries")
	}
	const arch = "amd64"
	wrapper(t, arch)
	s := startStack(t, func(o *runner.Options) { o.Connect = true })
	cb := startFunction(t, fnCallback, arch, envList(s.Env, nil, nil))

	state := s.Connect.StartAuthentication()
	const code = "5b0d9c1e-1111-4c53-8d5e-2f7b0c3a1d9e"
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(sample(t, "connect-callback.json"), &req); err != nil {
		t.Fatal(err)
	}
	req.RawQueryString = url.Values{"code": {code}, "state": {state}}.Encode()
	req.QueryStringParameters = map[string]string{"code": code, "state": state}

	if got := outcomeOf(connectPage(t, cb.invoke(t, mustJSON(t, req)))); got != "ok: Sign-in received" {
		t.Fatalf("page %q\noutput:\n%s", got, cb.proc.Output())
	}
	a, _ := s.Connect.Authentication(state)
	if a.Status != connectlocal.CodeReceived || a.Code != code {
		t.Fatalf("Connect: %+v", a)
	}
	calls := s.Connect.Calls()
	if len(calls) != 1 || calls[0].InstanceID != runner.ConnectInstanceID {
		t.Fatalf("calls %+v", calls)
	}
	if got := outcomeOf(connectPage(t, cb.invoke(t, mustJSON(t, req)))); got != "ok: Already passed on" || len(s.Connect.Calls()) != 1 {
		t.Fatalf("replay: page %q, %d calls", got, len(s.Connect.Calls()))
	}
	cb.alive(t)

	// The process's output is read asynchronously: wait for both lines.
	for deadline := time.Now().Add(10 * time.Second); strings.Count(cb.proc.Output(), `"Connect redirect"`) < 2 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	lines := checkLogs(t, cb, nil, "")
	outcomes := 0
	for _, m := range lines {
		if m["message"] == "Connect redirect" {
			outcomes++
			if m["route"] != "connect" || m["requestId"] == "" || m["apiRequestId"] != req.RequestContext.RequestID || m["outcome"] == nil {
				t.Errorf("outcome line %v", m)
			}
		}
	}
	if outcomes != 2 {
		t.Errorf("%d outcome lines, want one per request", outcomes)
	}
	checkNoSecrets(t, "the callback's logs", cb.proc.Output(), map[string]string{"state": state, "code": code})
	if strings.Contains(cb.proc.Output(), url.QueryEscape(state)) {
		t.Error("the escaped state is in the logs")
	}
}
