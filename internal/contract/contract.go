// Package contract is the one source of the names that both sides of
// consentflow use: the CDK stack (infra) that creates the resources and
// configures the functions, and the functions, local stand-ins and tests that
// use them. Environment variables, error names (and which are retryable),
// event source and detail types, the sessions table's key and TTL
// attributes, the callback route and the session validity.
//
// It imports nothing but the standard library's time package, so the CDK
// app, the Lambda binaries and the tests can all depend on it.
package contract

import "time"

// Environment variables the stack sets on the functions.
const (
	// EnvSessionsTable names the DynamoDB sessions table (both functions).
	EnvSessionsTable = "SESSIONS_TABLE"
	// EnvWorkloadName names the AgentCore workload identity (initiate).
	EnvWorkloadName = "WORKLOAD_NAME"
	// EnvReturnURL is the callback URL registered on the workload identity (initiate).
	EnvReturnURL = "RETURN_URL"
	// EnvEventBusName names the EventBridge bus for events (initiate).
	EnvEventBusName = "EVENT_BUS_NAME"
	// EnvBindingMode selects the session binding (both functions).
	EnvBindingMode = "BINDING_MODE"
	// EnvUserTokenCookie names the cookie with the browser's application JWT (callback).
	EnvUserTokenCookie = "USER_TOKEN_COOKIE"
)

// Defaults for optional settings.
const (
	// DefaultEventBusName is the bus used when EnvEventBusName is unset.
	DefaultEventBusName = "default"
	// DefaultUserTokenCookie is the cookie read when EnvUserTokenCookie is unset.
	DefaultUserTokenCookie = "id_token"
)

// Session binding modes (EnvBindingMode).
const (
	// BindingCode asks the browser for the one-time verification code.
	BindingCode = "code"
	// BindingNone completes without proof (single-user setups only).
	BindingNone = "none"
)

// Error names: the Lambda errorType of initiate and the error of
// SendTaskFailure, on which a state machine Retries or Catches.
const (
	ErrInvalidInput         = "consentflow.InvalidInput"
	ErrMisconfigured        = "consentflow.Misconfigured"
	ErrThrottled            = "consentflow.Throttled"
	ErrAgentCoreUnavailable = "consentflow.AgentCoreUnavailable"
	ErrAccessDenied         = "consentflow.AccessDenied"
	ErrResourceNotFound     = "consentflow.ResourceNotFound"
	ErrUnauthorized         = "consentflow.Unauthorized"
	ErrValidationFailed     = "consentflow.ValidationFailed"
	ErrAuthorizationFailed  = "consentflow.AuthorizationFailed"
	ErrStoreUnavailable     = "consentflow.StoreUnavailable"
	ErrNotifyFailed         = "consentflow.NotifyFailed"
	ErrBindingFailed        = "consentflow.BindingFailed"
	ErrConsentDenied        = "consentflow.ConsentDenied"
	ErrExpired              = "consentflow.Expired"
)

// RetryableErrors returns the error names a state machine should retry: the
// transient ones. Every other name is final.
func RetryableErrors() []string {
	return []string{ErrThrottled, ErrAgentCoreUnavailable, ErrStoreUnavailable, ErrNotifyFailed}
}

// Retryable reports whether the error name is in RetryableErrors.
func Retryable(name string) bool {
	switch name {
	case ErrThrottled, ErrAgentCoreUnavailable, ErrStoreUnavailable, ErrNotifyFailed:
		return true
	}
	return false
}

// Events the initiate function publishes to EventBridge.
const (
	// EventSource is the source of every consentflow event.
	EventSource = "consentflow"
	// DetailTypeAuthorizationRequired: a user must open the authorization URL.
	DetailTypeAuthorizationRequired = "AuthorizationRequired"
)

// The sessions table's schema.
const (
	// AttrPK is the partition key attribute (type S); there is no sort key.
	AttrPK = "pk"
	// AttrTTL is the TTL attribute (epoch seconds, type N).
	AttrTTL = "ttl"
)

// CallbackPath is the callback route of the HTTP API: AgentCore redirects
// the browser to it (GET), and the confirmation form posts to it (POST).
const CallbackPath = "/oauth2/callback"

// SessionValidity is how long AgentCore keeps an authorization URL and its
// session usable: 10 minutes.
const SessionValidity = 10 * time.Minute
