// Package apigw presents Lambda handlers over HTTP exactly as an Amazon API
// Gateway HTTP API with a Lambda proxy integration and payload format 2.0
// does, so the production callback handler can be exercised by a real
// browser or net/http client.
//
// Request mapping (events.APIGatewayV2HTTPRequest):
//   - version "2.0"; routeKey from the configured route table ("GET
//     /oauth2/callback", "ANY /files/{proxy+}", "$default"), chosen as API
//     Gateway does: the most specific path wins (literal segments over
//     {variables} over a greedy {proxy+}), then a specific method over ANY;
//     no match is 404 {"message":"Not Found"} (HTTP APIs have no 405);
//   - rawPath is the path percent-DECODED, as HTTP APIs deliver it
//     (observed on live APIs; REST APIs and function URLs keep it encoded);
//     requestContext.http.path is the same;
//   - rawQueryString exactly as received (still percent-encoded);
//     queryStringParameters decoded, duplicates joined with ",";
//     omitted when there is no query;
//   - cookies: every Cookie header split on ";" into "name=value" items; the
//     Cookie header itself is removed from headers;
//   - headers: names lower-cased, duplicates joined with ","; API Gateway's
//     own headers are added: host, content-length, x-amzn-trace-id,
//     x-forwarded-for (client address appended), x-forwarded-port,
//     x-forwarded-proto (here "http": this server does not do TLS);
//   - pathParameters from {name} and {name+} route variables;
//   - requestContext: accountId, apiId, domainName (the request's Host, port
//     included, unless Config.DomainName is set), domainPrefix (its first
//     label), http{method, path, protocol, sourceIp, userAgent}, requestId,
//     routeKey, stage "$default", time ("02/Jan/2006:15:04:05 -0700"),
//     timeEpoch (ms);
//   - body: absent for an empty body. Otherwise a text body (Content-Type
//     text/*, application/json, application/xml, application/javascript)
//     arrives as is with isBase64Encoded false, and every other body,
//     including application/x-www-form-urlencoded, multipart/form-data and
//     a body without Content-Type, arrives base64-encoded with
//     isBase64Encoded true. That split was verified against live HTTP APIs
//     by others (AWS documents only "if the content type is binary"); a
//     handler must decode form POSTs;
//   - the event and the response are round-tripped through JSON, as the
//     Lambda service does, so a field that does not survive serialization
//     does not survive here either.
//
// Response mapping (events.APIGatewayV2HTTPResponse): statusCode (0 or out
// of 100..599 is a malformed response: 500), headers, cookies (one
// Set-Cookie header each), body (base64-decoded when isBase64Encoded; bad
// base64 is a malformed response: 500). multiValueHeaders is NOT part of
// payload format 2.0 (the API Gateway developer guide: "Format 2.0 doesn't
// have multiValueHeaders or multiValueQueryStringParameters fields"), so it
// is ignored and logged, unless Config.HonorMultiValueHeaders is set. No
// Content-Type is invented and none is sniffed. Every answer carries
// apigw-requestid. A handler error or panic is 500 {"message":"Internal
// Server Error"}; a handler that outlives the integration timeout (30 s by
// default, the HTTP API maximum) is 503 {"message":"Service Unavailable"}.
//
// The handler's context carries a lambdacontext.LambdaContext with a fresh
// AwsRequestID (a UUID, distinct from the API Gateway request id, as in
// AWS) and InvokedFunctionArn, and a deadline of Config.FunctionTimeout.
// It is not cancelled when the client goes away, as in Lambda.
//
// What it does NOT emulate: authorizers (JWT, Lambda, IAM), CORS, custom
// domains and API mappings, stages other than $default and stage
// variables, throttling, parameter mapping, TLS, mutual TLS, access logs,
// the payload 1.0 format, payload limits other than the 10 MB request body,
// a Lambda's separate process, memory and cold starts (the handler runs in
// this process), and the inferred-response form (a handler returning
// something other than the response struct).
package apigw

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/uuid"
)

// Handler is a Lambda handler for HTTP API payload format 2.0 events.
type Handler func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// Route binds a route key ("GET /oauth2/callback", "ANY /x/{proxy+}",
// "$default") to a handler.
type Route struct {
	Key     string
	Handler Handler
}

