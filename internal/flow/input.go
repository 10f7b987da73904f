package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/consentflow/consentflow/internal/contract"
)

// OAuth2 flows consentflow supports (the model also has
// ON_BEHALF_OF_TOKEN_EXCHANGE, which needs no user consent and is refused).
const (
	FlowUserFederation = "USER_FEDERATION"
	FlowM2M            = "M2M"
)

// Limits of the AgentCore Identity API model (the shape each constant comes
// from is named beside it) plus bounds of our own where the model sets none (list and map sizes), so
// a session record always fits a DynamoDB item.
const (
	maxUserID        = 128    // UserIdType
	maxUserToken     = 131072 // UserTokenType
	maxProviderName  = 128    // CredentialProviderName
	maxScope         = 128    // ScopeType
	maxScopes        = 50     // ours
	maxParamKey      = 256    // CustomRequestKeyType
	maxParamValue    = 2048   // CustomRequestValueType
	maxParams        = 20     // ours
	maxTaskToken     = 2048   // Step Functions taskToken
	maxRequestURI    = 1024   // RequestUri
	maxWorkloadName  = 255    // WorkloadIdentityNameType
	minWorkloadName  = 3
	maxReturnURL     = 2048 // ResourceOauth2ReturnUrlType
	maxInitiateEvent = 256 * 1024
	// MaxInputWithAgentRuntimes bounds the workflow input (as JSON) when
	// agent runtimes are configured: the state then carries the input, the
	// authorization (up to about 28 KiB: scopes, context, ids) and the
	// agent's summary (cont.MaxSummaryJSON, 32 KiB) within Step Functions'
	// 256 KiB, with a margin.
	MaxInputWithAgentRuntimes = 176 * 1024
	// MaxCorrelationID and MaxContext bound the caller's correlationId
	// (characters of [A-Za-z0-9._:-]) and context (bytes of compact JSON):
	// both travel in every event (EventBridge entries are at most 256 KiB)
	// and in the workflow's output.
	MaxCorrelationID = 64
	MaxContext       = 8 * 1024
)

// Input is what a workflow asks initiate to authorize.
type Input struct {
	UserID              string            `json:"userId,omitempty"`
	UserToken           string            `json:"userToken,omitempty"`
	Provider            string            `json:"provider"`
	Scopes              []string          `json:"scopes"`
	CustomParameters    map[string]string `json:"customParameters,omitempty"`
	ForceAuthentication bool              `json:"forceAuthentication,omitempty"`
	Flow                string            `json:"flow,omitempty"`
	// ReturnTo is the application page the success page links back to
	// (returnto.go): one of the configured application return URLs,
	// exactly; empty for none.
	ReturnTo string `json:"returnTo,omitempty"`
	// CorrelationID names the session in every event, log line and result
	// (1-64 characters of letters, digits, '.', '_', ':' and '-'); a random
	// UUID when empty. The caller should make it unique per authorization.
	CorrelationID string `json:"correlationId,omitempty"`
	// Context is the caller's opaque JSON object (at most MaxContext bytes
	// as compact JSON), carried unchanged into the events and the result.
	// ParseRequest stores it in the compact form json.Marshal produces.
	Context json.RawMessage `json:"context,omitempty"`
	// ContinueWith is the agent to invoke once the user has authorized
	// (the ContinueAgent step); nil when the workflow ends at AUTHORIZED.
	ContinueWith *ContinueWith `json:"continueWith,omitempty"`
}

// Request is one invocation of initiate: the callback-pattern envelope
// {"taskToken": ..., "executionArn": ..., "input": {...}} (executionArn
// optional), or the bare input (synchronous use).
type Request struct {
	TaskToken string
	Input     Input

	// ExecutionARN is the envelope's executionArn: the Step Functions
	// execution that waits ($$.Execution.Id); empty when none was given.
	ExecutionARN string
}

