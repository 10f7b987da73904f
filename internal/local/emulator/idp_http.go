package emulator

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// idpRoutes mounts the IdP's endpoints on mux.
func (s *Server) idpRoutes(mux *http.ServeMux) {
	mux.HandleFunc(OIDCDiscoveryPath, s.serveOIDCDiscovery)
	mux.HandleFunc(OIDCJWKSPath, s.serveOIDCJWKS)
	mux.HandleFunc(OIDCAuthorizePath, s.serveOIDCAuthorize)
	mux.HandleFunc(OIDCTokenPath, s.serveOIDCToken)
	mux.HandleFunc(OIDCUserInfoPath, s.serveOIDCUserInfo)
}

// requestIssuer is the issuer for a request: Issuer(), or the request's own origin
// when none is known (a Handler on a server of the caller's own); such origins are
// remembered and trusted as the emulator's own issuers.
func (s *Server) requestIssuer(r *http.Request) string {
	s.idp.mu.Lock()
	defer s.idp.mu.Unlock()
	if iss := s.issuerLocked(); iss != "" {
		return iss
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	o := scheme + "://" + r.Host
	if !s.idp.served[o] && len(s.idp.served) < maxServedIssuers {
		s.idp.served[o] = true
	}
	return o
}

func methodNotAllowed(w http.ResponseWriter, c *Call, allow string) {
	c.HTTPStatus = http.StatusMethodNotAllowed
	w.Header().Set("Allow", allow)
	http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
}

func (s *Server) serveOIDCDiscovery(w http.ResponseWriter, r *http.Request) {
	call := Call{Op: OpOIDCDiscovery}
	defer func() { s.record(call) }()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, &call, "GET, HEAD")
		return
	}
	iss := s.requestIssuer(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + OIDCAuthorizePath,
		"token_endpoint":                        iss + OIDCTokenPath,
		"jwks_uri":                              iss + OIDCJWKSPath,
		"userinfo_endpoint":                     iss + OIDCUserInfoPath,
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{string(jose.RS256)},
		"code_challenge_methods_supported":      []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
		"prompt_values_supported":               []string{"none", "login", "consent", "select_account"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "at_hash",
			"email", "email_verified", "name", "preferred_username"},
	})
	call.HTTPStatus, call.Outcome = http.StatusOK, "served"
}

func (s *Server) serveOIDCJWKS(w http.ResponseWriter, r *http.Request) {
	call := Call{Op: OpOIDCJWKS}
	defer func() { s.record(call) }()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, &call, "GET, HEAD")
		return
	}
	writeJSON(w, http.StatusOK, s.idp.jwks())
	call.HTTPStatus, call.Outcome = http.StatusOK, "served"
}

