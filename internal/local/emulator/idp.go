package emulator

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The test OpenID Connect provider (IdP) served next to the AgentCore API. See doc.go.

// Operation names of the IdP's endpoints, as reported in Call.Op. They are not API
// operations: IsOperation is false for them and they take no faults.
const (
	OpOIDCDiscovery = "OIDCDiscovery"
	OpOIDCJWKS      = "OIDCJWKS"
	OpOIDCAuthorize = "OIDCAuthorize" // GET: the authorization request
	OpOIDCSignIn    = "OIDCSignIn"    // POST: a user chosen on the sign-in page
	OpOIDCToken     = "OIDCToken"
	OpOIDCUserInfo  = "OIDCUserInfo"
)

// Paths of the IdP's endpoints, relative to the issuer.
const (
	OIDCDiscoveryPath = "/.well-known/openid-configuration"
	OIDCAuthorizePath = "/oidc/authorize"
	OIDCTokenPath     = "/oidc/token"
	OIDCJWKSPath      = "/oidc/jwks"
	OIDCUserInfoPath  = "/oidc/userinfo"
)

// IdPSessionCookie is the cookie (on the emulator's own origin, Path /oidc/, HttpOnly,
// SameSite=Lax) that remembers the user signed in at the IdP.
const IdPSessionCookie = "emulator_idp_session"

const (
	// AuthCodeTTL is how long an authorization code can be redeemed (emulator clock).
	AuthCodeTTL = 60 * time.Second
	// DefaultIDTokenTTL and DefaultAccessTokenTTL apply when IdPConfig leaves them zero.
	DefaultIDTokenTTL     = time.Hour
	DefaultAccessTokenTTL = time.Hour
	// signInPageTTL bounds how long a shown sign-in page can be answered.
	signInPageTTL = 10 * time.Minute
	// idpSessionTTL bounds a remembered sign-in (emulator clock).
	idpSessionTTL = 12 * time.Hour
	// maxServedIssuers bounds the request origins remembered as issuers.
	maxServedIssuers = 64
)

// TestUser is a user of the test IdP.
type TestUser struct {
	Subject           string `json:"subject"`
	Email             string `json:"email,omitempty"`
	EmailVerified     bool   `json:"emailVerified,omitempty"`
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferredUsername,omitempty"`
}

// IdPClient is a client (relying party) registered at the test IdP. An empty
// ClientSecret makes it a public client (token_endpoint_auth_method "none").
type IdPClient struct {
	ClientID     string   `json:"clientId"`
	ClientSecret string   `json:"clientSecret,omitempty"`
	RedirectURIs []string `json:"redirectUris"`
}

// IdPConfig configures the test IdP. In JSON the TTLs are Go duration strings ("15m")
// or whole seconds (900): {"users":[...],"clients":[...],"idTokenTtl":"1h",
// "accessTokenTtl":3600,"audience":"..."}. Unknown members are refused.
type IdPConfig struct {
	// Users of the sign-in page; empty means the defaults alice and bob
	// (alice@example.com, bob@example.com, both verified).
	Users []TestUser
	// Clients are registered relying parties; none by default (AddIdPClient).
	Clients []IdPClient
	// IDTokenTTL and AccessTokenTTL: zero means one hour. A negative
	// IDTokenTTL issues ID tokens that have already expired (relying
	// parties' expiry tests).
	IDTokenTTL     time.Duration
	AccessTokenTTL time.Duration
	// Audience is the access token's aud; empty means the client id.
	Audience string
}

type idpConfigJSON struct {
	Users          []TestUser   `json:"users,omitempty"`
	Clients        []IdPClient  `json:"clients,omitempty"`
	IDTokenTTL     jsonDuration `json:"idTokenTtl,omitempty"`
	AccessTokenTTL jsonDuration `json:"accessTokenTtl,omitempty"`
	Audience       string       `json:"audience,omitempty"`
}

