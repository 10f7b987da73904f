package emulator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// SigningName is the SigV4 service name requests must be scoped to.
const SigningName = "bedrock-agentcore"

// ReturnURLNotRegistered is the ValidationException message AWS returns when
// resourceOauth2ReturnUrl is missing or not registered on the workload identity.
const ReturnURLNotRegistered = "You must register and use at least one ResourceOauth2ReturnUrl on your workload identity to use this flow"

// InvalidSession is the AccessDeniedException message for a session that cannot be used.
const InvalidSession = "Invalid or expired session"

// InvalidUserTokenFormat is the ValidationException message for a userToken that matches
// the model's pattern but is not a JWS compact serialization with a JSON claims set. The
// text is the emulator's; AWS's is unconfirmed.
const InvalidUserTokenFormat = "userToken must be a signed JWT"

// InvalidUserToken is the UnauthorizedException message for a well-formed userToken the
// emulator does not accept: not RS256 (alg none included), a bad signature, an issuer it
// does not trust, expired or not yet valid, or without sub or exp. The text and the
// error type are the emulator's choice; AWS's are unconfirmed.
const InvalidUserToken = "The user token is invalid or expired, or its issuer is not trusted"

// SessionURIPrefix starts every sessionUri.
const SessionURIPrefix = "urn:ietf:params:oauth:request_uri:"

var routes = map[string]struct{ op, input string }{
	"/identities/GetWorkloadAccessToken":          {OpGetWorkloadAccessToken, "GetWorkloadAccessTokenRequest"},
	"/identities/GetWorkloadAccessTokenForUserId": {OpGetWorkloadAccessTokenForUserID, "GetWorkloadAccessTokenForUserIdRequest"},
	"/identities/GetWorkloadAccessTokenForJWT":    {OpGetWorkloadAccessTokenForJWT, "GetWorkloadAccessTokenForJWTRequest"},
	"/identities/oauth2/token":                    {OpGetResourceOauth2Token, "GetResourceOauth2TokenRequest"},
	"/identities/CompleteResourceTokenAuth":       {OpCompleteResourceTokenAuth, "CompleteResourceTokenAuthRequest"},
	"/identities/api-key":                         {OpGetResourceAPIKey, "GetResourceApiKeyRequest"},
}

// apiError is an error response in the restJson1 encoding.
type apiError struct {
	status int
	typ    string
	msg    string
	reason string // ValidationException only
	fields []fieldError
}

func errValidation(msg string, fields ...fieldError) *apiError {
	return &apiError{status: 400, typ: "ValidationException", msg: msg, reason: "FieldValidationFailed", fields: fields}
}
func errFields(fields []fieldError) *apiError {
	return errValidation(validationMessage(fields), fields...)
}
func errAccessDenied(msg string) *apiError {
	return &apiError{status: 403, typ: "AccessDeniedException", msg: msg}
}
func errNotFound(msg string) *apiError {
	return &apiError{status: 404, typ: "ResourceNotFoundException", msg: msg}
}
func errUnauthorized(msg string) *apiError {
	return &apiError{status: 401, typ: "UnauthorizedException", msg: msg}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("X-Amzn-ErrorType", e.typ)
	body := map[string]any{"message": e.msg}
	if e.typ == "ValidationException" {
		body["reason"] = e.reason
		if len(e.fields) > 0 {
			body["fieldList"] = e.fields
		}
	}
	writeJSON(w, e.status, body)
}

// checkSigV4 checks that the request carries a SigV4 Authorization header scoped to
// bedrock-agentcore. The signature itself is not verified.
func checkSigV4(r *http.Request) *apiError {
	h := r.Header.Get("Authorization")
	if h == "" {
		if r.URL.Query().Get("X-Amz-Signature") != "" {
			return &apiError{status: 400, typ: "IncompleteSignatureException", msg: "The emulator accepts only header-signed requests"}
		}
		return &apiError{status: 403, typ: "MissingAuthenticationTokenException", msg: "Missing Authentication Token"}
	}
	alg, rest, _ := strings.Cut(h, " ")
	if alg != "AWS4-HMAC-SHA256" {
		return &apiError{status: 400, typ: "IncompleteSignatureException", msg: "Authorization header requires the AWS4-HMAC-SHA256 algorithm"}
	}
	params := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[k] = v
	}
	for _, k := range []string{"Credential", "SignedHeaders", "Signature"} {
		if params[k] == "" {
			return &apiError{status: 400, typ: "IncompleteSignatureException", msg: "Authorization header requires '" + k + "' parameter"}
		}
	}
	scope := strings.Split(params["Credential"], "/")
	if len(scope) != 5 || scope[4] != "aws4_request" || scope[0] == "" || scope[2] == "" {
		return &apiError{status: 400, typ: "IncompleteSignatureException", msg: "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term"}
	}
	if scope[3] != SigningName {
		return &apiError{status: 403, typ: "InvalidSignatureException", msg: "Credential should be scoped to correct service: '" + SigningName + "'."}
	}
	return nil
}

