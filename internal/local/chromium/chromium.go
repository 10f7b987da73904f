// Package chromium drives a real headless Chromium (Debian /usr/bin/chromium)
// through the consent flow's pages, for the local demo (cmd/consentflow-demo
// --auto) and the browser end-to-end tests (internal/e2e/browser).
//
// Chromium is started with chromedp.NewExecAllocator and the flags that keep
// it quiet on a machine without internet (--headless --no-sandbox --disable-gpu
// --disable-background-networking --disable-component-update --no-first-run)
// and a fresh user-data-dir in a temporary directory. It talks to Go over a
// pipe (--remote-debugging-pipe), so it opens no debugging port.
//
// No process outlives Close: Chromium runs in its own process group, which
// Close kills as a whole; processes still carrying the user-data-dir on their
// command line are killed too, and the directory is removed. If the Go
// program dies first, the parent-death signal kills the browser.
//
// One Browser serves many pages: each Page is a new tab in a new browser
// context (its own cookies and storage), so pages do not see each other.
//
//	b, err := browser.Start(ctx, browser.Options{})
//	defer b.Close()
//	p, err := b.NewPage()
//	defer p.Close()
//	err = p.Consent(ctx, authorizationURL, browser.Allow)   // provider page: click Allow
//	err = p.EnterCode(ctx, code)                             // confirmation page: type, submit
//	o, err := p.Outcome(ctx)                                 // {Kind:"ok", Heading:"Connected"}
//
// Tests use package internal/testenv/chromiumtest: one browser per test
// binary, a page per test, a screenshot and the HTML saved as artifacts when
// a test fails.
package chromium

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
)

// Environment variables.
const (
	// EnvChromium overrides the browser binary (default /usr/bin/chromium).
	EnvChromium = "CONSENTFLOW_CHROMIUM"
	// EnvSkip set to "1" makes the test helpers skip instead of failing
	// when Chromium is missing.
	EnvSkip = "CONSENTFLOW_SKIP_BROWSER"
	// EnvArtifacts is where screenshots and page HTML go (default
	// <repo root>/artifacts).
	EnvArtifacts = "CONSENTFLOW_ARTIFACTS"
)

// DefaultExecPath is Debian's Chromium.
const DefaultExecPath = "/usr/bin/chromium"

// DefaultActionTimeout bounds one page action (open, click, type).
const DefaultActionTimeout = 20 * time.Second

// StartTimeout bounds how long Start waits for the browser to answer.
const StartTimeout = 60 * time.Second

// Flags are the Chromium command-line flags for a headless run as root on a
// machine without internet (without the background-networking flags Chromium
// keeps trying to reach Google's hosts), plus a few that keep a headless run
// quiet and deterministic.
func Flags() []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		// Quiet and deterministic.
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true), // small /dev/shm in containers
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.WindowSize(1024, 768),
	}
}

// ExecPath is $CONSENTFLOW_CHROMIUM, else /usr/bin/chromium.
func ExecPath() string {
	if p := os.Getenv(EnvChromium); p != "" {
		return p
	}
	return DefaultExecPath
}

// ErrNoChromium: the browser binary is not there.
var ErrNoChromium = errors.New("browser: Chromium not found")

// CheckExecPath reports whether path is an executable file, with an error
// that says how to install it.
func CheckExecPath(path string) error {
	fi, err := os.Stat(path)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%w at %s: install it (Debian: apt-get install chromium), or set %s to another Chromium binary",
			ErrNoChromium, path, EnvChromium)
	}
	return nil
}

// Options configure Start.
type Options struct {
	// ExecPath is the browser binary (default ExecPath()).
	ExecPath string
	// ActionTimeout bounds each page action (default DefaultActionTimeout).
	ActionTimeout time.Duration
	// Output, if set, receives what Chromium prints (diagnostics).
	Output *bytes.Buffer
}

// Browser is one running Chromium. Close stops it.
type Browser struct {
	root          context.Context // chromedp context that owns the browser
	cancelRoot    context.CancelFunc
	cancelAlloc   context.CancelFunc
	dataDir       string
	actionTimeout time.Duration

	mu        sync.Mutex
	cmd       *exec.Cmd
	pgid      int
	closeOnce sync.Once
}