// MarshalJSON writes the TTLs as duration strings.
func (c IdPConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(idpConfigJSON{c.Users, c.Clients, jsonDuration(c.IDTokenTTL), jsonDuration(c.AccessTokenTTL), c.Audience})
}

// UnmarshalJSON reads the TTLs as duration strings or seconds and refuses unknown members.
func (c *IdPConfig) UnmarshalJSON(b []byte) error {
	var j idpConfigJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("idp: %w", err)
	}
	*c = IdPConfig{j.Users, j.Clients, time.Duration(j.IDTokenTTL), time.Duration(j.AccessTokenTTL), j.Audience}
	return nil
}

type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("bad duration %q", s)
		}
		*d = jsonDuration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil || n > int64(24*365*time.Hour/time.Second) || n < -int64(24*365*time.Hour/time.Second) {
		return fmt.Errorf("a duration must be a string like \"15m\" or whole seconds, got %s", b)
	}
	*d = jsonDuration(time.Duration(n) * time.Second)
	return nil
}

var defaultTestUsers = []TestUser{
	{Subject: "alice", Email: "alice@example.com", EmailVerified: true, Name: "Alice Example", PreferredUsername: "alice"},
	{Subject: "bob", Email: "bob@example.com", EmailVerified: true, Name: "Bob Example", PreferredUsername: "bob"},
}

// idp is the IdP's state. Lock order: Server.mu before idp.mu (a JWT is verified
// under Server.mu); IdP handlers read the clock before taking idp.mu.
type idp struct {
	key    *rsa.PrivateKey
	kid    string
	signer jose.Signer

	foreignOnce   sync.Once
	foreignSigner jose.Signer
	foreignErr    error

	mu        sync.Mutex
	listenURL string          // base URL of the first Serve
	served    map[string]bool // request origins used as issuer when none is configured
	users     []TestUser
	clients   map[string]IdPClient
	idTTL     time.Duration
	atTTL     time.Duration
	audience  string
	requests  map[string]*authRequest // shown sign-in pages, by form token
	codes     map[string]*authCode
	sessions  map[string]*idpSession // by cookie value
	signInAs  *string
}

// authRequest is a validated authorization request.
type authRequest struct {
	clientID, redirectURI, state, challenge, nonce, scope, issuer string
	created                                                       time.Time
}

type authCode struct {
	req      authRequest
	subject  string
	authTime time.Time
	expires  time.Time
}

type idpSession struct {
	subject  string
	authTime time.Time
	expires  time.Time
}

func newIdP(cfg IdPConfig) (*idp, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	p := &idp{
		key:      key,
		served:   map[string]bool{},
		clients:  map[string]IdPClient{},
		idTTL:    cfg.IDTokenTTL,
		atTTL:    cfg.AccessTokenTTL,
		audience: cfg.Audience,
		requests: map[string]*authRequest{},
		codes:    map[string]*authCode{},
		sessions: map[string]*idpSession{},
	}
	jwk := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.RS256), Use: "sig"}
	tp, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	p.kid = base64.RawURLEncoding.EncodeToString(tp)
	if p.signer, err = newSigner(key, p.kid); err != nil {
		return nil, err
	}
	if p.atTTL < 0 {
		return nil, errors.New("emulator: idp: the access token TTL must not be negative")
	}
	if p.idTTL == 0 {
		p.idTTL = DefaultIDTokenTTL
	}
	if p.atTTL == 0 {
		p.atTTL = DefaultAccessTokenTTL
	}
	users := cfg.Users
	if len(users) == 0 {
		users = defaultTestUsers
	}
	for _, u := range users {
		if err := p.addUser(u); err != nil {
			return nil, err
		}
	}
	for _, c := range cfg.Clients {
		if _, dup := p.clients[c.ClientID]; dup {
			return nil, fmt.Errorf("emulator: idp: client %q defined twice", c.ClientID)
		}
		if err := p.addClient(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func newSigner(key *rsa.PrivateKey, kid string) (jose.Signer, error) {
	return jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256,
		Key: jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: string(jose.RS256)}},
		(&jose.SignerOptions{}).WithType("JWT"))
}

