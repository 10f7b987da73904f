package web

import (
	"net/http"

	"github.com/consentflow/consentflow/internal/connectauth"
)

// The words of the Amazon Connect customer-authentication pages. The
// domain (package connectauth) answers with an outcome; this file alone
// decides what the customer reads. Connect only acknowledges a redirect:
// the identity is fetched and imported after the call, and the result
// reaches the customer in the chat, so no page claims that the customer
// is authenticated. Every page sends the customer back to the chat; none
// quotes the request or an error text.
var connectSpecs = map[connectauth.Kind]pageSpec{
	connectauth.KindDone: {http.StatusOK, "ok", "Sign-in received",
		"Your sign-in has been passed on to the chat. The chat checks it and shows the result there in a moment; this page cannot tell you that result.",
		"You can close this window and go back to the chat."},
	connectauth.KindCancelled: {http.StatusOK, "error", "Sign-in cancelled",
		"The sign-in was cancelled or did not succeed, and the chat has been told.",
		"You can close this window and go back to the chat: it shows how to continue."},
	connectauth.KindAlreadyDone: {http.StatusOK, "ok", "Already passed on",
		"This sign-in was already passed on to the chat; nothing more happens here.",
		"You can close this window and go back to the chat."},
	connectauth.KindInProgress: {http.StatusConflict, "wait", "Still passing it on",
		"This sign-in is being passed on to the chat right now.",
		"Reload this page in a few seconds, or go back to the chat."},
	connectauth.KindTryAgain: {http.StatusServiceUnavailable, "error", "Temporary problem",
		"The chat service did not answer, so your sign-in has not been passed on yet.",
		"Wait a moment, then reload this page to try again."},
	connectauth.KindRefused: {http.StatusBadRequest, "error", "This sign-in could not be used",
		"The chat did not accept this sign-in: it may have taken too long, or the chat may have ended.",
		"Go back to the chat and start the sign-in again from there."},
	connectauth.KindFailed: {http.StatusInternalServerError, "error", "Sign-in not passed on",
		"Your sign-in could not be passed on to the chat because of a problem on our side.",
		"Go back to the chat and tell us, or try again later."},
	connectauth.KindBadRequest: {http.StatusBadRequest, "error", "This link is not valid",
		"The sign-in link is incomplete or malformed.",
		"Go back to the chat and start the sign-in again from there, without changing the link."},
}

// msgConnectMethodNotAllowed is the message of a non-GET request.
const msgConnectMethodNotAllowed = "This address only accepts the sign-in service's redirect."