const maxBody = 1 << 20

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if target, ok := runtimeTarget(r); ok {
		s.serveRuntime(w, r, target)
		return
	}
	reqID := uuid.NewString()
	w.Header().Set("X-Amzn-Requestid", reqID)
	route, known := routes[r.URL.Path]
	call := Call{Op: route.op, RequestID: reqID}
	if !known {
		call.Op = "Unknown"
	}
	fail := func(e *apiError) {
		writeError(w, e)
		call.HTTPStatus, call.ErrorType = e.status, e.typ
		s.record(call)
	}
	// Like AWS, authentication is checked before routing.
	if e := checkSigV4(r); e != nil {
		fail(e)
		return
	}
	if !known || r.Method != http.MethodPost {
		fail(&apiError{status: 404, typ: "UnknownOperationException", msg: "Unknown operation " + r.Method + " " + r.URL.Path})
		return
	}
	// The body is read before any fault applies: only once it is read does
	// net/http watch the connection and end r.Context() when the caller
	// gives up, which Delay relies on.
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			fail(&apiError{status: 413, typ: "ValidationException", reason: "CannotParse", msg: "Request body too large"})
			return
		}
		fail(&apiError{status: 400, typ: "ValidationException", reason: "CannotParse", msg: "Could not read request body"})
		return
	}
	drop := false
	if f, ok := s.takeFault(route.op); ok {
		switch f.Kind {
		case FaultDropResponse:
			call.Outcome = "fault"
			drop = true
		case FaultSlow:
			call.Outcome = "fault"
			time.Sleep(f.Delay)
		case FaultThrottling:
			call.Outcome = "fault"
			fail(&apiError{status: 429, typ: "ThrottlingException", msg: "Rate exceeded"})
			return
		case FaultInternal:
			call.Outcome = "fault"
			fail(&apiError{status: 500, typ: "InternalServerException", msg: "Internal server error (injected)"})
			return
		case FaultDelay:
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
	}
	fields, err := validateInput(route.input, body)
	if err != nil {
		fail(&apiError{status: 400, typ: "ValidationException", reason: "CannotParse", msg: err.Error()})
		return
	}
	if len(fields) > 0 {
		fail(errFields(fields))
		return
	}
	// Decode what was validated: encoding/json matches keys without regard
	// to case, so a "WorkloadName" key AWS ignores would override the
	// validated "workloadName".
	out, e := s.dispatch(r, route.op, modelMembers(shapes[route.input], body), &call)
	if drop {
		// The effect happened; the answer is lost with the connection.
		call.Outcome += "+dropped"
		s.record(call)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // HTTP/2 or a wrapped writer: abort the stream
	}
	if e != nil {
		fail(e)
		return
	}
	writeJSON(w, http.StatusOK, out)
	call.HTTPStatus = http.StatusOK
	s.record(call)
}

// Request bodies; validateInput has already checked every type and constraint.
type workloadTokenRequest struct {
	WorkloadName string `json:"workloadName"`
	UserID       string `json:"userId"`
	UserToken    string `json:"userToken"`
}

type oauth2TokenRequest struct {
	WorkloadIdentityToken          string            `json:"workloadIdentityToken"`
	ResourceCredentialProviderName string            `json:"resourceCredentialProviderName"`
	Scopes                         []string          `json:"scopes"`
	Oauth2Flow                     string            `json:"oauth2Flow"`
	SessionURI                     *string           `json:"sessionUri"`
	ResourceOauth2ReturnURL        *string           `json:"resourceOauth2ReturnUrl"`
	ForceAuthentication            *bool             `json:"forceAuthentication"`
	CustomState                    *string           `json:"customState"`
	CustomParameters               map[string]string `json:"customParameters"`
}

