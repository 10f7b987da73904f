package web

import "github.com/consentflow/consentflow/internal/flow"

// The words of the pages. The domain (package flow) answers with outcomes
// (flow.Kind, flow.Reason); this package alone decides what a person reads.
//
// Note: each Kind's heading, message and next step are still in the specs
// table of pages.go, which this change was not allowed to edit (the
// rendering may change in parallel). When pages.go can change, move that
// table here and let view take its Message from reasonWords instead of
// flow.Outcome.Detail, then drop Detail from flow.Outcome.

// reasonWords replaces a page's default message for outcomes whose Reason
// says more than their Kind.
var reasonWords = map[flow.Reason]string{
	flow.ReasonIncompleteLink:    "The link is incomplete.",
	flow.ReasonMalformedLink:     "The link is malformed.",
	flow.ReasonCompletionRefused: "AgentCore Identity did not accept the authorization.",
	flow.ReasonProviderError:     "The provider reported an error.",
	flow.ReasonMissingCode:       "Enter the verification code you were given, then press Connect.",
}

// Messages for requests the handler refuses before the domain sees them.
const (
	msgMethodNotAllowed = "This address only accepts links from the sign-in flow."
	msgUnreadableForm   = "The form could not be read."
)

// worded returns o with the words for its Reason as Detail (a copy; o is
// left alone). An outcome with no Reason keeps the Detail the handler gave.
func worded(o *flow.Outcome) *flow.Outcome {
	w, ok := reasonWords[o.Reason]
	if !ok {
		return o
	}
	c := *o
	c.Detail = w
	return &c
}
