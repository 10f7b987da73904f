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
	// EnvEventBusName names the EventBridge bus for events (initiate:
	// AuthorizationRequired; resumer: AuthorizationCompleted and
	// AuthorizationFailed).
	EnvEventBusName = "EVENT_BUS_NAME"
	// EnvBindingMode selects the session binding (both functions).
	EnvBindingMode = "BINDING_MODE"
	// EnvUserTokenCookie names the cookie with the browser's application JWT (callback).
	EnvUserTokenCookie = "USER_TOKEN_COOKIE"
	// EnvUserTokenIssuer is the OpenID Connect issuer of the users' JWTs
	// (both functions). It enables JWT-cookie binding: flows started with a
	// userToken are refused without it, and the callback verifies the
	// cookie's JWT against the issuer's keys (discovery, JWKS).
	EnvUserTokenIssuer = "USER_TOKEN_ISSUER"
	// EnvUserTokenAudience is the audience (client id) the users' JWTs must
	// carry (callback; required with EnvUserTokenIssuer).
	EnvUserTokenAudience = "USER_TOKEN_AUDIENCE"

	// EnvOIDCIssuer is the issuer URL of the application's OpenID Connect
	// provider, for the oidc binding modes (callback).
	EnvOIDCIssuer = "OIDC_ISSUER"
	// EnvOIDCClientID is consentflow's client id at that provider (callback).
	EnvOIDCClientID = "OIDC_CLIENT_ID"
	// EnvOIDCClientSecretName names the Secrets Manager secret (name or
	// ARN) holding the client secret; unset for a public client (callback).
	EnvOIDCClientSecretName = "OIDC_CLIENT_SECRET_NAME"
	// EnvOIDCUserClaim is the ID token claim that identifies the user
	// (default DefaultOIDCUserClaim; "email" only counts when
	// email_verified is true) (callback).
	EnvOIDCUserClaim = "OIDC_USER_CLAIM"
	// EnvOIDCUserPrefix is put before the claim's value to form the userId
	// the flow was started with, e.g. "cognito|" (callback).
	EnvOIDCUserPrefix = "OIDC_USER_PREFIX"
	// EnvOIDCPrompt is the OpenID Connect prompt of the first sign-in
	// ("", "none", "login", "consent", "select_account"); switching account
	// always uses "select_account" (callback).
	EnvOIDCPrompt = "OIDC_PROMPT"
	// EnvOIDCScopes are the scopes asked for at sign-in, space separated
	// (default DefaultOIDCScopes) (callback).
	EnvOIDCScopes = "OIDC_SCOPES"
	// EnvExternalSessions, when "true", lets the callback complete sessions
	// it did not start (agents in AgentCore Runtime, Gateway targets) with
	// a strong binding (oidc) (callback).
	EnvExternalSessions = "EXTERNAL_SESSIONS"

	// EnvConnectInstanceID is the Amazon Connect instance whose chats
	// authenticate customers through consentflow (callback). When set, the
	// callback serves ConnectCallbackPath and forwards each Cognito redirect
	// to that instance with UpdateParticipantAuthentication; unset, the
	// route does not exist. The instance id, not its ARN (1-100 characters,
	// the model's InstanceId).
	EnvConnectInstanceID = "CONNECT_INSTANCE_ID"
	// EnvConnectRegion is the Region of that instance (callback; default:
	// the function's own Region).
	EnvConnectRegion = "CONNECT_REGION"
)

// Defaults for optional settings.
const (
	// DefaultEventBusName is the bus used when EnvEventBusName is unset.
	DefaultEventBusName = "default"
	// DefaultUserTokenCookie is the cookie read when EnvUserTokenCookie is unset.
	DefaultUserTokenCookie = "id_token"
	// DefaultOIDCUserClaim is the claim read when EnvOIDCUserClaim is unset.
	DefaultOIDCUserClaim = "sub"
	// DefaultOIDCScopes are asked for when EnvOIDCScopes is unset.
	DefaultOIDCScopes = "openid email profile"
)

// Session binding modes (EnvBindingMode).
const (
	// BindingCode asks the browser for the one-time verification code.
	BindingCode = "code"
	// BindingNone completes without proof (single-user setups only).
	BindingNone = "none"
	// BindingOIDC signs the browser in at the application's OpenID Connect
	// provider; the verified user must be the one who started the flow.
	BindingOIDC = "oidc"
	// BindingOIDCCode asks for both: sign-in and the verification code.
	BindingOIDCCode = "oidc+code"
)

// BindingModes lists every binding mode, the default first.
func BindingModes() []string {
	return []string{BindingCode, BindingOIDC, BindingOIDCCode, BindingNone}
}

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
	// ErrOutcomeUnknown: the session expired while a completion's outcome
	// was unknown (its answer was lost and AgentCore's vault could not be
	// asked): the token may be in the vault, so a new run may find it.
	ErrOutcomeUnknown = "consentflow.OutcomeUnknown"
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

