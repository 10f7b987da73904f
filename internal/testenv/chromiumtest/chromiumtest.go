// Package chromiumtest holds the test-only helpers around the headless
// Chromium driver (internal/local/chromium): one browser per test binary, a
// page per test, and a screenshot plus the page HTML saved as artifacts when
// a test fails. Only tests import it; it is the one place that ties the
// driver to package testing.
//
//	func TestMain(m *testing.M) { code := m.Run(); chromiumtest.StopShared(); os.Exit(code) }
//
//	func TestX(t *testing.T) {
//		p := chromiumtest.NewTestPage(t)
//		...
//	}
package chromiumtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/local/chromium"
)

// Require fails t when Chromium is missing (`make setup` installs it), or
// skips it when CONSENTFLOW_SKIP_BROWSER=1. It returns the binary's path.
func Require(t testing.TB) string {
	t.Helper()
	if chromium.Skipped() {
		t.Skipf("browser tests disabled by %s=1", chromium.EnvSkip)
	}
	path := chromium.ExecPath()
	if err := chromium.CheckExecPath(path); err != nil {
		t.Fatalf("%v; set %s=1 to skip the browser tests", err, chromium.EnvSkip)
	}
	return path
}

var shared struct {
	mu  sync.Mutex
	b   *chromium.Browser
	err error
}

// Shared returns the test binary's browser, starting it on first use. Stop
// it with StopShared (from TestMain) when the tests are done; if the binary
// dies first, the parent-death signal kills it.
func Shared(t testing.TB) *chromium.Browser {
	t.Helper()
	Require(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.b == nil && shared.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), chromium.StartTimeout)
		shared.b, shared.err = chromium.Start(ctx, chromium.Options{})
		cancel()
	}
	if shared.err != nil {
		t.Fatalf("%v", shared.err)
	}
	return shared.b
}

// StopShared stops the shared browser if one was started.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.b != nil {
		shared.b.Close()
		shared.b = nil
	}
}

// NewTestPage opens a tab (in its own browser context) on the shared
// browser. When the test has failed by the time it ends, a screenshot and
// the page HTML are saved under chromium.ArtifactsDir() and their paths
// logged; then the tab is closed.
func NewTestPage(t testing.TB) *chromium.Page {
	t.Helper()
	b := Shared(t)
	p, err := b.NewPage()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			SaveForTest(t, p, "failure")
		}
		p.Close()
	})
	return p
}

// SaveForTest saves a screenshot and the HTML of p as
// <ArtifactsDir>/<test name>-<label>.{png,html} and logs the paths.
func SaveForTest(t testing.TB, p *chromium.Page, label string) chromium.Artifacts {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	a, err := p.SaveArtifacts(ctx, chromium.ArtifactsDir(), t.Name()+"-"+label)
	if a.PNG != "" {
		t.Logf("screenshot: %s", a.PNG)
	}
	if a.HTML != "" {
		t.Logf("page HTML:  %s", a.HTML)
	}
	if err != nil {
		t.Logf("saving artifacts: %v", err)
	}
	return a
}
