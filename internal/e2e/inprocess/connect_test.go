package inprocess

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/consentflow/consentflow/internal/connectauth"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/local/connectlocal"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/state"
)

const stateKeyPrefix = state.ConnectKeyPrefix

var (
	outcomeRe = regexp.MustCompile(`data-outcome="([a-z]+)"`)
	h1Re      = regexp.MustCompile(`<h1>([^<]*)</h1>`)
)

// connectPage is what the customer's browser got from the Connect route.
type connectPage struct {
	status  int
	outcome string // data-outcome: heading
	body    string
}

func (f *fixture) openConnect(rawQuery string) connectPage {
	f.t.Helper()
	resp, err := f.http.Get(f.s.ConnectCallbackURL + "?" + rawQuery)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	p := connectPage{status: resp.StatusCode, body: string(b)}
	if m := outcomeRe.FindStringSubmatch(p.body); m != nil {
		p.outcome = m[1]
	}
	if m := h1Re.FindStringSubmatch(p.body); m != nil {
		p.outcome += ": " + m[1]
	}
	if resp.Header.Get("Content-Security-Policy") == "" || resp.Header.Get("X-Frame-Options") != "DENY" {
		f.t.Errorf("%s: no security headers %v", rawQuery, resp.Header)
	}
	return p
}

func redirect(state, code string) string {
	return url.Values{"state": {state}, "code": {code}}.Encode()
}

func (f *fixture) connectCalls() int { return len(f.s.Connect.Calls()) }

func (f *fixture) wantConnect(p connectPage, status int, outcome string) {
	f.t.Helper()
	if p.status != status || p.outcome != outcome {
		f.t.Fatalf("page %d %q, want %d %q", p.status, p.outcome, status, outcome)
	}
}

