package flow

import (
	"errors"
	"fmt"
	"github.com/consentflow/consentflow/internal/contract"
)

// Failure names are the error names of package contract (contract.Err*).

// Failure is a named error. Message never contains a secret (no token,
// state, code, task token, cookie, nor an upstream message that might echo
// one), so it is safe for logs, Lambda error output and SendTaskFailure.
type Failure struct {
	Name    string // one of contract.Err*
	Message string
	Err     error // underlying cause, for errors.Is/As only; never printed
}

// Retryable reports whether the failure is transient: its name is one of
// contract.RetryableErrors, which the state machine retries.
func (f *Failure) Retryable() bool { return contract.Retryable(f.Name) }

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
	return &Failure{Name: fallback, Message: "unexpected error", Err: err}
}
