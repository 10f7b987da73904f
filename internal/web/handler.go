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

	form, status := parseForm(req)
	if status != 0 {
		h.Log.WarnContext(ctx, "unacceptable POST body", "status", status)
		return refuse(status, msgUnreadableForm)
	}
	p.Code = form.Get("code")
	p.UserToken = cookieValue(req.Cookies, h.UserTokenCookie)
	return h.respond(h.Domain.Confirm(ctx, p), false)
}

// login serves the login callback route: GET is the sign-in provider's
// redirect back, POST a signed-in browser's "sign in again".
func (h *Handler) login(ctx context.Context, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	secret := cookieValue(req.Cookies, h.LoginCookie)
	switch req.RequestContext.HTTP.Method {
	case http.MethodGet:
		q, ok := parseQuery(req.RawQueryString)
		if !ok {
			h.Log.WarnContext(ctx, "unparseable or ambiguous login callback query string")
			return respond(0, &flow.Outcome{Kind: flow.KindBadRequest})
		}
		return h.respond(h.Domain.LoginReturn(ctx, flow.LoginParams{
			Secret: secret, Code: q.Get("code"), State: q.Get("state"),
			Error: q.Get("error"), ErrorDescription: q.Get("error_description"),
		}), true)
	case http.MethodPost:
		return h.respond(h.Domain.SignInAgain(ctx, secret), false)
	}
	h.Log.WarnContext(ctx, "method not allowed", "method", req.RequestContext.HTTP.Method)
	resp := refuse(http.StatusMethodNotAllowed, msgMethodNotAllowed)
	resp.Headers["Allow"] = "GET, POST"
	return resp
}

// respond answers with o's page, or for KindSignIn with the redirect to
// the sign-in provider that sets the login cookie. A sign-in that ended
// with the session connected clears the login cookie.
func (h *Handler) respond(o *flow.Outcome, loginRoute bool) events.APIGatewayV2HTTPResponse {
	if o.Kind == flow.KindSignIn && o.Login != nil {
		resp := respond(http.StatusSeeOther, o)
		resp.Headers["Location"] = o.Login.URL
		resp.Cookies = []string{h.loginCookie(o.Login.Secret, int(o.Login.MaxAge/time.Second))}
		return resp
	}
	resp := respond(0, o)
	if loginRoute && (o.Kind == flow.KindConnected || o.Kind == flow.KindAlreadyConnected) {
		resp.Cookies = []string{h.loginCookie("", -1)}
	}
	return resp
}

// loginCookie is the Set-Cookie value of the login cookie: host-only,
// HTTPS only, invisible to scripts, sent on the provider's top-level
// redirect back (Lax) but not on cross-site posts. maxAge < 0 deletes it.
func (h *Handler) loginCookie(value string, maxAge int) string {
	c := &http.Cookie{Name: h.LoginCookie, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	return c.String()
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
			"Referrer-Policy":         "no-referrer",
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": csp,
		},
		Body: body,
	}
}
