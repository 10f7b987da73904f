package stack

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/jsii-runtime-go"

	"github.com/consentflow/consentflow/internal/contract"
)

// Without agentRuntimeArns nothing of the continuation exists: no function, no step, no
// permission, and initiate refuses continueWith (no AGENT_RUNTIME_ARNS).
func TestNoContinuationWithoutAgentRuntimes(t *testing.T) {
	for name, s := range variants() {
		if name == "agents" {
			continue
		}
		need(t, s)
		if s.cf.Continue != nil || s.cf.ContinueRole != nil {
			t.Errorf("%s: a continue function without agent runtimes", name)
		}
		states := definition(t, s)["States"].(map[string]any)
		for _, st := range []string{"ContinueWithAgent", "ContinueAgent", "ContinuationFailed", "AuthorizationOnly"} {
			if states[st] != nil {
				t.Errorf("%s: state %s without agent runtimes", name, st)
			}
		}
		if rp := states["RequestAuthorization"].(map[string]any)["ResultPath"]; rp != nil {
			t.Errorf("%s: RequestAuthorization ResultPath %v: the output must stay the authorization's result", name, rp)
		}
		for _, st := range s.statements() {
			for _, a := range st.actions {
				if strings.HasPrefix(a, "bedrock-agentcore:InvokeAgentRuntime") {
					t.Errorf("%s: %s/%s grants %s", name, st.policy, st.sid, a)
				}
			}
		}
		_, fn := s.one(t, "AWS::Lambda::Function", "Initiate")
		if env := props(fn)["Environment"].(map[string]any)["Variables"].(map[string]any); env[contract.EnvAgentRuntimeARNs] != nil {
			t.Errorf("%s: initiate has %s", name, contract.EnvAgentRuntimeARNs)
		}
	}
}

func TestContinueAgentDefinition(t *testing.T) {
	need(t, &agents)
	def := definition(t, &agents)
	states := def["States"].(map[string]any)
	st := func(name string) map[string]any {
		s, ok := states[name].(map[string]any)
		if !ok {
			t.Fatalf("no state %s in %v", name, states)
		}
		return s
	}
	req := st("RequestAuthorization")
	if req["ResultPath"] != "$.authorization" || req["Next"] != "ContinueWithAgent" {
		t.Errorf("RequestAuthorization ResultPath %v Next %v", req["ResultPath"], req["Next"])
	}
	// The authorization's own catchers are unchanged: a failed authorization still fails.
	if n := len(req["Catch"].([]any)); n != 6 {
		t.Errorf("RequestAuthorization has %d catchers", n)
	}
	// The agent is invoked only with continueWith and after a consent in this execution; with
	// continueWith and a token that was already in the vault, the execution ends with a
	// continuationError and no invocation.
	choice := st("ContinueWithAgent")
	rules, _ := json.Marshal(choice["Choices"])
	wantRules := `[{"And":[{"IsPresent":true,"Variable":"$.continueWith"},{"And":[{"IsPresent":true,"Variable":"$.authorization.consented"},` +
		`{"BooleanEquals":true,"Variable":"$.authorization.consented"}]}],"Next":"ContinueAgent"},` +
		`{"IsPresent":true,"Next":"NotContinuedWithoutConsent","Variable":"$.continueWith"}]`
	if choice["Type"] != "Choice" || string(rules) != wantRules || choice["Default"] != "AuthorizationOnly" {
		t.Errorf("ContinueWithAgent = %s, default %v", rules, choice["Default"])
	}
	nc := st("NotContinuedWithoutConsent")
	if res, _ := nc["Result"].(map[string]any); nc["Type"] != "Pass" || nc["ResultPath"] != "$.continuationError" ||
		res["Error"] != contract.ErrContinuationNeedsConsent || nc["Next"] != "ContinuationFailed" {
		t.Errorf("NotContinuedWithoutConsent = %v", nc)
	}
	// Without continueWith: the output is the authorization's result, as without agent runtimes.
	only := st("AuthorizationOnly")
	if only["Type"] != "Pass" || only["OutputPath"] != "$.authorization" || only["Next"] != "Authorized" || st("Authorized")["Type"] != "Succeed" {
		t.Errorf("AuthorizationOnly = %v", only)
	}

	step := st("ContinueAgent")
	continueID, _ := agents.one(t, "AWS::Lambda::Function", "Continue")
	if step["Type"] != "Task" || !strings.HasSuffix(str(step["Resource"]), ":function:"+continueID) {
		t.Errorf("ContinueAgent resource %v, want the continue function", step["Resource"])
	}
	params := step["Parameters"].(map[string]any)
	if params["continueWith.$"] != "$.continueWith" || params["authorization.$"] != "$.authorization" ||
		params["executionId.$"] != "$$.Execution.Id" || len(params) != 3 {
		t.Errorf("ContinueAgent Parameters = %v", params)
	}
	if step["ResultPath"] != "$.continuation" || step["Next"] != "Continued" {
		t.Errorf("ContinueAgent ResultPath %v Next %v", step["ResultPath"], step["Next"])
	}
	var retried []string
	for _, r := range step["Retry"].([]any) {
		for _, e := range r.(map[string]any)["ErrorEquals"].([]any) {
			retried = append(retried, e.(string))
		}
	}
	sort.Strings(retried)
	// Only errors after which the agent certainly did not run.
	want := append(append([]string{}, contract.ContinuationRetryableErrors()...), LambdaThrottled)
	sort.Strings(want)
	if !slices.Equal(retried, want) {
		t.Errorf("ContinueAgent retries %v, want %v (never AgentRuntimeUnavailable: the agent may have run)", retried, want)
	}
	catches := step["Catch"].([]any)
	c := catches[0].(map[string]any)
	if len(catches) != 1 || fmt.Sprint(c["ErrorEquals"]) != "[States.ALL]" || c["Next"] != "ContinuationFailed" || c["ResultPath"] != "$.continuationError" {
		t.Errorf("ContinueAgent catchers = %v", catches)
	}
	failed := st("ContinuationFailed")
	fp := failed["Parameters"].(map[string]any)
	if fp["authorization.$"] != "$.authorization" || fp["continuationError.$"] != "$.continuationError" || len(fp) != 2 ||
		failed["Next"] != "AuthorizedContinuationFailed" || st("AuthorizedContinuationFailed")["Type"] != "Succeed" {
		t.Errorf("ContinuationFailed = %v", failed)
	}
	done := st("Continued")
	dp := done["Parameters"].(map[string]any)
	if dp["authorization.$"] != "$.authorization" || dp["continuation.$"] != "$.continuation" || len(dp) != 2 ||
		done["Next"] != "AuthorizedAndContinued" || st("AuthorizedAndContinued")["Type"] != "Succeed" {
		t.Errorf("Continued = %v", done)
	}
}

