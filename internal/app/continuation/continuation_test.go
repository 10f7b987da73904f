package continuation_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/app/continuation"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/local/emulator"
)

func TestNew(t *testing.T) {
	api := emulator.NewClient("http://127.0.0.1:1")
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for v, ok := range map[string]bool{
		"": false, " , ": false, "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/*": false,
		"arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-0123456789":                                                                       true,
		"arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-0123456789,arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/b-0123456789": true,
	} {
		h, err := continuation.New(api, env(map[string]string{contract.EnvAgentRuntimeARNs: v, "AWS_REGION": "us-east-1"}), slog.New(slog.DiscardHandler))
		if (err == nil) != ok {
			t.Errorf("%q: %v", v, err)
		}
		if err != nil && !strings.Contains(err.Error(), contract.EnvAgentRuntimeARNs) {
			t.Errorf("%q: the error does not name the variable: %v", v, err)
		}
		if ok && (h.Continuer.Region != "us-east-1" || len(h.Continuer.Allowed) == 0) {
			t.Errorf("%q: %+v", v, h.Continuer)
		}
	}
}
