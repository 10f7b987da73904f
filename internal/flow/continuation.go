package flow

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/consentflow/consentflow/internal/contract"
)

// ContinueWith is the workflow input's optional continueWith: the agent in
// AgentCore Runtime that the ContinueAgent step invokes (InvokeAgentRuntime)
// once the user has authorized. It is part of the workflow contract, so
// initiate checks it (Validate, Initiator's allow-list) before anything is
// called; internal/cont invokes it.
type ContinueWith struct {
	// AgentRuntimeARN is the runtime's full ARN; or AgentRuntimeID with
	// AccountID (InvokeAgentRuntime's 2025-10-13 accountId parameter).
	AgentRuntimeARN string `json:"agentRuntimeArn,omitempty"`
	AgentRuntimeID  string `json:"agentRuntimeId,omitempty"`
	AccountID       string `json:"accountId,omitempty"`
	// Qualifier is the runtime endpoint ("" for the default endpoint).
	Qualifier string `json:"qualifier,omitempty"`
	// RuntimeSessionID is the runtime session (33-256 characters); the SDK
	// draws one when empty.
	RuntimeSessionID string `json:"runtimeSessionId,omitempty"`
	// Payload is the JSON sent to the agent (Content-Type
	// application/json), at most MaxContinuePayload bytes as compact JSON.
	Payload json.RawMessage `json:"payload"`
}

// Bounds of continueWith: the model's (SessionType, the accountId pattern)
// and ours (the payload: the model allows 100 MB, a Step Functions state
// carries 256 KiB).
const (
	minRuntimeSessionID = 33
	maxRuntimeSessionID = 256
	MaxContinuePayload  = 64 * 1024
)

