package web

import (
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/consentflow/consentflow/internal/connectauth"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// connectRecorder is a ConnectDomain that records what the handler parsed.
type connectRecorder struct {
	calls []connectauth.Params
	out   connectauth.Outcome
}

func (r *connectRecorder) Return(_ context.Context, p connectauth.Params) connectauth.Outcome {
	r.calls = append(r.calls, p)
	return r.out
}

// allConnectKinds lists every outcome the domain can answer with.
var allConnectKinds = []connectauth.Kind{
	connectauth.KindDone, connectauth.KindCancelled, connectauth.KindAlreadyDone, connectauth.KindInProgress,
	connectauth.KindTryAgain, connectauth.KindRefused, connectauth.KindFailed, connectauth.KindBadRequest,
}

func connectEvent(method, path, rawQuery string) events.APIGatewayV2HTTPRequest {
	var ev events.APIGatewayV2HTTPRequest
	ev.RawPath, ev.RawQueryString = path, rawQuery
	ev.RequestContext.HTTP.Method, ev.RequestContext.HTTP.Path = method, path
	ev.RequestContext.RequestID = "Kq9zYhXyIAMEbWw="
	return ev
}

func newConnectHandler(out connectauth.Outcome) (*Handler, *connectRecorder, *bytes.Buffer) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	r := &connectRecorder{out: out}
	cb := &recorder{out: &flow.Outcome{Kind: flow.KindConfirm}}
	return &Handler{Domain: cb, Log: log, Connect: &ConnectHandler{Domain: r, Log: log}}, r, &logs
}

const (
	testState = "eyJzdGF0ZSI6IjEyMyJ9-Zm9v_YmFy"
	testCode  = "9f1c4c1e-4b1a-4c53-8d5e-2f7b0c3a1d9e"
)

func TestConnectPages(t *testing.T) {
	// The callback pages' headers: the Connect pages carry exactly these,
	// but for a policy that also forbids forms.
	base := htmlPage(0, &flow.Outcome{Kind: flow.KindBadRequest}, "").Headers
	wantCSP := strings.Replace(csp, "form-action 'self'", "form-action 'none'", 1)
	wantStatus := map[connectauth.Kind]int{
		connectauth.KindDone: 200, connectauth.KindCancelled: 200, connectauth.KindAlreadyDone: 200,
		connectauth.KindInProgress: 409, connectauth.KindTryAgain: 503, connectauth.KindRefused: 400,
		connectauth.KindFailed: 500, connectauth.KindBadRequest: 400,
	}
	for _, k := range allConnectKinds {
		t.Run(string(k), func(t *testing.T) {
			if _, ok := connectSpecs[k]; !ok {
				t.Fatalf("no words for %s", k)
			}
			h, r, _ := newConnectHandler(connectauth.Outcome{Kind: k, Cause: "ThrottlingException"})
			q := url.Values{"code": {testCode}, "state": {testState}}.Encode()
			resp, err := h.Handle(context.Background(), connectEvent("GET", contract.ConnectCallbackPath, q))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != wantStatus[k] {
				t.Errorf("status %d, want %d", resp.StatusCode, wantStatus[k])
			}
			got := maps.Clone(resp.Headers)
			if got["Content-Security-Policy"] != wantCSP || wantCSP == csp {
				t.Errorf("CSP %q, want %q", got["Content-Security-Policy"], wantCSP)
			}
			delete(got, "Content-Security-Policy")
			want := maps.Clone(base)
			delete(want, "Content-Security-Policy")
			// No form, and a URL with the code and state: no referrer at all.
			want["Referrer-Policy"] = "no-referrer"
			if !strings.Contains(resp.Body, `<meta name="referrer" content="no-referrer">`) {
				t.Error("the page's referrer meta does not say no-referrer")
			}
			if !maps.Equal(got, want) {
				t.Errorf("headers %v, want the callback pages' %v", got, want)
			}
			if len(r.calls) != 1 || r.calls[0] != (connectauth.Params{State: testState, Code: testCode}) {
				t.Fatalf("domain saw %+v", r.calls)
			}
			body := resp.Body
			for _, v := range []string{testState, testCode, "ThrottlingException"} {
				if strings.Contains(body, v) {
					t.Errorf("the page carries %q", v)
				}
			}
			if !strings.Contains(body, `data-outcome="`+connectSpecs[k].kind+`"`) || !strings.Contains(body, "<h1>"+connectSpecs[k].heading+"</h1>") ||
				strings.Contains(body, "<form") {
				t.Errorf("page:\n%s", body)
			}
			if !strings.Contains(strings.ToLower(body), "chat") {
				t.Error("the page does not mention the chat")
			}
		})
	}
	// The success page says where the result is, honestly.
	if !strings.Contains(connectSpecs[connectauth.KindDone].next, "go back to the chat") ||
		!strings.Contains(connectSpecs[connectauth.KindDone].message, "in a moment") {
		t.Error("the success page does not send the customer back to the chat for the result")
	}
}