// Config configures a Gateway. Only Routes is required.
type Config struct {
	Routes []Route

	AccountID   string // default "123456789012"
	APIID       string // default: 10 random lower-case alphanumerics
	Region      string // default "us-east-1"; used in the default function ARN
	DomainName  string // default: the request's Host header
	FunctionARN string // InvokedFunctionArn in the lambda context

	// IntegrationTimeout is how long API Gateway waits for the handler
	// (HTTP API maximum and default: 30 s); then 503.
	IntegrationTimeout time.Duration
	// FunctionTimeout is the handler context's deadline (default:
	// IntegrationTimeout).
	FunctionTimeout time.Duration
	// MaxBodyBytes bounds the request body (default 10 MiB, the HTTP API
	// limit); larger is 413.
	MaxBodyBytes int64
	// HonorMultiValueHeaders maps the response's multiValueHeaders, which
	// payload format 2.0 does not define. Leave it off to see what AWS does.
	HonorMultiValueHeaders bool

	// Logger receives one line per request (method, route key, status,
	// request ids; never query strings, cookies or bodies). Default: discard.
	Logger *slog.Logger
	// Now is the clock for requestContext.time (default time.Now).
	Now func() time.Time
}

// Gateway is the http.Handler. Create it with New.
type Gateway struct {
	cfg    Config
	routes []route
}

type route struct {
	key      string
	method   string // "" for ANY
	segments []string
	greedy   bool // last segment is {name+}
	vars     int
	handler  Handler
	deflt    bool
}

// New validates cfg and returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	if len(cfg.Routes) == 0 {
		return nil, errors.New("apigw: no routes")
	}
	if cfg.AccountID == "" {
		cfg.AccountID = "123456789012"
	}
	if cfg.APIID == "" {
		cfg.APIID = randomAPIID()
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.FunctionARN == "" {
		cfg.FunctionARN = "arn:aws:lambda:" + cfg.Region + ":" + cfg.AccountID + ":function:local"
	}
	if cfg.IntegrationTimeout <= 0 {
		cfg.IntegrationTimeout = 30 * time.Second
	}
	if cfg.FunctionTimeout <= 0 {
		cfg.FunctionTimeout = cfg.IntegrationTimeout
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 10 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	g := &Gateway{cfg: cfg}
	seen := map[string]bool{}
	for _, r := range cfg.Routes {
		if r.Handler == nil {
			return nil, fmt.Errorf("apigw: route %q has no handler", r.Key)
		}
		if seen[r.Key] {
			return nil, fmt.Errorf("apigw: duplicate route %q", r.Key)
		}
		seen[r.Key] = true
		rt, err := parseRoute(r.Key)
		if err != nil {
			return nil, err
		}
		rt.handler = r.Handler
		g.routes = append(g.routes, rt)
	}
	return g, nil
}

// APIID returns the API id used in requestContext.
func (g *Gateway) APIID() string { return g.cfg.APIID }

func parseRoute(key string) (route, error) {
	if key == "$default" {
		return route{key: key, deflt: true}, nil
	}
	method, path, ok := strings.Cut(key, " ")
	if !ok || !strings.HasPrefix(path, "/") || method == "" {
		return route{}, fmt.Errorf("apigw: route key %q is not \"METHOD /path\" or \"$default\"", key)
	}
	rt := route{key: key, method: method}
	if method == "ANY" {
		rt.method = ""
	}
	if path != "/" {
		rt.segments = strings.Split(path[1:], "/")
	}
	for i, s := range rt.segments {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			rt.vars++
			if strings.HasSuffix(s, "+}") {
				if i != len(rt.segments)-1 {
					return route{}, fmt.Errorf("apigw: greedy variable must be last in %q", key)
				}
				rt.greedy = true
			}
		}
	}
	return rt, nil
}

// match reports whether rt matches and, if so, its path parameters.
func (rt route) match(method string, segs []string) (map[string]string, bool) {
	if rt.method != "" && rt.method != method {
		return nil, false
	}
	params := map[string]string{}
	for i, s := range rt.segments {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "+}") {
			if i >= len(segs) {
				return nil, false
			}
			params[s[1:len(s)-2]] = strings.Join(segs[i:], "/")
			return params, true
		}
		if i >= len(segs) {
			return nil, false
		}
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			if segs[i] == "" {
				return nil, false
			}
			params[s[1:len(s)-1]] = segs[i]
			continue
		}
		if s != segs[i] {
			return nil, false
		}
	}
	if len(segs) != len(rt.segments) {
		return nil, false
	}
	return params, true
}

