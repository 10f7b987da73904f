package flow_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

const (
	appChat  = "https://app.example.com/chat?c=7f3a&t=12"
	appHome  = "https://app.example.com/"
	appLocal = "http://127.0.0.1:8080/done"
)

// returnEnv is an env whose initiator accepts initiateURLs as returnTo and
// whose callback lists callbackURLs.
func returnEnv(t *testing.T, mode flow.BindingMode, initiateURLs, callbackURLs []string) *env {
	t.Helper()
	e := newEnv(t, mode)
	var err error
	e.ini, err = flow.NewInitiator(flow.Config{WorkloadName: "consentflow-test", ReturnURL: "https://cb.example/oauth2/callback",
		Binding: mode, UserTokens: true, AppReturnURLs: initiateURLs}, e.deps)
	if err != nil {
		t.Fatal(err)
	}
	e.cb, err = flow.NewCallback(flow.CallbackConfig{Binding: mode, ClaimWait: 2 * time.Second,
		WorkloadName: "consentflow-test", ReturnURL: "https://cb.example/oauth2/callback", AppReturnURLs: callbackURLs}, e.deps)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startedWith is started with returnTo in the input.
func startedWith(t *testing.T, e *env, returnTo string) (flow.CallbackParams, string) {
	t.Helper()
	mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userId":"user-1","provider":"google","scopes":["openid"],"returnTo":"`+returnTo+`"}}`)
	ev := e.notifier.last(t)
	state := e.id.reqs[len(e.id.reqs)-1].CustomState
	uri := "urn:ietf:params:oauth:request_uri:sess-" + string(rune('a'+e.id.uris))
	return flow.CallbackParams{SessionID: uri, State: state}, ev.VerificationCode
}

func TestValidateAppReturnURL(t *testing.T) {
	for _, s := range []string{
		appChat, appHome, appLocal, "https://app.example.com", "https://app.example.com:8443/a/b?x=1&y=%2C",
		"https://app.example.com/it's/(1)/*;a=b+c!$~@:",
		"http://localhost:3000/", "http://[::1]:9/", "https://xn--bcher-kva.example/",
	} {
		if err := flow.ValidateAppReturnURL(s); err != nil {
			t.Errorf("%s refused: %v", s, err)
		}
	}
	for name, s := range map[string]string{
		"empty":             "",
		"http":              "http://app.example.com/",
		"http other local":  "http://10.0.0.1/",
		"upper-case scheme": "HTTPS://app.example.com/",
		"relative":          "/chat",
		"scheme-relative":   "//app.example.com/",
		"no host":           "https:///chat",
		"port only":         "https://:443/",
		"opaque":            "https:app.example.com",
		"javascript":        "javascript:alert(1)",
		"data":              "data:text/html,<script>",
		"user info":         "https://user:pw@app.example.com/",
		"user name":         "https://app.example.com@evil.example/",
		"fragment":          "https://app.example.com/#x",
		"empty fragment":    "https://app.example.com/#",
		"space":             "https://app.example.com/a b",
		"comma":             "https://app.example.com/a,b",
		"backslash":         "https://app.example.com\\@evil.example/",
		"quote":             `https://app.example.com/"><script>alert(1)</script>`,
		"angle brackets":    "https://app.example.com/<b>",
		"braces":            "https://app.example.com/{x}",
		"bad escape":        "https://app.example.com/%zz",
		"newline":           "https://app.example.com/\n",
		"non-ASCII":         "https://bücher.example/",
		"too long":          "https://app.example.com/" + strings.Repeat("a", flow.MaxReturnTo),
	} {
		if err := flow.ValidateAppReturnURL(s); err == nil {
			t.Errorf("%s: %q accepted", name, s)
		} else if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("%s: the message quotes the URL: %v", name, err)
		}
	}
}

func TestParseAppReturnURLs(t *testing.T) {
	got, err := flow.ParseAppReturnURLs(" " + appChat + ", ," + appHome + "," + appChat)
	if err != nil || len(got) != 2 || got[0] != appChat || got[1] != appHome {
		t.Fatalf("%q %v", got, err)
	}
	if got, err := flow.ParseAppReturnURLs(""); err != nil || got != nil {
		t.Fatalf("empty: %q %v", got, err)
	}
	if _, err := flow.ParseAppReturnURLs(appHome + ",http://app.example.com/"); failureName(err) != contract.ErrMisconfigured {
		t.Fatalf("http: %v", err)
	}
	many := make([]string, contract.MaxAppReturnURLs+1)
	for i := range many {
		many[i] = appHome + string(rune('a'+i))
	}
	if _, err := flow.ParseAppReturnURLs(strings.Join(many, ",")); failureName(err) != contract.ErrMisconfigured {
		t.Fatalf("%d URLs: %v", len(many), err)
	}
	if _, err := flow.ParseAppReturnURLs(strings.Join(many[1:], ",")); err != nil {
		t.Fatalf("%d URLs: %v", len(many)-1, err)
	}
	// The domain refuses a bad list too, whoever builds it.
	if _, err := flow.NewInitiator(flow.Config{WorkloadName: "w-1", ReturnURL: "https://cb.example/cb", Binding: flow.BindingCode,
		AppReturnURLs: []string{"http://app.example.com/"}}, flow.Deps{}); err == nil {
		t.Fatal("NewInitiator accepted an http application return URL")
	}
	if _, err := flow.NewCallback(flow.CallbackConfig{Binding: flow.BindingCode, AppReturnURLs: many}, flow.Deps{}); err == nil {
		t.Fatal("NewCallback accepted too many application return URLs")
	}
}

