package flow

import (
	"crypto/subtle"
	"encoding/base64"
	"strings"
)

// stateBytes is the customState entropy: 256 bits, base64url without
// padding (43 characters), well inside the model's 1-4096 limit.
const stateBytes = 32

// StateLen is the length of every customState consentflow generates.
const StateLen = 43

// codeAlphabet avoids look-alikes (0/O, 1/I/L) and vowels that spell words
// less often than not; 31 symbols, 10 of them give 49.5 bits.
const (
	codeAlphabet = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
	codeLen      = 10
)

func newState(rnd Random) (string, error) {
	b := make([]byte, stateBytes)
	if err := rnd(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// newCode draws a verification code uniformly from codeAlphabet by
// rejection sampling, and returns it grouped for reading (XXXXX-XXXXX).
func newCode(rnd Random) (string, error) {
	const limit = 256 - 256%len(codeAlphabet) // largest multiple of 31 below 256
	out := make([]byte, 0, codeLen)
	buf := make([]byte, 32)
	for len(out) < codeLen {
		if err := rnd(buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			if int(c) < limit && len(out) < codeLen {
				out = append(out, codeAlphabet[int(c)%len(codeAlphabet)])
			}
		}
	}
	return string(out[:5]) + "-" + string(out[5:]), nil
}

// NormalizeCode turns what a person typed into the canonical code: case
// folded, separators and spaces dropped.
func NormalizeCode(typed string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// codeHash binds the code's digest to its session, so equal codes of two
// sessions have different digests.
func codeHash(sessionURI, code string) string {
	return Hash(sessionURI + "\x00" + NormalizeCode(code))
}

// equalHash compares two hex digests in constant time.
func equalHash(a, b string) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
