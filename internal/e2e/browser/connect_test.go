package browser

import (
	"net/url"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/local/connectlocal"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/testenv/chromiumtest"
)

// TestConnectCustomerAuthentication opens the Connect route as Cognito's
// redirect would (code and state), in Chromium: the page tells the
// customer to go back to the chat, Connect got the code once, a reload
// calls nothing, and an error redirect says the sign-in was cancelled.
func TestConnectCustomerAuthentication(t *testing.T) {
	f := startWith(t, runner.Options{Binding: "code", Connect: true})
	conn := f.s.Connect
	state := conn.StartAuthentication()
	u := f.s.ConnectCallbackURL + "?" + url.Values{"code": {"9f1c4c1e-4b1a-4c53-8d5e-2f7b0c3a1d9e"}, "state": {state}}.Encode()

	status, err := f.page.Open(f.ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	want(t, f.outcome(status, 200), "ok", "Sign-in received")
	html, err := f.page.HTML(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(html, "go back to the chat") || strings.Contains(html, state) {
		t.Fatalf("the page does not send the customer back to the chat, or shows the state:\n%s", html)
	}
	if screenshots() {
		chromiumtest.SaveForTest(t, f.page, "connect-received")
	}
	if a, _ := conn.Authentication(state); a.Status != connectlocal.CodeReceived {
		t.Fatalf("Connect: %+v", a)
	}

	// The browser reloads (or the customer opens the link again).
	status, err = f.page.Open(f.ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	want(t, f.outcome(status, 200), "ok", "Already passed on")
	if n := len(conn.Calls()); n != 1 {
		t.Fatalf("Connect called %d times", n)
	}

	// The customer cancels at Cognito in another chat.
	other := conn.StartAuthentication()
	status, err = f.page.Open(f.ctx, f.s.ConnectCallbackURL+"?"+url.Values{
		"error": {"access_denied"}, "error_description": {"User cancelled the login"}, "state": {other}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	want(t, f.outcome(status, 200), "error", "Sign-in cancelled")
	if a, _ := conn.Authentication(other); a.Status != connectlocal.ErrorReceived {
		t.Fatalf("Connect: %+v", a)
	}
}
