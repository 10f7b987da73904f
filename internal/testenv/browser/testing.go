package browser

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// Skipped reports whether CONSENTFLOW_SKIP_BROWSER=1.
func Skipped() bool { return os.Getenv(EnvSkip) == "1" }

// Require fails t when Chromium is missing (CI installs it), or skips it
// when CONSENTFLOW_SKIP_BROWSER=1. It returns the binary's path.
func Require(t testing.TB) string {
	t.Helper()
	if Skipped() {
		t.Skipf("browser tests disabled by %s=1", EnvSkip)
	}
	path := ExecPath()
	if err := CheckExecPath(path); err != nil {
		t.Fatalf("%v; set %s=1 to skip the browser tests", err, EnvSkip)
	}
	return path
}

var shared struct {
	mu  sync.Mutex
	b   *Browser
	err error
}

// Shared returns the test binary's browser, starting it on first use. Stop
// it with StopShared (from TestMain) when the tests are done; if the binary
// dies first, the parent-death signal kills it.
func Shared(t testing.TB) *Browser {
	t.Helper()
	Require(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.b == nil && shared.err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		shared.b, shared.err = Start(ctx, Options{})
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
// the page HTML are saved under ArtifactsDir() and their paths logged; then
// the tab is closed.
func NewTestPage(t testing.TB) *Page {
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
func SaveForTest(t testing.TB, p *Page, label string) Artifacts {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	a, err := p.SaveArtifacts(ctx, ArtifactsDir(), t.Name()+"-"+label)
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
