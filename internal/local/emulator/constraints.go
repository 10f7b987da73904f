package emulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// This file is the hand-written constraint table taken from the AWS service model
// of AgentCore Identity's data plane (bedrock-agentcore, apiVersion 2024-02-28) for the
// six AgentCore Identity operations, and a small validator driven by it.
// constraints_test.go cross-checks the table against the model file named by
// $AGENTCORE_IDENTITY_MODEL (CI sets it).

// shapeKind is the Smithy type of a shape.
type shapeKind int

const (
	kString shapeKind = iota
	kBoolean
	kList
	kMap
	kStructure
	kUnion
)

// shape is one model shape with the constraints the service enforces.
type shape struct {
	kind      shapeKind
	min, max  int    // length bounds for strings (-1: none)
	pattern   string // model pattern, unanchored as in the model
	enum      []string
	sensitive bool
	member    string // list member shape
	key, val  string // map key/value shapes
	members   []member
	re        *regexp.Regexp
}

// member is a structure member.
type member struct {
	name     string
	shape    string
	required bool
}

func str(min, max int, pattern string) *shape {
	return &shape{kind: kString, min: min, max: max, pattern: pattern}
}

func secret(s *shape) *shape { s.sensitive = true; return s }

// shapes is the constraint table. Names are the model's shape names.
var shapes = map[string]*shape{
	"WorkloadIdentityNameType":    str(3, 255, `[A-Za-z0-9_.-]+`),
	"UserIdType":                  str(1, 128, ``),
	"UserTokenType":               secret(str(1, 131072, `[A-Za-z0-9-_=]+.[A-Za-z0-9-_=]+.[A-Za-z0-9-_=]+`)),
	"WorkloadIdentityTokenType":   secret(str(1, 131072, ``)),
	"CredentialProviderName":      str(1, 128, `[a-zA-Z0-9\-_]+`),
	"ScopeType":                   str(1, 128, ``),
	"ScopesListType":              {kind: kList, member: "ScopeType"},
	"Oauth2FlowType":              {kind: kString, min: -1, max: -1, enum: []string{"USER_FEDERATION", "M2M", "ON_BEHALF_OF_TOKEN_EXCHANGE"}},
	"RequestUri":                  str(1, 1024, `urn:ietf:params:oauth:request_uri:[a-zA-Z0-9-._~]+`),
	"ResourceOauth2ReturnUrlType": str(1, 2048, `\w+:(\/?\/?)[^\s]+`),
	"Boolean":                     {kind: kBoolean},
	"CustomRequestKeyType":        str(1, 256, `[a-zA-Z0-9\-_\.]+`),
	"CustomRequestValueType":      secret(str(1, 2048, ``)),
	"CustomRequestParametersType": {kind: kMap, key: "CustomRequestKeyType", val: "CustomRequestValueType"},
	"State":                       secret(str(1, 4096, ``)),
	"ResourceType":                str(1, 2048, ``),
	"ResourcesListType":           {kind: kList, member: "ResourceType"},
	"AudienceType":                str(1, 2048, ``),
	"AudiencesListType":           {kind: kList, member: "AudienceType"},
	"UserIdentifier": {kind: kUnion, members: []member{
		{name: "userToken", shape: "UserTokenType"},
		{name: "userId", shape: "UserIdType"},
	}},

	// InvokeAgentRuntime's header and query members (runtime.go).
	"MimeType":    str(1, 256, ``),
	"StringType":  str(1, 1024, ``),
	"SessionType": str(33, 256, ``),
	"InvokeAgentRuntimeRequestAccountIdString":   str(-1, -1, `[0-9]{12}`),
	"InvokeAgentRuntimeRequestTraceIdString":     str(0, 128, ``),
	"InvokeAgentRuntimeRequestTraceParentString": str(0, 128, ``),
	"InvokeAgentRuntimeRequestTraceStateString":  str(0, 512, ``),
	"InvokeAgentRuntimeRequestBaggageString":     str(0, 8192, ``),

	"GetWorkloadAccessTokenRequest": {kind: kStructure, members: []member{
		{name: "workloadName", shape: "WorkloadIdentityNameType", required: true},
	}},
	"GetWorkloadAccessTokenForUserIdRequest": {kind: kStructure, members: []member{
		{name: "workloadName", shape: "WorkloadIdentityNameType", required: true},
		{name: "userId", shape: "UserIdType", required: true},
	}},
	"GetWorkloadAccessTokenForJWTRequest": {kind: kStructure, members: []member{
		{name: "workloadName", shape: "WorkloadIdentityNameType", required: true},
		{name: "userToken", shape: "UserTokenType", required: true},
	}},
	"GetResourceOauth2TokenRequest": {kind: kStructure, members: []member{
		{name: "workloadIdentityToken", shape: "WorkloadIdentityTokenType", required: true},
		{name: "resourceCredentialProviderName", shape: "CredentialProviderName", required: true},
		{name: "scopes", shape: "ScopesListType", required: true},
		{name: "oauth2Flow", shape: "Oauth2FlowType", required: true},
		{name: "sessionUri", shape: "RequestUri"},
		{name: "resourceOauth2ReturnUrl", shape: "ResourceOauth2ReturnUrlType"},
		{name: "forceAuthentication", shape: "Boolean"},
		{name: "customParameters", shape: "CustomRequestParametersType"},
		{name: "customState", shape: "State"},
		{name: "resources", shape: "ResourcesListType"},
		{name: "audiences", shape: "AudiencesListType"},
	}},
	"CompleteResourceTokenAuthRequest": {kind: kStructure, members: []member{
		{name: "userIdentifier", shape: "UserIdentifier", required: true},
		{name: "sessionUri", shape: "RequestUri", required: true},
	}},
	"GetResourceApiKeyRequest": {kind: kStructure, members: []member{
		{name: "workloadIdentityToken", shape: "WorkloadIdentityTokenType", required: true},
		{name: "resourceCredentialProviderName", shape: "CredentialProviderName", required: true},
	}},
}

