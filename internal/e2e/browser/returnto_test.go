package browser

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/consentflow/consentflow/internal/local/chromium"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/testenv/chromiumtest"
)

// The success page's "Back to <host>" link, followed in Chromium, lands on
// the application's page (a local httptest server listed in
// APP_RETURN_URLS): a plain navigation the callback's CSP does not stop,
// carrying no Referer (so not the callback's state). A failure page has no
// such link.
func TestBackToApplication(t *testing.T) {
	var (
		mu       sync.Mutex
		visits   []*http.Request
		referers []string
	)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/favicon.ico" { // Chromium asks a new origin for its icon, at its own pace
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		visits, referers = append(visits, r), append(referers, r.Header.Get("Referer"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><title>app</title><h1>Back in the application</h1>`))
	}))
	t.Cleanup(app.Close)
	returnTo := app.URL + "/chat/7f3a?turn=12&from=consent"

	f := startWith(t, runner.Options{Binding: "code", AppReturnURLs: []string{returnTo, app.URL + "/other"}})
	a := f.initiateWith(map[string]any{"returnTo": returnTo}, "user-return", "repo")
	f.happy(a)
	if screenshots() {
		chromiumtest.SaveForTest(t, f.page, "connected-back-to-app")
	}
	status, err := f.page.BackToApp(f.ctx)
	if err != nil || status != http.StatusOK {
		t.Fatalf("following the link: HTTP %d, %v", status, err)
	}
	if u, err := f.page.URL(f.ctx); err != nil || u != returnTo {
		t.Fatalf("the browser is on %q (%v), want %q", u, err, returnTo)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(visits) != 1 || visits[0].URL.RequestURI() != "/chat/7f3a?turn=12&from=consent" || visits[0].Method != http.MethodGet {
		t.Fatalf("the application saw %d requests: %v", len(visits), visits)
	}
	if referers[0] != "" {
		t.Fatalf("the application got Referer %q: the callback's URL must not leave it", referers[0])
	}

	// A failure page offers no way back.
	d := f.initiateWith(map[string]any{"returnTo": returnTo}, "user-return-deny", "repo")
	want(t, f.consent(d, chromium.Deny), "error", "Access not granted")
	if ok, err := f.page.HasBackToApp(f.ctx); err != nil || ok {
		t.Fatalf("the failure page links back to the application (%v)", err)
	}
	if strings.Contains(f.logs.String(), returnTo) {
		t.Error("the handlers logged the returnTo URL")
	}
}