// addUser adds or replaces a user; p.mu is held or p is not shared yet.
func (p *idp) addUser(u TestUser) error {
	if u.Subject == "" || len(u.Subject) > 255 || strings.ContainsFunc(u.Subject, func(r rune) bool { return r < 0x21 || r == 0x7f }) {
		return fmt.Errorf("emulator: idp: user subject %q must be 1-255 printable characters without spaces", u.Subject)
	}
	for i := range p.users {
		if p.users[i].Subject == u.Subject {
			p.users[i] = u
			return nil
		}
	}
	p.users = append(p.users, u)
	return nil
}

// addClient adds or replaces a client; p.mu is held or p is not shared yet.
func (p *idp) addClient(c IdPClient) error {
	if c.ClientID == "" || len(c.ClientID) > 255 || strings.ContainsFunc(c.ClientID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("emulator: idp: client id %q must be 1-255 printable characters", c.ClientID)
	}
	if len(c.RedirectURIs) == 0 {
		return fmt.Errorf("emulator: idp: client %q has no redirect URI", c.ClientID)
	}
	for _, r := range c.RedirectURIs {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" || strings.Contains(r, "#") {
			return fmt.Errorf("emulator: idp: redirect URI %q of client %q must be an absolute http(s) URL without a fragment", r, c.ClientID)
		}
	}
	c.RedirectURIs = append([]string(nil), c.RedirectURIs...)
	p.clients[c.ClientID] = c
	return nil
}

func (p *idp) user(subject string) (TestUser, bool) {
	for _, u := range p.users {
		if u.Subject == subject {
			return u, true
		}
	}
	return TestUser{}, false
}

// AddTestUser adds a user to the IdP's sign-in page, or replaces the user with the same
// Subject.
func (s *Server) AddTestUser(u TestUser) error {
	s.idp.mu.Lock()
	defer s.idp.mu.Unlock()
	return s.idp.addUser(u)
}

// AddIdPClient registers a client at the IdP, or replaces the client with the same
// ClientID. RedirectURIs are matched exactly; an empty ClientSecret makes a public client.
func (s *Server) AddIdPClient(c IdPClient) error {
	s.idp.mu.Lock()
	defer s.idp.mu.Unlock()
	return s.idp.addClient(c)
}

// TestUsers returns the IdP's users in sign-in page order.
func (s *Server) TestUsers() []TestUser {
	s.idp.mu.Lock()
	defer s.idp.mu.Unlock()
	return append([]TestUser(nil), s.idp.users...)
}

// SignInAs makes the NEXT valid authorization request at the IdP (whatever its prompt)
// sign in subject and redirect with a code at once, without a page; the browser's IdP
// session cookie is set as if the user had chosen it. It is single shot: the request
// after that behaves normally. A request refused before the sign-in step (unknown
// client, bad redirect_uri, missing PKCE...) does not consume it. Calling it again
// replaces the pending subject. It fails when subject is not a test user.
func (s *Server) SignInAs(subject string) error {
	s.idp.mu.Lock()
	defer s.idp.mu.Unlock()
	if _, ok := s.idp.user(subject); !ok {
		return fmt.Errorf("emulator: SignInAs: %q is not a test user", subject)
	}
	s.idp.signInAs = &subject
	return nil
}

// Issuer is the IdP's issuer: Config.PublicURL when set, else the base URL of the first
// listener given to Start or Serve (an unspecified address such as 0.0.0.0 is written
// as 127.0.0.1, [::] as [::1]). It is "" for a Handler mounted on a server of your
// own without PublicURL: the IdP endpoints then use each request's origin.
func (s *Server) Issuer() string {
	if s.publicURL != "" {
		return s.publicURL
	}
	s.idp.mu.Lock()
	defer s.idp.mu.Unlock()
	return s.idp.listenURL
}