func TestContinueFunctionAndIAM(t *testing.T) {
	need(t, &agents)
	_, fn := agents.one(t, "AWS::Lambda::Function", "Continue")
	p := props(fn)
	env := p["Environment"].(map[string]any)["Variables"].(map[string]any)
	if env[contract.EnvAgentRuntimeARNs] != runtimeA+","+runtimeB || p["Timeout"] != float64(continueTimeout) || p["Architectures"] == nil {
		t.Errorf("continue function: env %v timeout %v", env, p["Timeout"])
	}
	_, ini := agents.one(t, "AWS::Lambda::Function", "Initiate")
	if v := props(ini)["Environment"].(map[string]any)["Variables"].(map[string]any)[contract.EnvAgentRuntimeARNs]; v != runtimeA+","+runtimeB {
		t.Errorf("initiate %s = %v", contract.EnvAgentRuntimeARNs, v)
	}
	stmts := roleStatements(t, &agents, "ContinueRole")
	wantActions := []string{"bedrock-agentcore:InvokeAgentRuntime", "bedrock-agentcore:InvokeAgentRuntimeForUser",
		"logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTelemetryRecords", "xray:PutTraceSegments"}
	if got := actionsOf(stmts); !slices.Equal(got, wantActions) {
		t.Errorf("continue role actions %v, want %v", got, wantActions)
	}
	for _, a := range wantActions[:2] {
		// AgentCore authorizes on the runtime and on the endpoint: runtimeA's DEFAULT one,
		// runtimeB's prod one, nothing else.
		want := []string{runtimeA, runtimeA + "/runtime-endpoint/DEFAULT",
			strings.TrimSuffix(runtimeB, "/runtime-endpoint/prod"), runtimeB}
		sort.Strings(want)
		if got := resourcesOf(stmts, a); !slices.Equal(got, want) {
			t.Errorf("%s on %v, want exactly the configured runtimes and endpoints %v", a, got, want)
		}
	}
	// No other role may invoke an agent runtime.
	for _, st := range agents.statements() {
		for _, a := range st.actions {
			if strings.HasPrefix(a, "bedrock-agentcore:InvokeAgentRuntime") && !slices.Contains(wantActions, a) {
				t.Errorf("%s/%s grants %s", st.policy, st.sid, a)
			}
		}
	}
	check(t, "four functions", func() {
		agents.tmpl.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(4))
	})
}

// The agents' managed policy: a workload access token for consentflow's workload identity and
// a user id (never user-less, never for a JWT), the token from the vault for consentflow's
// provider, the provider's secret; attached to no role of the stack; its ARN is an output.
func TestAgentTokenPolicy(t *testing.T) {
	need(t, &agents)
	id, pol := agents.one(t, "AWS::IAM::ManagedPolicy", "AgentTokenPolicy")
	if r := props(pol)["Roles"]; r != nil {
		t.Errorf("attached to %v: the agents' execution roles attach it", r)
	}
	var stmts []stmt
	for _, st := range agents.statements() {
		if st.policy == id {
			stmts = append(stmts, st)
		}
	}
	want := []string{"bedrock-agentcore:GetResourceOauth2Token", "bedrock-agentcore:GetWorkloadAccessTokenForUserId", "secretsmanager:GetSecretValue"}
	if got := actionsOf(stmts); !slices.Equal(got, want) {
		t.Errorf("actions %v, want %v", got, want)
	}
	ini := roleStatements(t, &agents, "InitiateRole")
	for _, a := range want {
		if got, in := resourcesOf(stmts, a), resourcesOf(ini, a); !slices.Equal(got, in) {
			t.Errorf("%s on %v, want initiate's %v", a, got, in)
		}
	}
	outs := agents.tmpl.ToJSON()
	o, _ := (*outs)["Outputs"].(map[string]any)["AgentTokenPolicyArn"].(map[string]any)
	if ref, _ := o["Value"].(map[string]any); ref["Ref"] != id {
		t.Errorf("output AgentTokenPolicyArn = %v", o)
	}
	for name, s := range variants() {
		if name == "agents" {
			continue
		}
		need(t, s)
		if len(s.resources("AWS::IAM::ManagedPolicy")) != 0 {
			t.Errorf("%s: a managed policy without agent runtimes", name)
		}
	}
}
