package apigw_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/consentflow/consentflow/internal/local/apigw"
)

// recorder is a handler that records the events it gets.
type recorder struct {
	mu     sync.Mutex
	events []events.APIGatewayV2HTTPRequest
	lcs    []*lambdacontext.LambdaContext
	dl     []time.Time
	resp   events.APIGatewayV2HTTPResponse
}

func (rec *recorder) handle(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.events = append(rec.events, ev)
	lc, _ := lambdacontext.FromContext(ctx)
	rec.lcs = append(rec.lcs, lc)
	dl, _ := ctx.Deadline()
	rec.dl = append(rec.dl, dl)
	if rec.resp.StatusCode == 0 {
		return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "ok", Headers: map[string]string{"Content-Type": "text/plain"}}, nil
	}
	return rec.resp, nil
}

func (rec *recorder) last(t *testing.T) (events.APIGatewayV2HTTPRequest, *lambdacontext.LambdaContext, time.Time) {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.events) == 0 {
		t.Fatal("handler was not called")
	}
	n := len(rec.events) - 1
	return rec.events[n], rec.lcs[n], rec.dl[n]
}

func serve(t *testing.T, cfg apigw.Config) *httptest.Server {
	t.Helper()
	g, err := apigw.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(g)
	t.Cleanup(ts.Close)
	return ts
}

