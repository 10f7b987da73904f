package web

// The pages are templ components (pages.templ), compiled to Go
// (pages_templ.go, committed; TestGeneratedPagesAreCurrent fails when it is
// stale). Unlike html/template, nothing is looked up by reflection at run
// time, so the linker keeps its dead-method elimination.
//go:generate go run github.com/a-h/templ/cmd/templ@v0.3.977 generate -f pages.templ

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"

	"github.com/a-h/templ"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// style is the one stylesheet, inlined in every page.
//
//go:embed templates/style.css
var style string

var (
	// styleElement writes the stylesheet verbatim: it is a file of this
	// package (what the CSP hash is computed from), never input, and holds
	// no "</" (TestStyleStaysInItsElement).
	styleElement = templ.Raw("<style>" + style + "</style>")
	// csp allows exactly our inline stylesheet, forms to ourselves, nothing
	// else (cspWith adds the sign-in provider, where a form's answer
	// redirects to it).
	csp = cspWith("")
)

// cspWith is the pages' policy, with origin (when not empty) allowed as a
// form's destination: Chromium applies form-action to the redirects that
// follow a form's submission, and the sign-in form's answer redirects to
// the provider's authorization endpoint.
func cspWith(origin string) string {
	forms := "'self'"
	if origin != "" {
		forms += " " + origin
	}
	return "default-src 'none'; style-src '" + cspHash(style) + "'; img-src 'none'; " +
		"form-action " + forms + "; frame-ancestors 'none'; base-uri 'none'"
}

// backTo is the success page's link back to the application and its
// label: o.ReturnTo (which the domain sets only while the callback's
// APP_RETURN_URLS list it) on a success page only, and only an absolute
// https URL (http on loopback, for local runs) with a host. It is a plain
// link the person follows: never a redirect, never a script. Navigating a
// link is not subject to the CSP (form-action governs forms only), and the
// pages' same-origin referrer policy (and rel=noreferrer) keeps the
// callback's URL, with its state, from the application.
func backTo(o *flow.Outcome) (href, label string) {
	if o.ReturnTo == "" || (o.Kind != flow.KindConnected && o.Kind != flow.KindAlreadyConnected) {
		return "", ""
	}
	u, err := url.Parse(o.ReturnTo)
	if err != nil || flow.ValidateAppReturnURL(o.ReturnTo) != nil {
		return "", ""
	}
	host, ok := contract.PlainURLAuthority(o.ReturnTo)
	if !ok || u.Host == "" {
		return "", ""
	}
	return o.ReturnTo, labelBackTo + host // as written: what the browser goes to
}

// agentNotice is the sentence naming the agent the workflow continues
// with (o.ContinuesAgent): on a page with the confirmation form (form),
// that the agent continues once they connect; on the success page
// (KindConnected), that it continues now; nothing on any other page. The
// name is text that templ escapes like every other value.
func agentNotice(o *flow.Outcome, form bool) string {
	switch {
	case o.ContinuesAgent == "":
		return ""
	case form:
		return agentAfterConnect(o.ContinuesAgent)
	case o.Kind == flow.KindConnected:
		return agentContinuesNow(o.ContinuesAgent)
	}
	return ""
}

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// view is what a page sees.
type view struct {
	Title   string
	Kind    string
	Heading string
	Message string
	Next    string
	O       *flow.Outcome
	// Form is set when the page carries the confirmation form.
	Form bool
	// CodeInput is set when the form asks for the verification code.
	CodeInput bool
	// SignIn is set when the form's button starts a sign-in.
	SignIn bool
	// SignInAgain, when set, is the label of the button that starts
	// another sign-in for the same session.
	SignInAgain string
	Error       string
	// Referrer is the page's referrer policy (its meta element and its
	// Referrer-Policy header agree).
	Referrer string
	// ReturnTo, on success pages only, is the application page the
	// link back (ReturnLabel) leads to; "" for none (backTo).
	ReturnTo    string
	ReturnLabel string
	// Agent, when set, tells the person that an agent continues for them
	// (agentNotice).
	Agent string
}

// Referrer policies. The callback and sign-in pages use same-origin, so
// that their own forms carry their Origin (crossSite) while no other site
// ever sees their URL (with its state or code); pages without forms use
// no-referrer.
const (
	referrerPages  = "same-origin"
	referrerNoForm = "no-referrer"
)

// render builds a page for o; message, when not empty, replaces the
// Kind's default message. templ escapes every value; no error text or
// secret ever reaches it (Outcome carries none).
func render(o *flow.Outcome, message string) (int, string) {
	sp, ok := specs[o.Kind]
	if !ok {
		sp = specs[flow.KindFailed]
	}
	v := view{
		Title: sp.heading, Kind: sp.kind, Heading: sp.heading,
		Message: sp.message, Next: sp.next, O: o, Referrer: referrerPages,
	}
	if message != "" {
		v.Message = message
	}
	if o.Kind == flow.KindWrongUser && o.SignedInAs != "" {
		v.Next = "Or go back to the application and start again."
	}
	v.ReturnTo, v.ReturnLabel = backTo(o)
	if o.CanSignInAgain {
		v.SignInAgain = labelSignInAgain
		if o.Kind == flow.KindWrongUser {
			v.SignInAgain = labelOtherAccount
		}
	}
	switch o.Kind {
	case flow.KindConfirm, flow.KindWrongCode:
		v.Form = true
		v.CodeInput = o.Binding.NeedsCode() && !o.External
		v.SignIn = o.Binding.NeedsSignIn()
		if o.Kind == flow.KindWrongCode {
			plural := "s"
			if o.AttemptsLeft == 1 {
				plural = ""
			}
			v.Error = fmt.Sprintf("%s %d attempt%s left.", sp.next, o.AttemptsLeft, plural)
		}
	case flow.KindTryAgain:
		v.Form = o.State != ""
		v.CodeInput = v.Form && o.Binding.NeedsCode() && !o.External
		v.SignIn = v.Form && o.Binding.NeedsSignIn()
		v.Error = sp.message + " " + sp.next
	}
	v.Agent = agentNotice(o, v.Form)
	var buf bytes.Buffer
	if err := page(v).Render(context.Background(), &buf); err != nil {
		// Pages are fixed and tested, and a bytes.Buffer does not fail:
		// this is a programming error.
		return http.StatusServiceUnavailable, "<!doctype html><title>Temporary problem</title><p>Temporary problem. Try again.</p>"
	}
	return sp.status, buf.String()
}