type completeRequest struct {
	SessionURI     string `json:"sessionUri"`
	UserIdentifier struct {
		UserID    *string `json:"userId"`
		UserToken *string `json:"userToken"`
	} `json:"userIdentifier"`
}

type apiKeyRequest struct {
	WorkloadIdentityToken          string `json:"workloadIdentityToken"`
	ResourceCredentialProviderName string `json:"resourceCredentialProviderName"`
}

func (s *Server) dispatch(r *http.Request, op string, body []byte, c *Call) (any, *apiError) {
	parse := func(v any) *apiError {
		if err := json.Unmarshal(body, v); err != nil {
			return &apiError{status: 400, typ: "ValidationException", reason: "CannotParse", msg: "Could not parse request body into json"}
		}
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch op {
	case OpGetWorkloadAccessToken, OpGetWorkloadAccessTokenForUserID, OpGetWorkloadAccessTokenForJWT:
		var in workloadTokenRequest
		if e := parse(&in); e != nil {
			return nil, e
		}
		return s.getWorkloadAccessToken(op, in, c)
	case OpGetResourceOauth2Token:
		var in oauth2TokenRequest
		if e := parse(&in); e != nil {
			return nil, e
		}
		return s.getResourceOauth2Token(r, in, c)
	case OpCompleteResourceTokenAuth:
		var in completeRequest
		if e := parse(&in); e != nil {
			return nil, e
		}
		return s.completeResourceTokenAuth(in, c)
	case OpGetResourceAPIKey:
		var in apiKeyRequest
		if e := parse(&in); e != nil {
			return nil, e
		}
		return s.getResourceAPIKey(in, c)
	}
	return nil, &apiError{status: 500, typ: "InternalServerException", msg: "unrouted operation"}
}

// user identifies who a workload token acts for.
type user struct {
	kind    string // "userId", "userToken" or "" (no user: M2M)
	value   string // the exact userId or JWT
	vaultID string // the vault's key for this person
}

type workloadToken struct {
	workload string
	user     user
	expires  time.Time
}

type sessionState int

const (
	sessPending   sessionState = iota // waiting for consent
	sessConsented                     // consent given, waiting for CompleteResourceTokenAuth
	sessCompleted
	sessFailed
)

type session struct {
	uri       string
	workload  string
	user      user
	provider  string
	scopes    []string
	key       string // vault key
	returnURL string
	state     *string
	created   time.Time
	status    sessionState
	nonce     string // consent form token
	token     string // minted at consent, moved to the vault at completion
}

func (s *Server) expired(sess *session) bool {
	return !s.now().Before(sess.created.Add(SessionTTL))
}

func (s *Server) getWorkloadAccessToken(op string, in workloadTokenRequest, c *Call) (any, *apiError) {
	c.Workload = in.WorkloadName
	if _, ok := s.workloads[in.WorkloadName]; !ok {
		return nil, errNotFound("Workload identity '" + in.WorkloadName + "' not found")
	}
	if s.linked[in.WorkloadName] {
		c.Outcome = "denied:linked"
		return nil, errValidation("WorkloadIdentity is linked to a service and cannot be used to get a workload access token for a caller")
	}
	var u user
	switch op {
	case OpGetWorkloadAccessTokenForUserID:
		u = user{kind: "userId", value: in.UserID, vaultID: "uid\x00" + in.UserID}
	case OpGetWorkloadAccessTokenForJWT:
		c.UserKind = "userToken"
		iss, sub, why, malformed := s.verifyUserToken(in.UserToken, s.now())
		if malformed {
			c.Outcome = "denied:malformed"
			return nil, errValidation(InvalidUserTokenFormat, fieldError{"userToken", InvalidUserTokenFormat})
		}
		if why != "" {
			c.Outcome = "denied:" + why
			return nil, errUnauthorized(InvalidUserToken)
		}
		// The vault keys a JWT user on iss+sub, as AWS does.
		u = user{kind: "userToken", value: in.UserToken, vaultID: "jwt\x00" + iss + "\x00" + sub}
	}
	c.UserKind = u.kind
	tok := randomToken(96)
	s.tokens[tok] = &workloadToken{workload: in.WorkloadName, user: u, expires: s.now().Add(WorkloadTokenTTL)}
	c.Outcome = "token-issued"
	return map[string]string{"workloadAccessToken": tok}, nil
}

func (s *Server) lookupToken(tok string, c *Call) (*workloadToken, *apiError) {
	wt := s.tokens[tok]
	if wt == nil || !s.now().Before(wt.expires) {
		return nil, errUnauthorized("The workload access token is invalid or expired")
	}
	c.Workload, c.UserKind = wt.workload, wt.user.kind
	return wt, nil
}

func (s *Server) provider(name string, kind ProviderKind) (Provider, *apiError) {
	p, ok := s.providers[name]
	if !ok || p.Kind != kind {
		what := "OAuth2 credential provider"
		if kind == APIKey {
			what = "API key credential provider"
		}
		return Provider{}, errNotFound(what + " '" + name + "' not found")
	}
	return p, nil
}

func normScopes(scopes []string) []string {
	out := append([]string(nil), scopes...)
	sort.Strings(out)
	j := 0
	for i, sc := range out {
		if i == 0 || sc != out[j-1] {
			out[j] = sc
			j++
		}
	}
	return out[:j]
}

func vaultKey(workload, vaultID, provider string, scopes []string) string {
	return strings.Join([]string{workload, vaultID, provider, strings.Join(scopes, " ")}, "\x00\x00")
}

func (s *Server) getResourceOauth2Token(r *http.Request, in oauth2TokenRequest, c *Call) (any, *apiError) {
	c.Provider, c.Flow = in.ResourceCredentialProviderName, in.Oauth2Flow
	wt, e := s.lookupToken(in.WorkloadIdentityToken, c)
	if e != nil {
		return nil, e
	}
	if _, e := s.provider(in.ResourceCredentialProviderName, OAuth2); e != nil {
		return nil, e
	}
	scopes := normScopes(in.Scopes)
	tokenOut := func(tok, outcome string) (any, *apiError) {
		c.Outcome = outcome
		return map[string]string{"accessToken": tok}, nil
	}
	switch in.Oauth2Flow {
	case "M2M":
		key := vaultKey(wt.workload, "m2m", in.ResourceCredentialProviderName, scopes)
		if tok, ok := s.vault[key]; ok && !isTrue(in.ForceAuthentication) {
			return tokenOut(tok, "vault-hit")
		}
		s.vault[key] = randomToken(48)
		return tokenOut(s.vault[key], "token-issued")
	case "ON_BEHALF_OF_TOKEN_EXCHANGE":
		if wt.user.kind != "userToken" {
			return nil, errValidation("ON_BEHALF_OF_TOKEN_EXCHANGE requires a workload access token obtained with GetWorkloadAccessTokenForJWT",
				fieldError{"workloadIdentityToken", "Member must be a workload access token obtained for a JWT"})
		}
		return tokenOut(randomToken(48), "token-issued")
	}

	// USER_FEDERATION
	if wt.user.kind == "" {
		return nil, errValidation("USER_FEDERATION requires a workload access token obtained for a user",
			fieldError{"workloadIdentityToken", "Member must be a workload access token obtained for a user"})
	}
	allowed := s.workloads[wt.workload]
	if in.ResourceOauth2ReturnURL != nil && !allowed[*in.ResourceOauth2ReturnURL] {
		return nil, errValidation(ReturnURLNotRegistered, fieldError{"resourceOauth2ReturnUrl", ReturnURLNotRegistered})
	}
	key := vaultKey(wt.workload, wt.user.vaultID, in.ResourceCredentialProviderName, scopes)
	force := isTrue(in.ForceAuthentication)
	if force {
		delete(s.vault, key)
	}
	if in.SessionURI != nil {
		sess := s.sessions[*in.SessionURI]
		if sess == nil || sess.key != key {
			return nil, errAccessDenied(InvalidSession)
		}
		if in.ResourceOauth2ReturnURL == nil || *in.ResourceOauth2ReturnURL != sess.returnURL {
			msg := "resourceOauth2ReturnUrl must be the same as in the call that started this session"
			return nil, errValidation(msg, fieldError{"resourceOauth2ReturnUrl", msg})
		}
		if !force {
			if tok, ok := s.vault[key]; ok {
				return tokenOut(tok, "vault-hit")
			}
			switch {
			case sess.status == sessFailed || ((sess.status == sessPending || sess.status == sessConsented) && s.expired(sess)):
				c.Outcome = "session-failed"
				return map[string]string{"sessionUri": sess.uri, "sessionStatus": "FAILED"}, nil
			case sess.status == sessPending || sess.status == sessConsented:
				c.Outcome = "session-in-progress"
				return map[string]string{
					"authorizationUrl": s.authorizationURL(r, sess.uri),
					"sessionUri":       sess.uri,
					"sessionStatus":    "IN_PROGRESS",
				}, nil
			}
			// completed, but the vault entry was discarded since: start over.
		}
	}
	if !force {
		if tok, ok := s.vault[key]; ok {
			return tokenOut(tok, "vault-hit")
		}
	}
	if in.ResourceOauth2ReturnURL == nil {
		return nil, errValidation(ReturnURLNotRegistered, fieldError{"resourceOauth2ReturnUrl", ReturnURLNotRegistered})
	}
	sess := &session{
		uri:       SessionURIPrefix + randomToken(32),
		workload:  wt.workload,
		user:      wt.user,
		provider:  in.ResourceCredentialProviderName,
		scopes:    scopes,
		key:       key,
		returnURL: *in.ResourceOauth2ReturnURL,
		state:     in.CustomState,
		created:   s.now(),
		nonce:     randomToken(24),
	}
	s.sessions[sess.uri] = sess
	c.Outcome = "session-started"
	return map[string]string{
		"authorizationUrl": s.authorizationURL(r, sess.uri),
		"sessionUri":       sess.uri,
		"sessionStatus":    "IN_PROGRESS",
	}, nil
}

// authorizationURL is the absolute URL of the consent page for a session.
func (s *Server) authorizationURL(r *http.Request, sessionURI string) string {
	origin := s.publicURL
	if origin == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		origin = scheme + "://" + r.Host
	}
	return origin + AuthorizePath + "?" + url.Values{"request_uri": {sessionURI}}.Encode()
}

