package web

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"

	"github.com/aws/aws-lambda-go/events"

	"github.com/consentflow/consentflow/internal/connectauth"
	"github.com/consentflow/consentflow/internal/flow"
)

// ConnectDomain is the slice of *connectauth.Service the Connect route
// needs.
type ConnectDomain interface {
	Return(ctx context.Context, p connectauth.Params) connectauth.Outcome
}

// ConnectHandler serves the Amazon Connect customer-authentication route
// (contract.ConnectCallbackPath): Amazon Cognito's redirect after the
// sign-in of a chat's "Authenticate Customer" block. GET only; the query's
// code, state, error and error_description go to the domain, which checks
// them before anything else. It answers with the callback pages' layout
// and security headers (its policy also forbids forms: the pages have
// none) and logs one line per request: API Gateway's request id
// (apiRequestId) and the outcome, never the code or the state.
type ConnectHandler struct {
	Domain ConnectDomain
	Log    *slog.Logger
}

// Handle is the Lambda handler of the route on its own (web.Handler routes
// to it by path when its Connect field is set). It never returns an error.
func (h *ConnectHandler) Handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return h.handle(ctx, req), nil
}

func (h *ConnectHandler) handle(ctx context.Context, req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// API Gateway's request id ($context.requestId, the access log's
	// requestId); the Lambda request id is added by the functions' handler.
	log = log.With("route", "connect", "apiRequestId", req.RequestContext.RequestID)
	if m := req.RequestContext.HTTP.Method; m != http.MethodGet {
		log.WarnContext(ctx, "Connect redirect: method not allowed", "method", m)
		resp := connectResponse(connectauth.Outcome{Kind: connectauth.KindBadRequest}, msgConnectMethodNotAllowed)
		resp.StatusCode = http.StatusMethodNotAllowed
		resp.Headers["Allow"] = http.MethodGet
		return resp
	}
	q, ok := parseQuery(req.RawQueryString)
	if !ok {
		log.WarnContext(ctx, "Connect redirect: unparseable or ambiguous query string", "outcome", string(connectauth.KindBadRequest))
		return connectResponse(connectauth.Outcome{Kind: connectauth.KindBadRequest}, "")
	}
	o := h.Domain.Return(ctx, connectauth.Params{
		State: q.Get("state"), Code: q.Get("code"),
		Error: q.Get("error"), ErrorDescription: q.Get("error_description"),
	})
	level := slog.LevelInfo
	switch o.Kind {
	case connectauth.KindDone, connectauth.KindCancelled, connectauth.KindAlreadyDone:
	default:
		level = slog.LevelWarn
	}
	log.Log(ctx, level, "Connect redirect", "outcome", string(o.Kind), "cause", o.Cause, "replay", o.Replay)
	return connectResponse(o, "")
}

// connectResponse renders o's page (wording in connect_wording.go; msg,
// when set, replaces its message) in the callback pages' layout.
func connectResponse(o connectauth.Outcome, msg string) events.APIGatewayV2HTTPResponse {
	sp, ok := connectSpecs[o.Kind]
	if !ok {
		sp = connectSpecs[connectauth.KindFailed]
	}
	// no-referrer: the page's URL carries the code and state, and it has no form.
	v := view{Title: sp.heading, Kind: sp.kind, Heading: sp.heading, Message: sp.message, Next: sp.next, O: &flow.Outcome{}, Referrer: referrerNoForm}
	if msg != "" {
		v.Message = msg
	}
	status, body := sp.status, ""
	var buf bytes.Buffer
	if err := page(v).Render(context.Background(), &buf); err != nil {
		// Fixed pages into a bytes.Buffer: a programming error.
		status, body = http.StatusServiceUnavailable, "<!doctype html><title>Temporary problem</title><p>Temporary problem. Try again.</p>"
	} else {
		body = buf.String()
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode: status,
		Headers: map[string]string{
			"Content-Type":            "text/html; charset=utf-8",
			"Cache-Control":           "no-store",
			"Pragma":                  "no-cache",
			"Referrer-Policy":         referrerNoForm,
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": connectCSP,
		},
		Body: body,
	}
}

// connectCSP is the pages' policy (csp) with no form destination at all:
// the Connect pages carry no form.
var connectCSP = "default-src 'none'; style-src '" + cspHash(style) + "'; img-src 'none'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
