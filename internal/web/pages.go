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

	"github.com/a-h/templ"

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
	// csp allows exactly our inline stylesheet, forms to ourselves, nothing else.
	csp = "default-src 'none'; style-src '" + cspHash(style) + "'; img-src 'none'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

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
	Error     string
}

type pageSpec struct {
	status  int
	kind    string
	heading string
	message string
	next    string
}

var specs = map[flow.Kind]pageSpec{
	flow.KindConfirm: {http.StatusOK, "confirm", "Confirm the connection",
		"", ""},
	flow.KindConnected: {http.StatusOK, "ok", "Connected",
		"The connection is set up.", "You can close this window and go back to the application."},
	flow.KindAlreadyConnected: {http.StatusOK, "ok", "Already connected",
		"This connection was already completed; nothing more to do.", "You can close this window."},
	flow.KindInProgress: {http.StatusConflict, "wait", "Still completing",
		"This connection is being completed right now.", "Reload this page in a few seconds."},
	flow.KindWrongCode: {http.StatusForbidden, "retry", "That code is not right",
		"", "Check the code the application showed you and try again."},
	flow.KindTooManyAttempts: {http.StatusForbidden, "error", "Too many wrong codes",
		"The verification code was entered wrongly too many times, so this connection request was cancelled.", "Go back to the application and start again."},
	flow.KindWrongUser: {http.StatusForbidden, "error", "Signed in as someone else",
		"This browser is not signed in to the application as the person who asked for this connection, so it cannot be completed here.", "Sign in to the application in this browser as that person, then open the link again."},
	flow.KindDenied: {http.StatusOK, "error", "Access not granted",
		"Access was declined at the provider, so the connection was not set up.", "If that was a mistake, go back to the application and start again."},
	flow.KindExpired: {http.StatusGone, "error", "This link has expired",
		"Connection links are valid for 10 minutes.", "Go back to the application and start again."},
	flow.KindFailed: {http.StatusConflict, "error", "The connection could not be completed",
		"This connection request has ended without success.", "Go back to the application and start again."},
	flow.KindTryAgain: {http.StatusServiceUnavailable, "error", "Temporary problem",
		"A service needed to complete the connection did not answer.", "Wait a moment and try again."},
	flow.KindBadRequest: {http.StatusBadRequest, "error", "This link is not valid",
		"The link is incomplete or malformed.", "Open the link from the application again, without changing it."},
	flow.KindUnknownSession: {http.StatusNotFound, "error", "Unknown or old link",
		"There is no pending connection for this link. It may have expired and been removed.", "Go back to the application and start again."},
	flow.KindStateMismatch: {http.StatusForbidden, "error", "This link is not valid",
		"The link does not match the connection request it names.", "Open the link from the application again, without changing it."},
}

// render builds a page for o. templ escapes every value; no error
// text or secret ever reaches it (Outcome carries none).
func render(o *flow.Outcome) (int, string) {
	sp, ok := specs[o.Kind]
	if !ok {
		sp = specs[flow.KindFailed]
	}
	v := view{
		Title: sp.heading, Kind: sp.kind, Heading: sp.heading,
		Message: sp.message, Next: sp.next, O: o,
	}
	if o.Detail != "" {
		v.Message = o.Detail
	}
	switch o.Kind {
	case flow.KindConfirm, flow.KindWrongCode:
		v.Form = true
		v.CodeInput = o.Binding == flow.BindingCode
		if o.Kind == flow.KindWrongCode {
			plural := "s"
			if o.AttemptsLeft == 1 {
				plural = ""
			}
			v.Error = fmt.Sprintf("%s %d attempt%s left.", sp.next, o.AttemptsLeft, plural)
		}
	case flow.KindTryAgain:
		v.Form = o.State != ""
		v.CodeInput = v.Form && o.Binding == flow.BindingCode
		v.Error = sp.message + " " + sp.next
	}
	var buf bytes.Buffer
	if err := page(v).Render(context.Background(), &buf); err != nil {
		// Pages are fixed and tested, and a bytes.Buffer does not fail:
		// this is a programming error.
		return http.StatusServiceUnavailable, "<!doctype html><title>Temporary problem</title><p>Temporary problem. Try again.</p>"
	}
	return sp.status, buf.String()
}
