package agentcoretest

import (
	"testing"

	"github.com/consentflow/consentflow/internal/local/emulator"
)

// The package's own names are the emulator's.
func TestNamesMatchTheEmulator(t *testing.T) {
	for ours, theirs := range map[string]string{
		OpGetWorkloadAccessToken:          emulator.OpGetWorkloadAccessToken,
		OpGetWorkloadAccessTokenForUserID: emulator.OpGetWorkloadAccessTokenForUserID,
		OpGetWorkloadAccessTokenForJWT:    emulator.OpGetWorkloadAccessTokenForJWT,
		OpGetResourceOauth2Token:          emulator.OpGetResourceOauth2Token,
		OpCompleteResourceTokenAuth:       emulator.OpCompleteResourceTokenAuth,
		OpGetResourceAPIKey:               emulator.OpGetResourceAPIKey,
		OpInvokeAgentRuntime:              emulator.OpInvokeAgentRuntime,
		OpAuthorize:                       emulator.OpAuthorize,
		OpConsent:                         emulator.OpConsent,
	} {
		if ours != theirs {
			t.Errorf("%s != %s", ours, theirs)
		}
	}
	if SessionValidity != emulator.SessionTTL {
		t.Errorf("SessionValidity %v, emulator %v", SessionValidity, emulator.SessionTTL)
	}
}
