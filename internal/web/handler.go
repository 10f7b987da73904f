// Package web presents the callback flow over API Gateway HTTP API
// (payload format 2.0): it parses the browser's request, calls the domain,
// and renders an HTML page with strict security headers.
package web

import (
	"context"
	"encoding/base64"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// maxBody bounds the POST body we parse (the form has one short field).
const maxBody = 8 << 10

// Domain is the slice of *flow.Callback the handler needs.
type Domain interface {
	View(ctx context.Context, p flow.CallbackParams) *flow.Outcome
	Confirm(ctx context.Context, p flow.CallbackParams) *flow.Outcome
	LoginReturn(ctx context.Context, p flow.LoginParams) *flow.Outcome
	SignInAgain(ctx context.Context, secret string) *flow.Outcome
}

// Handler turns API Gateway events into domain calls and pages: the
// callback route (contract.CallbackPath) and, for the sign-in binding
// modes, the login callback route (contract.LoginCallbackPath).
type Handler struct {
	Domain Domain
	// UserTokenCookie names the cookie that holds the browser's application
	// session JWT (for flows started with a user JWT).
	UserTokenCookie string
	// LoginCookie names the cookie that binds a sign-in to the browser
	// (contract.LoginCookie).
	LoginCookie string
	// FormAction, when set, names the origin the pages' forms may be
	// redirected to (the sign-in provider's; "" when unknown).
	FormAction func(ctx context.Context) string
	Log        *slog.Logger
	// Connect, when set, serves the Amazon Connect customer-authentication
	// route (contract.ConnectCallbackPath); nil, the route does not exist.
	Connect *ConnectHandler
}

// Handle is the Lambda handler. It never returns an error: every outcome,
// including bad input and dependency failures, is a page.
func (h *Handler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	resp := h.handle(ctx, req)
	if h.FormAction != nil && resp.Headers["Content-Security-Policy"] == csp {
		if origin := h.FormAction(ctx); origin != "" {
			resp.Headers["Content-Security-Policy"] = cspWith(origin)
		}
	}
	return resp, nil
}

func (h *Handler) handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	path := req.RawPath
	if path == "" {
		path = req.RequestContext.HTTP.Path
	}
	if strings.HasSuffix(path, contract.LoginCallbackPath) {
		return h.login(ctx, req)
	}
	if h.Connect != nil && strings.HasSuffix(path, contract.ConnectCallbackPath) {
		return h.Connect.handle(ctx, req)
	}
	method := req.RequestContext.HTTP.Method
	switch method {
	case http.MethodGet, http.MethodPost:
	default:
		h.Log.WarnContext(ctx, "method not allowed", "method", method)
		resp := refuse(http.StatusMethodNotAllowed, msgMethodNotAllowed)
		resp.Headers["Allow"] = "GET, POST"
		return resp
	}
	q, ok := parseQuery(req.RawQueryString)
	if !ok {
		h.Log.WarnContext(ctx, "unparseable or ambiguous query string")
		return respond(0, &flow.Outcome{Kind: flow.KindBadRequest})
	}
	p := flow.CallbackParams{
		SessionID:        q.Get("session_id"),
		State:            q.Get("state"),
		Error:            q.Get("error"),
		ErrorDescription: q.Get("error_description"),
	}
	if method == http.MethodGet {
		return respond(0, h.Domain.View(ctx, p))
	}
	if crossSite(req.Headers) {
		h.Log.WarnContext(ctx, "cross-site POST refused")
		return refuse(http.StatusForbidden, msgCrossSite)
	}

	form, status := parseForm(req)
	if status != 0 {
		h.Log.WarnContext(ctx, "unacceptable POST body", "status", status)
		return refuse(status, msgUnreadableForm)
	}
	p.Code = form.Get("code")
	p.UserToken = cookieValue(req.Cookies, h.UserTokenCookie)
	return h.respond(h.Domain.Confirm(ctx, p), "")
}

// login serves the login callback route: GET is the sign-in provider's
// redirect back, POST a signed-in browser's "sign in again".
//
// Each sign-in has a cookie of its own, named by its state (the provider's
// redirect carries it, and the page's "sign in again" form posts back to
// that same URL), so that sign-ins in two tabs do not overwrite each other.
func (h *Handler) login(ctx context.Context, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	method := req.RequestContext.HTTP.Method
	if method != http.MethodGet && method != http.MethodPost {
		h.Log.WarnContext(ctx, "method not allowed", "method", method)
		resp := refuse(http.StatusMethodNotAllowed, msgMethodNotAllowed)
		resp.Headers["Allow"] = "GET, POST"
		return resp
	}
	q, ok := parseQuery(req.RawQueryString)
	if !ok {
		h.Log.WarnContext(ctx, "unparseable or ambiguous login callback query string")
		return respond(0, &flow.Outcome{Kind: flow.KindBadRequest})
	}
	state := q.Get("state")
	name := flow.LoginName(state)
	secret := ""
	if name != "" {
		secret = cookieValue(req.Cookies, h.loginCookieName(name))
	}
	if method == http.MethodPost {
		if crossSite(req.Headers) {
			h.Log.WarnContext(ctx, "cross-site POST refused")
			return refuse(http.StatusForbidden, msgCrossSite)
		}
		return h.respond(h.Domain.SignInAgain(ctx, secret), "")
	}
	return h.respond(h.Domain.LoginReturn(ctx, flow.LoginParams{
		Secret: secret, Code: q.Get("code"), State: state,
		Error: q.Get("error"), ErrorDescription: q.Get("error_description"),
	}), name)
}

