package stack

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// altAppReturnURLs is alt's appReturnUrls, as `-c` passes it (a string).
const altAppReturnURLs = "https://app.example.com/chat?c=1&t=2,https://staging.example.org/"

func TestAppReturnURLs(t *testing.T) {
	const a, b = "https://app.example.com/chat?c=1&t=2", "https://app.example.com:8443/it's/(x)/"
	for _, v := range []any{a + "," + b, a + ", " + b + " " + a, []any{a, b, a}} {
		c, err := LoadConfig(ctx(map[string]any{CtxCredentialProviderName: "p", CtxAppReturnURLs: v}))
		if err != nil || !reflect.DeepEqual(c.AppReturnURLs, []string{a, b}) {
			t.Errorf("%v: %q %v", v, c.AppReturnURLs, err)
		}
		// What synth accepts, the functions accept (APP_RETURN_URLS, returnTo).
		for _, u := range c.AppReturnURLs {
			if err := flow.ValidateAppReturnURL(u); err != nil {
				t.Errorf("%s: synth accepts it, the functions refuse it: %v", u, err)
			}
		}
		if got, err := flow.ParseAppReturnURLs(strings.Join(c.AppReturnURLs, ",")); err != nil || !reflect.DeepEqual(got, c.AppReturnURLs) {
			t.Errorf("APP_RETURN_URLS reads back as %q, %v", got, err)
		}
	}
	for _, v := range []any{nil, "", []any{}} {
		if c, err := LoadConfig(ctx(map[string]any{CtxCredentialProviderName: "p", CtxAppReturnURLs: v})); err != nil || c.AppReturnURLs != nil {
			t.Errorf("%#v: %q %v", v, c.AppReturnURLs, err)
		}
	}
	eleven := make([]any, contract.MaxAppReturnURLs+1)
	for i := range eleven {
		eleven[i] = fmt.Sprintf("https://app.example.com/%d", i)
	}
	if _, err := LoadConfig(ctx(map[string]any{CtxCredentialProviderName: "p", CtxAppReturnURLs: eleven[1:]})); err != nil {
		t.Errorf("%d URLs: %v", len(eleven)-1, err)
	}
	for name, v := range map[string]any{
		"http":            "http://app.example.com/",
		"http loopback":   "http://127.0.0.1:8080/",
		"upper-case":      "HTTPS://app.example.com/",
		"relative":        "/chat",
		"scheme-relative": "//app.example.com/",
		"no host":         "https:///chat",
		"opaque":          "https:app.example.com",
		"javascript":      "javascript:alert(1)",
		"user info":       "https://user:pw@app.example.com/",
		"encoded host":    "https://%D0%B0pple.com/",
		"bad port":        "https://app.example.com:99999/",
		"user name":       "https://app.example.com@evil.example/",
		"fragment":        "https://app.example.com/#top",
		"quote":           []any{`https://app.example.com/"x`},
		"comma in item":   []any{"https://app.example.com/a,b"},
		"non-ASCII":       "https://bücher.example/",
		"too long":        "https://app.example.com/" + strings.Repeat("a", 2048),
		"too many":        eleven,
		"a null item":     []any{"https://app.example.com/", nil},
		"not strings":     []any{1.0},
		"not a list":      map[string]any{"url": "https://app.example.com/"},
		"a number":        42.0,
	} {
		_, err := LoadConfig(ctx(map[string]any{CtxCredentialProviderName: "p", CtxAppReturnURLs: v}))
		if err == nil || !strings.Contains(err.Error(), CtxAppReturnURLs) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// APP_RETURN_URLS goes to initiate (the allow-list) and the callback (its own re-check),
// nowhere else, and only when appReturnUrls is set.
func TestAppReturnURLsEnvironment(t *testing.T) {
	need(t, &alt)
	want := altAppReturnURLs
	for _, fn := range []string{"Initiate", "Callback"} {
		if got := envOf(t, &alt, fn)[contract.EnvAppReturnURLs]; got != want {
			t.Errorf("alt %s: %s = %q, want %q", fn, contract.EnvAppReturnURLs, got, want)
		}
	}
	if _, ok := envOf(t, &alt, "Resumer")[contract.EnvAppReturnURLs]; ok {
		t.Errorf("alt resumer has %s", contract.EnvAppReturnURLs)
	}
	for name, s := range variants() {
		if name == "alt" {
			continue
		}
		need(t, s)
		for id, r := range s.resources("AWS::Lambda::Function") {
			env, _ := props(r)["Environment"].(map[string]any)
			if env == nil {
				continue
			}
			if vars, _ := resolve(env["Variables"]).(map[string]any); vars[contract.EnvAppReturnURLs] != nil {
				t.Errorf("%s: %s has %s without appReturnUrls", name, id, contract.EnvAppReturnURLs)
			}
		}
	}
}
