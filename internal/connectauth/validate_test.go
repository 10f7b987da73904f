package connectauth

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// modelErrorPattern is AuthenticationError's and
// AuthenticationErrorDescription's pattern in the Connect model, verbatim.
var modelErrorPattern = regexp.MustCompile(`^[\x20-\x21\x23-\x5B\x5D-\x7E]*$`)

func TestValidate(t *testing.T) {
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	for _, c := range []struct {
		name string
		p    Params
		rule Rule // "" when accepted
	}{
		{"code", Params{State: "st-1", Code: "c0de"}, ""},
		{"error", Params{State: "st-1", Error: "access_denied"}, ""},
		{"error with description", Params{State: "st-1", Error: "access_denied", ErrorDescription: "User cancelled the login"}, ""},
		{"state at its maximum", Params{State: long(MaxState, "s"), Code: "c"}, ""},
		{"state of multibyte characters at its maximum", Params{State: long(MaxState, "é"), Code: "c"}, ""},
		{"code at its maximum", Params{State: "s", Code: long(MaxCode, "c")}, ""},
		{"error and description at their maximum", Params{State: "s", Error: long(MaxError, "e"), ErrorDescription: long(MaxError, "d")}, ""},
		{"error with every allowed punctuation", Params{State: "s", Error: " !#$%&'()*+,-./:;<=>?@[]^_`{|}~"}, ""},
		{"a UUID code and a JWT-like state", Params{State: "eyJhbGciOi.eyJzdWIi.c2ln-_", Code: "9f1c4c1e-4b1a-4c53-8d5e-2f7b0c3a1d9e"}, ""},

		{"nothing", Params{}, RuleNoState},
		{"no state", Params{Code: "c"}, RuleNoState},
		{"state too long", Params{State: long(MaxState+1, "s"), Code: "c"}, RuleState},
		{"state of multibyte characters too long", Params{State: long(MaxState+1, "é"), Code: "c"}, RuleState},
		{"state not UTF-8", Params{State: "a\xffb", Code: "c"}, RuleState},
		{"state with a newline", Params{State: "a\nb", Code: "c"}, RuleState},
		{"state with NUL", Params{State: "a\x00b", Code: "c"}, RuleState},
		{"state with a C1 control", Params{State: "a\u0085b", Code: "c"}, RuleState},
		{"code and error", Params{State: "s", Code: "c", Error: "e"}, RuleCodeAndError},
		{"neither", Params{State: "s"}, RuleNeitherCodeNorError},
		{"description alone", Params{State: "s", ErrorDescription: "d"}, RuleDescriptionAlone},
		{"description with a code", Params{State: "s", Code: "c", ErrorDescription: "d"}, RuleDescriptionAlone},
		{"code too long", Params{State: "s", Code: long(MaxCode+1, "c")}, RuleCode},
		{"code not UTF-8", Params{State: "s", Code: "\xc3"}, RuleCode},
		{"code with CR", Params{State: "s", Code: "c\rX-Injected: 1"}, RuleCode},
		{"error too long", Params{State: "s", Error: long(MaxError+1, "e")}, RuleError},
		{"error with a quote", Params{State: "s", Error: `a"b`}, RuleError},
		{"error with a backslash", Params{State: "s", Error: `a\b`}, RuleError},
		{"error with a tab", Params{State: "s", Error: "a\tb"}, RuleError},
		{"error not ASCII", Params{State: "s", Error: "refusé"}, RuleError},
		{"description too long", Params{State: "s", Error: "e", ErrorDescription: long(MaxError+1, "d")}, RuleErrorDescription},
		{"description with a quote", Params{State: "s", Error: "e", ErrorDescription: `say "no"`}, RuleErrorDescription},
		{"description with DEL", Params{State: "s", Error: "e", ErrorDescription: "a\x7fb"}, RuleErrorDescription},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, err := Validate(c.p)
			if c.rule == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if r != Redirect(c.p) {
					t.Fatalf("accepted %+v as %+v", c.p, r)
				}
				return
			}
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Rule != c.rule || !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want rule %q", err, c.rule)
			}
			if r != (Redirect{}) {
				t.Fatalf("a refusal returned %+v", r)
			}
		})
	}
}

func TestValidInstanceID(t *testing.T) {
	for id, want := range map[string]bool{
		"00fbeee1-123e-111e-93e3-11111bfbfcc1": true,
		"x":                                    true,
		strings.Repeat("a", MaxInstanceID):     true,
		"":                                     false,
		strings.Repeat("a", MaxInstanceID+1):   false,
		"has space":                            false,
		"tab\t":                                false,
		"é":                                    false,
	} {
		if got := ValidInstanceID(id); got != want {
			t.Errorf("ValidInstanceID(%q) = %v", id, got)
		}
	}
}

// modelAccepts is the model's constraints written independently of
// Validate: lengths in code points, the error pattern as a regexp, plus
// the documented combination and this package's stricter rules.
func modelAccepts(p Params) bool {
	text := func(s string, max int) bool {
		if !utf8.ValidString(s) {
			return false
		}
		n := utf8.RuneCountInString(s)
		return n >= 1 && n <= max && strings.IndexFunc(s, unicode.IsControl) < 0
	}
	errText := func(s string) bool {
		return len(s) >= 1 && utf8.RuneCountInString(s) <= MaxError && modelErrorPattern.MatchString(s)
	}
	if !text(p.State, MaxState) || (p.Code == "") == (p.Error == "") {
		return false
	}
	if p.Code != "" {
		return p.ErrorDescription == "" && text(p.Code, MaxCode)
	}
	return errText(p.Error) && (p.ErrorDescription == "" || errText(p.ErrorDescription))
}

// FuzzValidate checks Validate against modelAccepts: it accepts exactly
// what the model (and the stricter rules) accept, returns accepted values
// unchanged, and never panics.
func FuzzValidate(f *testing.F) {
	f.Add("state-1", "code-1", "", "")
	f.Add("state-1", "", "access_denied", "User cancelled")
	f.Add("", "c", "", "")
	f.Add("s", "c", "e", "")
	f.Add("s", "", "", "d")
	f.Add("s\n", "c", "", "")
	f.Add("s", "", `a"b`, "")
	f.Add("s", "", "e", "\\")
	f.Add("\xff", "c", "", "")
	f.Add("s", "\u0085", "", "")
	f.Add(strings.Repeat("é", MaxState), "c", "", "")
	f.Fuzz(func(t *testing.T, state, code, errCode, desc string) {
		p := Params{State: state, Code: code, Error: errCode, ErrorDescription: desc}
		r, err := Validate(p)
		want := modelAccepts(p)
		if (err == nil) != want {
			t.Fatalf("Validate(%q) = %v, the model says accept=%v", p, err, want)
		}
		if err == nil && r != Redirect(p) {
			t.Fatalf("accepted value changed: %+v -> %+v", p, r)
		}
		if err != nil {
			// The refusal names a rule, never a value.
			msg := err.Error()
			for _, v := range []string{state, code, errCode, desc} {
				if len(v) > 3 && strings.Contains(msg, v) {
					t.Fatalf("the refusal %q quotes input %q", msg, v)
				}
			}
		}
	})
}
