package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/consentflow/consentflow/internal/contract"
)

// FuzzNormalizeSessionID checks the callback's session_id normalisation
// (normalizeSessionID, on the value url.ParseQuery already decoded once):
// it never panics; it accepts exactly a RequestUri (the model's pattern, at
// most 1024 bytes) or a RequestUri percent-encoded once more (which
// starts "urn%3a", any case: that is what a standard encoder makes of
// the colons), and answers the decoded RequestUri; its answer normalises
// to itself; and any RequestUri arrives whole through a redirect that
// encodes it once or twice, while a third encoding is refused.
func FuzzNormalizeSessionID(f *testing.F) {
	uri := "urn:ietf:params:oauth:request_uri:exampleSession-0001"
	for _, s := range []string{
		uri, url.QueryEscape(uri), url.QueryEscape(url.QueryEscape(uri)),
		strings.ToLower(url.QueryEscape(uri)), "URN%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax",
		"urn%3aietf:params:oauth:request_uri:x", "urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aa%2Fb",
		"urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aa+b", "urn%3A%zz", "urn%3",
		uri + "/../x", uri + "\n", "URN:ietf:params:oauth:request_uri:abc", sessionURIPrefix,
		"urn:ietf:params:oauth:request_uri:a-._~Z9", "", "%", "urn%3a",
	} {
		f.Add(s)
	}
	re, _ := oracle(f, "sessionURI")
	valid := func(s string) bool { return len(s) <= maxRequestURI && re.MatchString(s) }
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := normalizeSessionID(s)

		want, wantOK := s, valid(s)
		if !wantOK && len(s) <= 3*maxRequestURI && strings.HasPrefix(strings.ToLower(s), "urn%3a") {
			if d, err := url.QueryUnescape(s); err == nil && valid(d) {
				want, wantOK = d, true
			}
		}
		if ok != wantOK || ok && got != want {
			t.Fatalf("normalizeSessionID(%q) = %q, %v; want %q, %v", s, got, ok, want, wantOK)
		}
		if ok {
			if again, ok2 := normalizeSessionID(got); !ok2 || again != got {
				t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, got, again, ok2)
			}
		}

		// A RequestUri made of the input's allowed bytes survives the
		// encodings a redirect may apply.
		id := strings.Map(func(r rune) rune {
			if r < utf8.RuneSelf && (isBase64URL(byte(r)) || r == '.' || r == '~') {
				return r
			}
			return -1
		}, s)
		u := sessionURIPrefix + id
		if len(u) > maxRequestURI || id == "" {
			return
		}
		once := url.QueryEscape(u)
		for _, v := range []string{u, once, strings.ReplaceAll(once, "%3A", "%3a")} {
			if got, ok := normalizeSessionID(v); !ok || got != u {
				t.Fatalf("normalizeSessionID(%q) = %q, %v; want %q", v, got, ok, u)
			}
		}
		// As the handler sees it: session_id encoded once or twice in the URL.
		for _, raw := range []string{once, url.QueryEscape(once)} {
			q, err := url.ParseQuery("session_id=" + raw)
			if err != nil {
				t.Fatal(err)
			}
			if got, ok := normalizeSessionID(q.Get("session_id")); !ok || got != u {
				t.Fatalf("session_id=%s: %q, %v; want %q", raw, got, ok, u)
			}
		}
		q, _ := url.ParseQuery("session_id=" + url.QueryEscape(url.QueryEscape(once)))
		if got, ok := normalizeSessionID(q.Get("session_id")); ok {
			t.Fatalf("a sessionUri encoded three times was accepted as %q", got)
		}
	})
}

// The length bounds, kept out of FuzzNormalizeSessionID's seeds: a
// kilobyte-long interesting input costs the fuzzer a minute of
// minimisation.
func TestNormalizeSessionIDLengths(t *testing.T) {
	long := sessionURIPrefix + strings.Repeat("a", maxRequestURI-len(sessionURIPrefix))
	for in, want := range map[string]bool{
		long: true, long + "a": false, url.QueryEscape(long): true, url.QueryEscape(long + "a"): false,
		strings.Repeat("%41", maxRequestURI): false,
	} {
		if got, ok := normalizeSessionID(in); ok != want || ok && got != long {
			t.Errorf("normalizeSessionID(%.60q... %d bytes) = %v", in, len(in), ok)
		}
	}
}

