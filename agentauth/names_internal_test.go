package agentauth

import (
	"testing"

	"github.com/consentflow/consentflow/internal/flow"
)

// The package's flow names are consentflow's (and AWS's).
func TestFlowNames(t *testing.T) {
	if string(UserFederation) != flow.FlowUserFederation || string(M2M) != flow.FlowM2M {
		t.Fatalf("%s %s", UserFederation, M2M)
	}
}