// Start starts Chromium with Flags and a fresh user-data-dir and waits until
// it answers. ctx bounds the start only; the browser lives until Close.
func Start(ctx context.Context, o Options) (_ *Browser, err error) {
	if o.ExecPath == "" {
		o.ExecPath = ExecPath()
	}
	if err := CheckExecPath(o.ExecPath); err != nil {
		return nil, err
	}
	if o.ActionTimeout <= 0 {
		o.ActionTimeout = DefaultActionTimeout
	}
	dataDir, err := os.MkdirTemp("", "consentflow-chromium-")
	if err != nil {
		return nil, err
	}
	b := &Browser{dataDir: dataDir, actionTimeout: o.ActionTimeout}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()

	opts := append(Flags(),
		chromedp.ExecPath(o.ExecPath),
		chromedp.UserDataDir(dataDir),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			if cmd.SysProcAttr == nil {
				cmd.SysProcAttr = &syscall.SysProcAttr{}
			}
			// Its own process group, killed as a whole by Close; and
			// killed by the kernel if the Go program dies first
			// (chromedp starts it from a locked OS thread for this).
			cmd.SysProcAttr.Setpgid = true
			cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
			b.mu.Lock()
			b.cmd = cmd
			b.mu.Unlock()
		}),
	)
	if o.Output != nil {
		opts = append(opts, chromedp.CombinedOutput(o.Output))
	}
	// The browser must not die with ctx: its life is Close's business.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(ctx), opts...)
	b.cancelAlloc = cancelAlloc
	b.root, b.cancelRoot = chromedp.NewContext(allocCtx)

	started := make(chan error, 1)
	go func() { started <- chromedp.Do(b.root) }() // starts the browser
	timer := time.NewTimer(StartTimeout)
	defer timer.Stop()
	select {
	case err = <-started:
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		err = fmt.Errorf("no answer within %v", StartTimeout)
	}
	b.notePID()
	if err != nil {
		return nil, fmt.Errorf("browser: starting %s: %w", o.ExecPath, err)
	}
	return b, nil
}

func (b *Browser) notePID() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd != nil && b.cmd.Process != nil && b.pgid == 0 {
		b.pgid = b.cmd.Process.Pid
	}
}

// PID is the browser's main process id (0 if it did not start).
func (b *Browser) PID() int {
	b.notePID()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pgid
}

// UserDataDir is the browser's temporary profile directory.
func (b *Browser) UserDataDir() string { return b.dataDir }

// Close stops the browser and every process it started, and removes its
// profile directory. It is safe to call more than once.
func (b *Browser) Close() {
	b.closeOnce.Do(func() {
		b.notePID()
		if b.cancelRoot != nil {
			done := make(chan struct{})
			go func() {
				b.cancelRoot() // kills the main process and waits for it
				b.cancelAlloc()
				close(done)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
			}
		}
		b.mu.Lock()
		pgid := b.pgid
		b.mu.Unlock()
		if pgid > 0 {
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		}
		killUsing(b.dataDir)
		removeAll(b.dataDir)
	})
}

// killUsing kills, until none is left, the processes whose command line
// names dir as their user-data-dir (Chromium passes it to every child).
func killUsing(dir string) {
	if dir == "" {
		return
	}
	want := []byte("--user-data-dir=" + dir)
	deadline := time.Now().Add(3 * time.Second)
	for quiet := 0; quiet < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n := 0
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				continue
			}
			for _, arg := range bytes.Split(cmdline, []byte{0}) {
				if bytes.Equal(arg, want) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					n++
					break
				}
			}
		}
		if n == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
}

// removeAll removes dir, retrying while late writers (crashpad) still add
// files.
func removeAll(dir string) {
	if dir == "" || !strings.Contains(filepath.Base(dir), "consentflow-chromium-") {
		return
	}
	deadline := time.Now().Add(3 * time.Second)
	for os.RemoveAll(dir) != nil && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// Skipped reports whether CONSENTFLOW_SKIP_BROWSER=1.
func Skipped() bool { return os.Getenv(EnvSkip) == "1" }
