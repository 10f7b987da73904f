package contract

import (
	"slices"
	"testing"
)

func TestParseAgentRuntimeTarget(t *testing.T) {
	const rt = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent_a-a1B2c3D4e5"
	for _, c := range []struct {
		in       string
		endpoint string
		ok       bool
	}{
		{rt, DefaultRuntimeEndpoint, true},
		{rt + "/runtime-endpoint/prod", "prod", true},
		{rt + "/runtime-endpoint/DEFAULT", DefaultRuntimeEndpoint, true},
		{rt + "/runtime-endpoint/*", "", false},
		{rt + "/runtime-endpoint/", "", false},
		{rt + "/runtime-endpoint/a/b", "", false},
		{rt + "/", "", false},
		{"arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/*", "", false},
		{"arn:aws:bedrock-agentcore:us-east-1:123456789012:gateway/agent_a-a1B2c3D4e5", "", false},
	} {
		got, ok := ParseAgentRuntimeTarget(c.in)
		if ok != c.ok || (ok && (got.Endpoint != c.endpoint || got.RuntimeARN != rt || got.Region != "us-east-1" ||
			got.Account != "123456789012" || got.ID != "agent_a-a1B2c3D4e5")) {
			t.Errorf("%q: %+v %v", c.in, got, ok)
		}
	}
	e, _ := ParseAgentRuntimeTarget(rt + "/runtime-endpoint/prod")
	if got := e.IAMResources(); !slices.Equal(got, []string{rt, rt + "/runtime-endpoint/prod"}) {
		t.Errorf("IAM resources %v", got)
	}
	d, _ := ParseAgentRuntimeTarget(rt)
	if !d.Allows(rt, "", "", "", "") || !d.Allows(rt, "", "", "DEFAULT", "") || d.Allows(rt, "", "", "prod", "") ||
		!e.Allows("", "123456789012", "agent_a-a1B2c3D4e5", "prod", "us-east-1") ||
		e.Allows("", "123456789012", "agent_a-a1B2c3D4e5", "prod", "eu-west-1") ||
		e.Allows("", "210987654321", "agent_a-a1B2c3D4e5", "prod", "") {
		t.Error("Allows")
	}
}