func init() {
	for name, s := range shapes {
		if s.pattern != "" {
			// AWS matches the model's patterns against the whole value.
			s.re = regexp.MustCompile(`^(?:` + s.pattern + `)$`)
		}
		for _, ref := range append([]string{s.member, s.key, s.val}, memberShapes(s)...) {
			if ref != "" && shapes[ref] == nil {
				panic(fmt.Sprintf("emulator: shape %s refers to unknown shape %s", name, ref))
			}
		}
	}
}

func memberShapes(s *shape) []string {
	var out []string
	for _, m := range s.members {
		out = append(out, m.shape)
	}
	return out
}

// fieldError is one entry of a ValidationException fieldList.
type fieldError struct {
	Name    string `json:"name"`
	Message string `json:"message"`
}

// errCannotParse marks a body that is not JSON of the expected types.
type errCannotParse struct{ path string }

func (e errCannotParse) Error() string {
	if e.path == "" {
		return "Could not parse request body into json"
	}
	return fmt.Sprintf("Could not parse request body into json: unexpected value type at '%s'", e.path)
}

// validateInput checks a raw JSON request body against the named input structure.
// It returns errCannotParse for malformed JSON or wrong JSON types, else the list of
// constraint violations (empty when the input is valid). Values are never echoed in
// messages: several members are sensitive.
func validateInput(shapeName string, body []byte) ([]fieldError, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	var raw json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, errCannotParse{}
	}
	var errs []fieldError
	if err := validateValue(shapes[shapeName], "", raw, &errs); err != nil {
		return nil, err
	}
	return errs, nil
}