// Initiate accepts a returnTo only when it is, byte for byte, one of the
// configured URLs, and stores it with the session; it refuses anything
// else before any call, without quoting it.
func TestInitiateReturnTo(t *testing.T) {
	list := []string{appChat, appHome, appLocal}
	input := func(returnTo string) string {
		return `{"userId":"u","provider":"p","scopes":["s"],"returnTo":"` + returnTo + `"}`
	}
	for _, u := range list {
		e := returnEnv(t, flow.BindingCode, list, nil)
		mustInitiate(t, e, input(u))
		s, ok := e.store.sessions["urn:ietf:params:oauth:request_uri:sess-b"]
		if !ok || s.ReturnTo != u {
			t.Fatalf("stored session %+v, want returnTo %s", s, u)
		}
	}
	t.Run("absent", func(t *testing.T) {
		for _, l := range [][]string{list, nil} {
			e := returnEnv(t, flow.BindingCode, l, nil)
			for _, raw := range []string{`{"userId":"u","provider":"p","scopes":["s"]}`, input("")} {
				mustInitiate(t, e, raw)
			}
			for _, s := range e.store.sessions {
				if s.ReturnTo != "" {
					t.Fatalf("stored returnTo %q", s.ReturnTo)
				}
			}
		}
	})
	for name, c := range map[string]struct {
		list []string
		raw  string
		want string
	}{
		"unknown":             {list, input("https://evil.example/"), "must equal one exactly"},
		"another path":        {list, input("https://app.example.com/chat"), "must equal one exactly"},
		"another query":       {list, input("https://app.example.com/chat?c=7f3a&t=13"), "must equal one exactly"},
		"no trailing slash":   {list, input("https://app.example.com"), "must equal one exactly"},
		"upper-case host":     {list, input("https://APP.example.com/"), "must equal one exactly"},
		"default port":        {list, input("https://app.example.com:443/"), "must equal one exactly"},
		"escaped differently": {list, input(`https://app.example.com/chat?c=7f3a\u0026t=12`), ""}, // the same bytes once decoded: accepted
		"http":                {list, input("http://app.example.com/"), "must use https"},
		"javascript":          {list, input("javascript:alert(1)//"), "returnTo"},
		"fragment":            {list, input(appHome + "#x"), "fragment"},
		"user info":           {list, input("https://app.example.com@evil.example/"), "user info"},
		"none configured":     {nil, input(appHome), contract.EnvAppReturnURLs},
		"wrong type":          {list, `{"userId":"u","provider":"p","scopes":["s"],"returnTo":["` + appHome + `"]}`, "returnTo"},
		"case-folded field":   {list, `{"userId":"u","provider":"p","scopes":["s"],"ReturnTo":"` + appHome + `"}`, "unknown field"},
	} {
		t.Run(name, func(t *testing.T) {
			e := returnEnv(t, flow.BindingCode, c.list, nil)
			req, err := flow.ParseRequest([]byte(c.raw))
			if err == nil {
				_, err = e.ini.Initiate(context.Background(), req)
			}
			if c.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if failureName(err) != contract.ErrInvalidInput || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %s naming %q", err, contract.ErrInvalidInput, c.want)
			}
			for _, v := range []string{"evil.example", "app.example.com", "javascript", "alert"} {
				if strings.Contains(err.Error(), v) {
					t.Fatalf("the refusal echoes the URL: %v", err)
				}
			}
			if n := len(e.id.calls); n != 0 {
				t.Fatalf("AgentCore was called %d times", n)
			}
		})
	}
}

// StartSync (agentauth's in-process flows) applies the same allow-list.
func TestStartSyncReturnTo(t *testing.T) {
	e := returnEnv(t, flow.BindingCode, []string{appHome}, nil)
	in := syncInput()
	in.ReturnTo = "https://evil.example/"
	if _, err := e.ini.StartSync(context.Background(), in, "wat", e.notifier); failureName(err) != contract.ErrInvalidInput {
		t.Fatalf("err = %v", err)
	}
	in.ReturnTo = appHome
	st, err := e.ini.StartSync(context.Background(), in, "wat", e.notifier)
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := e.store.sessions[st.SessionURI]; !ok || s.ReturnTo != appHome {
		t.Fatalf("stored %+v", s)
	}
}

