package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// loginDomain is a Domain for FuzzLoginRoute: it checks that the login
// route hands over only what its request carried (the secret of the cookie
// its state names, the query's single values) and answers with an outcome
// the fuzzer picks.
type loginDomain struct {
	t     *testing.T
	req   events.APIGatewayV2HTTPRequest
	kind  flow.Kind
	calls int
}

func (d *loginDomain) View(context.Context, flow.CallbackParams) *flow.Outcome {
	d.t.Error("the login route reached View")
	return &flow.Outcome{Kind: flow.KindFailed}
}

func (d *loginDomain) Confirm(context.Context, flow.CallbackParams) *flow.Outcome {
	d.t.Error("the login route reached Confirm")
	return &flow.Outcome{Kind: flow.KindFailed}
}

func (d *loginDomain) LoginReturn(_ context.Context, p flow.LoginParams) *flow.Outcome {
	d.calls++
	if d.req.RequestContext.HTTP.Method != http.MethodGet {
		d.t.Errorf("%s reached LoginReturn", d.req.RequestContext.HTTP.Method)
	}
	q, _ := url.ParseQuery(d.req.RawQueryString)
	if p.Code != q.Get("code") || p.State != q.Get("state") || p.Error != q.Get("error") {
		d.t.Errorf("parameters %+v are not the query's", p)
	}
	d.checkSecret(p.State, p.Secret)
	return d.answer()
}

func (d *loginDomain) SignInAgain(_ context.Context, secret string) *flow.Outcome {
	d.calls++
	if d.req.RequestContext.HTTP.Method != http.MethodPost {
		d.t.Errorf("%s reached SignInAgain", d.req.RequestContext.HTTP.Method)
	}
	q, _ := url.ParseQuery(d.req.RawQueryString)
	d.checkSecret(q.Get("state"), secret)
	return d.answer()
}

// checkSecret: a secret handed over is the value of the cookie that the
// state names, and only such a cookie is ever read.
func (d *loginDomain) checkSecret(state, secret string) {
	name := flow.LoginName(state)
	if name == "" {
		if secret != "" {
			d.t.Errorf("a secret was read for state %q, which names no sign-in", state)
		}
		return
	}
	// The cookie the state names, found without the handler's parser: the
	// first well-formed "name=value" pair of that name.
	want, found := "", false
	for _, line := range d.req.Cookies {
		for _, part := range strings.Split(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == contract.LoginCookie+"-"+name && !found {
				want, found = v, true
			}
		}
	}
	if found && want != "" && isPlainToken(want) && secret != want {
		d.t.Errorf("the handler did not hand over the cookie %s-%s", contract.LoginCookie, name)
	}
	if secret != "" && secret != want {
		d.t.Errorf("the secret is not the cookie %s-%s", contract.LoginCookie, name)
	}
}

// isPlainToken: a cookie value any parser reads the same way.
func isPlainToken(v string) bool {
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return v != ""
}

func (d *loginDomain) answer() *flow.Outcome {
	o := &flow.Outcome{Kind: d.kind, SignedInAs: "alice@example.com", CanSignInAgain: true}
	if d.kind == flow.KindSignIn {
		o.Login = &flow.LoginStart{URL: "https://idp.example/authorize", Secret: strings.Repeat("s", 43), MaxAge: 300e9, Name: strings.Repeat("n", 16)}
	}
	return o
}

func FuzzLoginRoute(f *testing.F) {
	state := strings.Repeat("S", 43)
	cookie := contract.LoginCookie + "-" + state[:16] + "=" + strings.Repeat("s", 43)
	for _, s := range []struct {
		method, query, cookies string
		kind                   uint8
	}{
		{"GET", "code=c&state=" + state, cookie, uint8(flow.KindConnected)},
		{"GET", "code=c&state=" + state, cookie + "\n" + contract.LoginCookie + "-" + strings.Repeat("O", 16) + "=x", uint8(flow.KindWrongUser)},
		{"GET", "error=access_denied&state=" + state, cookie, uint8(flow.KindSignInFailed)},
		{"GET", "code=a&code=b&state=" + state, cookie, 0},
		{"GET", "state=short", contract.LoginCookie + "-short=x", uint8(flow.KindLoginRefused)},
		{"POST", "code=c&state=" + state, cookie, uint8(flow.KindSignIn)},
		{"POST", "", "", uint8(flow.KindLoginRefused)},
		{"DELETE", "", cookie, 0},
		{"GET", "%zz", "", 0},
	} {
		f.Add(s.method, s.query, s.cookies, s.kind)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, method, query, cookies string, kind uint8) {
		var req events.APIGatewayV2HTTPRequest
		req.RequestContext.HTTP.Method = method
		req.RawPath = contract.LoginCallbackPath
		req.RawQueryString = query
		if cookies != "" {
			req.Cookies = strings.Split(cookies, "\n")
		}
		d := &loginDomain{t: t, req: req, kind: flow.Kind(kind % 17)}
		h := &Handler{Domain: d, UserTokenCookie: "id_token", LoginCookie: contract.LoginCookie, Log: log}
		resp, err := h.Handle(context.Background(), req)
		if err != nil {
			t.Fatalf("Handle returned an error: %v", err)
		}
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("status %d", resp.StatusCode)
		}
		if d.calls > 1 {
			t.Errorf("domain called %d times", d.calls)
		}
		if method != "GET" && method != "POST" && (d.calls != 0 || resp.StatusCode != http.StatusMethodNotAllowed) {
			t.Errorf("method %q: status %d, domain called %d times", method, resp.StatusCode, d.calls)
		}
		if resp.StatusCode == http.StatusSeeOther {
			if resp.Headers["Location"] != "https://idp.example/authorize" || len(resp.Cookies) != 1 ||
				!strings.HasPrefix(resp.Cookies[0], contract.LoginCookie+"-"+strings.Repeat("n", 16)+"=") {
				t.Errorf("redirect without its cookie: %v %v", resp.Headers, resp.Cookies)
			}
		}
		if strings.Contains(resp.Body, strings.Repeat("s", 43)) {
			t.Error("a login secret reached the page")
		}
		for _, k := range []string{"Content-Security-Policy", "X-Frame-Options", "Cache-Control"} {
			if resp.Headers[k] == "" {
				t.Errorf("no %s", k)
			}
		}
	})
}
