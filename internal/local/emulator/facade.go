package emulator

import (
	"errors"
	"fmt"
	"net/url"
)

// Hooks for the public test package agentcoretest, which is a thin facade over this
// one: registering workloads and providers on a running server, and giving the user's
// answer on the consent page without a browser.

// ErrNoSession: no pending, unexpired authorization session has that request URI.
var ErrNoSession = errors.New("emulator: no pending authorization session with that request URI")

// AddWorkload registers a workload identity (or more allowed return URLs of an existing
// one) on a running server, with the same checks as Config.Workloads.
func (s *Server) AddWorkload(w Workload) error {
	var errs []fieldError
	validateString(shapes["WorkloadIdentityNameType"], "name", w.Name, &errs)
	if len(errs) > 0 {
		return fmt.Errorf("emulator: workload name %q: %s", w.Name, errs[0].Message)
	}
	for _, u := range w.AllowedReturnURLs {
		validateString(shapes["ResourceOauth2ReturnUrlType"], "url", u, &errs)
		if pu, err := url.Parse(u); err != nil || pu.Scheme == "" || pu.Host == "" {
			errs = append(errs, fieldError{"url", "must be an absolute URL"})
		}
		if len(errs) > 0 {
			return fmt.Errorf("emulator: return URL %q of workload %q: %s", u, w.Name, errs[0].Message)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	urls := s.workloads[w.Name]
	if urls == nil {
		urls = map[string]bool{}
		s.workloads[w.Name] = urls
	}
	for _, u := range w.AllowedReturnURLs {
		urls[u] = true
	}
	return nil
}

// AddProvider registers a credential provider on a running server, with the same checks
// and defaults as Config.Providers.
func (s *Server) AddProvider(p Provider) error {
	var errs []fieldError
	validateString(shapes["CredentialProviderName"], "name", p.Name, &errs)
	if len(errs) > 0 {
		return fmt.Errorf("emulator: provider name %q: %s", p.Name, errs[0].Message)
	}
	switch p.Kind {
	case "":
		p.Kind = OAuth2
	case OAuth2:
	case APIKey:
		if p.APIKey == "" {
			p.APIKey = randomAPIKey()
		}
	default:
		return fmt.Errorf("emulator: provider %q: unknown kind %q (want %q or %q)", p.Name, p.Kind, OAuth2, APIKey)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.providers[p.Name]; dup {
		return fmt.Errorf("emulator: provider %q defined twice", p.Name)
	}
	s.providers[p.Name] = p
	return nil
}

// Decide gives the user's answer on the consent page of the pending session requestURI,
// as the page's Allow or Deny button does, and returns where the browser is sent next:
// the return URL with session_id and state (and error=access_denied on a denial). It is
// recorded as an OpConsent call. ErrNoSession when the session is unknown, already
// answered or expired.
func (s *Server) Decide(requestURI string, allow bool) (string, error) {
	call := Call{Op: OpConsent}
	defer func() { s.record(call) }()
	s.mu.Lock()
	sess := s.usableSession(requestURI)
	if sess == nil {
		s.mu.Unlock()
		call.HTTPStatus, call.Outcome = 400, "invalid-link"
		return "", ErrNoSession
	}
	call.Workload, call.Provider, call.UserKind = sess.workload, sess.provider, sess.user.kind
	loc := s.finish(sess, allow)
	s.mu.Unlock()
	call.HTTPStatus = 302
	call.Outcome = map[bool]string{true: "allowed", false: "denied"}[allow]
	return loc, nil
}

// SessionUser returns the user an authorization session was started for: the exact
// identifier that minted its workload token, as CompleteResourceTokenAuth needs it.
// kind is "userId" or "userToken"; value is a secret (a JWT) in the latter case. ok is
// false for an unknown session.
func (s *Server) SessionUser(sessionURI string) (kind, value string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[sessionURI]
	if sess == nil {
		return "", "", false
	}
	return sess.user.kind, sess.user.value, true
}