// TestConnectRoute drives GET /connect/callback through the API Gateway
// stand-in, the production callback handler, DynamoDB Local and the real
// Connect SDK client against the Connect stand-in.
func TestConnectRoute(t *testing.T) {
	f := start(t, contract.BindingCode, func(o *runner.Options) { o.Connect = true })
	conn := f.s.Connect
	var secrets []string

	t.Run("code", func(t *testing.T) {
		st := conn.StartAuthentication()
		code := "9f1c4c1e-4b1a-4c53-8d5e-2f7b0c3a1d9e"
		secrets = append(secrets, st, code)
		f.wantConnect(f.openConnect(redirect(st, code)), 200, "ok: Sign-in received")
		a, _ := conn.Authentication(st)
		if a.Status != connectlocal.CodeReceived || a.Code != code {
			t.Fatalf("Connect: %+v", a)
		}
		calls := conn.Calls()
		last := calls[len(calls)-1]
		if last.InstanceID != runner.ConnectInstanceID || last.State != st || last.Code != code || last.Error != "" {
			t.Fatalf("call %+v", last)
		}
		// The record: a hash of the st, kind connect, done.
		out, err := f.s.Clients.DynamoDB.GetItem(context.Background(), &dynamodb.GetItemInput{
			TableName: aws.String(f.s.Table), ConsistentRead: aws.Bool(true),
			Key: map[string]types.AttributeValue{contract.AttrPK: &types.AttributeValueMemberS{Value: stateKeyPrefix + connectauth.Key(st)}},
		})
		if err != nil || out.Item["kind"].(*types.AttributeValueMemberS).Value != "connect" ||
			out.Item["status"].(*types.AttributeValueMemberS).Value != "done" {
			t.Fatalf("record %v %v", out.Item, err)
		}
		// Reload and replay (even with another code): no second call.
		n := f.connectCalls()
		f.wantConnect(f.openConnect(redirect(st, code)), 200, "ok: Already passed on")
		f.wantConnect(f.openConnect(redirect(st, "another-code")), 200, "ok: Already passed on")
		if f.connectCalls() != n {
			t.Fatal("a replay reached Connect")
		}
	})

	t.Run("error redirect", func(t *testing.T) {
		st := conn.StartAuthentication()
		secrets = append(secrets, st)
		q := url.Values{"state": {st}, "error": {"access_denied"}, "error_description": {"User cancelled the login"}}.Encode()
		f.wantConnect(f.openConnect(q), 200, "error: Sign-in cancelled")
		if a, _ := conn.Authentication(st); a.Status != connectlocal.ErrorReceived || a.Error != "access_denied" || a.ErrorDescription != "User cancelled the login" {
			t.Fatalf("Connect: %+v", a)
		}
		if !strings.Contains(f.openConnect(q).body, "go back to the chat") {
			t.Fatal("the replay page does not send the customer back to the chat")
		}
	})

	t.Run("bad input", func(t *testing.T) {
		st := conn.StartAuthentication()
		for name, q := range map[string]string{
			"no state":             "code=c",
			"no code or error":     "state=" + st,
			"code and error":       redirect(st, "c") + "&error=access_denied",
			"description alone":    "state=" + st + "&error_description=x",
			"error with a quote":   "state=" + st + "&error=a%22b",
			"state too long":       redirect(strings.Repeat("s", 1001), "c"),
			"code with a newline":  "state=" + st + "&code=a%0Ab",
			"state not UTF-8":      "state=%FF&code=c",
			"duplicated state":     redirect(st, "c") + "&state=other",
			"unparseable":          "state=%zz&code=c",
			"description too long": "state=" + st + "&error=e&error_description=" + strings.Repeat("d", 2049),
		} {
			n := f.connectCalls()
			p := f.openConnect(q)
			if p.status != 400 || p.outcome != "error: This link is not valid" || f.connectCalls() != n {
				t.Errorf("%s: page %d %q, %d calls", name, p.status, p.outcome, f.connectCalls()-n)
			}
		}
		if a, _ := conn.Authentication(st); a.Updates != 0 {
			t.Fatal("bad input reached Connect")
		}
		// Only GET is routed: API Gateway has no other method for the path.
		resp, err := f.http.Post(f.s.ConnectCallbackURL, "application/x-www-form-urlencoded", strings.NewReader(redirect(st, "c")))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST: %d", resp.StatusCode)
		}
	})

	t.Run("connect errors", func(t *testing.T) {
		for _, c := range []struct {
			name    string
			faults  []connectlocal.Fault
			start   bool // a waiting authentication (else an unknown st)
			status  int
			outcome string
			reload  string // the page a reload shows
		}{
			{"conflict", []connectlocal.Fault{{Type: connectlocal.Conflict}}, true, 200, "ok: Already passed on", "ok: Already passed on"},
			{"throttled beyond the retries", repeat(connectlocal.Fault{Type: connectlocal.Throttling}, 3), true, 503, "error: Temporary problem", "ok: Sign-in received"},
			{"internal error beyond the retries", repeat(connectlocal.Fault{Type: connectlocal.InternalService}, 3), true, 503, "error: Temporary problem", "ok: Sign-in received"},
			{"throttled once", []connectlocal.Fault{{Type: connectlocal.Throttling}}, true, 200, "ok: Sign-in received", "ok: Already passed on"},
			{"unknown state", nil, false, 400, "error: This sign-in could not be used", "error: This sign-in could not be used"},
			{"invalid parameter", []connectlocal.Fault{{Type: connectlocal.InvalidParameter}}, true, 400, "error: This sign-in could not be used", "error: This sign-in could not be used"},
			{"access denied", []connectlocal.Fault{{Type: connectlocal.AccessDenied}}, true, 500, "error: Sign-in not passed on", "ok: Sign-in received"},
			{"answer lost after it applied", repeat(connectlocal.Fault{Type: connectlocal.InternalService, AfterApply: true}, 1), true, 200, "ok: Already passed on", "ok: Already passed on"},
		} {
			t.Run(c.name, func(t *testing.T) {
				st := "never-started-" + strings.ReplaceAll(c.name, " ", "-")
				if c.start {
					st = conn.StartAuthentication()
				}
				secrets = append(secrets, st)
				for _, fl := range c.faults {
					conn.InjectFault(fl)
				}
				defer conn.ClearFaults()
				f.wantConnect(f.openConnect(redirect(st, "code-"+c.name)), c.status, c.outcome)
				conn.ClearFaults()
				n := f.connectCalls()
				f.wantConnect(f.openConnect(redirect(st, "code-"+c.name)), statusOf(c.reload), c.reload)
				called := f.connectCalls() != n
				if wantCall := c.status >= 500; called != wantCall {
					t.Fatalf("the reload called Connect: %v, want %v", called, wantCall)
				}
			})
		}
	})

	logs := f.logs.String()
	if !strings.Contains(logs, `"route":"connect"`) || !strings.Contains(logs, `"outcome":"done"`) {
		t.Fatalf("no Connect outcome in the logs:\n%.2000s", logs)
	}
	for _, v := range secrets {
		if strings.Contains(logs, v) {
			t.Errorf("the logs carry a state or code %q", v)
		}
	}
}

func repeat(fl connectlocal.Fault, n int) []connectlocal.Fault {
	out := make([]connectlocal.Fault, n)
	for i := range out {
		out[i] = fl
	}
	return out
}

// statusOf is the status of the page with that outcome.
func statusOf(outcome string) int {
	switch outcome {
	case "error: Temporary problem":
		return 503
	case "error: This sign-in could not be used":
		return 400
	case "error: Sign-in not passed on":
		return 500
	}
	return 200
}
