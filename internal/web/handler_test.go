package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// recorder is a Domain that records what the handler parsed.
type recorder struct {
	calls     []string
	last      flow.CallbackParams
	lastLogin flow.LoginParams
	out       *flow.Outcome
}

func (r *recorder) View(_ context.Context, p flow.CallbackParams) *flow.Outcome {
	r.calls, r.last = append(r.calls, "View"), p
	return r.out
}

func (r *recorder) Confirm(_ context.Context, p flow.CallbackParams) *flow.Outcome {
	r.calls, r.last = append(r.calls, "Confirm"), p
	return r.out
}

func (r *recorder) LoginReturn(_ context.Context, p flow.LoginParams) *flow.Outcome {
	r.calls, r.lastLogin = append(r.calls, "LoginReturn"), p
	return r.out
}

func (r *recorder) SignInAgain(_ context.Context, secret string) *flow.Outcome {
	r.calls, r.lastLogin = append(r.calls, "SignInAgain"), flow.LoginParams{Secret: secret}
	return r.out
}

func loadEvent(t *testing.T, name string) events.APIGatewayV2HTTPRequest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func newHandler(out *flow.Outcome) (*Handler, *recorder) {
	r := &recorder{out: out}
	return &Handler{Domain: r, UserTokenCookie: "id_token", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, r
}

func checkSecurityHeaders(t *testing.T, resp events.APIGatewayV2HTTPResponse) {
	t.Helper()
	want := map[string]string{
		"Cache-Control":          "no-store",
		"Referrer-Policy":        "same-origin",
		"X-Content-Type-Options": "nosniff",
		"Content-Type":           "text/html; charset=utf-8",
	}
	for k, v := range want {
		if resp.Headers[k] != v {
			t.Errorf("header %s = %q, want %q", k, resp.Headers[k], v)
		}
	}
	if csp := resp.Headers["Content-Security-Policy"]; !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func TestSampleGETEvent(t *testing.T) {
	h, r := newHandler(&flow.Outcome{Kind: flow.KindConfirm, Provider: "github", Scopes: []string{"repo"}, Binding: flow.BindingCode, AttemptsLeft: 5})
	resp, err := h.Handle(context.Background(), loadEvent(t, "callback-get.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkSecurityHeaders(t, resp)
	if resp.StatusCode != 200 || len(r.calls) != 1 || r.calls[0] != "View" {
		t.Fatalf("status %d calls %v", resp.StatusCode, r.calls)
	}
	if r.last.SessionID != "urn:ietf:params:oauth:request_uri:exampleSession-0001" || len(r.last.State) != flow.StateLen {
		t.Fatalf("params %+v", r.last)
	}
	if r.last.UserToken != "" || r.last.Code != "" {
		t.Fatal("GET must not read the cookie or a code")
	}
	body := resp.Body
	if !strings.Contains(body, `<form method="post"`) || strings.Contains(body, "action=") {
		t.Fatal("the form must post back to the page's own URL (no action attribute)")
	}
	if strings.Contains(body, r.last.State) || strings.Contains(body, "exampleSession-0001") {
		t.Fatal("state or session id rendered into the page")
	}
	if !strings.Contains(body, `name="code"`) {
		t.Fatal("no code input in code binding mode")
	}
}

func TestSamplePOSTEvent(t *testing.T) {
	h, r := newHandler(&flow.Outcome{Kind: flow.KindConnected, Provider: "github"})
	resp, _ := h.Handle(context.Background(), loadEvent(t, "callback-post.json"))
	checkSecurityHeaders(t, resp)
	if resp.StatusCode != 200 || r.calls[0] != "Confirm" {
		t.Fatalf("status %d calls %v", resp.StatusCode, r.calls)
	}
	if r.last.Code != "7KQ4M-X9P2H" || !strings.HasPrefix(r.last.UserToken, "eyJ") || r.last.State == "" {
		t.Fatalf("params %+v", r.last)
	}
	if !strings.Contains(resp.Body, "Connected") {
		t.Fatal("success page does not say so")
	}
}

func TestBadRequests(t *testing.T) {
	get := loadEvent(t, "callback-get.json")
	post := loadEvent(t, "callback-post.json")
	cases := map[string]struct {
		mut    func(ev *events.APIGatewayV2HTTPRequest)
		base   events.APIGatewayV2HTTPRequest
		status int
	}{
		"method not allowed": {func(ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.HTTP.Method = "PUT" }, get, 405},
		"DELETE":             {func(ev *events.APIGatewayV2HTTPRequest) { ev.RequestContext.HTTP.Method = "DELETE" }, get, 405},
		"duplicated state":   {func(ev *events.APIGatewayV2HTTPRequest) { ev.RawQueryString += "&state=other" }, get, 400},
		"garbled query":      {func(ev *events.APIGatewayV2HTTPRequest) { ev.RawQueryString = "session_id=%zz" }, get, 400},
		"json body":          {func(ev *events.APIGatewayV2HTTPRequest) { ev.Headers["content-type"] = "application/json" }, post, 415},
		"no content type":    {func(ev *events.APIGatewayV2HTTPRequest) { delete(ev.Headers, "content-type") }, post, 415},
		"bad base64":         {func(ev *events.APIGatewayV2HTTPRequest) { ev.Body = "!!!" }, post, 400},
		"huge body": {func(ev *events.APIGatewayV2HTTPRequest) {
			ev.Body = base64.StdEncoding.EncodeToString([]byte("code=" + strings.Repeat("A", 20000)))
		}, post, 413},
		"two codes": {func(ev *events.APIGatewayV2HTTPRequest) {
			ev.Body = base64.StdEncoding.EncodeToString([]byte("code=A&code=B"))
		}, post, 400},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			h, r := newHandler(&flow.Outcome{Kind: flow.KindConnected})
			ev := tc.base
			ev.Headers = map[string]string{}
			for k, v := range tc.base.Headers {
				ev.Headers[k] = v
			}
			tc.mut(&ev)
			resp, err := h.Handle(context.Background(), ev)
			if err != nil {
				t.Fatal(err)
			}
			checkSecurityHeaders(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if len(r.calls) != 0 {
				t.Fatalf("domain called: %v", r.calls)
			}
			if tc.status == 405 && resp.Headers["Allow"] != "GET, POST" {
				t.Fatal("405 without Allow")
			}
		})
	}
}

func TestPlainPOSTBody(t *testing.T) {
	h, r := newHandler(&flow.Outcome{Kind: flow.KindWrongCode, AttemptsLeft: 3, Binding: flow.BindingCode})
	ev := loadEvent(t, "callback-post.json")
	ev.IsBase64Encoded, ev.Body = false, "code=abcde+fghij"
	ev.Headers["content-type"] = "application/x-www-form-urlencoded; charset=UTF-8"
	resp, _ := h.Handle(context.Background(), ev)
	if r.last.Code != "abcde fghij" || resp.StatusCode != 403 || !strings.Contains(resp.Body, "3 attempts left") {
		t.Fatalf("code %q status %d", r.last.Code, resp.StatusCode)
	}
	if strings.Contains(resp.Body, "abcde") {
		t.Fatal("typed code echoed into the page")
	}
}

func TestEveryOutcomeRendersSafely(t *testing.T) {
	evil := `<script>alert(1)</script>`
	for k := flow.KindConfirm; k <= flow.KindSignInFailed; k++ {
		if k == flow.KindSignIn {
			continue // a redirect, never a page (TestLoginRoute)
		}
		o := &flow.Outcome{Kind: k, Provider: evil, Scopes: []string{evil}, UserID: evil, Binding: flow.BindingCode, AttemptsLeft: 2, State: "s", SignedInAs: evil, CanSignInAgain: true, ContinuesAgent: evil}
		resp := respond(0, o)
		if _, ok := specs[k]; !ok {
			t.Fatalf("kind %d has no page", k)
		}
		if strings.Contains(resp.Body, evil) {
			t.Fatalf("kind %d: unescaped input in HTML", k)
		}
		if resp.StatusCode == 500 || !strings.Contains(resp.Body, "<h1>") {
			t.Fatalf("kind %d: status %d", k, resp.StatusCode)
		}
	}
}

// The domain answers with reasons; the words are the web layer's.
func TestEveryReasonIsWorded(t *testing.T) {
	for r := flow.ReasonNone + 1; r <= flow.ReasonSignInUnavailable; r++ {
		words, ok := reasonWords[r]
		if !ok || words == "" {
			t.Fatalf("reason %d has no words", r)
		}
		o := &flow.Outcome{Kind: flow.KindFailed, Reason: r}
		if resp := respond(0, o); !strings.Contains(resp.Body, words) {
			t.Fatalf("reason %d: page lacks %q", r, words)
		}
	}
	for r, want := range map[flow.Reason]string{
		flow.ReasonIncompleteLink:    "The link is incomplete.",
		flow.ReasonMalformedLink:     "The link is malformed.",
		flow.ReasonCompletionRefused: "AgentCore Identity did not accept the authorization.",
		flow.ReasonProviderError:     "The provider reported an error.",
		flow.ReasonMissingCode:       "Enter the verification code",
	} {
		if resp := respond(0, &flow.Outcome{Kind: flow.KindBadRequest, Reason: r}); !strings.Contains(resp.Body, want) {
			t.Errorf("reason %d: page lacks %q", r, want)
		}
	}
	// No reason: the Kind's own message.
	if resp := respond(0, &flow.Outcome{Kind: flow.KindBadRequest}); !strings.Contains(resp.Body, "The link is incomplete or malformed.") {
		t.Error("bad request without a reason lost its default message")
	}
}

func TestHandlerRefusalsAreWorded(t *testing.T) {
	h, _ := newHandler(&flow.Outcome{Kind: flow.KindConnected})
	ev := loadEvent(t, "callback-get.json")
	ev.RequestContext.HTTP.Method = "PUT"
	if resp, _ := h.Handle(context.Background(), ev); !strings.Contains(resp.Body, msgMethodNotAllowed) {
		t.Fatal("405 page lacks its message")
	}
	ev = loadEvent(t, "callback-post.json")
	ev.Headers["content-type"] = "application/json"
	if resp, _ := h.Handle(context.Background(), ev); !strings.Contains(resp.Body, msgUnreadableForm) {
		t.Fatal("415 page lacks its message")
	}
}

func TestCSPAllowsOnlyOurStyle(t *testing.T) {
	if !strings.Contains(csp, cspHash(style)) || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP %q", csp)
	}
}

func TestCookieValue(t *testing.T) {
	cookies := []string{"a=1", "id_token=x.y.z", "bad cookie"}
	if v := cookieValue(cookies, "id_token"); v != "x.y.z" {
		t.Fatalf("got %q", v)
	}
	if v := cookieValue(cookies, "missing"); v != "" {
		t.Fatalf("got %q", v)
	}
}

func loginRequest(method, query string, cookies ...string) events.APIGatewayV2HTTPRequest {
	var req events.APIGatewayV2HTTPRequest
	req.RawPath = contract.LoginCallbackPath
	req.RequestContext.HTTP.Method = method
	req.RequestContext.HTTP.Path = contract.LoginCallbackPath
	req.RawQueryString = query
	req.Cookies = cookies
	return req
}

func TestLoginRoute(t *testing.T) {
	ctx := context.Background()
	secret := strings.Repeat("s", 43)
	state := strings.Repeat("S", 43)
	name := flow.LoginName(state)
	cookie := contract.LoginCookie + "-" + name + "=" + secret
	other := contract.LoginCookie + "-" + strings.Repeat("O", 16) + "=" + strings.Repeat("o", 43) // another tab's

	h, r := newHandler(&flow.Outcome{Kind: flow.KindConnected, SignedInAs: "alice@example.com"})
	h.LoginCookie = contract.LoginCookie
	resp, _ := h.Handle(ctx, loginRequest("GET", "code=c1&state="+state, "id_token=x", other, cookie))
	if len(r.calls) != 1 || r.calls[0] != "LoginReturn" || r.lastLogin != (flow.LoginParams{Secret: secret, Code: "c1", State: state}) {
		t.Fatalf("GET: %v %+v", r.calls, r.lastLogin)
	}
	checkSecurityHeaders(t, resp)
	if !strings.Contains(resp.Body, "alice@example.com") {
		t.Error("the page must say which account signed in")
	}
	if len(resp.Cookies) != 1 || !strings.HasPrefix(resp.Cookies[0], contract.LoginCookie+"-"+name+"=;") || !strings.Contains(resp.Cookies[0], "Max-Age=0") {
		t.Errorf("a finished sign-in clears its cookie: %v", resp.Cookies)
	}
	if _, _ = h.Handle(ctx, loginRequest("GET", "code=a&code=b&state="+state, cookie)); len(r.calls) != 1 {
		t.Error("a duplicated parameter reached the domain")
	}
	resp, _ = h.Handle(ctx, loginRequest("POST", "code=c1&state="+state, other, cookie))
	if r.calls[len(r.calls)-1] != "SignInAgain" || r.lastLogin.Secret != secret {
		t.Fatalf("POST: %v %+v", r.calls, r.lastLogin)
	}
	if resp, _ := h.Handle(ctx, loginRequest("PUT", "", cookie)); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", resp.StatusCode)
	}

	// The sign-in redirect: 303 to the provider with the login cookie.
	h, _ = newHandler(&flow.Outcome{Kind: flow.KindSignIn, Login: &flow.LoginStart{URL: "https://idp.example/authorize?x=1", Secret: secret, MaxAge: 5 * time.Minute, Name: name}})
	h.LoginCookie = contract.LoginCookie
	h.FormAction = func(context.Context) string { return "https://idp.example" }
	var post events.APIGatewayV2HTTPRequest
	post.RequestContext.HTTP.Method = "POST"
	post.RawPath = contract.CallbackPath
	post.RawQueryString = "session_id=x&state=y"
	post.Headers = map[string]string{"content-type": "application/x-www-form-urlencoded"}
	resp, _ = h.Handle(ctx, post)
	if resp.StatusCode != http.StatusSeeOther || resp.Headers["Location"] != "https://idp.example/authorize?x=1" {
		t.Fatalf("redirect: %d %v", resp.StatusCode, resp.Headers)
	}
	if len(resp.Cookies) != 1 {
		t.Fatalf("cookies %v", resp.Cookies)
	}
	c := resp.Cookies[0]
	for _, want := range []string{contract.LoginCookie + "-" + name + "=" + secret, "Path=/", "Max-Age=300", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(c, want) {
			t.Errorf("cookie %q lacks %q", c, want)
		}
	}
	if strings.Contains(c, "Domain=") || strings.Contains(resp.Body, secret) {
		t.Error("the login cookie must be host-only and its value only in the cookie")
	}
	if got := resp.Headers["Content-Security-Policy"]; !strings.Contains(got, "form-action 'self' https://idp.example;") {
		t.Errorf("CSP %q does not let the sign-in form reach the provider", got)
	}
}

func TestWrongAccountPage(t *testing.T) {
	resp := respond(0, &flow.Outcome{Kind: flow.KindWrongUser, SignedInAs: "bob@example.com", CanSignInAgain: true})
	for _, want := range []string{"bob@example.com", labelOtherAccount, `method="post"`, signedInWrongUser} {
		if !strings.Contains(resp.Body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("status %d", resp.StatusCode)
	}
}

// A form auto-submitted from another site's page confirms nothing and
// starts no sign-in.
func TestCrossSitePOSTRefused(t *testing.T) {
	ctx := context.Background()
	for name, hdr := range map[string]map[string]string{
		"cross-site":     {"sec-fetch-site": "cross-site"},
		"same-site":      {"sec-fetch-site": "same-site"},
		"foreign origin": {"origin": "https://evil.example", "host": "cb.example"},
		"null origin":    {"origin": "null", "host": "cb.example"},
	} {
		for _, path := range []string{contract.CallbackPath, contract.LoginCallbackPath} {
			h, r := newHandler(&flow.Outcome{Kind: flow.KindConnected})
			var req events.APIGatewayV2HTTPRequest
			req.RequestContext.HTTP.Method = "POST"
			req.RawPath = path
			req.RawQueryString = "session_id=x&state=y"
			req.Headers = map[string]string{"content-type": "application/x-www-form-urlencoded"}
			for k, v := range hdr {
				req.Headers[k] = v
			}
			resp, _ := h.Handle(ctx, req)
			if resp.StatusCode != http.StatusForbidden || len(r.calls) != 0 {
				t.Errorf("%s POST %s: status %d, domain calls %v", name, path, resp.StatusCode, r.calls)
			}
		}
	}
	for name, hdr := range map[string]map[string]string{
		"same-origin": {"sec-fetch-site": "same-origin", "origin": "null"},
		"no headers":  {},
		"same origin": {"origin": "https://cb.example", "host": "cb.example"},
	} {
		h, r := newHandler(&flow.Outcome{Kind: flow.KindConnected})
		var req events.APIGatewayV2HTTPRequest
		req.RequestContext.HTTP.Method = "POST"
		req.RawPath = contract.CallbackPath
		req.RawQueryString = "session_id=x&state=y"
		req.Headers = map[string]string{"content-type": "application/x-www-form-urlencoded"}
		for k, v := range hdr {
			req.Headers[k] = v
		}
		if resp, _ := h.Handle(ctx, req); resp.StatusCode != http.StatusOK || len(r.calls) != 1 {
			t.Errorf("%s: status %d, domain calls %v", name, resp.StatusCode, r.calls)
		}
	}
}