func TestConnectRouting(t *testing.T) {
	for _, path := range []string{contract.ConnectCallbackPath, "/prod" + contract.ConnectCallbackPath} {
		h, r, _ := newConnectHandler(connectauth.Outcome{Kind: connectauth.KindDone})
		resp, _ := h.Handle(context.Background(), connectEvent("GET", path, "state=s&error=access_denied&error_description=User+cancelled"))
		if resp.StatusCode != 200 || len(r.calls) != 1 {
			t.Fatalf("%s: status %d, %d calls", path, resp.StatusCode, len(r.calls))
		}
		if r.calls[0] != (connectauth.Params{State: "s", Error: "access_denied", ErrorDescription: "User cancelled"}) {
			t.Fatalf("params %+v", r.calls[0])
		}
		if cb := h.Domain.(*recorder); len(cb.calls) != 0 {
			t.Fatalf("the callback domain was called: %v", cb.calls)
		}
	}
	// Without a Connect handler the path is not special (API Gateway has
	// no such route then): the callback's own handling applies.
	h, _, _ := newConnectHandler(connectauth.Outcome{Kind: connectauth.KindDone})
	h.Connect = nil
	h.Handle(context.Background(), connectEvent("GET", contract.ConnectCallbackPath, "state=s&code=c"))
	if cb := h.Domain.(*recorder); len(cb.calls) != 1 || cb.calls[0] != "View" {
		t.Fatalf("callback domain calls %v", cb.calls)
	}
	// With a Connect handler, the callback's and the sign-in's routes never
	// reach it.
	for _, path := range []string{contract.CallbackPath, contract.LoginCallbackPath, "/connect/callback/x", "/oauth2/callback/connect"} {
		h, r, _ := newConnectHandler(connectauth.Outcome{Kind: connectauth.KindDone})
		h.Handle(context.Background(), connectEvent("GET", path, "state=s&code=c"))
		if len(r.calls) != 0 {
			t.Errorf("%s reached the Connect handler", path)
		}
	}
}

func TestConnectRefusesBeforeTheDomain(t *testing.T) {
	for name, c := range map[string]struct {
		method, query string
		status        int
	}{
		"POST":                   {"POST", "state=s&code=c", http.StatusMethodNotAllowed},
		"HEAD":                   {"HEAD", "state=s&code=c", http.StatusMethodNotAllowed},
		"duplicated state":       {"GET", "state=s&state=t&code=c", http.StatusBadRequest},
		"duplicated code":        {"GET", "state=s&code=c&code=d", http.StatusBadRequest},
		"duplicated error":       {"GET", "state=s&error=a&error=b", http.StatusBadRequest},
		"unparseable":            {"GET", "state=%zz&code=c", http.StatusBadRequest},
		"semicolon":              {"GET", "state=s;code=c", http.StatusBadRequest},
		"duplicated desc":        {"GET", "state=s&error=a&error_description=x&error_description=y", http.StatusBadRequest},
		"duplicated, same value": {"GET", "state=s&code=c&code=c", http.StatusBadRequest},
	} {
		t.Run(name, func(t *testing.T) {
			h, r, logs := newConnectHandler(connectauth.Outcome{Kind: connectauth.KindDone})
			resp, _ := h.Handle(context.Background(), connectEvent(c.method, contract.ConnectCallbackPath, c.query))
			if resp.StatusCode != c.status || len(r.calls) != 0 {
				t.Fatalf("status %d (want %d), %d domain calls", resp.StatusCode, c.status, len(r.calls))
			}
			if c.status == http.StatusMethodNotAllowed && resp.Headers["Allow"] != "GET" {
				t.Errorf("Allow %q", resp.Headers["Allow"])
			}
			if !strings.Contains(logs.String(), `"apiRequestId":"Kq9zYhXyIAMEbWw="`) {
				t.Errorf("log without the request id: %s", logs)
			}
		})
	}
}