// modelMembers returns the JSON value raw with only the members the model
// names, spelt exactly, in every structure and union (map entries and list
// items are kept): the values validateInput checked, and nothing a
// case-insensitive decoder could mistake for them.
func modelMembers(s *shape, raw json.RawMessage) json.RawMessage {
	if s.kind != kStructure && s.kind != kUnion {
		return raw
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return raw
	}
	kept := make(map[string]json.RawMessage, len(s.members))
	for _, m := range s.members {
		if v, ok := obj[m.name]; ok {
			kept[m.name] = modelMembers(shapes[m.shape], v)
		}
	}
	b, err := json.Marshal(kept)
	if err != nil {
		return raw
	}
	return b
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func validateValue(s *shape, path string, raw json.RawMessage, errs *[]fieldError) error {
	switch s.kind {
	case kString:
		var v string
		if err := json.Unmarshal(raw, &v); err != nil {
			return errCannotParse{path}
		}
		validateString(s, path, v, errs)
	case kBoolean:
		var v bool
		if err := json.Unmarshal(raw, &v); err != nil {
			return errCannotParse{path}
		}
	case kList:
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return errCannotParse{path}
		}
		for i, it := range items {
			p := fmt.Sprintf("%s.%d.member", path, i+1)
			if isNull(it) {
				*errs = append(*errs, fieldError{p, "Member must not be null"})
				continue
			}
			if err := validateValue(shapes[s.member], p, it, errs); err != nil {
				return err
			}
		}
	case kMap:
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return errCannotParse{path}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			validateString(shapes[s.key], path+".key", k, errs)
			if isNull(m[k]) {
				*errs = append(*errs, fieldError{path + ".value", "Member must not be null"})
				continue
			}
			if err := validateValue(shapes[s.val], path+".value", m[k], errs); err != nil {
				return err
			}
		}
	case kStructure, kUnion:
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
			return errCannotParse{path}
		}
		set := 0
		for _, m := range s.members {
			p := m.name
			if path != "" {
				p = path + "." + m.name
			}
			v, ok := obj[m.name]
			if !ok || isNull(v) {
				if m.required {
					*errs = append(*errs, fieldError{p, "Member must not be null"})
				}
				continue
			}
			set++
			if err := validateValue(shapes[m.shape], p, v, errs); err != nil {
				return err
			}
		}
		if s.kind == kUnion && set != 1 {
			names := make([]string, len(s.members))
			for i, m := range s.members {
				names[i] = m.name
			}
			*errs = append(*errs, fieldError{path, fmt.Sprintf(
				"Member must have exactly one of the following members set: %s", strings.Join(names, ", "))})
		}
	}
	return nil
}

func validateString(s *shape, path, v string, errs *[]fieldError) {
	n := utf8.RuneCountInString(v)
	if s.min >= 0 && n < s.min {
		*errs = append(*errs, fieldError{path, fmt.Sprintf("Member must have length greater than or equal to %d", s.min)})
		return
	}
	if s.max > 0 && n > s.max {
		*errs = append(*errs, fieldError{path, fmt.Sprintf("Member must have length less than or equal to %d", s.max)})
		return
	}
	if s.re != nil && !s.re.MatchString(v) {
		*errs = append(*errs, fieldError{path, "Member must satisfy regular expression pattern: " + s.pattern})
		return
	}
	if len(s.enum) > 0 {
		for _, e := range s.enum {
			if v == e {
				return
			}
		}
		*errs = append(*errs, fieldError{path, "Member must satisfy enum value set: [" + strings.Join(s.enum, ", ") + "]"})
	}
}

// validationMessage renders the Coral-style summary message for a list of violations.
func validationMessage(errs []fieldError) string {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = fmt.Sprintf("Value at '%s' failed to satisfy constraint: %s", e.Name, e.Message)
	}
	noun := "errors"
	if len(errs) == 1 {
		noun = "error"
	}
	return fmt.Sprintf("%d validation %s detected: %s", len(errs), noun, strings.Join(parts, "; "))
}