var (
	// The AgentCore Runtime ARN and id forms (the control plane's
	// AgentRuntimeId: a name and a 10-character suffix), the endpoint name
	// that qualifies it, and the model's accountId pattern.
	runtimeIDRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,99}-[a-zA-Z0-9]{10}$`)
	accountIDRE = regexp.MustCompile(`^[0-9]{12}$`)
)

// ValidAgentRuntimeARN reports whether s is an AgentCore Runtime ARN
// (arn:<partition>:bedrock-agentcore:<region>:<account>:runtime/<id>).
func ValidAgentRuntimeARN(s string) bool {
	_, ok := contract.ParseAgentRuntimeARN(s)
	return ok
}

// UnmarshalJSON decodes continueWith strictly (exact member names, no
// unknown members) and keeps the payload in the compact form json.Marshal
// gives.
func (c *ContinueWith) UnmarshalJSON(b []byte) error {
	type plain ContinueWith
	var p plain
	if err := strictDecode(b, &p); err != nil {
		if f, ok := err.(*Failure); ok {
			f.Message = "continueWith: " + f.Message
		}
		return err
	}
	if string(p.Payload) == "null" {
		p.Payload = nil
	}
	if len(p.Payload) > 0 {
		pb, err := json.Marshal(p.Payload)
		if err != nil {
			return Fail(contract.ErrInvalidInput, "continueWith.payload is malformed JSON")
		}
		p.Payload = pb
	}
	*c = ContinueWith(p)
	return nil
}

// Validate checks continueWith against the model's constraints.
func (c *ContinueWith) Validate() error {
	switch {
	case (c.AgentRuntimeARN == "") == (c.AgentRuntimeID == ""):
		return invalid("continueWith", "needs exactly one of agentRuntimeArn / agentRuntimeId")
	case c.AgentRuntimeARN != "" && !ValidAgentRuntimeARN(c.AgentRuntimeARN):
		return invalid("continueWith.agentRuntimeArn", "must be arn:aws:bedrock-agentcore:<region>:<account>:runtime/<agent runtime id>")
	case c.AgentRuntimeARN != "" && c.AccountID != "":
		return invalid("continueWith.accountId", "goes with agentRuntimeId only (the ARN names the account)")
	case c.AgentRuntimeID != "" && !runtimeIDRE.MatchString(c.AgentRuntimeID):
		return invalid("continueWith.agentRuntimeId", "must be a name of letters, digits and '_' and a 10-character suffix (name-0123456789)")
	case c.AgentRuntimeID != "" && !accountIDRE.MatchString(c.AccountID):
		return invalid("continueWith.accountId", "must be the 12-digit account of the agent runtime")
	case c.Qualifier != "" && !contract.ValidRuntimeEndpointName(c.Qualifier):
		return invalid("continueWith.qualifier", "must be an endpoint name (1-48 of letters, digits and '_', starting with a letter)")
	}
	if c.RuntimeSessionID != "" {
		n := len(c.RuntimeSessionID)
		if n < minRuntimeSessionID || n > maxRuntimeSessionID {
			return invalid("continueWith.runtimeSessionId", "must be %d-%d characters", minRuntimeSessionID, maxRuntimeSessionID)
		}
		if !VisibleASCII(c.RuntimeSessionID) {
			return invalid("continueWith.runtimeSessionId", "must be visible ASCII characters (it travels as a header)")
		}
	}
	if len(c.Payload) == 0 {
		return invalid("continueWith.payload", "is required (any JSON value but null)")
	}
	if len(c.Payload) > MaxContinuePayload {
		return invalid("continueWith.payload", "must be at most %d bytes of compact JSON", MaxContinuePayload)
	}
	return nil
}

// VisibleASCII reports whether s holds visible ASCII characters only
// (0x21-0x7e), as a header value such as a runtime session id does.
func VisibleASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Account and RuntimeID are the runtime's account and id, from the ARN or
// the id form.
func (c *ContinueWith) Account() string {
	if t, ok := contract.ParseAgentRuntimeARN(c.AgentRuntimeARN); ok {
		return t.Account
	}
	return c.AccountID
}

// RuntimeID is the runtime's id (see Account).
func (c *ContinueWith) RuntimeID() string {
	if t, ok := contract.ParseAgentRuntimeARN(c.AgentRuntimeARN); ok {
		return t.ID
	}
	return c.AgentRuntimeID
}

// AgentName is the runtime's name: its id without the '-' and the
// 10-character suffix AgentCore adds (calendar_agent for
// calendar_agent-AbCdEf1234); "" for an id of another shape. It names the
// agent to the person consenting, without the account or the ARN.
func (c *ContinueWith) AgentName() string {
	id := c.RuntimeID()
	if !runtimeIDRE.MatchString(id) {
		return ""
	}
	return id[:len(id)-len("-0123456789")]
}

// AllowedBy reports whether one of the configured targets (runtime or
// runtime endpoint ARNs) permits the runtime at the qualifier's endpoint:
// the ARN itself, or for the id form one with the same account and id (in
// region, when region is not empty). A runtime ARN permits only its
// DEFAULT endpoint.
func (c *ContinueWith) AllowedBy(allowed []contract.AgentRuntimeTarget, region string) bool {
	for _, t := range allowed {
		if t.Allows(c.AgentRuntimeARN, c.AccountID, c.AgentRuntimeID, c.Qualifier, region) {
			return true
		}
	}
	return false
}

// ParseAgentRuntimeARNs reads a comma-separated list of runtime and runtime
// endpoint ARNs (the AGENT_RUNTIME_ARNS setting); it refuses anything that
// is not one.
func ParseAgentRuntimeARNs(s string) ([]contract.AgentRuntimeTarget, error) {
	var out []contract.AgentRuntimeTarget
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		t, ok := contract.ParseAgentRuntimeTarget(a)
		if !ok {
			return nil, Fail(contract.ErrMisconfigured, "%q is not an AgentCore Runtime or runtime endpoint ARN", a)
		}
		out = append(out, t)
	}
	return out, nil
}
