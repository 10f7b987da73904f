package contract

import (
	"regexp"
	"strings"
)

// DefaultRuntimeEndpoint is the endpoint InvokeAgentRuntime uses without a
// qualifier.
const DefaultRuntimeEndpoint = "DEFAULT"

// AgentRuntimeTarget is one entry of the agent runtimes a workflow may
// continue with (EnvAgentRuntimeARNs, CDK context agentRuntimeArns): an
// AgentCore Runtime ARN, which allows its DEFAULT endpoint, or a runtime
// endpoint ARN (<runtime ARN>/runtime-endpoint/<name>), which allows that
// endpoint. AgentCore authorizes InvokeAgentRuntime on both the runtime and
// the endpoint, so the IAM grant names both (IAMResources).
type AgentRuntimeTarget struct {
	// RuntimeARN is arn:<partition>:bedrock-agentcore:<region>:<account>:runtime/<id>.
	RuntimeARN string
	Region     string
	Account    string
	// ID is the agent runtime id (<name>-<10 characters>).
	ID string
	// Endpoint is the endpoint name (the InvokeAgentRuntime qualifier);
	// DefaultRuntimeEndpoint for a runtime ARN.
	Endpoint string
}

// The AgentCore Runtime ARN (the control plane's AgentRuntimeArn, no
// wildcards) and an endpoint of it (the endpoint name pattern of
// CreateAgentRuntimeEndpoint).
var (
	agentRuntimeARNRE = regexp.MustCompile(`^arn:aws[a-z-]{0,20}:bedrock-agentcore:([a-z0-9-]{1,30}):([0-9]{12}):runtime/([a-zA-Z][a-zA-Z0-9_]{0,99}-[a-zA-Z0-9]{10})(?:/runtime-endpoint/([a-zA-Z][a-zA-Z0-9_]{0,47}))?$`)
	endpointNameRE    = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,47}$`)
)

// ParseAgentRuntimeTarget reads a runtime ARN or a runtime endpoint ARN.
func ParseAgentRuntimeTarget(s string) (AgentRuntimeTarget, bool) {
	m := agentRuntimeARNRE.FindStringSubmatch(s)
	if m == nil {
		return AgentRuntimeTarget{}, false
	}
	t := AgentRuntimeTarget{RuntimeARN: s, Region: m[1], Account: m[2], ID: m[3], Endpoint: m[4]}
	if t.Endpoint == "" {
		t.Endpoint = DefaultRuntimeEndpoint
	} else {
		t.RuntimeARN = s[:strings.Index(s, "/runtime-endpoint/")]
	}
	return t, true
}

// ParseAgentRuntimeARN reads a runtime ARN (not an endpoint's): what
// InvokeAgentRuntime's agentRuntimeArn names.
func ParseAgentRuntimeARN(s string) (AgentRuntimeTarget, bool) {
	t, ok := ParseAgentRuntimeTarget(s)
	if !ok || t.RuntimeARN != s {
		return AgentRuntimeTarget{}, false
	}
	return t, true
}

// ValidRuntimeEndpointName reports whether s is an endpoint name (an
// InvokeAgentRuntime qualifier): a letter, then up to 47 letters, digits
// and '_'.
func ValidRuntimeEndpointName(s string) bool { return endpointNameRE.MatchString(s) }

// EndpointARN is the ARN of t's endpoint.
func (t AgentRuntimeTarget) EndpointARN() string {
	return t.RuntimeARN + "/runtime-endpoint/" + t.Endpoint
}

// IAMResources are the resources an identity policy must allow
// InvokeAgentRuntime (and InvokeAgentRuntimeForUser) on for t: the runtime
// and its endpoint.
func (t AgentRuntimeTarget) IAMResources() []string {
	return []string{t.RuntimeARN, t.EndpointARN()}
}

// Allows reports whether t permits invoking the runtime named by arn, or
// by id in account (arn == ""), at endpoint qualifier ("" is the DEFAULT
// endpoint). For the id form, region (the caller's, when not empty) must
// be t's.
func (t AgentRuntimeTarget) Allows(arn, account, id, qualifier, region string) bool {
	if qualifier == "" {
		qualifier = DefaultRuntimeEndpoint
	}
	if qualifier != t.Endpoint {
		return false
	}
	if arn != "" {
		return arn == t.RuntimeARN
	}
	return account == t.Account && id == t.ID && (region == "" || region == t.Region)
}
