package web

import (
	"context"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/flow"
)

const (
	agentName     = "calendar_agent"
	agentBefore   = `<p id="continues-agent">After you connect, the agent “calendar_agent” continues for you with this access.</p>`
	agentNow      = `<p id="continues-agent">The agent “calendar_agent” continues now.</p>`
	agentNoticeID = "continues-agent"
)

// The confirmation page (the Connect button, or in the sign-in modes the
// page before the sign-in) says that the workflow's agent continues for
// the person once they connect; the success page says it continues now.
func TestPagesNameTheContinuingAgent(t *testing.T) {
	for _, c := range []struct {
		name   string
		event  string
		o      *flow.Outcome
		want   string
		button string
	}{
		{"confirm, code", "callback-get.json", &flow.Outcome{Kind: flow.KindConfirm, Provider: "google", Binding: flow.BindingCode, AttemptsLeft: 5}, agentBefore, "Connect google"},
		{"confirm, none", "callback-get.json", &flow.Outcome{Kind: flow.KindConfirm, Provider: "google", Binding: flow.BindingNone}, agentBefore, "Connect google"},
		{"confirm, oidc", "callback-get.json", &flow.Outcome{Kind: flow.KindConfirm, Provider: "google", Binding: flow.BindingOIDC}, agentBefore, "Sign in and connect"},
		{"confirm, oidc+code", "callback-get.json", &flow.Outcome{Kind: flow.KindConfirm, Provider: "google", Binding: flow.BindingOIDCCode}, agentBefore, "Sign in and connect"},
		{"wrong code", "callback-post.json", &flow.Outcome{Kind: flow.KindWrongCode, Provider: "google", Binding: flow.BindingCode, AttemptsLeft: 3}, agentBefore, "Connect google"},
		{"temporary problem", "callback-post.json", &flow.Outcome{Kind: flow.KindTryAgain, Provider: "google", Binding: flow.BindingCode, State: "s"}, agentBefore, "Connect google"},
		{"connected", "callback-post.json", &flow.Outcome{Kind: flow.KindConnected, Provider: "google"}, agentNow, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.o.ContinuesAgent = agentName
			h, _ := newHandler(c.o)
			resp, err := h.Handle(context.Background(), loadEvent(t, c.event))
			if err != nil {
				t.Fatal(err)
			}
			checkSecurityHeaders(t, resp)
			if strings.Count(resp.Body, c.want) != 1 || strings.Count(resp.Body, agentNoticeID) != 1 {
				t.Fatalf("want once:\n%s\nin\n%s", c.want, resp.Body)
			}
			if c.button != "" {
				// Said before the button that gives the consent.
				i, j := strings.Index(resp.Body, c.want), strings.Index(resp.Body, c.button)
				if j < 0 || i > j {
					t.Fatalf("the sentence is not before the %q button:\n%s", c.button, resp.Body)
				}
			}
			// Without an agent, the same page says nothing of one.
			c.o.ContinuesAgent = ""
			if _, body := render(c.o, ""); strings.Contains(body, agentNoticeID) || strings.Contains(body, "agent “") {
				t.Fatalf("no agent, yet:\n%s", body)
			}
		})
	}
}

// The agent's name is text: templ escapes it (the domain takes it from a
// runtime id of letters, digits and '_', but the page does not rely on it).
func TestContinuingAgentIsEscaped(t *testing.T) {
	const evil = `<script>alert(1)</script>"'&`
	for _, o := range []*flow.Outcome{
		{Kind: flow.KindConfirm, Provider: "google", Binding: flow.BindingCode, ContinuesAgent: evil},
		{Kind: flow.KindConfirm, Provider: "google", Binding: flow.BindingOIDC, ContinuesAgent: evil},
		{Kind: flow.KindConnected, Provider: "google", ContinuesAgent: evil},
	} {
		_, body := render(o, "")
		if strings.Contains(body, evil) || strings.Contains(body, "<script") {
			t.Fatalf("kind %d: the name is in the page unescaped:\n%s", o.Kind, body)
		}
		if !strings.Contains(body, "“&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;&amp;”") {
			t.Fatalf("kind %d: the escaped name is missing:\n%s", o.Kind, body)
		}
	}
}

// No other page names the agent: not the failures, not a replay of a
// completed connection (the agent ran with the first), not a temporary
// problem without the form.
func TestContinuingAgentOnlyWhereOneConsents(t *testing.T) {
	for k := flow.KindConfirm; k <= flow.KindSignInFailed; k++ {
		if k == flow.KindSignIn {
			continue // a redirect, never a page
		}
		o := &flow.Outcome{Kind: k, Provider: "google", Binding: flow.BindingCode, AttemptsLeft: 2, State: "s", CanSignInAgain: true, ContinuesAgent: agentName}
		body := respond(0, o).Body
		shown := strings.Contains(body, agentNoticeID) || strings.Contains(body, agentName)
		want := k == flow.KindConfirm || k == flow.KindWrongCode || k == flow.KindTryAgain || k == flow.KindConnected
		if shown != want {
			t.Errorf("kind %d (%s): agent named %v, want %v", k, specs[k].heading, shown, want)
		}
	}
	if body := respond(0, &flow.Outcome{Kind: flow.KindTryAgain, ContinuesAgent: agentName}).Body; strings.Contains(body, agentName) {
		t.Errorf("a temporary problem without the form names the agent:\n%s", body)
	}
	if body := respond(0, &flow.Outcome{Kind: flow.KindWrongUser, SignedInAs: "bob@example.com", CanSignInAgain: true, ContinuesAgent: agentName}).Body; strings.Contains(body, agentName) {
		t.Errorf("the wrong-account page names the agent:\n%s", body)
	}
}