// score orders matching routes: more specific first.
func (rt route) score() int {
	if rt.deflt {
		return -1
	}
	s := (len(rt.segments) - rt.vars) * 100
	if !rt.greedy {
		s += 50
	}
	s += (len(rt.segments) - rt.vars) * 2
	if rt.method != "" {
		s++
	}
	return s
}

func (g *Gateway) selectRoute(method, path string) (*route, map[string]string) {
	var segs []string
	if path != "/" && path != "" {
		segs = strings.Split(path[1:], "/")
	}
	var best *route
	var bestParams map[string]string
	for i := range g.routes {
		rt := &g.routes[i]
		var params map[string]string
		if !rt.deflt {
			p, ok := rt.match(method, segs)
			if !ok {
				continue
			}
			params = p
		}
		if best == nil || rt.score() > best.score() {
			best, bestParams = rt, params
		}
	}
	if len(bestParams) == 0 {
		bestParams = nil
	}
	return best, bestParams
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := g.cfg.Now()
	reqID := randomRequestID()
	w.Header().Set("Apigw-Requestid", reqID)
	log := g.cfg.Logger.With("apigwRequestId", reqID, "method", r.Method)

	rt, params := g.selectRoute(r.Method, r.URL.Path)
	if rt == nil {
		writeMessage(w, http.StatusNotFound, "Not Found")
		log.Info("no route", "status", 404)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, g.cfg.MaxBodyBytes+1))
	if err != nil {
		writeMessage(w, http.StatusBadRequest, "Bad Request")
		return
	}
	if int64(len(body)) > g.cfg.MaxBodyBytes {
		writeMessage(w, http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		log.Info("body too large", "routeKey", rt.key, "status", 413)
		return
	}

	ev := g.buildEvent(r, rt.key, params, body, reqID, start)
	lambdaReqID := uuid.NewString()
	log = log.With("routeKey", rt.key, "lambdaRequestId", lambdaReqID)

	resp, herr := g.invoke(r.Context(), rt.handler, ev, lambdaReqID)
	switch {
	case errors.Is(herr, errIntegrationTimeout):
		writeMessage(w, http.StatusServiceUnavailable, "Service Unavailable")
		log.Warn("integration timeout", "status", 503)
		return
	case herr != nil:
		writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		log.Warn("handler failed", "status", 500, "error", herr.Error())
		return
	}
	if err := g.writeResponse(w, resp, log); err != nil {
		writeMessage(w, http.StatusInternalServerError, "Internal Server Error")
		log.Warn("malformed Lambda response", "status", 500, "error", err.Error())
		return
	}
	log.Info("request", "status", resp.StatusCode, "latencyMs", g.cfg.Now().Sub(start).Milliseconds())
}

var errIntegrationTimeout = errors.New("integration timeout")

func (g *Gateway) invoke(parent context.Context, h Handler, ev events.APIGatewayV2HTTPRequest, lambdaReqID string) (events.APIGatewayV2HTTPResponse, error) {
	// Serialize the event as the Lambda service would.
	raw, err := json.Marshal(ev)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	var in events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &in); err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), g.cfg.FunctionTimeout)
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID:       lambdaReqID,
		InvokedFunctionArn: g.cfg.FunctionARN,
	})
	type result struct {
		raw []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer cancel()
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: fmt.Errorf("handler panic: %v", p)}
			}
		}()
		resp, err := h(ctx, in)
		if err != nil {
			done <- result{err: err}
			return
		}
		b, err := json.Marshal(resp)
		done <- result{raw: b, err: err}
	}()
	timer := time.NewTimer(g.cfg.IntegrationTimeout)
	defer timer.Stop()
	select {
	case res := <-done:
		if res.err != nil {
			return events.APIGatewayV2HTTPResponse{}, res.err
		}
		var out events.APIGatewayV2HTTPResponse
		if err := json.Unmarshal(res.raw, &out); err != nil {
			return out, err
		}
		return out, nil
	case <-timer.C:
		return events.APIGatewayV2HTTPResponse{}, errIntegrationTimeout
	}
}

