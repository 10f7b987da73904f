package flow_test

import (
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/testenv/storetest"
)

// The in-memory fake the domain's tests use follows the same contract as
// the DynamoDB store (internal/state runs the same suite).
func TestMemStoreConformance(t *testing.T) {
	storetest.Run(t, func(_ *testing.T, clock func() time.Time) flow.SessionStore {
		return newMemStore(clock)
	})
}
