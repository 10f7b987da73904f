package flow

import "strings"

// Character-class checks of the AgentCore model's patterns and of our own
// parameters, as plain byte loops: compiling the equivalent regular
// expressions at package init cost a Lambda 1-2 ms of its cold start.
// validate_test.go keeps each original pattern as the oracle the loops are
// tested and fuzzed against.
//
// Every class below is ASCII, so checking bytes is the same as checking
// runes: a byte of a multi-byte (or invalid) UTF-8 sequence is never in a
// class.

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// isWord is the regexp class \w: [0-9A-Za-z_].
func isWord(c byte) bool { return isAlnum(c) || c == '_' }

// isSpace is the regexp class \s: [\t\n\f\r ].
func isSpace(c byte) bool {
	return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '
}

// allOf reports whether s is not empty and every byte of s is in class.
func allOf(s string, class func(byte) bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !class(s[i]) {
			return false
		}
	}
	return true
}

// isBase64URL: [A-Za-z0-9_-].
func isBase64URL(c byte) bool { return isAlnum(c) || c == '_' || c == '-' }

// isStateToken: ^[A-Za-z0-9_-]{43}$, the shape of every customState
// consentflow generates.
func isStateToken(s string) bool {
	return len(s) == StateLen && allOf(s, isBase64URL)
}

// isOAuthErrorCode: ^[\x20-\x21\x23-\x5B\x5D-\x7E]{1,64}$, RFC 6749's
// error code characters (printable ASCII but '"' and '\').
func isOAuthErrorCode(s string) bool {
	return len(s) <= 64 && allOf(s, func(c byte) bool {
		return 0x20 <= c && c <= 0x7E && c != '"' && c != '\\'
	})
}

// isJWTPart: [A-Za-z0-9\-_=].
func isJWTPart(c byte) bool { return isBase64URL(c) || c == '=' }

// isCompactJWT: ^[A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]+\.[A-Za-z0-9\-_=]+$,
// three non-empty parts separated by dots (UserTokenType).
func isCompactJWT(s string) bool {
	header, rest, ok := strings.Cut(s, ".")
	if !ok {
		return false
	}
	payload, signature, ok := strings.Cut(rest, ".")
	return ok && allOf(header, isJWTPart) && allOf(payload, isJWTPart) && allOf(signature, isJWTPart)
}

// isProviderName: ^[a-zA-Z0-9\-_]+$ (CredentialProviderName).
func isProviderName(s string) bool { return allOf(s, isBase64URL) }

// isParamKey: ^[a-zA-Z0-9\-_.]+$ (CustomRequestKeyType).
func isParamKey(s string) bool {
	return allOf(s, func(c byte) bool { return isBase64URL(c) || c == '.' })
}

// sessionURIPrefix starts every AgentCore sessionUri (RequestUri).
const sessionURIPrefix = "urn:ietf:params:oauth:request_uri:"

// isSessionURI: ^urn:ietf:params:oauth:request_uri:[a-zA-Z0-9\-._~]+$
// (RequestUri).
func isSessionURI(s string) bool {
	id, ok := strings.CutPrefix(s, sessionURIPrefix)
	return ok && allOf(id, func(c byte) bool {
		return isBase64URL(c) || c == '.' || c == '~'
	})
}

// isWorkloadName: ^[A-Za-z0-9_.\-]+$ (WorkloadIdentityNameType).
func isWorkloadName(s string) bool { return isParamKey(s) }

// isReturnURL: ^\w+:(/?/?)[^\s]+$ (ResourceOauth2ReturnUrlType). The
// optional slashes are themselves non-space, so this is: a scheme of word
// characters, a colon, and at least one more character, none of them
// whitespace. \w excludes ':', so the scheme ends at the first byte that
// is not a word character.
func isReturnURL(s string) bool {
	i := 0
	for i < len(s) && isWord(s[i]) {
		i++
	}
	if i == 0 || i >= len(s) || s[i] != ':' {
		return false
	}
	return allOf(s[i+1:], func(c byte) bool { return !isSpace(c) })
}