func (s *Server) completeResourceTokenAuth(in completeRequest, c *Call) (any, *apiError) {
	uid, jwt := in.UserIdentifier.UserID, in.UserIdentifier.UserToken
	if uid != nil {
		c.UserKind = "userId"
	} else {
		c.UserKind = "userToken"
	}
	sess := s.sessions[in.SessionURI]
	deny := func(why string) (any, *apiError) {
		c.Outcome = "denied:" + why
		return nil, errAccessDenied(InvalidSession)
	}
	if sess == nil {
		return deny("unknown-session")
	}
	c.Workload, c.Provider = sess.workload, sess.provider
	switch {
	case sess.status == sessCompleted:
		return deny("already-completed")
	case sess.status == sessFailed:
		return deny("session-failed")
	case s.expired(sess):
		return deny("expired")
	case sess.status != sessConsented:
		return deny("no-consent")
	}
	var match bool
	if uid != nil {
		match = sess.user.kind == "userId" && constEq(*uid, sess.user.value)
	} else {
		match = sess.user.kind == "userToken" && constEq(*jwt, sess.user.value)
	}
	if !match {
		return deny("identifier-mismatch")
	}
	s.vault[sess.key] = sess.token
	sess.token = ""
	sess.status = sessCompleted
	c.Outcome = "completed"
	return struct{}{}, nil
}

func (s *Server) getResourceAPIKey(in apiKeyRequest, c *Call) (any, *apiError) {
	c.Provider = in.ResourceCredentialProviderName
	if _, e := s.lookupToken(in.WorkloadIdentityToken, c); e != nil {
		return nil, e
	}
	p, e := s.provider(in.ResourceCredentialProviderName, APIKey)
	if e != nil {
		return nil, e
	}
	c.Outcome = "token-issued"
	return map[string]string{"apiKey": p.APIKey}, nil
}

func (s *Server) serveCalls(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, s.Calls())
}

func isTrue(b *bool) bool { return b != nil && *b }

func constEq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// randomToken returns a base64url string of n random bytes.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomAPIKey() string { return "emu_" + randomToken(30) }