// setListenURL records the first listener's address as the issuer.
func (s *Server) setListenURL(addr net.Addr) {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip.To4() == nil {
			host = "::1"
		}
	}
	s.idp.mu.Lock()
	defer s.idp.mu.Unlock()
	if s.idp.listenURL == "" {
		s.idp.listenURL = "http://" + net.JoinHostPort(host, port)
	}
}

// issuerLocked is Issuer with idp.mu held.
func (s *Server) issuerLocked() string {
	if s.publicURL != "" {
		return s.publicURL
	}
	return s.idp.listenURL
}

// trustedLocked reports whether iss is one of the emulator's own issuers; idp.mu is held.
func (s *Server) trustedLocked(iss string) bool {
	own := s.issuerLocked()
	return iss != "" && (iss == own || s.idp.served[iss])
}

// idClaims are the claims of an ID token.
type idClaims struct {
	jwt.Claims
	Nonce             string `json:"nonce,omitempty"`
	AuthTime          int64  `json:"auth_time,omitempty"`
	AZP               string `json:"azp,omitempty"`
	AtHash            string `json:"at_hash,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
}

// accessClaims are the claims of an access token.
type accessClaims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
}

// userClaims fills the profile claims of u (only those configured).
func userClaims(c *idClaims, u TestUser) {
	c.Email, c.Name, c.PreferredUsername = u.Email, u.Name, u.PreferredUsername
	if u.Email != "" {
		v := u.EmailVerified
		c.EmailVerified = &v
	}
}

// expiry is now+ttl; a ttl <= 0 gives a time already past (one second more), so the
// token is expired even for a verifier without leeway at the same instant.
func expiry(now time.Time, ttl time.Duration) time.Time {
	if ttl <= 0 {
		return now.Add(ttl - time.Second)
	}
	return now.Add(ttl)
}

// idToken builds and signs an ID token; p.mu need not be held (u is a copy).
func (p *idp) idToken(signer jose.Signer, iss string, u TestUser, known bool, aud, nonce string, authTime, now time.Time, ttl time.Duration, accessToken string) (string, error) {
	c := idClaims{
		Claims: jwt.Claims{
			Issuer:   iss,
			Subject:  u.Subject,
			Audience: jwt.Audience{aud},
			Expiry:   jwt.NewNumericDate(expiry(now, ttl)),
			IssuedAt: jwt.NewNumericDate(now),
			ID:       randomToken(16),
		},
		Nonce: nonce,
		AZP:   aud,
	}
	if !authTime.IsZero() {
		c.AuthTime = authTime.Unix()
	}
	if known {
		userClaims(&c, u)
	}
	if accessToken != "" {
		h := sha256.Sum256([]byte(accessToken))
		c.AtHash = base64.RawURLEncoding.EncodeToString(h[:16])
	}
	return jwt.Signed(signer).Claims(c).Serialize()
}

// MintIDToken returns an ID token signed exactly as the token endpoint signs one (RS256,
// the published key and kid, iss = Issuer(), aud = audience, iat = the emulator's now,
// exp = now + ttl, a random jti, and the profile claims when subject is a test user;
// any other subject gets sub only). A ttl <= 0 gives a token that is already expired.
// It fails when Issuer() is "" (a Handler on your own server without PublicURL).
func (s *Server) MintIDToken(subject, audience string, ttl time.Duration) (string, error) {
	return s.mint(s.idp.signer, "", subject, audience, ttl)
}

// MintForeignToken returns a token shaped like MintIDToken's (iss = issuer, or Issuer()
// when issuer is "") but signed with a second RSA key that the JWKS does not publish;
// its header carries the emulator's own kid, so a verifier picks the published key and
// the signature check fails. Use it for bad-signature tests (issuer "") and
// untrusted-issuer tests (another issuer).
func (s *Server) MintForeignToken(issuer, subject, audience string, ttl time.Duration) (string, error) {
	p := s.idp
	p.foreignOnce.Do(func() {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			p.foreignErr = err
			return
		}
		p.foreignSigner, p.foreignErr = newSigner(key, p.kid)
	})
	if p.foreignErr != nil {
		return "", p.foreignErr
	}
	return s.mint(p.foreignSigner, issuer, subject, audience, ttl)
}

func (s *Server) mint(signer jose.Signer, iss, subject, audience string, ttl time.Duration) (string, error) {
	if subject == "" || audience == "" {
		return "", errors.New("emulator: a token needs a subject and an audience")
	}
	now := s.Now().Truncate(time.Second)
	s.idp.mu.Lock()
	if iss == "" {
		iss = s.issuerLocked()
	}
	u, known := s.idp.user(subject)
	s.idp.mu.Unlock()
	if iss == "" {
		return "", errors.New("emulator: the issuer is unknown: set Config.PublicURL or serve with Start/Serve")
	}
	if !known {
		u = TestUser{Subject: subject}
	}
	return s.idp.idToken(signer, iss, u, known, audience, "", time.Time{}, now, ttl, "")
}

// userTokenAlgs are the algorithms a user token may name and still parse: the
// emulator refuses all but RS256 after parsing, so that an unsigned ("none") or
// otherwise signed token is told apart from a malformed one.
var userTokenAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.HS256, jose.HS384, jose.HS512, "none",
}

// verifyUserToken checks a userToken as GetWorkloadAccessTokenForJWT does. It returns
// the verified iss and sub, or the reason for refusal and whether the token is
// malformed (not a JWS with a JSON claims set) rather than unacceptable. s.mu is held;
// now is the emulator clock.
func (s *Server) verifyUserToken(raw string, now time.Time) (iss, sub, why string, malformed bool) {
	tok, err := jwt.ParseSigned(raw, userTokenAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return "", "", "malformed", true
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return "", "", "malformed", true
	}
	h := tok.Headers[0]
	if h.Algorithm != string(jose.RS256) {
		return "", "", "alg", false
	}
	s.idp.mu.Lock()
	trusted := s.trustedLocked(unverified.Issuer)
	s.idp.mu.Unlock()
	if !trusted {
		return "", "", "issuer", false
	}
	if h.KeyID != "" && h.KeyID != s.idp.kid {
		return "", "", "signature", false
	}
	var c jwt.Claims
	if err := tok.Claims(&s.idp.key.PublicKey, &c); err != nil {
		return "", "", "signature", false
	}
	if c.Subject == "" || c.Expiry == nil {
		return "", "", "claims", false
	}
	if err := c.ValidateWithLeeway(jwt.Expected{Time: now}, 0); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return "", "", "expired", false
		case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
			return "", "", "not-yet-valid", false
		}
		return "", "", "claims", false
	}
	return c.Issuer, c.Subject, "", false
}

// verifyAccessToken checks an access token minted by the token endpoint.
func (s *Server) verifyAccessToken(raw string, now time.Time) (accessClaims, bool) {
	var c accessClaims
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(tok.Headers) != 1 || tok.Headers[0].KeyID != s.idp.kid {
		return c, false
	}
	if err := tok.Claims(&s.idp.key.PublicKey, &c); err != nil || c.ClientID == "" || c.Expiry == nil {
		return c, false
	}
	if c.ValidateWithLeeway(jwt.Expected{Time: now}, 0) != nil {
		return c, false
	}
	s.idp.mu.Lock()
	defer s.idp.mu.Unlock()
	return c, s.trustedLocked(c.Issuer)
}

// jwks is the published key set.
func (p *idp) jwks() jose.JSONWebKeySet {
	return jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &p.key.PublicKey, KeyID: p.kid, Algorithm: string(jose.RS256), Use: "sig",
	}}}
}

// s256 is the PKCE S256 transform of a code verifier.
func s256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// pkceValue reports whether v is a valid code_verifier or code_challenge (RFC 7636:
// 43-128 characters of [A-Za-z0-9-._~]).
func pkceValue(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// hasScope reports whether the space-separated scope list contains want.
func hasScope(scope, want string) bool { return slices.Contains(strings.Fields(scope), want) }
