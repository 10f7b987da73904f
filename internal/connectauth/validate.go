package connectauth

import (
	"errors"
	"unicode"
	"unicode/utf8"
)

// Constraints of UpdateParticipantAuthenticationRequest in the Amazon
// Connect model (connect-2017-08-08). Lengths are in characters (Unicode
// code points), as Smithy's @length counts them for strings.
const (
	// MaxState is ParticipantToken's maximum (State; minimum 1).
	MaxState = 1000
	// MaxCode is AuthorizationCode's maximum (Code; minimum 1).
	MaxCode = 2048
	// MaxError is AuthenticationError's and AuthenticationErrorDescription's
	// maximum (Error, ErrorDescription; minimum 1).
	MaxError = 2048
	// MaxInstanceID is InstanceId's maximum (minimum 1).
	MaxInstanceID = 100
)

// Params are a redirect's query parameters as the browser sent them,
// unchecked. An empty value counts as absent.
type Params struct {
	State            string
	Code             string
	Error            string
	ErrorDescription string
}

// Redirect is a redirect that passed Validate: every field satisfies the
// model's constraints, State is set, and exactly one of Code and Error is
// (ErrorDescription only with Error).
type Redirect struct {
	State            string
	Code             string
	Error            string
	ErrorDescription string
}

// Cancelled reports whether the redirect reports a failed or cancelled
// sign-in (error) rather than a code.
func (r Redirect) Cancelled() bool { return r.Error != "" }

// Rule names the check a refused redirect failed. Its text names the
// parameter and the rule, never a value: it is logged.
type Rule string

// The rules Validate applies, in the order it applies them.
const (
	RuleNoState             Rule = "state missing"
	RuleState               Rule = "state: 1-1000 characters of valid UTF-8 without control characters"
	RuleCodeAndError        Rule = "code and error both present"
	RuleNeitherCodeNorError Rule = "neither code nor error present"
	RuleCode                Rule = "code: 1-2048 characters of valid UTF-8 without control characters"
	RuleError               Rule = "error: 1-2048 characters of printable ASCII without \" and \\"
	RuleErrorDescription    Rule = "error_description: 1-2048 characters of printable ASCII without \" and \\"
	RuleDescriptionAlone    Rule = "error_description without error"
)

// InvalidError is Validate's refusal.
type InvalidError struct{ Rule Rule }

func (e *InvalidError) Error() string { return "connectauth: invalid redirect: " + string(e.Rule) }

// ErrInvalid matches every *InvalidError (errors.Is).
var ErrInvalid = errors.New("connectauth: invalid redirect")

// Is makes errors.Is(err, ErrInvalid) true for an *InvalidError.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

// Validate checks a redirect against the model's constraints before any
// call, so that Connect never sees a request it would refuse for its shape
// and nothing unchecked reaches a log or a page:
//
//   - State: required, ParticipantToken (1-1000 characters);
//   - Code: AuthorizationCode (1-2048 characters);
//   - Error, ErrorDescription: AuthenticationError(Description), 1-2048
//     characters matching ^[\x20-\x21\x23-\x5B\x5D-\x7E]*$;
//   - exactly one of Code and Error (the operation's two documented uses:
//     "if a code is provided" / "if an error is provided"), and
//     ErrorDescription only with Error.
//
// Stricter than the model (which gives State and Code no pattern): State
// and Code must be valid UTF-8 (the SDK's JSON encoder would silently
// replace invalid bytes, so Connect would get another value) and hold no
// control characters (no Cognito code or Connect state does; they would
// only serve log or header injection).
func Validate(p Params) (Redirect, error) {
	fail := func(r Rule) (Redirect, error) { return Redirect{}, &InvalidError{Rule: r} }
	switch {
	case p.State == "":
		return fail(RuleNoState)
	case !textOK(p.State, MaxState):
		return fail(RuleState)
	case p.Code != "" && p.Error != "":
		return fail(RuleCodeAndError)
	case p.Code == "" && p.Error == "":
		if p.ErrorDescription != "" {
			return fail(RuleDescriptionAlone)
		}
		return fail(RuleNeitherCodeNorError)
	case p.Code != "" && p.ErrorDescription != "":
		return fail(RuleDescriptionAlone)
	case p.Code != "" && !textOK(p.Code, MaxCode):
		return fail(RuleCode)
	case p.Error != "" && !errorTextOK(p.Error):
		return fail(RuleError)
	case p.ErrorDescription != "" && !errorTextOK(p.ErrorDescription):
		return fail(RuleErrorDescription)
	}
	return Redirect(p), nil
}

// textOK: 1..max code points of valid UTF-8, no control character.
func textOK(s string, max int) bool {
	if s == "" || len(s) > 4*max || !utf8.ValidString(s) {
		return false
	}
	n := 0
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
		n++
	}
	return n <= max
}

// errorTextOK: 1..MaxError characters of the model's pattern
// ^[\x20-\x21\x23-\x5B\x5D-\x7E]*$ (printable ASCII but '"' and '\').
// All ASCII, so bytes are characters.
func errorTextOK(s string) bool {
	if s == "" || len(s) > MaxError {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7E || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ValidInstanceID reports whether id satisfies the model's InstanceId
// (1-100 characters) and, stricter, is printable ASCII without spaces
// (instance ids are UUIDs).
func ValidInstanceID(id string) bool {
	if id == "" || len(id) > MaxInstanceID {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= 0x20 || id[i] > 0x7E {
			return false
		}
	}
	return true
}