func callbackRoutes(h apigw.Handler) []apigw.Route {
	return []apigw.Route{{Key: "GET /oauth2/callback", Handler: h}, {Key: "POST /oauth2/callback", Handler: h}}
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestGETQueryCookiesHeadersAndContext(t *testing.T) {
	rec := &recorder{}
	ts := serve(t, apigw.Config{Routes: callbackRoutes(rec.handle), AccountID: "111122223333", APIID: "abcde12345", FunctionTimeout: 5 * time.Second})

	rawQuery := "session_id=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Aab-c.d_e~f&state=x%2By%3D%26&dup=1&dup=two%20words&flag"
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/oauth2/callback?"+rawQuery, nil)
	req.Header.Add("Cookie", "cf_session=s1; theme=dark")
	req.Header.Add("Cookie", "other=o")
	req.Header.Add("X-Dup", "a")
	req.Header.Add("X-Dup", "b")
	req.Header.Set("User-Agent", "consentflow-test/1")
	resp, body := do(t, req)
	if resp.StatusCode != 200 || string(body) != "ok" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Fatalf("response %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp.Header.Get("Apigw-Requestid") == "" {
		t.Error("no apigw-requestid header")
	}

	ev, lc, dl := rec.last(t)
	if ev.Version != "2.0" || ev.RouteKey != "GET /oauth2/callback" || ev.RawPath != "/oauth2/callback" {
		t.Errorf("version/routeKey/rawPath = %q %q %q", ev.Version, ev.RouteKey, ev.RawPath)
	}
	if ev.RawQueryString != rawQuery {
		t.Errorf("rawQueryString = %q, want it exactly as sent", ev.RawQueryString)
	}
	wantQS := map[string]string{
		"session_id": "urn:ietf:params:oauth:request_uri:ab-c.d_e~f",
		"state":      "x+y=&",
		"dup":        "1,two words",
		"flag":       "",
	}
	if len(ev.QueryStringParameters) != len(wantQS) {
		t.Errorf("queryStringParameters = %v", ev.QueryStringParameters)
	}
	for k, v := range wantQS {
		if ev.QueryStringParameters[k] != v {
			t.Errorf("queryStringParameters[%q] = %q, want %q", k, ev.QueryStringParameters[k], v)
		}
	}
	if strings.Join(ev.Cookies, "|") != "cf_session=s1|theme=dark|other=o" {
		t.Errorf("cookies = %q", ev.Cookies)
	}
	for k := range ev.Headers {
		if k != strings.ToLower(k) {
			t.Errorf("header %q not lower-case", k)
		}
	}
	if _, ok := ev.Headers["cookie"]; ok {
		t.Error("cookie header must be removed from headers")
	}
	if ev.Headers["x-dup"] != "a,b" {
		t.Errorf("x-dup = %q, want a,b", ev.Headers["x-dup"])
	}
	host := strings.TrimPrefix(ts.URL, "http://")
	if ev.Headers["host"] != host || ev.Headers["user-agent"] != "consentflow-test/1" ||
		ev.Headers["x-forwarded-for"] != "127.0.0.1" || !strings.HasPrefix(ev.Headers["x-amzn-trace-id"], "Root=1-") {
		t.Errorf("headers = %v", ev.Headers)
	}
	rc := ev.RequestContext
	if rc.AccountID != "111122223333" || rc.APIID != "abcde12345" || rc.Stage != "$default" || rc.RouteKey != ev.RouteKey ||
		rc.DomainName != host || rc.DomainPrefix != "127" || rc.RequestID != resp.Header.Get("Apigw-Requestid") {
		t.Errorf("requestContext = %+v", rc)
	}
	if rc.HTTP.Method != "GET" || rc.HTTP.Path != "/oauth2/callback" || rc.HTTP.Protocol != "HTTP/1.1" ||
		rc.HTTP.SourceIP != "127.0.0.1" || rc.HTTP.UserAgent != "consentflow-test/1" {
		t.Errorf("requestContext.http = %+v", rc.HTTP)
	}
	if ts, err := time.Parse("02/Jan/2006:15:04:05 -0700", rc.Time); err != nil || time.Since(ts) > time.Minute ||
		time.Since(time.UnixMilli(rc.TimeEpoch)) > time.Minute {
		t.Errorf("time = %q (%v), timeEpoch = %d", rc.Time, err, rc.TimeEpoch)
	}
	if ev.Body != "" || ev.IsBase64Encoded {
		t.Errorf("GET body = %q base64=%v", ev.Body, ev.IsBase64Encoded)
	}
	if lc == nil || len(lc.AwsRequestID) != 36 || lc.AwsRequestID == rc.RequestID || lc.InvokedFunctionArn == "" {
		t.Errorf("lambda context = %+v", lc)
	}
	if until := time.Until(dl); until <= 0 || until > 5*time.Second {
		t.Errorf("deadline in %v, want within FunctionTimeout", until)
	}
	// The event is what a Lambda would get on the wire: no body key on a GET.
	raw, _ := json.Marshal(ev)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if _, ok := m["body"]; ok {
		t.Error("GET event has a body key")
	}
}

func TestRawPathIsDecodedAndNoQueryMeansNoParameters(t *testing.T) {
	rec := &recorder{}
	ts := serve(t, apigw.Config{Routes: []apigw.Route{{Key: "$default", Handler: rec.handle}}})
	resp, _ := do(t, mustReq(t, http.MethodGet, ts.URL+"/a%20b/c", nil))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	ev, _, _ := rec.last(t)
	if ev.RawPath != "/a b/c" || ev.RouteKey != "$default" || ev.QueryStringParameters != nil || ev.RawQueryString != "" {
		t.Fatalf("rawPath %q routeKey %q qs %v", ev.RawPath, ev.RouteKey, ev.QueryStringParameters)
	}
}

func mustReq(t *testing.T, method, u string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestFormPOSTArrivesBase64(t *testing.T) {
	rec := &recorder{}
	ts := serve(t, apigw.Config{Routes: callbackRoutes(rec.handle)})
	form := url.Values{"code": {"ABCD-EFGH"}, "session_id": {"urn:ietf:params:oauth:request_uri:x"}}
	resp, err := http.PostForm(ts.URL+"/oauth2/callback", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ev, _, _ := rec.last(t)
	if ev.RouteKey != "POST /oauth2/callback" || !ev.IsBase64Encoded {
		t.Fatalf("routeKey %q isBase64Encoded %v", ev.RouteKey, ev.IsBase64Encoded)
	}
	dec, err := base64.StdEncoding.DecodeString(ev.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := url.ParseQuery(string(dec))
	if got.Get("code") != "ABCD-EFGH" || got.Get("session_id") != "urn:ietf:params:oauth:request_uri:x" {
		t.Fatalf("decoded form = %v", got)
	}
	if ev.Headers["content-type"] != "application/x-www-form-urlencoded" || ev.Headers["content-length"] != itoa(len(dec)) {
		t.Fatalf("headers = %v", ev.Headers)
	}

	// Text-ish content types arrive as they are.
	for _, ct := range []string{"application/json", "text/plain; charset=utf-8", "application/xml"} {
		req := mustReq(t, http.MethodPost, ts.URL+"/oauth2/callback", strings.NewReader(`{"a":1}`))
		req.Header.Set("Content-Type", ct)
		do(t, req)
		ev, _, _ := rec.last(t)
		if ev.IsBase64Encoded || ev.Body != `{"a":1}` {
			t.Errorf("%s: body %q base64=%v", ct, ev.Body, ev.IsBase64Encoded)
		}
	}
	// No content type, or a binary one: base64.
	for _, ct := range []string{"", "application/octet-stream", "multipart/form-data; boundary=x"} {
		req := mustReq(t, http.MethodPost, ts.URL+"/oauth2/callback", bytes.NewReader([]byte{0, 1, 2, 0xff}))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		do(t, req)
		ev, _, _ := rec.last(t)
		if !ev.IsBase64Encoded || ev.Body != base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 0xff}) {
			t.Errorf("%q: body %q base64=%v", ct, ev.Body, ev.IsBase64Encoded)
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestResponseMapping(t *testing.T) {
	png := []byte{0x89, 'P', 'N', 'G', 0, 0xff, 0x10}
	rec := &recorder{resp: events.APIGatewayV2HTTPResponse{
		StatusCode:        201,
		Headers:           map[string]string{"Content-Type": "image/png", "Cache-Control": "no-store", "X-Multi": "a,b"},
		MultiValueHeaders: map[string][]string{"X-Mv": {"1", "2"}},
		Cookies:           []string{"cf_session=abc; Path=/; HttpOnly; SameSite=Lax", "other=1; Path=/"},
		Body:              base64.StdEncoding.EncodeToString(png),
		IsBase64Encoded:   true,
	}}
	ts := serve(t, apigw.Config{Routes: callbackRoutes(rec.handle)})
	resp, body := do(t, mustReq(t, http.MethodGet, ts.URL+"/oauth2/callback", nil))
	if resp.StatusCode != 201 || !bytes.Equal(body, png) {
		t.Fatalf("status %d body %v", resp.StatusCode, body)
	}
	if resp.Header.Get("Content-Type") != "image/png" || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("X-Multi") != "a,b" {
		t.Errorf("headers = %v", resp.Header)
	}
	if sc := resp.Header.Values("Set-Cookie"); len(sc) != 2 || sc[0] != "cf_session=abc; Path=/; HttpOnly; SameSite=Lax" {
		t.Errorf("Set-Cookie = %q", sc)
	}
	if cs := resp.Cookies(); len(cs) != 2 || cs[0].SameSite != http.SameSiteLaxMode {
		t.Errorf("cookies = %v", cs)
	}
	if resp.Header.Get("X-Mv") != "" {
		t.Error("multiValueHeaders must be ignored by default (not in payload format 2.0)")
	}

	ts2 := serve(t, apigw.Config{Routes: callbackRoutes(rec.handle), HonorMultiValueHeaders: true})
	resp2, _ := do(t, mustReq(t, http.MethodGet, ts2.URL+"/oauth2/callback", nil))
	if v := resp2.Header.Values("X-Mv"); len(v) != 2 {
		t.Errorf("HonorMultiValueHeaders: X-Mv = %q", v)
	}

	// A response without Content-Type gets none (no sniffing).
	rec.resp = events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "<html>hi</html>"}
	resp3, body3 := do(t, mustReq(t, http.MethodGet, ts.URL+"/oauth2/callback", nil))
	if resp3.Header.Get("Content-Type") != "" || string(body3) != "<html>hi</html>" {
		t.Errorf("content-type %q body %q", resp3.Header.Get("Content-Type"), body3)
	}
}

func TestErrorsLikeAPIGateway(t *testing.T) {
	failing := func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return events.APIGatewayV2HTTPResponse{}, errors.New("secret detail that must not leak")
	}
	panicking := func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		panic("boom")
	}
	zero := func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return events.APIGatewayV2HTTPResponse{Body: "no status"}, nil
	}
	badB64 := func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: "not base64!", IsBase64Encoded: true}, nil
	}
	slow := func(ctx context.Context, _ events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		<-ctx.Done()
		return events.APIGatewayV2HTTPResponse{StatusCode: 200}, nil
	}
	ts := serve(t, apigw.Config{
		Routes: []apigw.Route{
			{Key: "GET /fail", Handler: failing}, {Key: "GET /panic", Handler: panicking},
			{Key: "GET /zero", Handler: zero}, {Key: "GET /badb64", Handler: badB64}, {Key: "GET /slow", Handler: slow},
		},
		IntegrationTimeout: 200 * time.Millisecond, FunctionTimeout: time.Second,
	})
	for path, want := range map[string]struct {
		status int
		body   string
	}{
		"/fail":                {500, `{"message":"Internal Server Error"}`},
		"/panic":               {500, `{"message":"Internal Server Error"}`},
		"/zero":                {500, `{"message":"Internal Server Error"}`},
		"/badb64":              {500, `{"message":"Internal Server Error"}`},
		"/slow":                {503, `{"message":"Service Unavailable"}`},
		"/nowhere":             {404, `{"message":"Not Found"}`},
		"/fail/extra":          {404, `{"message":"Not Found"}`},
		"/oauth2/callback?x=1": {404, `{"message":"Not Found"}`},
	} {
		resp, body := do(t, mustReq(t, http.MethodGet, ts.URL+path, nil))
		if resp.StatusCode != want.status || string(body) != want.body || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: %d %s (%s), want %d %s", path, resp.StatusCode, body, resp.Header.Get("Content-Type"), want.status, want.body)
		}
	}
	// A route exists for GET only: POST is 404, as HTTP APIs answer.
	resp, body := do(t, mustReq(t, http.MethodPost, ts.URL+"/fail", strings.NewReader("x")))
	if resp.StatusCode != 404 || string(body) != `{"message":"Not Found"}` {
		t.Errorf("POST /fail: %d %s", resp.StatusCode, body)
	}
}

