package web

import (
	"context"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/flow"
)

// The success pages link back to the application (the domain's ReturnTo):
// a plain link, attribute-escaped, labelled with the host; no redirect, no
// script, no other header, the same CSP.
func TestBackToApplication(t *testing.T) {
	const (
		returnTo = "https://app.example.com:8443/it's/chat?c=7f3a&t=12"
		link     = `<a class="button" id="back-to-app" href="https://app.example.com:8443/it&#39;s/chat?c=7f3a&amp;t=12" rel="noreferrer">Back to app.example.com:8443</a>`
	)
	for _, c := range []struct {
		event string
		kind  flow.Kind
		words string
	}{
		{"callback-post.json", flow.KindConnected, "Connected"},
		{"callback-get.json", flow.KindAlreadyConnected, "Already connected"},
	} {
		for _, formAction := range []string{"", "https://idp.example"} {
			h, _ := newHandler(&flow.Outcome{Kind: c.kind, Provider: "github", ReturnTo: returnTo})
			if formAction != "" {
				h.FormAction = func(context.Context) string { return formAction }
			}
			resp, err := h.Handle(context.Background(), loadEvent(t, c.event))
			if err != nil {
				t.Fatal(err)
			}
			checkSecurityHeaders(t, resp)
			if resp.StatusCode != 200 || !strings.Contains(resp.Body, c.words) {
				t.Fatalf("%s: status %d, body %s", c.event, resp.StatusCode, resp.Body)
			}
			if strings.Count(resp.Body, link) != 1 || strings.Count(resp.Body, "back-to-app") != 1 {
				t.Fatalf("%s: want the link once:\n%s\nin\n%s", c.event, link, resp.Body)
			}
			if strings.Contains(resp.Body, returnTo) {
				t.Fatalf("%s: the URL is in the page unescaped", c.event)
			}
			for _, bad := range []string{"<script", "http-equiv", "refresh", "onclick", "location"} {
				if strings.Contains(strings.ToLower(resp.Body), bad) {
					t.Fatalf("%s: the page has %q: the way back is a link the person follows, nothing automatic", c.event, bad)
				}
			}
			if _, ok := resp.Headers["Location"]; ok || len(resp.Cookies) != 0 {
				t.Fatalf("%s: headers %v, cookies %v", c.event, resp.Headers, resp.Cookies)
			}
			// A link's navigation is not subject to form-action: the policy
			// is the pages' own, unchanged.
			if want := cspWith(formAction); resp.Headers["Content-Security-Policy"] != want {
				t.Fatalf("%s: CSP %q, want %q", c.event, resp.Headers["Content-Security-Policy"], want)
			}
		}
	}
	// Local runs: http on loopback.
	if _, body := render(&flow.Outcome{Kind: flow.KindConnected, ReturnTo: "http://127.0.0.1:8080/done"}, ""); !strings.Contains(body,
		`href="http://127.0.0.1:8080/done" rel="noreferrer">Back to 127.0.0.1:8080</a>`) {
		t.Fatalf("loopback link missing: %s", body)
	}
}

// Every page but the success pages ignores a ReturnTo, and so do the
// success pages for anything but an absolute https URL (the domain never
// sets one; the page does not rely on it).
func TestBackToApplicationOnlyOnSuccess(t *testing.T) {
	const returnTo = "https://app.example.com/chat"
	for k := flow.KindConfirm; k <= flow.KindSignInFailed; k++ {
		if k == flow.KindConnected || k == flow.KindAlreadyConnected || k == flow.KindSignIn {
			continue
		}
		o := &flow.Outcome{Kind: k, Provider: "github", Binding: flow.BindingCode, AttemptsLeft: 2, State: "s", CanSignInAgain: true, ReturnTo: returnTo}
		resp := respond(0, o)
		if strings.Contains(resp.Body, "back-to-app") || strings.Contains(resp.Body, "app.example.com") {
			t.Fatalf("kind %d (%s) shows the way back", k, specs[k].heading)
		}
	}
	for _, hostile := range []string{
		"javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,x", "//evil.example/", "/relative",
		"http://app.example.com/", "https://user@app.example.com/", "https://app.example.com/#x",
		`https://app.example.com/"><script>alert(1)</script>`, "https://app.example.com/\"onmouseover=\"x",
		"https://app.example.com/a b", "vbscript:x", "https:app.example.com",
	} {
		for _, k := range []flow.Kind{flow.KindConnected, flow.KindAlreadyConnected} {
			_, body := render(&flow.Outcome{Kind: k, ReturnTo: hostile}, "")
			if strings.Contains(body, "back-to-app") || strings.Contains(body, "<script>alert") || strings.Contains(body, "evil.example") {
				t.Fatalf("kind %d, returnTo %q: %s", k, hostile, body)
			}
		}
	}
}

// The link back must not carry the callback's URL (state, session id) to
// the application: the pages' referrer policy is same-origin, and the link
// says noreferrer too.
func TestBackToApplicationSendsNoReferrer(t *testing.T) {
	resp := respond(0, &flow.Outcome{Kind: flow.KindConnected, ReturnTo: "https://app.example.com/"})
	if resp.Headers["Referrer-Policy"] != "same-origin" || !strings.Contains(resp.Body, `<meta name="referrer" content="same-origin">`) ||
		!strings.Contains(resp.Body, `rel="noreferrer"`) {
		t.Fatalf("headers %v body %s", resp.Headers, resp.Body)
	}
}
