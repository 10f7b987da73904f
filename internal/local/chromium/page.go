package chromium

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/consentflow/consentflow/infra/gobuild"
)

// Decision is a button on the provider's consent page.
type Decision string

// The emulator's consent page has <button class="allow|deny" name="decision">.
const (
	Allow Decision = "allow"
	Deny  Decision = "deny"
)

// Selectors of the pages (internal/web templates and the emulator's consent
// page).
const (
	SelOutcome    = "main[data-outcome]"
	SelHeading    = "main h1"
	SelCodeInput  = `main form[method="post"] input[name="code"]`
	SelSubmit     = `main form[method="post"] button[type="submit"]`
	SelAllow      = "button.allow"
	SelDeny       = "button.deny"
	SelConfirmBox = `main[data-outcome="confirm"]`
	// SelSignInAgain is the "sign in with another account" / "sign in
	// again" button of the sign-in pages.
	SelSignInAgain = "#sign-in-again"
	// SelSignedInAs holds the account a sign-in page says is signed in.
	SelSignedInAs = "[data-signed-in-as]"
	// SelIdPCancel is the emulator's sign-in page's Cancel button.
	SelIdPCancel = "button.cancel"
	// SelBackToApp is the success page's link back to the application
	// (the flow's returnTo).
	SelBackToApp = "#back-to-app"
	// SelContinuesAgent is the sentence naming the agent the workflow
	// continues with (the confirmation and success pages).
	SelContinuesAgent = "#continues-agent"
)

// selIdPUser is the emulator's sign-in page's button for one test user.
func selIdPUser(subject string) string {
	return `button.user[value="` + subject + `"]`
}

// Outcome is what a callback page says: its data-outcome (confirm, ok,
// error, wait) and its <h1>.
type Outcome struct {
	Kind    string `json:"kind"`
	Heading string `json:"heading"`
}

func (o Outcome) String() string { return o.Kind + ": " + o.Heading }

// Page is one tab, in a browser context of its own (cookies, storage).
type Page struct {
	b      *Browser
	ctx    context.Context
	cancel context.CancelFunc
}

// NewPage opens a tab in a fresh browser context.
func (b *Browser) NewPage() (*Page, error) {
	ctx, cancel := chromedp.NewContext(b.root, chromedp.WithNewBrowserContext())
	return b.open(ctx, cancel)
}

// NewTab opens another tab in p's browser context: it shares p's cookies
// (two tabs of one person). Close it before p.
func (p *Page) NewTab() (*Page, error) {
	ctx, cancel := chromedp.NewContext(p.ctx)
	return p.b.open(ctx, cancel)
}

// open creates the tab of ctx, waiting at most the action timeout.
func (b *Browser) open(ctx context.Context, cancel context.CancelFunc) (*Page, error) {
	p := &Page{b: b, ctx: ctx, cancel: cancel}
	// The first Run binds the tab to the context it is given, so it must
	// be the page's own context, not one with a timeout.
	created := make(chan error, 1)
	go func() { created <- chromedp.Do(ctx) }()
	var err error
	select {
	case err = <-created:
	case <-time.After(b.actionTimeout):
		err = errors.New("no answer")
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("browser: new tab: %w", err)
	}
	return p, nil
}

// Close closes the tab and its browser context.
func (p *Page) Close() {
	done := make(chan struct{})
	go func() { p.cancel(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second): // a wedged tab; Browser.Close kills it anyway
	}
}

