package emulator

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// fuzzOps are the operations in a fixed order, with a new request struct
// of the type dispatch decodes each one into.
var fuzzOps = func() []struct {
	shape string
	req   func() any
} {
	reqs := map[string]func() any{
		OpGetWorkloadAccessToken:          func() any { return new(workloadTokenRequest) },
		OpGetWorkloadAccessTokenForUserID: func() any { return new(workloadTokenRequest) },
		OpGetWorkloadAccessTokenForJWT:    func() any { return new(workloadTokenRequest) },
		OpGetResourceOauth2Token:          func() any { return new(oauth2TokenRequest) },
		OpCompleteResourceTokenAuth:       func() any { return new(completeRequest) },
		OpGetResourceAPIKey:               func() any { return new(apiKeyRequest) },
	}
	var out []struct {
		shape string
		req   func() any
	}
	for _, r := range routes {
		out = append(out, struct {
			shape string
			req   func() any
		}{r.input, reqs[r.op]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].shape < out[j].shape })
	return out
}()

// validated keeps, in every structure and union of raw, only the members
// the model names, spelt exactly: what validateValue looked at (it reads
// obj[m.name]). The oracle for what dispatch must decode.
func validated(s *shape, raw json.RawMessage) json.RawMessage {
	var obj map[string]json.RawMessage
	if s.kind != kStructure && s.kind != kUnion || json.Unmarshal(raw, &obj) != nil || obj == nil {
		return raw
	}
	kept := map[string]json.RawMessage{}
	for _, m := range s.members {
		if v, ok := obj[m.name]; ok {
			kept[m.name] = validated(shapes[m.shape], v)
		}
	}
	b, err := json.Marshal(kept)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzValidateInput checks the emulator's request validation on arbitrary
// bodies for each operation: it never panics; it answers either a parse
// error or a list of violations; and a body it accepts decodes into the
// request struct dispatch uses, to exactly the values it validated (the
// model's members, matched case-sensitively as AWS does; other keys are
// ignored). testdata/fuzz/FuzzValidateInput/case-folded-member is the
// regression seed of a bypass this found: encoding/json matched
// "WorkloadName" to the workloadName field, so a body with both decoded to
// the unvalidated value.
func FuzzValidateInput(f *testing.F) {
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl"
	const uri = "urn:ietf:params:oauth:request_uri:abc-123"
	for i, s := range []string{
		`{"workloadName":"consentflow-test"}`,
		`{"workloadName":"consentflow-test","userId":"user-1"}`,
		`{"workloadName":"consentflow-test","userToken":"` + jwt + `"}`,
		`{"workloadIdentityToken":"wat","resourceCredentialProviderName":"github","scopes":["repo"],"oauth2Flow":"USER_FEDERATION",` +
			`"sessionUri":"` + uri + `","resourceOauth2ReturnUrl":"https://cb.example/cb","forceAuthentication":true,` +
			`"customParameters":{"access_type":"offline"},"customState":"s","resources":["r"],"audiences":["a"]}`,
		`{"userIdentifier":{"userId":"user-1"},"sessionUri":"` + uri + `"}`,
		`{"userIdentifier":{"userToken":"` + jwt + `"},"sessionUri":"` + uri + `"}`,
		`{"userIdentifier":{"userId":"u","userToken":"` + jwt + `"},"sessionUri":"` + uri + `"}`,
		`{"workloadIdentityToken":"wat","resourceCredentialProviderName":"github"}`,
		`{"workloadIdentityToken":"wat","resourceCredentialProviderName":"github","scopes":[null,"",1],"oauth2Flow":"X"}`,
		`{"customParameters":{"":null,"k":{}}}`,
		`{"workloadName":"abc","extra":[1,2,{"x":null}]}`,
		`{"workloadName":null}`, `{"workloadName":7}`, `{"forceAuthentication":"yes"}`,
		`{"workloadName":"consentflow-test"} trailing`, `[]`, `null`, ``, `  `, `"x"`, `{`,
		`{"userIdentifier":null,"sessionUri":"x"}`, `{"userIdentifier":[],"sessionUri":"x"}`,
	} {
		f.Add(uint8(i%len(fuzzOps)), []byte(s))
		f.Add(uint8(i*5%len(fuzzOps)), []byte(s))
	}
	f.Fuzz(func(t *testing.T, op uint8, body []byte) {
		o := fuzzOps[int(op)%len(fuzzOps)]
		fields, err := validateInput(o.shape, body)
		if err != nil {
			if _, ok := err.(errCannotParse); !ok || fields != nil {
				t.Fatalf("%s(%q): error %T %v with %d fields", o.shape, body, err, err, len(fields))
			}
			return
		}
		for _, fe := range fields {
			if fe.Message == "" || !strings.HasPrefix(fe.Message, "Member must ") {
				t.Fatalf("%s(%q): field error %+v", o.shape, body, fe)
			}
		}
		if len(fields) > 0 {
			return
		}
		// Accepted: dispatch decodes it (as serveAPI hands it over).
		got, want := o.req(), o.req()
		if err := json.Unmarshal(modelMembers(shapes[o.shape], body), got); err != nil {
			t.Fatalf("%s accepted %q, which does not decode into %T: %v", o.shape, body, got, err)
		}
		if strings.TrimSpace(string(body)) == "" {
			body = []byte("{}")
		}
		if err := json.Unmarshal(validated(shapes[o.shape], body), want); err != nil {
			t.Fatalf("%s: the validated members of %q do not decode: %v", o.shape, body, err)
		}
		// Three operations share a struct: compare the model's members only.
		if g, w := decoded(t, o.shape, got), decoded(t, o.shape, want); g != w {
			t.Fatalf("%s accepted %q, which decodes to other values than it validated:\n got %s\nwant %s", o.shape, body, g, w)
		}
	})
}

// decoded is the JSON of the model's members of a decoded request.
func decoded(t *testing.T, shape string, req any) string {
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return string(validated(shapes[shape], b))
}

// TestCaseFoldedMemberIsIgnored is the wire-level regression test of the
// bypass FuzzValidateInput found: AWS matches members case-sensitively and
// ignores unknown ones, so "WorkloadName" must not replace the validated
// workloadName (it used to, through encoding/json's case-insensitive match).
func TestCaseFoldedMemberIsIgnored(t *testing.T) {
	e := newEnv(t)
	status, _, body := rawCall(t, e.ts.URL, "/identities/GetWorkloadAccessTokenForUserId", SigningName,
		`{"workloadName":"consentflow-test","userId":"a","WorkloadName":"no such workload!","USERID":7}`)
	if status != 200 || body["workloadAccessToken"] == "" {
		t.Fatalf("%d %v", status, body)
	}
}
