package contract_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/contract"
)

func TestRetryableAgreesWithRetryableErrors(t *testing.T) {
	all := []string{contract.ErrInvalidInput, contract.ErrMisconfigured, contract.ErrThrottled,
		contract.ErrAgentCoreUnavailable, contract.ErrAccessDenied, contract.ErrResourceNotFound,
		contract.ErrUnauthorized, contract.ErrValidationFailed, contract.ErrAuthorizationFailed,
		contract.ErrStoreUnavailable, contract.ErrNotifyFailed, contract.ErrBindingFailed,
		contract.ErrConsentDenied, contract.ErrExpired}
	retryable := contract.RetryableErrors()
	if len(retryable) == 0 {
		t.Fatal("no retryable errors")
	}
	for _, name := range all {
		if !strings.HasPrefix(name, "consentflow.") {
			t.Errorf("%s: error names start with consentflow.", name)
		}
		if got, want := contract.Retryable(name), slices.Contains(retryable, name); got != want {
			t.Errorf("Retryable(%s) = %v, RetryableErrors says %v", name, got, want)
		}
	}
	for _, name := range retryable {
		if !slices.Contains(all, name) {
			t.Errorf("RetryableErrors has unknown name %s", name)
		}
	}
	// The list is a copy: callers cannot change the contract.
	retryable[0] = "x"
	if contract.RetryableErrors()[0] == "x" {
		t.Fatal("RetryableErrors returns shared storage")
	}
}

func TestContinuationErrorNames(t *testing.T) {
	for _, name := range []string{contract.ErrAgentRuntimeThrottled, contract.ErrAgentRuntimeUnavailable,
		contract.ErrAgentRuntimeRejected, contract.ErrAgentRuntimeNotFound, contract.ErrAgentRuntimeAccessDenied,
		contract.ErrAgentResponseTooLarge} {
		if !strings.HasPrefix(name, "consentflow.AgentR") {
			t.Errorf("%s: continuation error names start with consentflow.AgentR", name)
		}
		if contract.Retryable(name) {
			t.Errorf("%s is retried by the authorization task", name)
		}
	}
	if got := contract.ContinuationRetryableErrors(); !slices.Equal(got, []string{contract.ErrAgentRuntimeThrottled}) {
		t.Errorf("ContinuationRetryableErrors = %v", got)
	}
}