// ParseRequest decodes an initiate event. Unknown fields are refused so a
// misspelt field ("user_id") is reported instead of silently ignored.
func ParseRequest(raw []byte) (Request, error) {
	if len(raw) > maxInitiateEvent {
		return Request{}, Fail(contract.ErrInvalidInput, "event larger than %d bytes", maxInitiateEvent)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(raw, &probe); err != nil || probe == nil {
		return Request{}, Fail(contract.ErrInvalidInput, "event is not a JSON object")
	}
	// encoding/json keeps the last of two equal member names, Step Functions'
	// paths may read another: what initiate checks must be what the state
	// machine passes on (continueWith above all).
	if off, dup := duplicateMember(raw); dup {
		return Request{}, Fail(contract.ErrInvalidInput, "an object has the same member twice (at offset %d)", off)
	}
	_, hasToken := probe["taskToken"]
	_, hasInput := probe["input"]
	if hasToken || hasInput {
		var env struct {
			TaskToken *string         `json:"taskToken"`
			Input     json.RawMessage `json:"input"`

			ExecutionARN string `json:"executionArn"`
		}
		if err := strictDecode(raw, &env); err != nil {
			return Request{}, err
		}
		if env.TaskToken == nil || *env.TaskToken == "" || len(env.Input) == 0 {
			return Request{}, Fail(contract.ErrInvalidInput, "callback events need both taskToken and input")
		}
		in, err := parseInput(env.Input)
		if err != nil {
			return Request{}, err
		}
		return Request{TaskToken: *env.TaskToken, ExecutionARN: env.ExecutionARN, Input: in}, nil
	}
	in, err := parseInput(raw)
	return Request{Input: in}, err
}

func parseInput(raw []byte) (Input, error) {
	var in Input
	if err := strictDecode(raw, &in); err != nil {
		return in, err
	}
	if in.ContinueWith == nil {
		// The state machine's Choice sees a null continueWith as present.
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) == nil && m["continueWith"] != nil {
			return in, invalid("continueWith", "must be an object (leave it out for no continuation)")
		}
	}
	if string(in.Context) == "null" {
		in.Context = nil // a null context is no context
	}
	if len(in.Context) > 0 {
		// The compact form json.Marshal gives (and will give again on every
		// re-encoding): what the session stores and the events carry.
		c, err := json.Marshal(in.Context)
		if err != nil {
			return in, Fail(contract.ErrInvalidInput, "field \"context\" is malformed JSON")
		}
		in.Context = c
	}
	return in, nil
}

// DecodeStrict decodes the JSON value raw into v as initiate decodes its
// input: exact member names only (encoding/json would also match other
// cases), no unknown members, nothing after the value; failures are
// contract.ErrInvalidInput Failures that quote no value.
func DecodeStrict(raw []byte, v any) error { return strictDecode(raw, v) }

