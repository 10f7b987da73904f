package web

import (
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/consentflow/consentflow/internal/flow"
)

// fuzzDomain is a Domain for FuzzHandle. It checks, independently of the
// handler's code, that what it is given passed the handler's checks, and
// answers with an outcome chosen by the fuzzer that echoes the request's
// state and session id back (as flow.Callback.View does for KindConfirm),
// so the page is tested against an outcome that carries them.
type fuzzDomain struct {
	t      *testing.T
	req    events.APIGatewayV2HTTPRequest
	kind   flow.Kind
	reason flow.Reason
	code   bool // BindingCode rather than BindingNone
	calls  int
	out    *flow.Outcome
}

func (d *fuzzDomain) View(_ context.Context, p flow.CallbackParams) *flow.Outcome {
	d.check("GET", p)
	if p.Code != "" || p.UserToken != "" {
		d.t.Errorf("GET handed a code or a user token to the domain: %+v", p)
	}
	return d.answer(p)
}

func (d *fuzzDomain) Confirm(_ context.Context, p flow.CallbackParams) *flow.Outcome {
	d.check("POST", p)
	d.checkForm(p)
	return d.answer(p)
}

func (d *fuzzDomain) LoginReturn(_ context.Context, p flow.LoginParams) *flow.Outcome {
	d.t.Errorf("the callback route reached the login callback's domain side")
	return d.answer(flow.CallbackParams{})
}

func (d *fuzzDomain) SignInAgain(_ context.Context, _ string) *flow.Outcome {
	d.t.Errorf("the callback route reached the login callback's domain side")
	return d.answer(flow.CallbackParams{})
}

func (d *fuzzDomain) answer(p flow.CallbackParams) *flow.Outcome {
	binding := flow.BindingNone
	if d.code {
		binding = flow.BindingCode
	}
	d.out = &flow.Outcome{
		Kind: d.kind, Reason: d.reason, Binding: binding,
		Provider: "github", Scopes: []string{"repo", "read:user"}, UserID: "user-1",
		SessionURI: p.SessionID, State: p.State, AttemptsLeft: 2,
	}
	return d.out
}

// check: the method is one the handler serves, the domain is called once,
// and the query parameters are the raw query's only values.
func (d *fuzzDomain) check(method string, p flow.CallbackParams) {
	t := d.t
	d.calls++
	if d.calls > 1 {
		t.Errorf("domain called %d times", d.calls)
	}
	if got := d.req.RequestContext.HTTP.Method; got != method {
		t.Errorf("%s request reached the domain's %s side", got, method)
	}
	q, err := url.ParseQuery(d.req.RawQueryString)
	if err != nil {
		t.Errorf("unparseable query %q reached the domain: %v", d.req.RawQueryString, err)
		return
	}
	for _, k := range []string{"session_id", "state", "error", "error_description", "code"} {
		if len(q[k]) > 1 {
			t.Errorf("query %q with %d values of %s reached the domain", d.req.RawQueryString, len(q[k]), k)
		}
	}
	for k, got := range map[string]string{
		"session_id": p.SessionID, "state": p.State, "error": p.Error, "error_description": p.ErrorDescription,
	} {
		if want := q.Get(k); got != want {
			t.Errorf("domain got %s %q, the query has %q", k, got, want)
		}
	}
}

// checkForm: a POST reached the domain only with a form body of acceptable
// size holding at most one code, and with the id_token cookie's value.
func (d *fuzzDomain) checkForm(p flow.CallbackParams) {
	t := d.t
	var ct string
	for k, v := range d.req.Headers {
		if strings.EqualFold(k, "content-type") {
			ct = v
		}
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
		t.Errorf("POST with content type %q reached the domain", ct)
	}
	body := d.req.Body
	if d.req.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			t.Errorf("POST with bad base64 %q reached the domain", body)
			return
		}
		body = string(b)
	}
	if len(body) > maxBody {
		t.Errorf("POST body of %d bytes reached the domain", len(body))
	}
	f, err := url.ParseQuery(body)
	if err != nil || len(f["code"]) > 1 {
		t.Errorf("unparseable or ambiguous form %q reached the domain", body)
		return
	}
	if p.Code != f.Get("code") {
		t.Errorf("domain got code %q, the form has %q", p.Code, f.Get("code"))
	}
	if p.UserToken != "" {
		found := false
		for _, line := range d.req.Cookies {
			cs, err := http.ParseCookie(line)
			if err != nil {
				continue
			}
			for _, c := range cs {
				found = found || c.Name == "id_token" && c.Value == p.UserToken
			}
		}
		if !found {
			t.Errorf("domain got user token %q that no id_token cookie holds", p.UserToken)
		}
	}
}