// The callback offers the way back on success pages only, and only while
// its own list still holds the session's returnTo.
func TestCallbackReturnTo(t *testing.T) {
	ctx := context.Background()
	list := []string{appChat, appHome}
	t.Run("success and replay", func(t *testing.T) {
		e := returnEnv(t, flow.BindingCode, list, list)
		p, code := startedWith(t, e, appChat)
		if o := e.cb.View(ctx, p); o.Kind != flow.KindConfirm || o.ReturnTo != "" {
			t.Fatalf("confirmation page: %+v", o)
		}
		p.Code = code
		if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindConnected || o.ReturnTo != appChat {
			t.Fatalf("success: %+v", o)
		}
		for _, f := range []func(context.Context, flow.CallbackParams) *flow.Outcome{e.cb.View, e.cb.Confirm} {
			if o := f(ctx, p); o.Kind != flow.KindAlreadyConnected || o.ReturnTo != appChat {
				t.Fatalf("replay: %+v", o)
			}
		}
	})
	t.Run("removed from the callback's list", func(t *testing.T) {
		for _, l := range [][]string{{appHome}, nil} {
			e := returnEnv(t, flow.BindingCode, list, l)
			p, code := startedWith(t, e, appChat)
			p.Code = code
			if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindConnected || o.ReturnTo != "" {
				t.Fatalf("callback list %q: %+v", l, o)
			}
			if !strings.Contains(e.logs.String(), contract.EnvAppReturnURLs) || strings.Contains(e.logs.String(), "7f3a") {
				t.Fatalf("want a warning naming %s without the URL: %s", contract.EnvAppReturnURLs, e.logs)
			}
		}
	})
	t.Run("none asked for", func(t *testing.T) {
		e := returnEnv(t, flow.BindingCode, list, list)
		p, code := started(t, e)
		p.Code = code
		if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindConnected || o.ReturnTo != "" {
			t.Fatalf("%+v", o)
		}
	})
	t.Run("failures", func(t *testing.T) {
		e := returnEnv(t, flow.BindingCode, list, list)
		p, _ := startedWith(t, e, appChat)
		wrong := p
		wrong.Code = "ZZZZZ-ZZZZZ"
		if o := e.cb.Confirm(ctx, wrong); o.Kind != flow.KindWrongCode || o.ReturnTo != "" {
			t.Fatalf("wrong code: %+v", o)
		}
		for i := 1; i < flow.MaxCodeAttempts; i++ {
			e.cb.Confirm(ctx, wrong)
		}
		if o := e.cb.View(ctx, p); o.Kind != flow.KindTooManyAttempts || o.ReturnTo != "" {
			t.Fatalf("too many attempts: %+v", o)
		}

		e = returnEnv(t, flow.BindingCode, list, list)
		p, _ = startedWith(t, e, appChat)
		denied := p
		denied.Error = "access_denied"
		if o := e.cb.View(ctx, denied); o.Kind != flow.KindDenied || o.ReturnTo != "" {
			t.Fatalf("denied: %+v", o)
		}
		if o := e.cb.View(ctx, p); o.Kind != flow.KindDenied || o.ReturnTo != "" {
			t.Fatalf("denied, replayed: %+v", o)
		}

		e = returnEnv(t, flow.BindingCode, list, list)
		p, code := startedWith(t, e, appChat)
		e.advance(contract.SessionValidity + time.Second)
		p.Code = code
		if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindExpired || o.ReturnTo != "" {
			t.Fatalf("expired: %+v", o)
		}

		e = returnEnv(t, flow.BindingCode, list, list)
		p, code = startedWith(t, e, appChat)
		p.Code = code
		e.id.completeFn = func(int) error { return flow.Fail(contract.ErrValidationFailed, "refused") }
		if o := e.cb.Confirm(ctx, p); o.Kind == flow.KindConnected || o.ReturnTo != "" {
			t.Fatalf("refused completion: %+v", o)
		}
	})
	t.Run("sign-in", func(t *testing.T) {
		e := returnEnv(t, flow.BindingOIDC, list, list)
		p, _ := startedWith(t, e, appHome)
		o := signIn(t, e, e.cb.Confirm(ctx, p), "user-1")
		if o.Kind != flow.KindConnected || o.ReturnTo != appHome {
			t.Fatalf("login return: %+v", o)
		}
		e = returnEnv(t, flow.BindingOIDC, list, list)
		p, _ = startedWith(t, e, appHome)
		if o := signIn(t, e, e.cb.Confirm(ctx, p), "user-2"); o.Kind != flow.KindWrongUser || o.ReturnTo != "" {
			t.Fatalf("another user: %+v", o)
		}
	})
}

// The host a page shows must be the host the browser goes to: nothing
// percent-encoded in it (look-alike or direction-override characters), a
// real port.
func TestAppReturnURLPlainHost(t *testing.T) {
	for _, u := range []string{"https://%D0%B0pple.com/", "https://app.example.com%E2%80%AE/", "https://app.example.com:99999/",
		"https://a;b.example.com/", "https://app.example.com:/"} {
		if flow.ValidateAppReturnURL(u) == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if err := flow.ValidateAppReturnURL("https://app.example.com:8443/chat?c=%2F"); err != nil {
		t.Error(err)
	}
}