// run runs f on the tab with the action timeout, ending early if ctx ends.
func (p *Page) run(ctx context.Context, f func(c context.Context) (any, error)) (any, error) {
	c, cancel := context.WithTimeout(p.ctx, p.b.actionTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	v, err := f(c)
	if err != nil && ctx.Err() != nil {
		return v, ctx.Err()
	}
	return v, err
}

func do(ctx context.Context, p *Page, steps ...chromedp.Action[chromedp.Void]) error {
	_, err := p.run(ctx, func(c context.Context) (any, error) { return nil, chromedp.Do(c, steps...) })
	return err
}

func runT[T any](ctx context.Context, p *Page, a chromedp.Action[T]) (T, error) {
	v, err := p.run(ctx, func(c context.Context) (any, error) { return chromedp.Run(c, a) })
	t, _ := v.(T)
	return t, err
}

// Do runs chromedp actions on the tab (for anything the helpers do not
// cover, e.g. emulation), bounded by the action timeout.
func (p *Page) Do(ctx context.Context, steps ...chromedp.Action[chromedp.Void]) error {
	return do(ctx, p, steps...)
}

// Open navigates to u and waits for the page to load. It returns the HTTP
// status of the document.
func (p *Page) Open(ctx context.Context, u string) (int, error) {
	resp, err := runT(ctx, p, chromedp.NavigateResponse(u))
	if err != nil {
		return 0, fmt.Errorf("browser: open %s: %w", redact(u), err)
	}
	if resp == nil {
		return 0, nil
	}
	return int(resp.Status), nil
}

// clickAndLoad clicks sel and waits for the page it leads to. It returns the
// HTTP status of the new document.
func (p *Page) clickAndLoad(ctx context.Context, sel string) (int, error) {
	if err := do(ctx, p, chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		return 0, fmt.Errorf("browser: no %q on the page: %w", sel, err)
	}
	v, err := p.run(ctx, func(c context.Context) (any, error) {
		return chromedp.RunResponse(c, chromedp.Click(chromedp.CSS(sel)))
	})
	if err != nil {
		return 0, fmt.Errorf("browser: click %q: %w", sel, err)
	}
	if resp, ok := v.(*network.Response); ok && resp != nil {
		return int(resp.Status), nil
	}
	return 0, nil
}

// Consent opens the authorization URL, clicks Allow or Deny on the
// provider's consent page and waits for the page the browser is sent to
// (the application's callback). It returns that page's HTTP status.
func (p *Page) Consent(ctx context.Context, authorizationURL string, d Decision) (int, error) {
	status, err := p.Open(ctx, authorizationURL)
	if err != nil {
		return 0, err
	}
	if status != 200 {
		return status, fmt.Errorf("browser: the consent page answered HTTP %d", status)
	}
	sel := SelAllow
	if d == Deny {
		sel = SelDeny
	}
	return p.clickAndLoad(ctx, sel)
}

// EnterCode types code into the confirmation form (if it asks for one),
// submits it and waits for the answer page. It returns its HTTP status.
func (p *Page) EnterCode(ctx context.Context, code string) (int, error) {
	if err := do(ctx, p, chromedp.WaitVisible(chromedp.CSS(SelSubmit))); err != nil {
		o, _ := p.Outcome(ctx)
		return 0, fmt.Errorf("browser: no confirmation form on the page (%s): %w", o, err)
	}
	if code != "" {
		if err := do(ctx, p,
			chromedp.Clear(chromedp.CSS(SelCodeInput)),
			chromedp.SendKeys(chromedp.CSS(SelCodeInput), code),
		); err != nil {
			return 0, fmt.Errorf("browser: typing the code: %w", err)
		}
	}
	return p.clickAndLoad(ctx, SelSubmit)
}

// Submit presses the confirmation form's button (no code typed) and waits
// for the page it leads to, following redirects (in the sign-in modes: the
// sign-in provider's page). It returns that page's HTTP status.
func (p *Page) Submit(ctx context.Context) (int, error) {
	return p.clickAndLoad(ctx, SelSubmit)
}

// SignIn picks the test user subject on the emulator's sign-in page and
// waits for the page the provider sends the browser to. It returns that
// page's HTTP status.
func (p *Page) SignIn(ctx context.Context, subject string) (int, error) {
	return p.clickAndLoad(ctx, selIdPUser(subject))
}

// CancelSignIn presses Cancel on the emulator's sign-in page.
func (p *Page) CancelSignIn(ctx context.Context) (int, error) {
	return p.clickAndLoad(ctx, SelIdPCancel)
}

// SignInAgain presses the sign-in pages' "sign in with another account"
// button and waits for the page it leads to.
func (p *Page) SignInAgain(ctx context.Context) (int, error) {
	return p.clickAndLoad(ctx, SelSignInAgain)
}

// BackToApp follows the success page's link back to the application and
// waits for the page it leads to. It returns that page's HTTP status.
func (p *Page) BackToApp(ctx context.Context) (int, error) {
	return p.clickAndLoad(ctx, SelBackToApp)
}

// HasBackToApp reports whether the page links back to the application.
func (p *Page) HasBackToApp(ctx context.Context) (bool, error) {
	return runT(ctx, p, chromedp.Evaluate[bool](`document.querySelector('`+SelBackToApp+`') !== null`))
}

// ContinuesAgent reads the sentence naming the agent the workflow
// continues with ("" when the page has none).
func (p *Page) ContinuesAgent(ctx context.Context) (string, error) {
	return runT(ctx, p, chromedp.Evaluate[string](`(() => {
		const e = document.querySelector('`+SelContinuesAgent+`');
		return e ? e.textContent.trim() : '';
	})()`))
}

// SignedInAs reads the account a sign-in page says is signed in ("" when
// the page says none).
func (p *Page) SignedInAs(ctx context.Context) (string, error) {
	return runT(ctx, p, chromedp.Evaluate[string](`(() => {
		const e = document.querySelector('`+SelSignedInAs+`');
		return e ? e.textContent.trim() : '';
	})()`))
}

// Outcome reads the page's data-outcome and heading. A page that is not one
// of ours gives an empty Kind.
func (p *Page) Outcome(ctx context.Context) (Outcome, error) {
	return runT(ctx, p, chromedp.Evaluate[Outcome](`(() => {
		const m = document.querySelector('main[data-outcome]');
		const h = document.querySelector('main h1') || document.querySelector('h1');
		return {kind: m ? m.dataset.outcome : '', heading: h ? h.textContent.trim() : ''};
	})()`))
}

// HasCodeInput reports whether the page asks for a verification code.
func (p *Page) HasCodeInput(ctx context.Context) (bool, error) {
	return runT(ctx, p, chromedp.Evaluate[bool](`document.querySelector('`+SelCodeInput+`') !== null`))
}

// URL is the tab's current address.
func (p *Page) URL(ctx context.Context) (string, error) {
	return runT(ctx, p, chromedp.Location())
}

// HTML is the current document's markup.
func (p *Page) HTML(ctx context.Context) (string, error) {
	return runT(ctx, p, chromedp.Evaluate[string](`document.documentElement ? document.documentElement.outerHTML : ''`))
}

// Screenshot is a PNG of the whole page.
func (p *Page) Screenshot(ctx context.Context) ([]byte, error) {
	return runT(ctx, p, chromedp.FullScreenshot(100))
}

// Artifacts are the files SaveArtifacts wrote.
type Artifacts struct {
	PNG, HTML string
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// SaveArtifacts writes a screenshot (name.png) and the page HTML
// (name.html) into dir, creating it. It writes what it can and reports the
// first error.
func (p *Page) SaveArtifacts(ctx context.Context, dir, name string) (Artifacts, error) {
	var a Artifacts
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return a, err
	}
	name = unsafeName.ReplaceAllString(name, "_")
	var errs []error
	if png, err := p.Screenshot(ctx); err != nil {
		errs = append(errs, fmt.Errorf("screenshot: %w", err))
	} else {
		a.PNG = filepath.Join(dir, name+".png")
		if err := os.WriteFile(a.PNG, png, 0o644); err != nil {
			a.PNG = ""
			errs = append(errs, err)
		}
	}
	if html, err := p.HTML(ctx); err != nil {
		errs = append(errs, fmt.Errorf("html: %w", err))
	} else {
		a.HTML = filepath.Join(dir, name+".html")
		if err := os.WriteFile(a.HTML, []byte(html), 0o644); err != nil {
			a.HTML = ""
			errs = append(errs, err)
		}
	}
	return a, errors.Join(errs...)
}

// ArtifactsDir is $CONSENTFLOW_ARTIFACTS, else <repo root>/artifacts, else
// ./artifacts.
func ArtifactsDir() string {
	if d := os.Getenv(EnvArtifacts); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	if root, err := gobuild.ModuleRoot("."); err == nil {
		return filepath.Join(root, "artifacts")
	}
	return "artifacts"
}

// redact drops the query of a URL for error messages (it may carry the
// session id and state).
func redact(u string) string {
	for i, c := range u {
		if c == '?' {
			return u[:i] + "?…"
		}
	}
	return u
}