// Pages that do not depend on the request: the handler's refusals.
var refusalPages = map[string]bool{
	refuse(http.StatusMethodNotAllowed, msgMethodNotAllowed).Body: true,
	refuse(http.StatusBadRequest, msgUnreadableForm).Body:         true,
	respond(0, &flow.Outcome{Kind: flow.KindBadRequest}).Body:     true,
}

// stateMarker and uriMarker stand for the echoed state and session id in
// the reference page: they must not appear in it either.
const (
	stateMarker = "STATEMARKERq2lF3Yk8bH0Zr7wE6m1cT9uVxN4pJ5sA"
	uriMarker   = "urn:ietf:params:oauth:request_uri:URIMARKER"
)

// FuzzHandle drives web.Handler.Handle with arbitrary requests. Properties:
// it never panics or errors; it answers 5xx only with the 503 of a domain
// outcome KindTryAgain; every response has the strict security headers;
// the domain only sees requests that passed the handler's checks; and the
// page never carries anything from the request. The confirmation form
// posts back to the page's own URL (no action attribute, no hidden
// fields): state and session_id stay in the address bar, so the page
// holds neither, even though the Outcome carries both. The page must be
// byte for byte the page of the same outcome with state and session id
// replaced by markers (or one of the fixed refusal pages).
func FuzzHandle(f *testing.F) {
	const (
		okQuery = "session_id=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3AexampleSession-0001&state=q2lF3Yk8bH0Zr7wE6m1cT9uVxN4pJ5sA2dG8hK0lQoI"
		jwt     = "id_token=eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJleGFtcGxlIn0.c2lnbmF0dXJl"
		form    = "application/x-www-form-urlencoded"
	)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	type seed struct {
		method, query, body string
		isB64               bool
		contentType         string
		cookies             string
		outcome             uint8
	}
	for _, s := range []seed{
		{"GET", okQuery, "", false, "", jwt + "\ntheme=dark", 0},
		{"GET", okQuery, "", false, "", "", 10},                 // KindTryAgain: 503
		{"GET", okQuery + "&state=other", "", false, "", "", 0}, // duplicated state
		{"GET", "session_id=%zz", "", false, "", "", 0},         // garbled
		{"GET", "error=access_denied&error_description=no+way&state=x", "", false, "", "", 7},
		{"GET", "a=1;b=2", "", false, "", "", 0}, // semicolon
		{"POST", okQuery, b64("code=7KQ4M-X9P2H"), true, form, jwt + "\ntheme=dark", 1},
		{"POST", okQuery, "code=abcde+fghij", false, form + "; charset=UTF-8", jwt, 4 | 0x80},
		{"POST", okQuery, b64("code=A&code=B"), true, form, "", 0},
		{"POST", okQuery, "!!!", true, form, "", 0},
		{"POST", okQuery, b64("code=" + strings.Repeat("A", 9000)), true, form, "", 0},
		{"POST", okQuery, strings.Repeat("A", maxBody+1), false, form, "", 0},
		{"POST", okQuery, "code=x", false, "application/json", "", 0},
		{"POST", okQuery, "code=x", false, "", "", 0},
		{"POST", okQuery, "code=x", false, "multipart/form-data; boundary=x", "", 0},
		{"POST", okQuery, "code=%zz", false, form, "", 0},
		{"POST", okQuery, "", false, form, `id_token="a.b.c"; other=1`, 10 | 0x80},
		{"POST", okQuery, "code=x", false, form, "bad cookie\nid_token=", 15},
		{"PUT", okQuery, "", false, "", "", 0},
		{"get", okQuery, "", false, "", "", 0},
		{"", "", "", false, "", "", 0},
		{"HEAD", "", "", false, "", "", 0},
	} {
		f.Add(s.method, s.query, s.body, s.isB64, s.contentType, s.cookies, s.outcome)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.Fuzz(func(t *testing.T, method, query, body string, isB64 bool, contentType, cookies string, outcome uint8) {
		req := events.APIGatewayV2HTTPRequest{
			RawQueryString:  query,
			Body:            body,
			IsBase64Encoded: isB64,
			Headers:         map[string]string{"accept": "text/html"},
		}
		req.RequestContext.HTTP.Method = method
		if contentType != "" {
			// API Gateway lower-cases header names; other sources may not.
			name := "content-type"
			if outcome&0x40 != 0 {
				name = "Content-Type"
			}
			req.Headers[name] = contentType
		}
		if cookies != "" {
			req.Cookies = strings.Split(cookies, "\n")
		}
		d := &fuzzDomain{
			t: t, req: req,
			kind:   flow.Kind(outcome & 0x0f),        // 14 and 15 are no Kind: rendered as KindFailed
			reason: flow.Reason(outcome >> 4 & 0x07), // 6 and 7 are no Reason: the Kind's words
			code:   outcome&0x80 != 0,
		}
		h := &Handler{Domain: d, UserTokenCookie: "id_token", Log: log}
		resp, err := h.Handle(context.Background(), req)
		if err != nil {
			t.Fatalf("Handle returned an error: %v", err)
		}

		if resp.StatusCode >= 500 && (resp.StatusCode != http.StatusServiceUnavailable || d.out == nil || d.out.Kind != flow.KindTryAgain) {
			t.Errorf("status %d (domain outcome %+v)", resp.StatusCode, d.out)
		}
		if resp.StatusCode < 200 {
			t.Errorf("status %d", resp.StatusCode)
		}
		for k, v := range map[string]string{
			"Content-Type":            "text/html; charset=utf-8",
			"Content-Security-Policy": csp,
			"Cache-Control":           "no-store",
			"Pragma":                  "no-cache",
			"Referrer-Policy":         "same-origin",
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
		} {
			if resp.Headers[k] != v {
				t.Errorf("header %s = %q, want %q", k, resp.Headers[k], v)
			}
		}
		if (resp.StatusCode == http.StatusMethodNotAllowed) != (resp.Headers["Allow"] == "GET, POST") {
			t.Errorf("status %d with Allow %q", resp.StatusCode, resp.Headers["Allow"])
		}
		if method != "GET" && method != "POST" && (d.calls != 0 || resp.StatusCode != http.StatusMethodNotAllowed) {
			t.Errorf("method %q: status %d, domain called %d times", method, resp.StatusCode, d.calls)
		}

		// The page holds nothing of the request.
		var want string
		if d.out != nil {
			ref := *d.out
			if ref.State != "" {
				ref.State = stateMarker
			}
			if ref.SessionURI != "" {
				ref.SessionURI = uriMarker
			}
			want = respond(0, &ref).Body
			if strings.Contains(want, "STATEMARKER") || strings.Contains(want, "URIMARKER") {
				t.Fatalf("the page of %+v carries the state or session id", ref)
			}
		}
		for name, v := range secretsOf(req) {
			if len(v) >= 8 && strings.Contains(resp.Body, v) && !strings.Contains(want, v) && !inRefusalPage(v) {
				t.Errorf("%s %q echoed into the page", name, v)
			}
		}
		if d.out != nil && resp.Body != want {
			t.Errorf("page differs from the page of the outcome alone:\n got %q\nwant %q", resp.Body, want)
		}
		if d.out == nil && !refusalPages[resp.Body] {
			t.Errorf("refusal page is not one of the fixed pages: %q", resp.Body)
		}
	})
}

func inRefusalPage(v string) bool {
	for p := range refusalPages {
		if strings.Contains(p, v) {
			return true
		}
	}
	return false
}

// secretsOf names the request's values a page must not show: every query
// and form value, every cookie value, and the raw query and body.
func secretsOf(req events.APIGatewayV2HTTPRequest) map[string]string {
	out := map[string]string{"raw query": req.RawQueryString, "raw body": req.Body}
	if q, err := url.ParseQuery(req.RawQueryString); err == nil {
		for k, vs := range q {
			for _, v := range vs {
				out["query "+k+"="+v] = v
			}
		}
	}
	body := req.Body
	if b, err := base64.StdEncoding.DecodeString(body); req.IsBase64Encoded && err == nil {
		body = string(b)
	}
	if f, err := url.ParseQuery(body); err == nil {
		for k, vs := range f {
			for _, v := range vs {
				out["form "+k+"="+v] = v
			}
		}
	}
	for _, line := range req.Cookies {
		if cs, err := http.ParseCookie(line); err == nil {
			for _, c := range cs {
				out["cookie "+c.Name] = c.Value
			}
		}
	}
	return out
}
