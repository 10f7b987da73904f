package emulator

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"
)

// InvokeAgentRuntime's path, headers and query members as the emulator
// serves them, against the AWS model (skipped without it, as
// TestConstraintTableMatchesModel).
func TestRuntimeRouteMatchesModel(t *testing.T) {
	p := os.Getenv(EnvModel)
	if p == "" {
		t.Skipf("%s is not set", EnvModel)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var model struct {
		Operations map[string]struct {
			HTTP struct {
				Method     string `json:"method"`
				RequestURI string `json:"requestUri"`
			} `json:"http"`
		} `json:"operations"`
		Shapes map[string]struct {
			Members map[string]struct {
				Shape        string `json:"shape"`
				Location     string `json:"location"`
				LocationName string `json:"locationName"`
			} `json:"members"`
		} `json:"shapes"`
	}
	if err := json.Unmarshal(b, &model); err != nil {
		t.Fatal(err)
	}
	op := model.Operations[OpInvokeAgentRuntime]
	if op.HTTP.Method != "POST" || op.HTTP.RequestURI != "/runtimes/{agentRuntimeArn}/invocations" {
		t.Errorf("model route %s %s", op.HTTP.Method, op.HTTP.RequestURI)
	}
	members := model.Shapes["InvokeAgentRuntimeRequest"].Members
	headers := 0
	for _, m := range members {
		if m.Location == "header" {
			headers++
		}
	}
	if headers != len(runtimeHeaders) {
		t.Errorf("model has %d header members, the emulator knows %d", headers, len(runtimeHeaders))
	}
	for _, h := range runtimeHeaders {
		m, ok := members[h.member]
		if !ok || m.Location != "header" || http.CanonicalHeaderKey(m.LocationName) != http.CanonicalHeaderKey(h.header) || m.Shape != h.shape {
			t.Errorf("%s: model %+v, emulator %s %s", h.member, m, h.header, h.shape)
		}
	}
	for _, q := range []struct{ member, shape string }{{"accountId", "InvokeAgentRuntimeRequestAccountIdString"}, {"qualifier", "String"}} {
		if m := members[q.member]; m.Location != "querystring" || m.LocationName != q.member || m.Shape != q.shape {
			t.Errorf("%s: model %+v", q.member, m)
		}
	}
	if m := members["agentRuntimeArn"]; m.Location != "uri" {
		t.Errorf("agentRuntimeArn: model %+v", m)
	}
}