// FuzzNormalizeCode checks the verification code normalisation: it never
// panics, it is idempotent (so hashing a normalised code or the typed one
// gives the same digest), its answer is valid UTF-8 without separators,
// and any code of the alphabet, typed in lower case, without its dash or
// with spaces and tabs, normalises to the code.
func FuzzNormalizeCode(f *testing.F) {
	for _, s := range []string{
		"7KQ4M-X9P2H", "7kq4m-x9p2h", "7KQ4MX9P2H", " 7KQ4M - X9P2H\t", "", "-", "\t \t",
		"straße", "ǆ", "ıſ", "\xff\xfe", "a\u00a0b", "７ＫＱ", "a\r\nb", "İ",
	} {
		f.Add(s)
	}
	const uri = "urn:ietf:params:oauth:request_uri:x"
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeCode(s)
		if again := NormalizeCode(n); again != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, n, again)
		}
		if !utf8.ValidString(n) || strings.ContainsAny(n, "- \t") {
			t.Fatalf("NormalizeCode(%q) = %q", s, n)
		}
		if codeHash(uri, s) != codeHash(uri, n) {
			t.Fatalf("codeHash differs for %q and its normal form %q", s, n)
		}
		if len(s) < codeLen {
			return
		}
		code := make([]byte, codeLen)
		for i := range code {
			code[i] = codeAlphabet[int(s[i])%len(codeAlphabet)]
		}
		c := string(code)
		shown := c[:5] + "-" + c[5:]
		for _, typed := range []string{shown, c, strings.ToLower(shown), " " + c[:5] + " -\t" + c[5:] + " "} {
			if got := NormalizeCode(typed); got != c {
				t.Fatalf("NormalizeCode(%q) = %q, want %q", typed, got, c)
			}
		}
	})
}

