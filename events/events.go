// Package events defines the events consentflow publishes on Amazon
// EventBridge: their source, their detail types and the schema of each
// event's detail, so that applications unmarshal them without redefining
// the structs.
//
// Every event has source Source ("consentflow") and one of three detail
// types:
//
//   - DetailTypeAuthorizationRequired (AuthorizationRequired): a user must
//     open an authorization URL. The initiate function publishes it before
//     the workflow waits; route it to whatever shows the user the link and
//     the verification code.
//   - DetailTypeAuthorizationCompleted (AuthorizationCompleted): a session
//     was completed; its token is in AgentCore Identity's vault.
//   - DetailTypeAuthorizationFailed (AuthorizationFailed): a session ended
//     without a token (denied, expired, binding failed, ...).
//
// The resumer function publishes AuthorizationCompleted and
// AuthorizationFailed for every session that settles, whoever started it:
// the AuthorizeUser state machine, a direct invocation, agentauth, or an
// agent elsewhere (External). Delivery is at least once: the same event may
// arrive more than once, so consumers deduplicate on CorrelationID and the
// detail type. A session that runs out of time while nobody visits its link
// ends without any completion event: its record stays open and reads as
// expired only when someone looks at it. Waiters learn it from their own
// bound: the state machine's task timeout (States.Timeout), agentauth's
// wait bounded by the session's expiry, or ExpiresAt of the
// AuthorizationRequired event.
//
// No event carries a token, the OAuth state, a verification code of a
// settled session, a task token or AgentCore's session URI: CorrelationID is
// the public name of a session, the same in every event, log line and
// workflow result. A session started by the state machine also names its
// execution (ExecutionARN), so a consumer can find the workflow, e.g. with
// DescribeExecution.
//
// The package imports nothing but the standard library.
package events

import (
	"encoding/json"
	"time"
)

// Source is the EventBridge source of every consentflow event.
const Source = "consentflow"

// Detail types (the EventBridge detail-type of each event).
const (
	// DetailTypeAuthorizationRequired is the detail type of
	// AuthorizationRequired.
	DetailTypeAuthorizationRequired = "AuthorizationRequired"
	// DetailTypeAuthorizationCompleted is the detail type of
	// AuthorizationCompleted.
	DetailTypeAuthorizationCompleted = "AuthorizationCompleted"
	// DetailTypeAuthorizationFailed is the detail type of
	// AuthorizationFailed.
	DetailTypeAuthorizationFailed = "AuthorizationFailed"
)

// AuthorizationRequired is the detail of an AuthorizationRequired event:
// what an application needs to show the user.
type AuthorizationRequired struct {
	// CorrelationID names the session in every event, log line and
	// workflow result: the caller's correlationId (workflow input), or a
	// random UUID when none was given.
	CorrelationID string `json:"correlationId"`
	// UserID is the user the flow was started for; empty for flows started
	// with a user JWT (the JWT is never published).
	UserID string `json:"userId,omitempty"`
	// Provider is the AgentCore credential provider's name.
	Provider string `json:"provider"`
	// Scopes are the OAuth scopes asked for.
	Scopes []string `json:"scopes"`
	// AuthorizationURL is the link the user opens to consent.
	AuthorizationURL string `json:"authorizationUrl"`
	// ExpiresAt is when the link stops working.
	ExpiresAt time.Time `json:"expiresAt"`
	// VerificationCode is the one-time code the confirmation page asks for
	// (binding modes code and oidc+code); show it next to the link, in the
	// application's own channel. Empty in the other modes.
	VerificationCode string `json:"verificationCode,omitempty"`
	// Context is the JSON object the workflow was started with (input
	// field "context"), unchanged; absent when none was given.
	Context json.RawMessage `json:"context,omitempty"`
	// ExecutionARN is the ARN of the Step Functions execution waiting for
	// the session: consentflow's state machine passes its $$.Execution.Id
	// to initiate (field executionArn beside the task token). Absent when
	// initiate was invoked without one (directly, by agentauth, or by a
	// workflow of your own that does not pass it).
	ExecutionARN string `json:"executionArn,omitempty"`
}

// AuthorizationCompleted is the detail of an AuthorizationCompleted event:
// a session was completed and its token is in the vault.
type AuthorizationCompleted struct {
	// CorrelationID names the session (as in its AuthorizationRequired).
	CorrelationID string `json:"correlationId"`
	// UserID is the user the flow was started for; empty for flows started
	// with a user JWT and for External sessions.
	UserID string `json:"userId,omitempty"`
	// Provider is the AgentCore credential provider's name; empty for
	// External sessions (consentflow does not know it).
	Provider string `json:"provider,omitempty"`
	// Scopes are the OAuth scopes asked for; always present, empty for
	// External sessions.
	Scopes []string `json:"scopes"`
	// External is true for a session consentflow did not start (an agent
	// in AgentCore Runtime or a Gateway target started it with the
	// callback URL).
	External bool `json:"external,omitempty"`
	// At is when the session settled (the settling write's time, to the
	// second).
	At time.Time `json:"at"`
	// Context is the JSON object the workflow was started with (input
	// field "context"), unchanged; absent when none was given.
	Context json.RawMessage `json:"context,omitempty"`
	// ExecutionARN is the ARN of the Step Functions execution that waited
	// for the session (as in its AuthorizationRequired); absent for
	// sessions started without one and for External sessions.
	ExecutionARN string `json:"executionArn,omitempty"`
}

// AuthorizationFailed is the detail of an AuthorizationFailed event: a
// session ended without a token.
type AuthorizationFailed struct {
	// CorrelationID names the session (as in its AuthorizationRequired).
	CorrelationID string `json:"correlationId"`
	// UserID is the user the flow was started for; empty for flows started
	// with a user JWT and for External sessions.
	UserID string `json:"userId,omitempty"`
	// Provider is the AgentCore credential provider's name; empty for
	// External sessions.
	Provider string `json:"provider,omitempty"`
	// Scopes are the OAuth scopes asked for; always present, empty for
	// External sessions.
	Scopes []string `json:"scopes"`
	// External is true for a session consentflow did not start.
	External bool `json:"external,omitempty"`
	// At is when the session settled (the settling write's time, to the
	// second).
	At time.Time `json:"at"`
	// Reason is the error name the session ended with, the same a waiting
	// workflow task fails with: "consentflow.ConsentDenied" (the user or
	// the provider refused), "consentflow.BindingFailed" (five wrong
	// verification codes), "consentflow.Expired" (the link ran out while
	// someone was at it), "consentflow.AuthorizationFailed" (AgentCore
	// refused the completion), or another consentflow.* name.
	Reason string `json:"reason"`
	// Context is the JSON object the workflow was started with (input
	// field "context"), unchanged; absent when none was given.
	Context json.RawMessage `json:"context,omitempty"`
	// ExecutionARN is the ARN of the Step Functions execution that waited
	// for the session (as in its AuthorizationRequired); absent for
	// sessions started without one and for External sessions.
	ExecutionARN string `json:"executionArn,omitempty"`
}
