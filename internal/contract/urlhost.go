package contract

import (
	"regexp"
	"strconv"
	"strings"
)

// An application URL's authority, as written: a DNS name or an IPv4 or
// bracketed IPv6 address, and an optional port; nothing percent-encoded,
// no user info.
var plainAuthorityRE = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])(:([0-9]{1,5}))?$`)

// PlainURLAuthority returns the authority (host and port) of an absolute
// URL exactly as written, when it is plain: a DNS name or IP address and a
// port of 1-65535, with nothing percent-encoded and no user info. What a
// page shows of such a URL is then what the browser goes to (no look-alike
// characters decoded from %XX, no direction overrides).
func PlainURLAuthority(u string) (string, bool) {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return "", false
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	m := plainAuthorityRE.FindStringSubmatch(rest)
	if m == nil {
		return "", false
	}
	if port := m[len(m)-1]; port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", false
		}
	}
	return rest, true
}
