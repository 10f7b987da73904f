package browser

import (
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/local/chromium"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/testenv/chromiumtest"
)

// A workflow that continues with an agent says so in Chromium: the
// confirmation page names the agent before the person connects, the
// success page says it continues now; the runtime's ARN and account are on
// neither. A flow without continueWith, and a failure page, name none.
func TestPagesNameTheContinuingAgent(t *testing.T) {
	const (
		account = "123456789012"
		arn     = "arn:aws:bedrock-agentcore:us-east-1:" + account + ":runtime/calendar_agent-a1B2c3D4e5"
		before  = "After you connect, the agent “calendar_agent” continues for you with this access."
		now     = "The agent “calendar_agent” continues now."
	)
	f := startWith(t, runner.Options{Binding: "code", AgentRuntimeARNs: []string{arn}})
	continueWith := map[string]any{"continueWith": map[string]any{"agentRuntimeArn": arn, "payload": map[string]any{"prompt": "plan my week"}}}
	notice := func(wantText string) {
		t.Helper()
		got, err := f.page.ContinuesAgent(f.ctx)
		if err != nil || got != wantText {
			t.Fatalf("the page says %q (%v), want %q", got, err, wantText)
		}
		html, err := f.page.HTML(f.ctx)
		if err != nil || strings.Contains(html, account) || strings.Contains(html, "a1B2c3D4e5") {
			t.Fatalf("the page shows the runtime's ARN, account or id (%v)", err)
		}
	}

	a := f.initiateWith(continueWith, "user-agent", "repo")
	want(t, f.consent(a, chromium.Allow), "confirm", "Confirm the connection")
	notice(before)
	if screenshots() {
		chromiumtest.SaveForTest(t, f.page, "confirm-continues-agent")
	}
	want(t, f.enterCode(a.event.VerificationCode, 200), "ok", "Connected")
	notice(now)
	if screenshots() {
		chromiumtest.SaveForTest(t, f.page, "connected-continues-agent")
	}
	f.waitTask(a.taskToken)

	d := f.initiateWith(continueWith, "user-agent-deny", "repo")
	want(t, f.consent(d, chromium.Deny), "error", "Access not granted")
	notice("")

	n := f.initiate("user-no-agent", "repo")
	want(t, f.consent(n, chromium.Allow), "confirm", "Confirm the connection")
	notice("")
	want(t, f.enterCode(n.event.VerificationCode, 200), "ok", "Connected")
	notice("")
}
