package flow

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/consentflow/consentflow/internal/contract"
)

// The way back to the application: a workflow may name, in its input's
// optional returnTo, a page of the application that the success page links
// to ("Back to <host>"). It is never a redirect: the person clicks a plain
// link, and only on a success page. Only URLs the deployment lists
// (contract.EnvAppReturnURLs) are accepted, byte for byte: initiate refuses
// any other before anything is called, and the callback shows the link
// only while the URL is still in its own list, so that consentflow can
// never be made to send anyone to an address its operator did not name.

// MaxReturnTo bounds a returnTo and each configured application return
// URL (bytes; AgentCore's own return URLs have the same bound).
const MaxReturnTo = 2048

// ValidateAppReturnURL checks one application return URL: an absolute URL
// of at most MaxReturnTo characters of RFC 3986 (letters, digits and
// -._~:/?#[]@!$&'()*+;=%, but not ',', which separates the list) with a
// host, https (http only for 127.0.0.1, localhost and [::1], for local
// runs), without user info or fragment. Its messages never quote the URL.
func ValidateAppReturnURL(s string) error {
	if len(s) < 1 || len(s) > MaxReturnTo {
		return fmt.Errorf("must be an absolute URL of 1-%d characters", MaxReturnTo)
	}
	for i := 0; i < len(s); i++ {
		if !uriChar(s[i]) {
			return errors.New("must be written with the characters of RFC 3986 but ',' (percent-encode anything else)")
		}
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Opaque != "" || u.Hostname() == "":
		return errors.New("must be an absolute URL with a host")
	case u.User != nil:
		return errors.New("must not carry user info")
	case strings.Contains(s, "#"):
		return errors.New("must not have a fragment")
	}
	if _, ok := contract.PlainURLAuthority(s); !ok {
		return errors.New("must have a plain host: a DNS name or IP address, a port of 1-65535, nothing percent-encoded")
	}
	switch {
	case strings.HasPrefix(s, "https://"):
		return nil
	case strings.HasPrefix(s, "http://") && slices.Contains([]string{"127.0.0.1", "localhost", "::1"}, u.Hostname()):
		return nil
	}
	return errors.New("must use https (http only for 127.0.0.1/localhost)")
}

// uriChar reports whether b may appear in an application return URL: the
// unreserved, reserved and percent characters of RFC 3986 but ','.
func uriChar(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("-._~:/?#[]@!$&'()*+;=%", b) >= 0
}

// ParseAppReturnURLs reads the comma-separated contract.EnvAppReturnURLs
// setting (blank items are skipped, duplicates dropped); it refuses an
// item ValidateAppReturnURL refuses, and more than
// contract.MaxAppReturnURLs.
func ParseAppReturnURLs(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		if err := ValidateAppReturnURL(a); err != nil {
			return nil, Fail(contract.ErrMisconfigured, "%q %v", a, err)
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) > contract.MaxAppReturnURLs {
		return nil, Fail(contract.ErrMisconfigured, "at most %d URLs, got %d", contract.MaxAppReturnURLs, len(out))
	}
	return out, nil
}

// checkAppReturnURLs checks a configured list (Config, CallbackConfig).
func checkAppReturnURLs(list []string) error {
	if len(list) > contract.MaxAppReturnURLs {
		return fmt.Errorf("application return URLs: at most %d", contract.MaxAppReturnURLs)
	}
	for i, a := range list {
		if err := ValidateAppReturnURL(a); err != nil {
			return fmt.Errorf("application return URL %d %w", i+1, err)
		}
	}
	return nil
}

// validateReturnTo checks the shape of the input's returnTo (Request.Validate);
// the allow-list is the Initiator's (acceptsReturnTo). Empty is none.
func validateReturnTo(v string) error {
	if v == "" {
		return nil
	}
	if err := ValidateAppReturnURL(v); err != nil {
		return invalid("returnTo", "%v", err)
	}
	return nil
}

// acceptsReturnTo refuses a returnTo that is not, byte for byte, one of
// the configured application return URLs (or any, when none is).
func (x *Initiator) acceptsReturnTo(in Input) error {
	switch {
	case in.ReturnTo == "":
		return nil
	case len(x.cfg.AppReturnURLs) == 0:
		return invalid("returnTo", "is not accepted: no application return URL is configured (%s, CDK context appReturnUrls)", contract.EnvAppReturnURLs)
	case !slices.Contains(x.cfg.AppReturnURLs, in.ReturnTo):
		return invalid("returnTo", "is not one of the configured application return URLs (%s): it must equal one exactly", contract.EnvAppReturnURLs)
	}
	return nil
}

// withReturnTo gives a success outcome (KindConnected, KindAlreadyConnected)
// the session's returnTo when the callback's own list still holds it; every
// other outcome, and a returnTo no longer listed, gets none.
func (c *Callback) withReturnTo(o *Outcome, s *Session) *Outcome {
	if s.ReturnTo == "" || (o.Kind != KindConnected && o.Kind != KindAlreadyConnected) {
		return o
	}
	if !slices.Contains(c.cfg.AppReturnURLs, s.ReturnTo) || ValidateAppReturnURL(s.ReturnTo) != nil {
		c.d.Log.Warn("the session's returnTo is not in this callback's application return URLs: no link back shown",
			"correlationId", s.CorrelationID, "setting", contract.EnvAppReturnURLs)
		return o
	}
	o.ReturnTo = s.ReturnTo
	return o
}
