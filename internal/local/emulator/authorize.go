package emulator

import (
	"html/template"
	"net/http"
	"net/url"
)

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222}
.card{border:1px solid #ccc;border-radius:8px;padding:1.5rem}
.note{color:#666;font-size:.85rem}
button{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem;border-radius:6px;border:1px solid #888;cursor:pointer}
button.allow{background:#1a7f37;color:#fff;border-color:#1a7f37}
</style>
</head>
<body>
<div class="card">
<h1>{{.Title}}</h1>
{{if .Consent}}
<p><strong>{{.Workload}}</strong> wants to access your <strong>{{.Provider}}</strong> account.</p>
<p>It asks for these permissions:</p>
<ul id="scopes">{{range .Scopes}}<li>{{.}}</li>{{else}}<li>(no scopes)</li>{{end}}</ul>
<form method="post" action="{{.Action}}">
<input type="hidden" name="request_uri" value="{{.RequestURI}}">
<input type="hidden" name="consent_token" value="{{.ConsentToken}}">
<button class="allow" type="submit" name="decision" value="allow">Allow</button>
<button class="deny" type="submit" name="decision" value="deny">Deny</button>
</form>
{{else}}
<p>{{.Message}}</p>
{{end}}
<p class="note">AgentCore Identity emulator: a fake OAuth provider for local testing. No real account is involved.</p>
</div>
</body>
</html>
`))

type pageData struct {
	Title        string
	Message      string
	Consent      bool
	Workload     string
	Provider     string
	Scopes       []string
	Action       string
	RequestURI   string
	ConsentToken string
}

func setPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:; frame-ancestors 'none'")
}

func renderPage(w http.ResponseWriter, status int, d pageData) {
	setPageHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, d)
}

func invalidLink(w http.ResponseWriter) {
	renderPage(w, http.StatusBadRequest, pageData{
		Title:   "Authorization link not valid",
		Message: "This authorization link is invalid, has expired or was already used. Go back to the application and start again.",
	})
}

// redirectURL adds params to the return URL, keeping its own query parameters.
func redirectURL(returnURL string, params url.Values) string {
	u, err := url.Parse(returnURL)
	if err != nil {
		return returnURL
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// finish records the user's decision and returns where to send the browser. s.mu is held.
func (s *Server) finish(sess *session, allow bool) string {
	params := url.Values{"session_id": {sess.uri}}
	if s.doubleEnc {
		params.Set("session_id", url.QueryEscape(sess.uri))
	}
	if sess.state != nil {
		params.Set("state", *sess.state)
	}
	if allow {
		sess.status = sessConsented
		sess.token = randomToken(48)
	} else {
		sess.status = sessFailed
		params.Set("error", "access_denied")
		params.Set("error_description", "The user denied the authorization request")
	}
	return redirectURL(sess.returnURL, params)
}

// usableSession returns the pending, unexpired session named by request_uri. s.mu is held.
func (s *Server) usableSession(requestURI string) *session {
	var errs []fieldError
	validateString(shapes["RequestUri"], "request_uri", requestURI, &errs)
	if len(errs) > 0 {
		return nil
	}
	sess := s.sessions[requestURI]
	if sess == nil || sess.status != sessPending || s.expired(sess) {
		return nil
	}
	return sess
}

func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	call := Call{Op: OpAuthorize}
	defer func() { s.record(call) }()
	switch r.Method {
	case http.MethodGet:
		s.mu.Lock()
		sess := s.usableSession(r.URL.Query().Get("request_uri"))
		if sess == nil {
			s.mu.Unlock()
			call.HTTPStatus, call.Outcome = http.StatusBadRequest, "invalid-link"
			invalidLink(w)
			return
		}
		call.Workload, call.Provider, call.UserKind = sess.workload, sess.provider, sess.user.kind
		if s.autoApprove {
			loc := s.finish(sess, true)
			s.mu.Unlock()
			call.HTTPStatus, call.Outcome = http.StatusFound, "auto-approved"
			setPageHeaders(w)
			http.Redirect(w, r, loc, http.StatusFound)
			return
		}
		d := pageData{
			Title:        "Sign in to " + sess.provider + " (emulated)",
			Consent:      true,
			Workload:     sess.workload,
			Provider:     sess.provider,
			Scopes:       append([]string(nil), sess.scopes...),
			Action:       AuthorizePath,
			RequestURI:   sess.uri,
			ConsentToken: sess.nonce,
		}
		s.mu.Unlock()
		call.HTTPStatus, call.Outcome = http.StatusOK, "page-shown"
		renderPage(w, http.StatusOK, d)
	case http.MethodPost:
		call.Op = OpConsent
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			call.HTTPStatus, call.Outcome = http.StatusBadRequest, "bad-form"
			invalidLink(w)
			return
		}
		decision := r.PostForm.Get("decision")
		s.mu.Lock()
		sess := s.usableSession(r.PostForm.Get("request_uri"))
		if sess == nil || !constEq(r.PostForm.Get("consent_token"), sess.nonce) || (decision != "allow" && decision != "deny") {
			s.mu.Unlock()
			call.HTTPStatus, call.Outcome = http.StatusBadRequest, "invalid-link"
			invalidLink(w)
			return
		}
		call.Workload, call.Provider, call.UserKind = sess.workload, sess.provider, sess.user.kind
		loc := s.finish(sess, decision == "allow")
		s.mu.Unlock()
		call.HTTPStatus = http.StatusFound
		call.Outcome = map[bool]string{true: "allowed", false: "denied"}[decision == "allow"]
		setPageHeaders(w)
		http.Redirect(w, r, loc, http.StatusFound)
	default:
		call.HTTPStatus = http.StatusMethodNotAllowed
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