func (g *Gateway) buildEvent(r *http.Request, routeKey string, params map[string]string, body []byte, reqID string, now time.Time) events.APIGatewayV2HTTPRequest {
	headers := map[string]string{}
	var cookies []string
	for name, vals := range r.Header {
		lname := strings.ToLower(name)
		if lname == "cookie" {
			for _, v := range vals {
				for _, c := range strings.Split(v, ";") {
					if c = strings.TrimSpace(c); c != "" {
						cookies = append(cookies, c)
					}
				}
			}
			continue
		}
		headers[lname] = strings.Join(vals, ",")
	}
	host := r.Host
	headers["host"] = host
	if _, ok := headers["content-length"]; !ok && len(body) > 0 {
		headers["content-length"] = strconv.Itoa(len(body))
	}
	clientIP, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		clientIP = r.RemoteAddr
	}
	if xff, ok := headers["x-forwarded-for"]; ok && xff != "" {
		headers["x-forwarded-for"] = xff + ", " + clientIP
	} else {
		headers["x-forwarded-for"] = clientIP
	}
	port := "80"
	if _, p, err := net.SplitHostPort(host); err == nil {
		port = p
	}
	headers["x-forwarded-port"] = port
	headers["x-forwarded-proto"] = "http"
	headers["x-amzn-trace-id"] = traceID(now)

	domain := g.cfg.DomainName
	if domain == "" {
		domain = host
	}
	prefix, _, _ := strings.Cut(domain, ".")

	ev := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       routeKey,
		RawPath:        r.URL.Path,
		RawQueryString: r.URL.RawQuery,
		Cookies:        cookies,
		Headers:        headers,
		PathParameters: params,
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     routeKey,
			AccountID:    g.cfg.AccountID,
			Stage:        "$default",
			RequestID:    reqID,
			APIID:        g.cfg.APIID,
			DomainName:   domain,
			DomainPrefix: prefix,
			Time:         now.UTC().Format("02/Jan/2006:15:04:05 -0700"),
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method:    r.Method,
				Path:      r.URL.Path,
				Protocol:  r.Proto,
				SourceIP:  clientIP,
				UserAgent: r.UserAgent(),
			},
		},
	}
	if r.URL.RawQuery != "" {
		ev.QueryStringParameters = parseQuery(r.URL.RawQuery)
	}
	if len(body) > 0 {
		if isText(r.Header.Get("Content-Type")) {
			ev.Body = string(body)
		} else {
			ev.Body = base64.StdEncoding.EncodeToString(body)
			ev.IsBase64Encoded = true
		}
	}
	return ev
}

// parseQuery decodes a raw query string, keeping duplicate values in order
// and joining them with ",".
func parseQuery(raw string) map[string]string {
	out := map[string]string{}
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			dk = k
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			dv = v
		}
		if old, ok := out[dk]; ok {
			out[dk] = old + "," + dv
		} else {
			out[dk] = dv
		}
	}
	return out
}

func isText(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	if strings.HasPrefix(mt, "text/") {
		return true
	}
	switch mt {
	case "application/json", "application/xml", "application/javascript":
		return true
	}
	return false
}

func (g *Gateway) writeResponse(w http.ResponseWriter, resp events.APIGatewayV2HTTPResponse, log *slog.Logger) error {
	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		return fmt.Errorf("statusCode %d", resp.StatusCode)
	}
	body := []byte(resp.Body)
	if resp.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(resp.Body)
		if err != nil {
			return errors.New("isBase64Encoded body is not base64")
		}
		body = b
	}
	h := w.Header()
	names := make([]string, 0, len(resp.Headers))
	for k := range resp.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		h.Set(k, resp.Headers[k])
	}
	if len(resp.MultiValueHeaders) > 0 {
		if g.cfg.HonorMultiValueHeaders {
			for k, vs := range resp.MultiValueHeaders {
				h.Del(k)
				for _, v := range vs {
					h.Add(k, v)
				}
			}
		} else {
			log.Warn("response multiValueHeaders ignored: payload format 2.0 has no such field; use headers (comma-joined) or cookies")
		}
	}
	for _, c := range resp.Cookies {
		h.Add("Set-Cookie", c)
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // no sniffing: API Gateway does not invent one
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body)
	return nil
}

func writeMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"message":%q}`, msg)
}

func randomAPIID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	var b [10]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// randomRequestID mimics HTTP API request ids such as "JKJaXmPLvHcESHA=".
func randomRequestID() string {
	var b [11]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

func traceID(now time.Time) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("Root=1-%08x-%s", now.Unix(), hex.EncodeToString(b[:]))
}