// FuzzParseRequest checks the initiate event decoder: it never panics;
// what it accepts re-encodes to JSON that decodes to the same request, and
// validates the same way before and after; what it (or Validate) refuses
// is a *Failure named contract.ErrInvalidInput whose message holds none of
// the event's string values (userToken, taskToken, custom parameters...).
// testdata/fuzz/FuzzParseRequest holds the events of ../../events.
func FuzzParseRequest(f *testing.F) {
	const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl"
	for _, s := range []string{
		`{"taskToken":"AQB4task-token-example","input":{"userId":"user-1","provider":"github","scopes":["repo"]}}`,
		`{"userToken":"` + jwt + `","provider":"google","scopes":["openid","email"],"customParameters":{"access_type":"offline","prompt":"consent"},"forceAuthentication":true}`,
		`{"provider":"svc","scopes":[],"flow":"M2M"}`,
		`{"provider":"svc","scopes":null,"customParameters":{},"flow":"ON_BEHALF_OF_TOKEN_EXCHANGE"}`,
		`{"UserToken":"` + jwt + `","PROVIDER":"github","Scopes":["repo"]}`,
		`{"userToken":"` + jwt + `","userToken":"not.a-jwt","provider":"github","scopes":["repo"]}`,
		`{"userToken":"secret-token-value","provider":"github","scopes":["repo"]}`,
		`{"userToken":123,"provider":"github","scopes":["repo"]}`,
		`{"customParameters":{"k":"secret-parameter-value","bad key":"v"},"provider":"p","scopes":["s"],"userId":"u"}`,
		`{"customParameters":{"k":7},"provider":"p","scopes":["s"],"userId":"u"}`,
		`{"user_id":"user-1","provider":"github","scopes":["repo"]}`,
		`{"taskToken":"t","input":{"provider":"p"},"extra":1}`,
		`{"taskToken":"","input":{"provider":"p"}}`,
		`{"taskToken":null,"input":{"provider":"p"}}`,
		`{"input":{"provider":"p"}}`,
		`{"taskToken":"t","input":null}`,
		`{"taskToken":"t","input":"secret-string-input"}`,
		`{"TaskToken":"t","Input":{}}`,
		`{"provider":"p","scopes":["s"],"userId":"u"} {}`,
		`{"provider":"p","scopes":["s"],"userId":"u\ud800\xff"}`,
		`{"userId":"u","provider":"p","scopes":["s"],"correlationId":"conv-1:t.2_x","context":{"chat":"c","n":[1,{"b":"<&>"}]}}`,
		`{"userId":"u","provider":"p","scopes":["s"],"correlationId":"bad id","context":"secret-context-value"}`,
		`{"userId":"u","provider":"p","scopes":["s"],"context":null,"correlationId":""}`,
		`{"userId":"u","provider":"p","scopes":["s"],"context":[{"a":1}]}`,
		`{"userId":"u","provider":"p","scopes":["s"],"context":{"a":"\ud800"},"Context":{}}`,
		`{"taskToken":"t","input":{"userId":"u","provider":"p","scopes":["s"],"context": { "a" : 1 } }}`,
		`{"userId":"u","provider":"p","scopes":["s"],"continueWith":{"agentRuntimeArn":"arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent_1-a1B2c3D4e5","qualifier":"DEFAULT","payload":{"prompt":"<go on>"}}}`,
		`{"userId":"u","provider":"p","scopes":["s"],"continueWith":{"agentRuntimeId":"agent_1-a1B2c3D4e5","accountId":"123456789012","runtimeSessionId":"secret-session-id-0000000000000000000","payload":"x"}}`,
		`{"userId":"u","provider":"p","scopes":["s"],"continueWith":{"AgentRuntimeArn":"x","payload":null,"extra":"secret-extra"}}`,
		`{"userId":"u","provider":"p","scopes":["s"],"continueWith":null}`,
		`{"taskToken":"t","executionArn":"arn:aws:states:us-east-1:123456789012:execution:AuthorizeUser:run-1","input":{"userId":"u","provider":"p","scopes":["s"]}}`,
		`{"taskToken":"t","executionArn":"arn:aws:states:us-east-1:123456789012:execution:secret-machine","input":{"userId":"u","provider":"p","scopes":["s"]}}`,
		`{"taskToken":"t","executionArn":"","input":{"userId":"u","provider":"p","scopes":["s"]}}`,
		`{"userId":"u","provider":"p","scopes":["s"],"executionArn":"arn:aws:states:us-east-1:123456789012:execution:m:n"}`,
		`{"userId":"u","provider":"p","scopes":["s"],"returnTo":"https://app.example.com/chat?c=7f3a&t=12"}`,
		`{"taskToken":"t","input":{"userId":"u","provider":"p","scopes":["s"],"returnTo":"http://127.0.0.1:8080/done"}}`,
		`{"userId":"u","provider":"p","scopes":["s"],"returnTo":"javascript:secret-return-value"}`,
		`{"userId":"u","provider":"p","scopes":["s"],"returnTo":"https://secret-user@app.example.com/#frag","ReturnTo":""}`,
		`{"userId":"u","provider":"p","scopes":["s"],"returnTo":""}`,
		`{"userId":"u","provider":"p","scopes":["s"],"returnTo":null}`,
		`{"provider":"p", "scopes":["s"]`, `[]`, `null`, `"secret-bare-string"`, `1`, ``, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		secrets := stringValues(raw)
		req, err := ParseRequest(raw)
		if err != nil {
			checkRefusal(t, "ParseRequest", err, raw, secrets)
			return
		}
		again, err := ParseRequest(encodeRequest(t, req))
		if err != nil {
			t.Fatalf("accepted %q, refused its re-encoding %q: %v", raw, encodeRequest(t, req), err)
		}
		if !sameRequest(req, again) {
			t.Fatalf("round trip of %q:\n got %#v\nwant %#v", raw, again, req)
		}
		err1, err2 := req.Validate(), again.Validate()
		if !sameError(err1, err2) {
			t.Fatalf("Validate differs after the round trip of %q: %v / %v", raw, err1, err2)
		}
		if err1 != nil {
			checkRefusal(t, "Validate", err1, raw, secrets)
			return
		}
		// Validate fills in the default flow: valid stays valid.
		if err := req.Validate(); err != nil {
			t.Fatalf("a validated request no longer validates: %v", err)
		}
		if again, err := ParseRequest(encodeRequest(t, req)); err != nil || again.Validate() != nil {
			t.Fatalf("a validated request does not re-validate after a round trip: %v", err)
		}
	})
}