func strictDecode(raw []byte, v any) error {
	// encoding/json matches member names without regard to case, so
	// "UserID" would fill userId: only the exact names are fields.
	if err := exactMembers(raw, v); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		var f *Failure
		switch {
		case errors.As(err, &f): // a member's own strict decoding (continueWith)
			return f
		case errors.As(err, &typ):
			return Fail(contract.ErrInvalidInput, "field %q has the wrong type", typ.Field)
		case errors.As(err, &syn):
			return Fail(contract.ErrInvalidInput, "malformed JSON at offset %d", syn.Offset)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return Fail(contract.ErrInvalidInput, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		default:
			return Fail(contract.ErrInvalidInput, "malformed JSON")
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Fail(contract.ErrInvalidInput, "trailing data after the JSON object")
	}
	return nil
}

// Validate checks a request against the AWS model constraints before any
// AWS call. Messages name the field and the rule, never the value.
func (r *Request) Validate() error {
	if len(r.TaskToken) > maxTaskToken {
		return invalid("taskToken", "must be at most %d characters", maxTaskToken)
	}
	if err := checkExecutionARN(r.ExecutionARN); err != nil {
		return err
	}
	in := &r.Input
	if in.Flow == "" {
		in.Flow = FlowUserFederation
	}
	switch in.Flow {
	case FlowUserFederation:
		if (in.UserID == "") == (in.UserToken == "") {
			return invalid("userId/userToken", "exactly one is required")
		}
	case FlowM2M:
		if in.UserID != "" || in.UserToken != "" {
			return invalid("userId/userToken", "must be empty for the M2M flow")
		}
	default:
		return invalid("flow", "must be %s or %s", FlowUserFederation, FlowM2M)
	}
	if in.UserID != "" {
		if err := checkLen("userId", in.UserID, 1, maxUserID); err != nil {
			return err
		}
	}
	if in.UserToken != "" {
		if err := checkLen("userToken", in.UserToken, 1, maxUserToken); err != nil {
			return err
		}
		if !isCompactJWT(in.UserToken) {
			return invalid("userToken", "must be a compact JWT (header.payload.signature)")
		}
	}
	if err := checkLen("provider", in.Provider, 1, maxProviderName); err != nil {
		return err
	}
	if !isProviderName(in.Provider) {
		return invalid("provider", "may contain only letters, digits, '-' and '_'")
	}
	if in.Scopes == nil {
		return invalid("scopes", "is required")
	}
	if in.Flow == FlowUserFederation && len(in.Scopes) == 0 {
		return invalid("scopes", "needs at least one scope")
	}
	if len(in.Scopes) > maxScopes {
		return invalid("scopes", "at most %d scopes", maxScopes)
	}
	for i, s := range in.Scopes {
		if err := checkLen(fmt.Sprintf("scopes[%d]", i), s, 1, maxScope); err != nil {
			return err
		}
	}
	if in.CorrelationID != "" && !ValidCorrelationID(in.CorrelationID) {
		return invalid("correlationId", "must be 1-%d characters of letters, digits, '.', '_', ':' and '-'", MaxCorrelationID)
	}
	if len(in.Context) > 0 {
		if in.Context[0] != '{' {
			return invalid("context", "must be a JSON object")
		}
		if len(in.Context) > MaxContext {
			return invalid("context", "must be at most %d bytes of compact JSON", MaxContext)
		}
	}
	if in.ContinueWith != nil {
		if in.Flow == FlowM2M {
			return invalid("continueWith", "is not available for M2M flows: a consent in the same execution, which M2M never has, is what lets the agent be invoked for someone")
		}
		if in.UserToken != "" {
			return invalid("continueWith", "is not available for flows started with userToken: InvokeAgentRuntime with the user's JWT (an agent with a JWT authorizer) is the application's call")
		}
		if err := in.ContinueWith.Validate(); err != nil {
			return err
		}
	}
	if len(in.CustomParameters) > maxParams {
		return invalid("customParameters", "at most %d entries", maxParams)
	}
	// In key order, so the same input always gets the same answer.
	for _, k := range slices.Sorted(maps.Keys(in.CustomParameters)) {
		v := in.CustomParameters[k]
		if len(k) < 1 || len(k) > maxParamKey || !isParamKey(k) {
			return invalid("customParameters", "keys are 1-%d characters of letters, digits, '-', '_' and '.'", maxParamKey)
		}
		if err := checkLen("customParameters."+k, v, 1, maxParamValue); err != nil {
			return err
		}
	}
	if err := validateReturnTo(in.ReturnTo); err != nil {
		return err
	}
	return nil
}

func checkLen(field, v string, min, max int) error {
	if !utf8.ValidString(v) {
		return invalid(field, "must be valid UTF-8")
	}
	n := utf8.RuneCountInString(v)
	if n < min || n > max {
		if n == 0 {
			return invalid(field, "is required")
		}
		return invalid(field, "must be %d-%d characters", min, max)
	}
	return nil
}

func invalid(field, format string, args ...any) *Failure {
	return Fail(contract.ErrInvalidInput, "%s %s", field, fmt.Sprintf(format, args...))
}

// ValidCorrelationID reports whether s is a correlation id a caller may
// choose: 1-MaxCorrelationID characters of [A-Za-z0-9._:-].
func ValidCorrelationID(s string) bool {
	if len(s) < 1 || len(s) > MaxCorrelationID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// ValidSessionURI reports whether s matches the model's RequestUri shape.
func ValidSessionURI(s string) bool {
	return len(s) <= maxRequestURI && isSessionURI(s)
}

// ValidateWorkloadName checks a configured workload identity name.
func ValidateWorkloadName(s string) error {
	if len(s) < minWorkloadName || len(s) > maxWorkloadName || !isWorkloadName(s) {
		return fmt.Errorf("must be %d-%d characters of letters, digits, '_', '.', '-'", minWorkloadName, maxWorkloadName)
	}
	return nil
}

// ValidateReturnURL checks the configured callback URL: the model's pattern,
// and https unless it points at the loopback interface (local runs).
func ValidateReturnURL(s string) error {
	if len(s) < 1 || len(s) > maxReturnURL || !isReturnURL(s) {
		return fmt.Errorf("must be an absolute URL of at most %d characters", maxReturnURL)
	}
	if strings.HasPrefix(s, "https://") ||
		strings.HasPrefix(s, "http://127.0.0.1:") || strings.HasPrefix(s, "http://localhost:") {
		return nil
	}
	return fmt.Errorf("must use https (http is allowed only for 127.0.0.1/localhost)")
}

// exactMembers refuses a JSON object member whose name is not, exactly,
// the json name of a field of the struct v points to. Values that are not
// objects are left to the decoder to refuse.
func exactMembers(raw []byte, v any) error {
	var members map[string]json.RawMessage
	if json.Unmarshal(raw, &members) != nil {
		return nil
	}
	t := reflect.TypeOf(v).Elem()
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	for _, k := range slices.Sorted(maps.Keys(members)) {
		if !names[k] {
			return Fail(contract.ErrInvalidInput, "unknown field %q", k)
		}
	}
	return nil
}

// duplicateMember reports whether some object in raw (a JSON value) has a
// member name twice, and the offset after the second one.
func duplicateMember(raw []byte) (int64, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	type frame struct {
		names map[string]bool
		inObj bool
		key   bool // the next token of an object is a member name
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return 0, false // the end, or malformed JSON that the decoding reports
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				if top != nil && top.inObj {
					top.key = true
				}
				stack = append(stack, &frame{names: map[string]bool{}, inObj: true, key: true})
			case '[':
				if top != nil && top.inObj {
					top.key = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if top == nil || !top.inObj {
			continue
		}
		if top.key {
			name := tok.(string)
			if top.names[name] {
				return dec.InputOffset(), true
			}
			top.names[name] = true
			top.key = false
			continue
		}
		top.key = true
	}
}