// respond answers with o's page, or for KindSignIn with the redirect to
// the sign-in provider that sets the sign-in's cookie. A sign-in (named
// login) that ended with the session connected clears its cookie.
func (h *Handler) respond(o *flow.Outcome, login string) events.APIGatewayV2HTTPResponse {
	if o.Kind == flow.KindSignIn && o.Login != nil && o.Login.Name != "" {
		resp := respond(http.StatusSeeOther, o)
		resp.Headers["Location"] = o.Login.URL
		resp.Cookies = []string{h.loginCookie(o.Login.Name, o.Login.Secret, int(o.Login.MaxAge/time.Second))}
		return resp
	}
	resp := respond(0, o)
	if login != "" && (o.Kind == flow.KindConnected || o.Kind == flow.KindAlreadyConnected) {
		resp.Cookies = []string{h.loginCookie(login, "", -1)}
	}
	return resp
}

// loginCookieName is the name of the cookie of the sign-in named name.
func (h *Handler) loginCookieName(name string) string { return h.LoginCookie + "-" + name }

// loginCookie is the Set-Cookie value of a sign-in's cookie: host-only,
// HTTPS only, invisible to scripts, sent on the provider's top-level
// redirect back (Lax) but not on cross-site posts. maxAge < 0 deletes it.
func (h *Handler) loginCookie(name, value string, maxAge int) string {
	c := &http.Cookie{Name: h.loginCookieName(name), Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	return c.String()
}

// crossSite reports a POST that a browser sent from another site's page
// (an auto-submitting form there): it must not confirm anything or start a
// sign-in in the person's browser. Browsers say where a request comes from
// in Sec-Fetch-Site; the pages' own forms are "same-origin". Browsers that
// do not send it send Origin: the pages' referrer policy (same-origin) lets
// their own forms carry the real origin, so a foreign origin, or "null" (an
// attacker's page with a no-referrer policy, a sandboxed frame), is refused.
// Clients that send neither header are not browsers acting for someone
// else and pass.
func crossSite(h map[string]string) bool {
	switch header(h, "sec-fetch-site") {
	case "same-origin":
		return false
	case "":
	default:
		return true
	}
	o := header(h, "origin")
	if o == "" {
		return false
	}
	u, err := url.Parse(o)
	return o == "null" || err != nil || !strings.EqualFold(u.Host, header(h, "host"))
}

// parseQuery parses the raw query string, refusing duplicated parameters
// (parameter pollution) and anything unparseable.
func parseQuery(raw string) (url.Values, bool) {
	q, err := url.ParseQuery(raw)
	if err != nil {
		return nil, false
	}
	for _, k := range []string{"session_id", "state", "error", "error_description", "code"} {
		if len(q[k]) > 1 {
			return nil, false
		}
	}
	return q, true
}

func parseForm(req events.APIGatewayV2HTTPRequest) (url.Values, int) {
	ct := header(req.Headers, "content-type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, http.StatusUnsupportedMediaType
	}
	body := req.Body
	if req.IsBase64Encoded {
		if base64.StdEncoding.DecodedLen(len(body)) > maxBody {
			return nil, http.StatusRequestEntityTooLarge
		}
		b, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return nil, http.StatusBadRequest
		}
		body = string(b)
	}
	if len(body) > maxBody {
		return nil, http.StatusRequestEntityTooLarge
	}
	f, err := url.ParseQuery(body)
	if err != nil || len(f["code"]) > 1 {
		return nil, http.StatusBadRequest
	}
	return f, 0
}

// header reads a header from API Gateway's map (lower-cased by API Gateway;
// matched case-insensitively for other sources).
func header(h map[string]string, name string) string {
	if v, ok := h[name]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// cookieValue finds a cookie in payload 2.0's cookies array.
func cookieValue(cookies []string, name string) string {
	if name == "" {
		return ""
	}
	for _, line := range cookies {
		cs, err := http.ParseCookie(line)
		if err != nil {
			continue
		}
		for _, c := range cs {
			if c.Name == name {
				return c.Value
			}
		}
	}
	return ""
}

// respond renders o, worded (wording.go), with the page's status (or status
// when not 0) and the security headers every response carries.
func respond(status int, o *flow.Outcome) events.APIGatewayV2HTTPResponse {
	return htmlPage(status, o, message(o))
}

// refuse answers a request the handler turns away before the domain sees
// it: a bad-request page with the handler's own message.
func refuse(status int, msg string) events.APIGatewayV2HTTPResponse {
	return htmlPage(status, &flow.Outcome{Kind: flow.KindBadRequest}, msg)
}

// htmlPage renders o with message (or its Kind's default) and the strict
// headers; status, when not zero, replaces the Kind's status.
func htmlPage(status int, o *flow.Outcome, msg string) events.APIGatewayV2HTTPResponse {
	st, body := render(o, msg)
	if status != 0 {
		st = status
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode: st,
		Headers: map[string]string{
			"Content-Type":            "text/html; charset=utf-8",
			"Cache-Control":           "no-store",
			"Pragma":                  "no-cache",
			"Referrer-Policy":         referrerPages,
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": csp,
		},
		Body: body,
	}
}