// encodeRequest is the event a workflow would send for req.
func encodeRequest(t *testing.T, req Request) []byte {
	var v any = req.Input
	if req.TaskToken != "" {
		v = map[string]any{"taskToken": req.TaskToken, "input": req.Input}
		if req.ExecutionARN != "" {
			v.(map[string]any)["executionArn"] = req.ExecutionARN
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %#v: %v", req, err)
	}
	return b
}

func sameRequest(a, b Request) bool {
	// An empty map is omitted (omitempty): it comes back nil.
	if len(a.Input.CustomParameters) == 0 && len(b.Input.CustomParameters) == 0 {
		a.Input.CustomParameters, b.Input.CustomParameters = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func sameError(a, b error) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Error() == b.Error()
}

func checkRefusal(t *testing.T, what string, err error, raw []byte, secrets []string) {
	t.Helper()
	var f *Failure
	if !errors.As(err, &f) || err != error(f) {
		t.Fatalf("%s(%q): error %T %v is not a *Failure", what, raw, err, err)
	}
	if f.Name != contract.ErrInvalidInput || f.Retryable() {
		t.Fatalf("%s(%q): failure %q", what, raw, f.Name)
	}
	for _, s := range secrets {
		if strings.Contains(f.Message, s) {
			t.Fatalf("%s(%q): message %q holds the value %q", what, raw, f.Message, s)
		}
	}
}

// stringValues returns the string values of the JSON document raw (not
// its object keys: an unknown field's name is reported by design) that
// would be a leak if a message held them: at least 8 bytes, not all
// digits (an offset in a message), and not a word of a message or a key
// of the document.
func stringValues(raw []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	var keys, vals []string
	var stack []bool // per open container: is it an object?
	expectKey := func() bool { return len(stack) > 0 && stack[len(stack)-1] }
	isKey := expectKey()
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, true)
			case '[':
				stack = append(stack, false)
			default:
				stack = stack[:len(stack)-1]
			}
			isKey = expectKey()
			continue
		case string:
			if isKey {
				keys = append(keys, v)
			} else {
				vals = append(vals, v)
			}
		}
		if expectKey() {
			isKey = !isKey
		}
	}
	var out []string
	for _, v := range vals {
		if len(v) < 8 || strings.Trim(v, "0123456789") == "" || strings.Contains(messageWords, v) {
			continue
		}
		keyed := false
		for _, k := range keys {
			keyed = keyed || strings.Contains(k, v)
		}
		if !keyed {
			out = append(out, v)
		}
	}
	return out
}

// messageWords is the text of the messages ParseRequest and Validate use.
const messageWords = `event larger than bytes event is not a JSON object callback events need both taskToken and input ` +
	`field "input.userToken" has the wrong type malformed JSON at offset unknown field trailing data after the JSON object ` +
	`taskToken must be at most characters userId/userToken exactly one is required must be empty for the M2M flow ` +
	`flow must be USER_FEDERATION or M2M userId must be valid UTF-8 userToken must be a compact JWT (header.payload.signature) ` +
	`provider may contain only letters, digits, '-' and '_' scopes is required scopes needs at least one scope at most scopes ` +
	`scopes[ customParameters at most entries customParameters keys are 1- characters of letters, digits, '-', '_' and '.' ` +
	// correlationId, context, continueWith
	`correlationId must be 1- characters of letters, digits, '.', '_', ':' and '-' context must be a JSON object ` +
	`context must be at most bytes of compact JSON field "context" is malformed JSON ` +
	`continueWith: continueWith is not available for flows started with userToken: InvokeAgentRuntime with the user's JWT ` +
	`(an agent with a JWT authorizer) is the application's call continueWith needs exactly one of agentRuntimeArn / agentRuntimeId ` +
	`continueWith.agentRuntimeArn must be arn:aws:bedrock-agentcore:<region>:<account>:runtime/<agent runtime id> ` +
	`continueWith.accountId goes with agentRuntimeId only (the ARN names the account) ` +
	`continueWith.agentRuntimeId must be a name of letters, digits and '_' and a 10-character suffix (name-0123456789) ` +
	`continueWith.accountId must be the 12-digit account of the agent runtime ` +
	`continueWith.qualifier must be an endpoint name (1-48 of letters, digits and '_', starting with a letter) ` +
	`continueWith.runtimeSessionId must be - characters must be visible ASCII characters (it travels as a header) ` +
	`continueWith.payload is required (any JSON value but null) continueWith.payload must be at most bytes of compact JSON ` +
	`continueWith.payload is malformed JSON ` +
	// executionArn
	`executionArn must be a Step Functions execution ARN ` +
	`(arn:<partition>:states:<region>:<account>:execution:<state machine>:<name>) of at most bytes`
