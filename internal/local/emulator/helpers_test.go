package emulator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/smithy-go/middleware"
)

const (
	testWorkload  = "consentflow-test"
	testReturnURL = "https://app.example.com/oauth2/callback?tenant=blue"
	otherReturn   = "https://app.example.com/other"
	testProvider  = "github-emu"
	apiKeyProv    = "weather-key"
	testAPIKey    = "wk_live_0123456789abcdef"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type env struct {
	srv    *Server
	ts     *httptest.Server
	client *bedrockagentcore.Client
}

func testConfig() Config {
	return Config{
		Workloads: []Workload{
			{Name: testWorkload, AllowedReturnURLs: []string{testReturnURL, otherReturn}},
			{Name: "no-return-urls"},
		},
		Providers: []Provider{
			{Name: testProvider},
			{Name: apiKeyProv, Kind: APIKey, APIKey: testAPIKey},
		},
		Clock: func() time.Time { return t0 },
	}
}

// newEnv starts the emulator on an httptest server with an SDK client that does not retry.
func newEnv(t *testing.T, mods ...func(*Config)) *env {
	t.Helper()
	cfg := testConfig()
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	srv.setListenURL(ts.Listener.Addr()) // as Serve does: the IdP's issuer is ts.URL
	return &env{srv: srv, ts: ts, client: NewClient(ts.URL, func(o *bedrockagentcore.Options) {
		o.Retryer = aws.NopRetryer{}
	})}
}

// noClientValidation removes the SDK's client-side required-member check so the request
// reaches the emulator.
func noClientValidation(o *bedrockagentcore.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		_, err := st.Initialize.Remove("OperationInputValidation")
		return err
	})
}

var ctx = context.Background()

func (e *env) userToken(t *testing.T, userID string) string {
	t.Helper()
	out, err := e.client.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String(testWorkload), UserId: aws.String(userID)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.WorkloadAccessToken)
}

func (e *env) jwtToken(t *testing.T, jwt string) string {
	t.Helper()
	out, err := e.client.GetWorkloadAccessTokenForJWT(ctx, &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{
		WorkloadName: aws.String(testWorkload), UserToken: aws.String(jwt)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.WorkloadAccessToken)
}

// testAudience is the audience of the test ID tokens.
const testAudience = "consentflow-app"

// mintJWT returns a real ID token from the emulator's IdP for sub (valid one hour on the
// emulator clock); each call differs (jti).
func (e *env) mintJWT(t *testing.T, sub string) string {
	t.Helper()
	tok, err := e.srv.MintIDToken(sub, testAudience, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *env) startFlow(t *testing.T, wat string, scopes []string, state *string) *bedrockagentcore.GetResourceOauth2TokenOutput {
	t.Helper()
	out, err := e.client.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken:          aws.String(wat),
		ResourceCredentialProviderName: aws.String(testProvider),
		Scopes:                         scopes,
		Oauth2Flow:                     "USER_FEDERATION",
		ResourceOauth2ReturnUrl:        aws.String(testReturnURL),
		CustomState:                    state,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *env) getToken(wat string, scopes []string, sessionURI *string, force bool) (*bedrockagentcore.GetResourceOauth2TokenOutput, error) {
	in := &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken:          aws.String(wat),
		ResourceCredentialProviderName: aws.String(testProvider),
		Scopes:                         scopes,
		Oauth2Flow:                     "USER_FEDERATION",
		ResourceOauth2ReturnUrl:        aws.String(testReturnURL),
		SessionUri:                     sessionURI,
	}
	if force {
		in.ForceAuthentication = aws.Bool(true)
	}
	return e.client.GetResourceOauth2Token(ctx, in)
}

// noRedirect is a plain HTTP client that does not follow redirects.
var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

var (
	formRe   = regexp.MustCompile(`<form method="post" action="([^"]*)">`)
	hiddenRe = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// consent opens the authorization URL like a browser, parses the consent form and submits
// the decision. It returns the page HTML and the redirect Location.
func consent(t *testing.T, authURL, decision string) (page string, loc *url.URL) {
	t.Helper()
	resp, err := noRedirect.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page = string(b)
	if resp.StatusCode != 200 {
		t.Fatalf("GET authorize page: %d\n%s", resp.StatusCode, page)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("content type %q", ct)
	}
	m := formRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form in page:\n%s", page)
	}
	base, _ := url.Parse(authURL)
	action, err := base.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"decision": {decision}}
	for _, h := range hiddenRe.FindAllStringSubmatch(page, -1) {
		form.Set(h[1], html.UnescapeString(h[2]))
	}
	resp, err = noRedirect.PostForm(action.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("POST consent: status %d", resp.StatusCode)
	}
	loc, err = url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return page, loc
}

// rawCall sends a JSON body to path, SigV4-signed for service (or unsigned when service
// is ""), and returns the status, headers and decoded JSON body.
func rawCall(t *testing.T, baseURL, path, service string, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, baseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if service != "" {
		sum := sha256.Sum256([]byte(body))
		err := v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: "AKIDEMULATOR", SecretAccessKey: "x"},
			req, hex.EncodeToString(sum[:]), service, "us-east-1", time.Now())
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("non-JSON body %q", b)
		}
	}
	return resp.StatusCode, resp.Header, m
}

func asErr[T error](t *testing.T, err error) T {
	t.Helper()
	var target T
	if !errors.As(err, &target) {
		t.Fatalf("error = %T %v, want %T", err, err, target)
	}
	return target
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