func TestConnectLogsOutcomeNotSecrets(t *testing.T) {
	h, _, logs := newConnectHandler(connectauth.Outcome{Kind: connectauth.KindTryAgain, Cause: "ThrottlingException"})
	q := url.Values{"code": {testCode}, "state": {testState}}.Encode()
	h.Handle(context.Background(), connectEvent("GET", contract.ConnectCallbackPath, q))
	l := logs.String()
	for _, want := range []string{`"apiRequestId":"Kq9zYhXyIAMEbWw="`, `"outcome":"try-again"`, `"cause":"ThrottlingException"`, `"level":"WARN"`} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %s: %s", want, l)
		}
	}
	for _, v := range []string{testCode, testState, url.QueryEscape(testState)} {
		if strings.Contains(l, v) {
			t.Errorf("log carries %q", v)
		}
	}
}

// FuzzConnectHandle: whatever the method and query, the Connect route
// answers a page with the security headers and a known status, the domain
// sees exactly the parsed values (or nothing, for a refused request), and
// no value of the request reaches the page or the log.
func FuzzConnectHandle(f *testing.F) {
	for _, s := range []struct {
		method, query string
		kind          uint8
	}{
		{"GET", "code=" + testCode + "&state=" + testState, 0},
		{"GET", "state=s&error=access_denied&error_description=User+cancelled", 1},
		{"GET", "state=s&state=t&code=c", 0},
		{"GET", "state=%zz", 0},
		{"GET", "state=%3Cscript%3E&code=%22%3E%3Cimg", 4},
		{"POST", "state=s&code=c", 0},
		{"GET", "", 7},
		{"GET", "a=1;b=2", 0},
	} {
		f.Add(s.method, s.query, s.kind)
	}
	statuses := map[int]bool{200: true, 400: true, 405: true, 409: true, 500: true, 503: true}
	f.Fuzz(func(t *testing.T, method, query string, kind uint8) {
		h, r, logs := newConnectHandler(connectauth.Outcome{Kind: allConnectKinds[int(kind)%len(allConnectKinds)]})
		resp, err := h.Handle(context.Background(), connectEvent(method, contract.ConnectCallbackPath, query))
		if err != nil {
			t.Fatal(err)
		}
		if !statuses[resp.StatusCode] || resp.Headers["Content-Security-Policy"] != connectCSP || resp.Headers["X-Frame-Options"] != "DENY" {
			t.Fatalf("status %d headers %v", resp.StatusCode, resp.Headers)
		}
		q, qerr := url.ParseQuery(query)
		switch {
		case len(r.calls) > 1:
			t.Fatalf("%d domain calls", len(r.calls))
		case len(r.calls) == 1:
			want := connectauth.Params{State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), ErrorDescription: q.Get("error_description")}
			if method != http.MethodGet || qerr != nil || r.calls[0] != want {
				t.Fatalf("domain saw %+v for %s %q", r.calls[0], method, query)
			}
		}
		if qerr != nil {
			return
		}
		// What the page and the log say anyway (benign and refused
		// requests of the same method and outcome): a value that is a
		// word of those proves nothing.
		var known strings.Builder
		for _, bq := range []string{"state=zq&code=zq", "state=%zz"} {
			bh, _, blogs := newConnectHandler(connectauth.Outcome{Kind: allConnectKinds[int(kind)%len(allConnectKinds)]})
			bresp, _ := bh.Handle(context.Background(), connectEvent(method, contract.ConnectCallbackPath, bq))
			known.WriteString(bresp.Body + blogs.String())
		}
		for _, k := range []string{"state", "code", "error", "error_description"} {
			for _, v := range q[k] {
				if len(v) < 6 || strings.Contains(known.String(), v) {
					continue
				}
				if strings.Contains(resp.Body, v) || strings.Contains(logs.String(), v) {
					t.Fatalf("%s=%q reached the page or the log", k, v)
				}
			}
		}
	})
}

func TestConnectSampleEvent(t *testing.T) {
	h, r, _ := newConnectHandler(connectauth.Outcome{Kind: connectauth.KindDone})
	ev := loadEvent(t, "connect-callback.json")
	resp, err := h.Handle(context.Background(), ev)
	if err != nil || resp.StatusCode != 200 || len(r.calls) != 1 {
		t.Fatalf("status %d, %d calls, %v", resp.StatusCode, len(r.calls), err)
	}
	want := connectauth.Params{State: ev.QueryStringParameters["state"], Code: ev.QueryStringParameters["code"]}
	if r.calls[0] != want || want.State == "" || want.Code == "" {
		t.Fatalf("params %+v, want %+v", r.calls[0], want)
	}
}
