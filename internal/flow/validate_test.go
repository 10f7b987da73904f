package flow

import (
	"regexp"
	"strings"
	"testing"
)

// The regular expressions the byte-loop validators replaced: the oracles
// they must agree with on every input.
var oracles = []struct {
	name  string
	re    *regexp.Regexp
	valid func(string) bool
}{
	{"state", regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`), isStateToken},
	{"oauthError", regexp.MustCompile(`^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$`), isOAuthErrorCode},
	{"userToken", regexp.MustCompile(`^[A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]+$`), isCompactJWT},
	{"providerName", regexp.MustCompile(`^[a-zA-Z0-9\-_]+$`), isProviderName},
	{"paramKey", regexp.MustCompile(`^[a-zA-Z0-9\-_.]+$`), isParamKey},
	{"sessionURI", regexp.MustCompile(`^urn:ietf:params:oauth:request_uri:[a-zA-Z0-9\-._~]+$`), isSessionURI},
	{"workloadName", regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`), isWorkloadName},
	{"returnURL", regexp.MustCompile(`^\w+:(/?/?)[^\s]+$`), isReturnURL},
}

func oracle(t testing.TB, name string) (*regexp.Regexp, func(string) bool) {
	t.Helper()
	for _, o := range oracles {
		if o.name == name {
			return o.re, o.valid
		}
	}
	t.Fatalf("no oracle %q", name)
	return nil, nil
}

var state43 = strings.Repeat("aZ0_-", 8) + "abc"

// validatorCases: for each validator, inputs with the answer the original
// pattern gives (checked against it too).
var validatorCases = map[string]map[string]bool{
	"state": {
		state43: true, "": false, state43[:42]: false, state43 + "a": false,
		strings.Repeat("A", 42) + "=": false, strings.Repeat("A", 42) + "é": false,
		strings.Repeat("A", 42) + "\n": false, strings.Repeat("A", 41) + "é": false,
		"a b" + strings.Repeat("A", 40): false,
	},
	"oauthError": {
		"access_denied": true, "invalid_scope": true, " ": true, "!#[]~": true,
		strings.Repeat("x", 64): true, strings.Repeat("x", 65): false, "": false,
		`a"b`: false, `a\b`: false, "a\x7f": false, "a\x1f": false, "é": false,
		"access_denied\n": false, "\xff": false,
	},
	"userToken": {
		"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2lnbmF0dXJl": true,
		"a.b.c": true, "a=.-_.Z9": true, "abc": false, "a.b": false, "a.b.c.d": false,
		".b.c": false, "a..c": false, "a.b.": false, "a.b.c\n": false, "a.b c.d": false,
		"a.b.c+": false, "a/b.c.d": false, "": false, "..": false, "a.b.é": false,
	},
	"providerName": {
		"google": true, "My-Provider_2": true, "": false, "a.b": false, "a b": false,
		"a\n": false, "ü": false,
	},
	"paramKey": {
		"access_type": true, "a.b-c_D9": true, ".": true, "": false, "a b": false,
		"a=b": false, "a\n": false, "ß": false,
	},
	"sessionURI": {
		"urn:ietf:params:oauth:request_uri:abc":     true,
		"urn:ietf:params:oauth:request_uri:a-._~Z9": true,
		"urn:ietf:params:oauth:request_uri:":        false,
		"urn:ietf:params:oauth:request_uri:a b":     false,
		"urn:ietf:params:oauth:request_uri:a/b":     false,
		"urn:ietf:params:oauth:request_uri:a\n":     false,
		"URN:ietf:params:oauth:request_uri:abc":     false,
		"xurn:ietf:params:oauth:request_uri:abc":    false,
		"urn:evil:<script>":                         false, "": false,
	},
	"workloadName": {
		"consentflow-test": true, "a.b_c-D": true, "": false, "a b": false, "a/b": false,
		"a\n": false, "é": false,
	},
	"returnURL": {
		"https://cb.example/oauth2/callback": true, "http://127.0.0.1:8080/cb": true,
		"a:b": true, "a:/": true, "a://": true, "a:///": true, "_9:x": true, "a::": true,
		"a:é": true, "a:\xff": true, "a:\v": true,
		"": false, ":x": false, "a:": false, "a": false, "a:b c": false, "a:b\n": false,
		"a:\t": false, "a:\f": false, "a:\r": false, "é:x": false, "a-b:c": false,
		" a:b": false, "a b:c": false,
	},
}

func TestValidatorsAgreeWithPatterns(t *testing.T) {
	for name, cases := range validatorCases {
		re, valid := oracle(t, name)
		for in, want := range cases {
			if got := valid(in); got != want {
				t.Errorf("%s(%q) = %v, want %v", name, in, got, want)
			}
			if got := re.MatchString(in); got != want {
				t.Errorf("test case is wrong: pattern %s on %q = %v, table says %v", name, in, got, want)
			}
		}
	}
}

// fuzzAgainst checks the validator named name against its pattern on
// arbitrary input, seeded with the table's cases.
func fuzzAgainst(f *testing.F, name string) {
	re, valid := oracle(f, name)
	for in := range validatorCases[name] {
		f.Add(in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := valid(s), re.MatchString(s); got != want {
			t.Fatalf("%s(%q) = %v, pattern says %v", name, s, got, want)
		}
	})
}

func FuzzStateToken(f *testing.F)     { fuzzAgainst(f, "state") }
func FuzzOAuthErrorCode(f *testing.F) { fuzzAgainst(f, "oauthError") }
func FuzzCompactJWT(f *testing.F)     { fuzzAgainst(f, "userToken") }
func FuzzProviderName(f *testing.F)   { fuzzAgainst(f, "providerName") }
func FuzzParamKey(f *testing.F)       { fuzzAgainst(f, "paramKey") }
func FuzzSessionURI(f *testing.F)     { fuzzAgainst(f, "sessionURI") }
func FuzzWorkloadName(f *testing.F)   { fuzzAgainst(f, "workloadName") }
func FuzzReturnURL(f *testing.F)      { fuzzAgainst(f, "returnURL") }