var signInTmpl = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in (emulated)</title>
<style>
body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}
.card{border:1px solid #ccc;border-radius:8px;padding:1.5rem}
.note{color:#666;font-size:.85rem}
button{display:block;width:100%;text-align:left;font-size:1rem;padding:.6rem 1rem;margin:.5rem 0;border-radius:6px;border:1px solid #888;background:#fff;cursor:pointer}
button.cancel{text-align:center;background:#eee}
.email{color:#666;font-size:.9rem}
</style>
</head>
<body>
<div class="card">
<h1>Sign in (emulated)</h1>
<p><strong>{{.Client}}</strong> asks you to sign in. Choose a test user:</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="auth_request" value="{{.RequestToken}}">
{{range .Users}}<button class="user" type="submit" name="subject" value="{{.Subject}}">{{if .Name}}{{.Name}}{{else}}{{.Subject}}{{end}}{{if .Email}} <span class="email">{{.Email}}</span>{{end}}</button>
{{end}}<button class="cancel" type="submit" name="cancel" value="1">Cancel</button>
</form>
<p class="note">AgentCore Identity emulator: a test OpenID Connect provider. No real account is involved.</p>
</div>
</body>
</html>
`))

type signInData struct {
	Client       string
	Action       string
	RequestToken string
	Users        []TestUser
}

func badAuthRequest(w http.ResponseWriter, msg string) {
	renderPage(w, http.StatusBadRequest, pageData{Title: "Sign-in request not valid", Message: msg})
}

// authParams are the single-valued parameters of an authorization request.
var authParams = []string{"client_id", "redirect_uri", "response_type", "scope", "state",
	"code_challenge", "code_challenge_method", "nonce", "prompt"}

var promptValues = map[string]bool{"none": true, "login": true, "consent": true, "select_account": true}

func (s *Server) serveOIDCAuthorize(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s.oidcAuthorize(w, r)
	case http.MethodPost:
		s.oidcSignIn(w, r)
	default:
		call := Call{Op: OpOIDCAuthorize}
		methodNotAllowed(w, &call, "GET, POST")
		s.record(call)
	}
}

// oidcAuthorize serves an authorization request (GET).
func (s *Server) oidcAuthorize(w http.ResponseWriter, r *http.Request) {
	call := Call{Op: OpOIDCAuthorize}
	defer func() { s.record(call) }()
	q := r.URL.Query()
	p := s.idp

	// Errors about the client or its redirect URI are never redirected.
	p.mu.Lock()
	client, known := p.clients[q.Get("client_id")]
	p.mu.Unlock()
	if !known || len(q["client_id"]) != 1 {
		call.HTTPStatus, call.Outcome = http.StatusBadRequest, "invalid-client"
		badAuthRequest(w, "The client_id is missing or not registered at this identity provider.")
		return
	}
	call.Client = client.ClientID
	redirectURI := q.Get("redirect_uri")
	if len(q["redirect_uri"]) != 1 || !slices.Contains(client.RedirectURIs, redirectURI) {
		call.HTTPStatus, call.Outcome = http.StatusBadRequest, "invalid-redirect-uri"
		badAuthRequest(w, "The redirect_uri is missing or not registered for this client.")
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) {
		params := url.Values{"error": {code}, "error_description": {desc}}
		if state != "" && len(q["state"]) == 1 {
			params.Set("state", state)
		}
		call.HTTPStatus, call.Outcome = http.StatusFound, "error:"+code
		setPageHeaders(w)
		http.Redirect(w, r, redirectURL(redirectURI, params), http.StatusFound)
	}
	for _, k := range authParams {
		if len(q[k]) > 1 {
			fail("invalid_request", "The "+k+" parameter is repeated")
			return
		}
	}
	prompts := strings.Fields(q.Get("prompt"))
	switch {
	case q.Has("request"):
		fail("request_not_supported", "Request objects are not supported")
		return
	case q.Has("request_uri"):
		fail("request_uri_not_supported", "request_uri is not supported")
		return
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "Only response_type=code is supported")
		return
	case !hasScope(q.Get("scope"), "openid"):
		fail("invalid_scope", "The scope must include openid")
		return
	case state == "":
		fail("invalid_request", "The state parameter is required")
		return
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || !pkceValue(q.Get("code_challenge")):
		fail("invalid_request", "PKCE is required: code_challenge (43 characters) with code_challenge_method=S256")
		return
	case q.Get("nonce") == "":
		fail("invalid_request", "The nonce parameter is required")
		return
	}
	for _, pr := range prompts {
		if !promptValues[pr] || (pr == "none" && len(prompts) > 1) {
			fail("invalid_request", "Unsupported prompt value or combination")
			return
		}
	}
	req := authRequest{
		clientID:    client.ClientID,
		redirectURI: redirectURI,
		state:       state,
		challenge:   q.Get("code_challenge"),
		nonce:       q.Get("nonce"),
		scope:       q.Get("scope"),
		issuer:      s.requestIssuer(r),
	}
	var cookie string
	if c, err := r.Cookie(IdPSessionCookie); err == nil {
		cookie = c.Value
	}
	now := s.Now()
	req.created = now

	p.mu.Lock()
	forcePage := slices.Contains(prompts, "login") || slices.Contains(prompts, "select_account") || slices.Contains(prompts, "consent")
	var subject, outcome string
	var authTime time.Time
	newSession := false
	if p.signInAs != nil {
		subject, outcome, authTime, newSession = *p.signInAs, "signed-in-as", now, true
		p.signInAs = nil
	} else if sess := p.sessions[cookie]; cookie != "" && sess != nil && now.Before(sess.expires) && !forcePage {
		subject, outcome, authTime = sess.subject, "session-reused", sess.authTime
	}
	if subject != "" {
		if _, ok := p.user(subject); !ok { // replaced users keep their subject; none are removed
			subject = ""
		}
	}
	switch {
	case subject != "":
		loc, sessID := p.issueCode(req, subject, authTime, now, newSession)
		p.mu.Unlock()
		if sessID != "" {
			setSessionCookie(w, r, req.issuer, sessID)
		}
		call.HTTPStatus, call.Outcome = http.StatusFound, outcome
		setPageHeaders(w)
		http.Redirect(w, r, loc, http.StatusFound)
	case slices.Contains(prompts, "none"):
		p.mu.Unlock()
		fail("login_required", "The user is not signed in")
	default:
		token := randomToken(24)
		for k, pr := range p.requests {
			if !now.Before(pr.created.Add(signInPageTTL)) {
				delete(p.requests, k)
			}
		}
		r2 := req
		p.requests[token] = &r2
		d := signInData{Client: client.ClientID, Action: OIDCAuthorizePath, RequestToken: token, Users: append([]TestUser(nil), p.users...)}
		p.mu.Unlock()
		call.HTTPStatus, call.Outcome = http.StatusOK, "page-shown"
		setPageHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		_ = signInTmpl.Execute(w, d)
	}
}

// issueCode stores a code for req and subject and returns where to send the browser,
// and the id of a new IdP session when newSession is set. p.mu is held.
func (p *idp) issueCode(req authRequest, subject string, authTime, now time.Time, newSession bool) (loc, sessID string) {
	for k, c := range p.codes {
		if !now.Before(c.expires) {
			delete(p.codes, k)
		}
	}
	code := randomToken(32)
	p.codes[code] = &authCode{req: req, subject: subject, authTime: authTime, expires: now.Add(AuthCodeTTL)}
	if newSession {
		for k, ss := range p.sessions {
			if !now.Before(ss.expires) {
				delete(p.sessions, k)
			}
		}
		sessID = randomToken(32)
		p.sessions[sessID] = &idpSession{subject: subject, authTime: authTime, expires: now.Add(idpSessionTTL)}
	}
	return redirectURL(req.redirectURI, url.Values{"code": {code}, "state": {req.state}}), sessID
}

func setSessionCookie(w http.ResponseWriter, r *http.Request, issuer, value string) {
	http.SetCookie(w, &http.Cookie{
		Name:     IdPSessionCookie,
		Value:    value,
		Path:     "/oidc/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   r.TLS != nil || strings.HasPrefix(issuer, "https:"),
	})
}

// oidcSignIn serves the sign-in page's form (POST).
func (s *Server) oidcSignIn(w http.ResponseWriter, r *http.Request) {
	call := Call{Op: OpOIDCSignIn}
	defer func() { s.record(call) }()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		call.HTTPStatus, call.Outcome = http.StatusBadRequest, "bad-form"
		badAuthRequest(w, "The sign-in form could not be read.")
		return
	}
	token, subject := r.PostForm.Get("auth_request"), r.PostForm.Get("subject")
	cancel := r.PostForm.Has("cancel")
	now := s.Now()
	p := s.idp
	p.mu.Lock()
	req := p.requests[token]
	_, known := p.user(subject)
	if token == "" || req == nil || !now.Before(req.created.Add(signInPageTTL)) || (!cancel && !known) {
		p.mu.Unlock()
		call.HTTPStatus, call.Outcome = http.StatusBadRequest, "invalid-sign-in"
		badAuthRequest(w, "This sign-in page is invalid, has expired or was already used. Go back to the application and start again.")
		return
	}
	delete(p.requests, token)
	call.Client = req.clientID
	if cancel {
		p.mu.Unlock()
		call.HTTPStatus, call.Outcome = http.StatusSeeOther, "error:access_denied"
		setPageHeaders(w)
		http.Redirect(w, r, redirectURL(req.redirectURI, url.Values{
			"error": {"access_denied"}, "error_description": {"The user cancelled the sign-in"}, "state": {req.state},
		}), http.StatusSeeOther)
		return
	}
	loc, sessID := p.issueCode(*req, subject, now, now, true)
	p.mu.Unlock()
	setSessionCookie(w, r, req.issuer, sessID)
	call.HTTPStatus, call.Outcome = http.StatusSeeOther, "signed-in"
	setPageHeaders(w)
	http.Redirect(w, r, loc, http.StatusSeeOther)
}

// tokenParams are the single-valued parameters of a token request.
var tokenParams = []string{"grant_type", "code", "redirect_uri", "code_verifier", "client_id", "client_secret"}

func (s *Server) serveOIDCToken(w http.ResponseWriter, r *http.Request) {
	call := Call{Op: OpOIDCToken}
	defer func() { s.record(call) }()
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	fail := func(status int, code, desc string) {
		if code == "invalid_client" {
			w.Header().Set("WWW-Authenticate", `Basic realm="agentcore-emulator-idp"`)
		}
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
		call.HTTPStatus, call.ErrorType, call.Outcome = status, code, "error:"+code
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		fail(http.StatusMethodNotAllowed, "invalid_request", "The token endpoint accepts POST only")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request", "The request body is not a valid form")
		return
	}
	form := r.PostForm
	for _, k := range tokenParams {
		if len(form[k]) > 1 {
			fail(http.StatusBadRequest, "invalid_request", "The "+k+" parameter is repeated")
			return
		}
	}

	// Client authentication: client_secret_basic, client_secret_post or none.
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if bid, bsec, ok := r.BasicAuth(); ok {
		if form.Has("client_secret") {
			fail(http.StatusBadRequest, "invalid_request", "More than one client authentication method")
			return
		}
		id, err1 := url.QueryUnescape(bid)
		sec, err2 := url.QueryUnescape(bsec)
		if err1 != nil || err2 != nil || (clientID != "" && clientID != id) {
			fail(http.StatusUnauthorized, "invalid_client", "Client authentication failed")
			return
		}
		clientID, secret = id, sec
	}
	now := s.Now()
	p := s.idp
	p.mu.Lock()
	client, known := p.clients[clientID]
	authOK := known && ((client.ClientSecret == "" && secret == "") ||
		(client.ClientSecret != "" && secret != "" && constEq(secret, client.ClientSecret)))
	if !authOK {
		p.mu.Unlock()
		fail(http.StatusUnauthorized, "invalid_client", "Client authentication failed")
		return
	}
	call.Client = clientID
	grant, code, redirectURI := form.Get("grant_type"), form.Get("code"), form.Get("redirect_uri")
	var ec, desc string
	switch {
	case grant == "":
		ec, desc = "invalid_request", "grant_type is required"
	case grant != "authorization_code":
		ec, desc = "unsupported_grant_type", "Only the authorization_code grant is supported"
	case code == "" || redirectURI == "":
		ec, desc = "invalid_request", "code and redirect_uri are required"
	}
	if ec != "" {
		p.mu.Unlock()
		fail(http.StatusBadRequest, ec, desc)
		return
	}
	ac := p.codes[code]
	delete(p.codes, code) // single use, whatever happens next
	verifier := form.Get("code_verifier")
	var why string
	switch {
	case ac == nil:
		why = "The authorization code is invalid, expired or was already used"
	case ac.req.clientID != clientID:
		why = "The authorization code was issued to another client"
	case !now.Before(ac.expires):
		why = "The authorization code is invalid, expired or was already used"
	case ac.req.redirectURI != redirectURI:
		why = "redirect_uri does not match the authorization request"
	case !pkceValue(verifier) || !constEq(s256(verifier), ac.req.challenge):
		why = "PKCE verification failed"
	}
	if why != "" {
		p.mu.Unlock()
		fail(http.StatusBadRequest, "invalid_grant", why)
		return
	}
	u, _ := p.user(ac.subject)
	idTTL, atTTL, aud := p.idTTL, p.atTTL, p.audience
	p.mu.Unlock()
	if aud == "" {
		aud = clientID
	}
	now = now.Truncate(time.Second)
	at, err := jwt.Signed(p.signer).Claims(accessClaims{
		Claims: jwt.Claims{
			Issuer: ac.req.issuer, Subject: ac.subject, Audience: jwt.Audience{aud},
			Expiry: jwt.NewNumericDate(expiry(now, atTTL)), IssuedAt: jwt.NewNumericDate(now), ID: randomToken(16),
		},
		ClientID: clientID,
		Scope:    ac.req.scope,
	}).Serialize()
	var idt string
	if err == nil {
		idt, err = p.idToken(p.signer, ac.req.issuer, u, true, clientID, ac.req.nonce, ac.authTime, now, idTTL, at)
	}
	if err != nil {
		fail(http.StatusInternalServerError, "server_error", "Could not sign the tokens")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": at,
		"token_type":   "Bearer",
		"expires_in":   int64(atTTL / time.Second),
		"id_token":     idt,
		"scope":        ac.req.scope,
	})
	call.HTTPStatus, call.Outcome = http.StatusOK, "token-issued"
}

func (s *Server) serveOIDCUserInfo(w http.ResponseWriter, r *http.Request) {
	call := Call{Op: OpOIDCUserInfo}
	defer func() { s.record(call) }()
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		methodNotAllowed(w, &call, "GET, POST")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	c, ok := s.verifyAccessToken(strings.TrimSpace(tok), s.Now())
	if !strings.EqualFold(scheme, "Bearer") || !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token"})
		call.HTTPStatus, call.ErrorType, call.Outcome = http.StatusUnauthorized, "invalid_token", "error:invalid_token"
		return
	}
	call.Client = c.ClientID
	s.idp.mu.Lock()
	u, known := s.idp.user(c.Subject)
	s.idp.mu.Unlock()
	var ic idClaims
	if known {
		userClaims(&ic, u)
	}
	out := map[string]any{"sub": c.Subject}
	if ic.Email != "" {
		out["email"], out["email_verified"] = ic.Email, *ic.EmailVerified
	}
	if ic.Name != "" {
		out["name"] = ic.Name
	}
	if ic.PreferredUsername != "" {
		out["preferred_username"] = ic.PreferredUsername
	}
	writeJSON(w, http.StatusOK, out)
	call.HTTPStatus, call.Outcome = http.StatusOK, "served"
}