// Events consentflow publishes to EventBridge: the initiate function
// AuthorizationRequired, the resumer function AuthorizationCompleted and
// AuthorizationFailed. The public package events repeats these names with
// the detail schemas (its test keeps them equal; contract imports nothing
// of the module).
const (
	// EventSource is the source of every consentflow event.
	EventSource = "consentflow"
	// DetailTypeAuthorizationRequired: a user must open the authorization URL.
	DetailTypeAuthorizationRequired = "AuthorizationRequired"
	// DetailTypeAuthorizationCompleted: a session was completed (its token is in the vault).
	DetailTypeAuthorizationCompleted = "AuthorizationCompleted"
	// DetailTypeAuthorizationFailed: a session ended without a token (denied, expired, ...).
	DetailTypeAuthorizationFailed = "AuthorizationFailed"
)

// The sessions table's schema.
const (
	// AttrPK is the partition key attribute (type S); there is no sort key.
	AttrPK = "pk"
	// AttrTTL is the TTL attribute (epoch seconds, type N).
	AttrTTL = "ttl"
	// StreamViewType is the view type of the table's stream, which the
	// resumer reads: the new image holds a settled session's outbox, and
	// the write whose old image is still open is the one that settled it
	// (its completion event).
	StreamViewType = "NEW_AND_OLD_IMAGES"
)

// CallbackPath is the callback route of the HTTP API: AgentCore redirects
// the browser to it (GET), and the confirmation form posts to it (POST).
const CallbackPath = "/oauth2/callback"

// LoginCallbackPath is the route the application's OpenID Connect provider
// redirects the browser to after sign-in (GET), and where a signed-in
// browser asks to sign in with another account (POST). Its URL (the
// callback URL's origin + this path) is the redirect URI to register at
// the provider.
const LoginCallbackPath = "/oauth2/login/callback"

// ConnectCallbackPath is the route Amazon Cognito redirects a customer's
// browser to after the sign-in of an Amazon Connect chat's "Authenticate
// Customer" block (GET, with code and state, or error and
// error_description). Its URL (the callback URL's origin + this path) is
// the redirect URI to configure in the Cognito app client. It exists only
// when EnvConnectInstanceID is set.
const ConnectCallbackPath = "/connect/callback"

// LoginCookie prefixes the cookies that bind sign-ins to the browser that
// started them (Secure, HttpOnly, SameSite=Lax, Path=/): one cookie per
// sign-in, named LoginCookie + "-" + a part of its OpenID state.
const LoginCookie = "__Host-consentflow-login"

// LoginValidity is how long a sign-in may take, from the confirmation
// page's button to the provider's redirect back.
const LoginValidity = 5 * time.Minute

// SessionValidity is how long AgentCore keeps an authorization URL and its
// session usable: 10 minutes.
const SessionValidity = 10 * time.Minute

// Continuing the agent after consent (the ContinueAgent step, functions/continue).
const (
	// EnvAgentRuntimeARNs lists the AgentCore Runtime ARNs a workflow may
	// continue with (comma-separated; initiate refuses a continueWith naming
	// another runtime, and the continue function does not call it).
	EnvAgentRuntimeARNs = "AGENT_RUNTIME_ARNS"

	// ErrAgentRuntimeThrottled: InvokeAgentRuntime was throttled
	// (ThrottlingException, ServiceQuotaExceededException,
	// RetryableConflictException): nothing ran; the state machine retries it.
	ErrAgentRuntimeThrottled = "consentflow.AgentRuntimeThrottled"
	// ErrAgentRuntimeUnavailable: InvokeAgentRuntime failed with a server
	// error or no answer; the agent may have run, so it is not retried.
	ErrAgentRuntimeUnavailable = "consentflow.AgentRuntimeUnavailable"
	// ErrAgentRuntimeRejected: the runtime refused the request
	// (ValidationException) or the agent failed it (RuntimeClientError).
	ErrAgentRuntimeRejected = "consentflow.AgentRuntimeRejected"
	// ErrAgentRuntimeNotFound: no such agent runtime (or qualifier).
	ErrAgentRuntimeNotFound = "consentflow.AgentRuntimeNotFound"
	// ErrAgentRuntimeAccessDenied: the continue function's role may not
	// invoke the runtime (for that user).
	ErrAgentRuntimeAccessDenied = "consentflow.AgentRuntimeAccessDenied"
	// ErrContinuationNeedsConsent: the vault already held the user's token,
	// so nobody consented in this workflow, and the ContinueAgent step does
	// not invoke the agent for the user (the state machine's
	// continuationError; the continue function refuses such an input).
	ErrContinuationNeedsConsent = "consentflow.ContinuationNeedsConsent"
	// ErrAgentResponseTooLarge: the agent's answer exceeded the bytes the
	// continue function reads.
	ErrAgentResponseTooLarge = "consentflow.AgentResponseTooLarge"
)

// Sending the person back to the application from the success page.
const (
	// EnvAppReturnURLs lists the application URLs a workflow may name as
	// its returnTo (comma-separated, each an absolute https URL; http only
	// for 127.0.0.1/localhost in local runs) (initiate and callback).
	// Initiate refuses a returnTo that is not exactly one of them, or any
	// when unset; the callback shows the success page's link back only for
	// a returnTo still in its own list.
	EnvAppReturnURLs = "APP_RETURN_URLS"
	// MaxAppReturnURLs bounds how many URLs EnvAppReturnURLs may list.
	MaxAppReturnURLs = 10
)

// ContinuationRetryableErrors are the ContinueAgent step's retried error
// names: only those after which the agent certainly did not run.
func ContinuationRetryableErrors() []string {
	return []string{ErrAgentRuntimeThrottled}
}
