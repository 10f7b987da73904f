package emulator

import (
	"encoding/json"
	"os"
	"reflect"
	"sort"
	"testing"
)

// EnvModel names the AWS service model of AgentCore Identity's data plane
// (bedrock-agentcore-identity.model.json, Smithy JSON AST, apiVersion
// 2024-02-28) that the constraint table is cross-checked against. The model
// is not part of this repository; CI sets the variable.
const EnvModel = "AGENTCORE_IDENTITY_MODEL"

type modelShape struct {
	Type     string   `json:"type"`
	Min      *int     `json:"min"`
	Max      *int     `json:"max"`
	Pattern  string   `json:"pattern"`
	Enum     []string `json:"enum"`
	Required []string `json:"required"`
	Union    bool     `json:"union"`
	Member   *struct {
		Shape string `json:"shape"`
	} `json:"member"`
	Key *struct {
		Shape string `json:"shape"`
	} `json:"key"`
	Value *struct {
		Shape string `json:"shape"`
	} `json:"value"`
	Members map[string]struct {
		Shape string `json:"shape"`
	} `json:"members"`
	Sensitive bool `json:"sensitive"`
}

// TestConstraintTableMatchesModel cross-checks the hand-written table against the AWS
// model file; it is skipped when the file is not there.
func TestConstraintTableMatchesModel(t *testing.T) {
	p := os.Getenv(EnvModel)
	if p == "" {
		t.Skipf("%s is not set: to cross-check the constraint table, run with %s=/path/to/bedrock-agentcore-identity.model.json (the AWS service model, as in the aws-sdk-go-v2 or api-models-aws repositories)", EnvModel, EnvModel)
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
			Input struct {
				Shape string `json:"shape"`
			} `json:"input"`
		} `json:"operations"`
		Shapes map[string]modelShape `json:"shapes"`
	}
	if err := json.Unmarshal(b, &model); err != nil {
		t.Fatal(err)
	}
	// Routes.
	for path, r := range routes {
		op, ok := model.Operations[r.op]
		if !ok {
			t.Errorf("operation %s not in model", r.op)
			continue
		}
		if op.HTTP.Method != "POST" || op.HTTP.RequestURI != path || op.Input.Shape != r.input {
			t.Errorf("%s: model says %s %s input %s; table says POST %s input %s", r.op, op.HTTP.Method, op.HTTP.RequestURI, op.Input.Shape, path, r.input)
		}
	}
	// Every shape reachable from the six identity inputs (and InvokeAgentRuntime's
	// headers) must be in the table, identical.
	seen := map[string]bool{}
	var visit func(name string)
	visit = func(name string) {
		if seen[name] {
			return
		}
		seen[name] = true
		m, ok := model.Shapes[name]
		if !ok {
			t.Errorf("shape %s not in model", name)
			return
		}
		s, ok := shapes[name]
		if !ok {
			t.Errorf("shape %s missing from the constraint table", name)
			return
		}
		switch m.Type {
		case "string":
			if s.kind != kString {
				t.Errorf("%s: kind", name)
			}
			wantMin, wantMax := -1, -1
			if m.Min != nil {
				wantMin = *m.Min
			}
			if m.Max != nil {
				wantMax = *m.Max
			}
			if s.min != wantMin || s.max != wantMax {
				t.Errorf("%s: length %d..%d, model %d..%d", name, s.min, s.max, wantMin, wantMax)
			}
			if s.pattern != m.Pattern {
				t.Errorf("%s: pattern %q, model %q", name, s.pattern, m.Pattern)
			}
			if !reflect.DeepEqual(s.enum, m.Enum) && !(len(s.enum) == 0 && len(m.Enum) == 0) {
				t.Errorf("%s: enum %v, model %v", name, s.enum, m.Enum)
			}
			if s.sensitive != m.Sensitive {
				t.Errorf("%s: sensitive %v, model %v", name, s.sensitive, m.Sensitive)
			}
		case "boolean":
			if s.kind != kBoolean {
				t.Errorf("%s: kind", name)
			}
		case "list":
			if s.kind != kList || s.member != m.Member.Shape {
				t.Errorf("%s: list of %s, model %s", name, s.member, m.Member.Shape)
			}
			visit(m.Member.Shape)
		case "map":
			if s.kind != kMap || s.key != m.Key.Shape || s.val != m.Value.Shape {
				t.Errorf("%s: map", name)
			}
			visit(m.Key.Shape)
			visit(m.Value.Shape)
		case "structure":
			wantKind := kStructure
			if m.Union {
				wantKind = kUnion
			}
			if s.kind != wantKind {
				t.Errorf("%s: union=%v in model", name, m.Union)
			}
			var got, want, gotReq []string
			for _, mem := range s.members {
				got = append(got, mem.name+":"+mem.shape)
				if mem.required {
					gotReq = append(gotReq, mem.name)
				}
			}
			for mn, ms := range m.Members {
				want = append(want, mn+":"+ms.Shape)
				visit(ms.Shape)
			}
			wantReq := append([]string(nil), m.Required...)
			sort.Strings(got)
			sort.Strings(want)
			sort.Strings(gotReq)
			sort.Strings(wantReq)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: members %v, model %v", name, got, want)
			}
			if !reflect.DeepEqual(gotReq, wantReq) && !(len(gotReq) == 0 && len(wantReq) == 0) {
				t.Errorf("%s: required %v, model %v", name, gotReq, wantReq)
			}
		default:
			t.Errorf("%s: unhandled model type %s", name, m.Type)
		}
	}
	for _, r := range routes {
		visit(r.input)
	}
	// InvokeAgentRuntime: its header and query members (runtime.go).
	for _, h := range runtimeHeaders {
		visit(h.shape)
	}
	visit("InvokeAgentRuntimeRequestAccountIdString")
	for name := range shapes {
		if !seen[name] {
			t.Errorf("table shape %s is not used by any of the seven inputs", name)
		}
	}
	// Output enums the emulator emits.
	if ss := model.Shapes["SessionStatus"].Enum; !reflect.DeepEqual(ss, []string{"IN_PROGRESS", "FAILED"}) {
		t.Errorf("SessionStatus enum changed: %v", ss)
	}
}
