package agentauth

import (
	"context"
	"errors"
	"fmt"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// ErrConsentRequired is what a *ConsentRequiredError matches with errors.Is.
var ErrConsentRequired = errors.New("user consent required")

// ConsentRequiredError is returned by AccessToken when the user must consent and the
// request asked not to wait (TokenRequest.NoWait, or no OnAuthURL). Show the user
// AuthURL; once they have consented, AccessToken returns the token at once.
type ConsentRequiredError struct {
	// Provider is the credential provider the consent is for.
	Provider string
	// AuthURL is the authorization URL, its verification code and expiry.
	AuthURL AuthURL
}

// Error says that consent is required, without the link or the code.
func (e *ConsentRequiredError) Error() string {
	return "agentauth: " + e.Provider + ": " + ErrConsentRequired.Error()
}

// Unwrap returns ErrConsentRequired.
func (e *ConsentRequiredError) Unwrap() error { return ErrConsentRequired }

// Why an authorization ended without a token: the Err of an *AuthorizationError.
var (
	// ErrConsentDenied: the user refused consent at the provider.
	ErrConsentDenied = errors.New("the user denied consent")
	// ErrExpired: nobody completed the consent while its authorization URL was valid
	// (10 minutes).
	ErrExpired = errors.New("the authorization session expired")
	// ErrBindingFailed: five wrong verification codes were entered at consentflow's
	// callback; the session is closed.
	ErrBindingFailed = errors.New("too many wrong verification codes")
	// ErrAuthorizationFailed: the provider or AgentCore ended the authorization with an
	// error, or AgentCore refused to complete it.
	ErrAuthorizationFailed = errors.New("the authorization failed")
)

// AuthorizationError is returned by AccessToken when the user's authorization ended
// without a token. Err says why; errors.Is matches it.
type AuthorizationError struct {
	// Provider is the credential provider the authorization was for.
	Provider string
	// Err is ErrConsentDenied, ErrExpired, ErrBindingFailed or ErrAuthorizationFailed.
	Err error
}

// Error names the provider and why the authorization ended.
func (e *AuthorizationError) Error() string {
	return "agentauth: " + e.Provider + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *AuthorizationError) Unwrap() error { return e.Err }

// Classes of *APIError, matched with errors.Is.
var (
	// ErrInvalidRequest: the request is malformed or incomplete (checked before any
	// call, or refused by AgentCore as a ValidationException, e.g. a return URL that is
	// not registered on the workload identity).
	ErrInvalidRequest = errors.New("invalid request")
	// ErrThrottled: AgentCore throttled the call beyond the SDK's retries.
	ErrThrottled = errors.New("throttled")
	// ErrAccessDenied: AgentCore or DynamoDB denied the call (IAM permissions, or an
	// invalid or expired session).
	ErrAccessDenied = errors.New("access denied")
	// ErrUnauthorized: AgentCore did not accept the user's token.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotFound: the workload identity or the credential provider does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable: AgentCore or the sessions table failed or could not be reached.
	ErrUnavailable = errors.New("service unavailable")
)

// APIError is a request refused before any call, or a failed call to AgentCore Identity
// or to consentflow's sessions table.
type APIError struct {
	// Err is the class: ErrInvalidRequest, ErrThrottled, ErrAccessDenied,
	// ErrUnauthorized, ErrNotFound or ErrUnavailable.
	Err error
	// Message says what failed. It never holds a credential or a request's values
	// (AWS's own messages, which may quote them, are dropped).
	Message string
}

// Error is Message.
func (e *APIError) Error() string { return "agentauth: " + e.Message }

// Unwrap returns Err.
func (e *APIError) Unwrap() error { return e.Err }

// Retryable reports whether the same call may succeed later (ErrThrottled,
// ErrUnavailable).
func (e *APIError) Retryable() bool {
	return e.Err == ErrThrottled || e.Err == ErrUnavailable
}

func invalidRequest(format string, args ...any) error {
	return &APIError{Err: ErrInvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// classOf maps consentflow's error names (contract.Err*, as classified by
// its AgentCore adapter and its flow) to the APIError classes.
func classOf(name string) error {
	switch name {
	case contract.ErrInvalidInput, contract.ErrValidationFailed, contract.ErrMisconfigured:
		return ErrInvalidRequest
	case contract.ErrThrottled:
		return ErrThrottled
	case contract.ErrAccessDenied:
		return ErrAccessDenied
	case contract.ErrUnauthorized:
		return ErrUnauthorized
	case contract.ErrResourceNotFound:
		return ErrNotFound
	}
	return ErrUnavailable
}

// reasonOf maps a session's failure reason to an AuthorizationError's Err.
func reasonOf(name string) error {
	switch name {
	case contract.ErrConsentDenied:
		return ErrConsentDenied
	case contract.ErrBindingFailed:
		return ErrBindingFailed
	case contract.ErrExpired:
		return ErrExpired
	}
	return ErrAuthorizationFailed
}

// failure turns an error of consentflow's flow or adapters into this
// package's errors. When ctx has ended, that is the error.
func failure(ctx context.Context, provider string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("agentauth: %w", ctx.Err())
	}
	var f *flow.Failure
	if !errors.As(err, &f) {
		return &APIError{Err: ErrUnavailable, Message: "unexpected error"}
	}
	switch f.Name {
	case contract.ErrAuthorizationFailed, contract.ErrConsentDenied, contract.ErrBindingFailed, contract.ErrExpired:
		return &AuthorizationError{Provider: provider, Err: reasonOf(f.Name)}
	case contract.ErrStoreUnavailable:
		return &APIError{Err: ErrUnavailable, Message: "consentflow's sessions table is unavailable"}
	}
	return &APIError{Err: classOf(f.Name), Message: f.Message}
}
