package web

import (
	"net/http"

	"github.com/consentflow/consentflow/internal/flow"
)

// The words of the pages. The domain (package flow) answers with outcomes
// (flow.Kind, flow.Reason); this file alone decides what a person reads:
// each Kind's status, heading, message and next step, the messages that
// refine a Reason, and the handler's own refusals.

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
	flow.KindLoginRefused: {http.StatusBadRequest, "error", "This sign-in cannot be used",
		"This sign-in was not started in this browser, was already used, or took too long.", "Open the link from the application again and sign in from there."},
	flow.KindSignInFailed: {http.StatusForbidden, "error", "Sign-in did not succeed",
		"The sign-in did not confirm who you are, so nothing was connected.", "Try again, or go back to the application and start again."},
}

// Labels of the button that starts another sign-in.
const (
	labelOtherAccount = "Sign in with another account"
	labelSignInAgain  = "Sign in again"
)

// labelBackTo, followed by the application's host, labels the success
// page's link back to the application.
const labelBackTo = "Back to "

// The sentence that names the agent a workflow invokes for the person
// once they have connected (flow.Outcome.ContinuesAgent): before they
// connect, on the confirmation page, and once they have, on the success
// page.
func agentAfterConnect(name string) string {
	return "After you connect, the agent “" + name + "” continues for you with this access."
}

func agentContinuesNow(name string) string {
	return "The agent “" + name + "” continues now."
}

// signedInWrongUser replaces KindWrongUser's message on sign-in pages.
const signedInWrongUser = "You signed in with an account that is not the one this connection was requested for, so nothing was connected."

// reasonWords replaces a page's default message for outcomes whose Reason
// says more than their Kind.
var reasonWords = map[flow.Reason]string{
	flow.ReasonIncompleteLink:    "The link is incomplete.",
	flow.ReasonMalformedLink:     "The link is malformed.",
	flow.ReasonCompletionRefused: "AgentCore Identity did not accept the authorization.",
	flow.ReasonProviderError:     "The provider reported an error.",
	flow.ReasonMissingCode:       "Enter the verification code you were given, then press Connect.",
	flow.ReasonLoginMissing:      "This browser has no sign-in in progress for this page (it must be the browser that opened the link).",
	flow.ReasonLoginMismatch:     "This sign-in answer belongs to another sign-in.",
	flow.ReasonLoginUsed:         "This sign-in was already used.",
	flow.ReasonLoginExpired:      "The sign-in took too long (it must finish within 5 minutes).",
	flow.ReasonLoginTooMany:      "Too many sign-ins were started for this connection in this browser.",
	flow.ReasonSignInCancelled:   "The sign-in was cancelled or could not be completed at the sign-in service.",
	flow.ReasonSignInRejected:    "The answer from the sign-in service could not be verified.",
	flow.ReasonSignInUnavailable: "The sign-in service did not answer.",
}

// Messages for requests the handler refuses before the domain sees them.
const (
	msgMethodNotAllowed = "This address only accepts links from the sign-in flow."
	msgUnreadableForm   = "The form could not be read."
	msgCrossSite        = "This form can only be sent from this site's own page. Open the link from the application again."
)

// message is the message for o's Reason, or "" for the Kind's default.
func message(o *flow.Outcome) string {
	if o.Kind == flow.KindWrongUser && o.SignedInAs != "" {
		if o.Reason == flow.ReasonCompletionRefused {
			return "AgentCore Identity refused to complete this connection for the account you signed in with. A connection an agent started can be completed only by the account it was started for (and not by sign-in at all when the agent started it with a token instead of a user id), and only while its link is valid."
		}
		return signedInWrongUser
	}
	return reasonWords[o.Reason]
}
