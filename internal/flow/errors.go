package flow

import (
	"errors"
	"fmt"
)

// Error names. A state machine Retries or Catches on these (they are the
// Lambda errorType of initiate, and the error of SendTaskFailure).
const (
	ErrNameInvalidInput         = "consentflow.InvalidInput"
	ErrNameMisconfigured        = "consentflow.Misconfigured"
	ErrNameThrottled            = "consentflow.Throttled"
	ErrNameAgentCoreUnavailable = "consentflow.AgentCoreUnavailable"
	ErrNameAccessDenied         = "consentflow.AccessDenied"
	ErrNameResourceNotFound     = "consentflow.ResourceNotFound"
	ErrNameUnauthorized         = "consentflow.Unauthorized"
	ErrNameValidationFailed     = "consentflow.ValidationFailed"
	ErrNameAuthorizationFailed  = "consentflow.AuthorizationFailed"
	ErrNameStoreUnavailable     = "consentflow.StoreUnavailable"
	ErrNameNotifyFailed         = "consentflow.NotifyFailed"
	ErrNameBindingFailed        = "consentflow.BindingFailed"
	ErrNameConsentDenied        = "consentflow.ConsentDenied"
	ErrNameExpired              = "consentflow.Expired"
)

// Failure is a named error. Message never contains a secret (no token,
// state, code, task token, cookie, nor an upstream message that might echo
// one), so it is safe for logs, Lambda error output and SendTaskFailure.
type Failure struct {
	Name      string
	Message   string
	Retryable bool
	Err       error // underlying cause, for errors.Is/As only; never printed
}

func (f *Failure) Error() string { return f.Name + ": " + f.Message }
func (f *Failure) Unwrap() error { return f.Err }

// Fail builds a non-retryable Failure.
func Fail(name, format string, args ...any) *Failure {
	return &Failure{Name: name, Message: fmt.Sprintf(format, args...)}
}

// AsFailure returns err as a *Failure, wrapping an unclassified error as a
// retryable failure with the given fallback name and no message detail.
func AsFailure(err error, fallback string) *Failure {
	var f *Failure
	if errors.As(err, &f) {
		return f
	}
	return &Failure{Name: fallback, Message: "unexpected error", Retryable: true, Err: err}
}