func TestRouteSelection(t *testing.T) {
	mk := func(name string) apigw.Handler {
		return func(_ context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
			b, _ := json.Marshal(map[string]any{"h": name, "routeKey": ev.RouteKey, "params": ev.PathParameters})
			return events.APIGatewayV2HTTPResponse{StatusCode: 200, Body: string(b), Headers: map[string]string{"content-type": "application/json"}}, nil
		}
	}
	ts := serve(t, apigw.Config{Routes: []apigw.Route{
		{Key: "GET /items/{id}", Handler: mk("item")},
		{Key: "GET /items/special", Handler: mk("special")},
		{Key: "ANY /items/special", Handler: mk("any-special")},
		{Key: "ANY /files/{proxy+}", Handler: mk("files")},
		{Key: "$default", Handler: mk("default")},
	}})
	cases := []struct{ method, path, h, param string }{
		{"GET", "/items/special", "special", ""},
		{"DELETE", "/items/special", "any-special", ""},
		{"GET", "/items/42", "item", "42"},
		{"PUT", "/files/a/b%2Fc.txt", "files", "a/b/c.txt"},
		{"GET", "/other", "default", ""},
		{"POST", "/items/42", "default", ""},
	}
	for _, c := range cases {
		_, body := do(t, mustReq(t, c.method, ts.URL+c.path, nil))
		var got struct {
			H      string            `json:"h"`
			Params map[string]string `json:"params"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s %s: %s", c.method, c.path, body)
		}
		if got.H != c.h {
			t.Errorf("%s %s -> %s, want %s", c.method, c.path, got.H, c.h)
		}
		var p string
		for _, v := range got.Params {
			p = v
		}
		if p != c.param {
			t.Errorf("%s %s params %v, want %q", c.method, c.path, got.Params, c.param)
		}
	}
	if _, err := apigw.New(apigw.Config{Routes: []apigw.Route{{Key: "oauth2/callback", Handler: mk("x")}}}); err == nil {
		t.Error("a malformed route key must be rejected")
	}
}
