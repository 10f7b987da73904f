package emulator

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"
	"github.com/aws/smithy-go"
)

// TestValidationThroughSDK runs one request per model constraint through the real SDK
// and checks the typed ValidationException and its fieldList.
func TestValidationThroughSDK(t *testing.T) {
	e := newEnv(t)
	lax := NewClient(e.ts.URL, func(o *bedrockagentcore.Options) { o.Retryer = aws.NopRetryer{} }, noClientValidation)
	wat := e.userToken(t, "alice")
	s := strings.Repeat

	wl := func(c *bedrockagentcore.Client, name *string) error {
		_, err := c.GetWorkloadAccessToken(ctx, &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: name})
		return err
	}
	forUser := func(c *bedrockagentcore.Client, name, uid *string) error {
		_, err := c.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{WorkloadName: name, UserId: uid})
		return err
	}
	forJWT := func(c *bedrockagentcore.Client, name, tok *string) error {
		_, err := c.GetWorkloadAccessTokenForJWT(ctx, &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{WorkloadName: name, UserToken: tok})
		return err
	}
	base := func() *bedrockagentcore.GetResourceOauth2TokenInput {
		return &bedrockagentcore.GetResourceOauth2TokenInput{
			WorkloadIdentityToken: aws.String(wat), ResourceCredentialProviderName: aws.String(testProvider),
			Scopes: []string{"repo"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation,
			ResourceOauth2ReturnUrl: aws.String(testReturnURL)}
	}
	tok := func(c *bedrockagentcore.Client, mod func(*bedrockagentcore.GetResourceOauth2TokenInput)) func() error {
		return func() error {
			in := base()
			mod(in)
			_, err := c.GetResourceOauth2Token(ctx, in)
			return err
		}
	}
	complete := func(c *bedrockagentcore.Client, uri *string, id types.UserIdentifier) func() error {
		return func() error {
			_, err := c.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{SessionUri: uri, UserIdentifier: id})
			return err
		}
	}
	apiKey := func(c *bedrockagentcore.Client, wt, name *string) func() error {
		return func() error {
			_, err := c.GetResourceApiKey(ctx, &bedrockagentcore.GetResourceApiKeyInput{WorkloadIdentityToken: wt, ResourceCredentialProviderName: name})
			return err
		}
	}
	uid := &types.UserIdentifierMemberUserId{Value: "alice"}
	goodURI := aws.String(SessionURIPrefix + "abc")

	cases := []struct {
		name   string
		call   func() error
		fields []string // expected fieldList names, in order
	}{
		{"workloadName required", func() error { return wl(lax, nil) }, []string{"workloadName"}},
		{"workloadName min 3", func() error { return wl(e.client, aws.String("ab")) }, []string{"workloadName"}},
		{"workloadName max 255", func() error { return wl(e.client, aws.String(s("a", 256))) }, []string{"workloadName"}},
		{"workloadName pattern", func() error { return wl(e.client, aws.String("bad name")) }, []string{"workloadName"}},
		{"workloadName pattern anchored", func() error { return wl(e.client, aws.String("abc/def")) }, []string{"workloadName"}},
		{"userId required", func() error { return forUser(lax, aws.String(testWorkload), nil) }, []string{"userId"}},
		{"userId min 1", func() error { return forUser(e.client, aws.String(testWorkload), aws.String("")) }, []string{"userId"}},
		{"userId max 128", func() error { return forUser(e.client, aws.String(testWorkload), aws.String(s("u", 129))) }, []string{"userId"}},
		{"both required", func() error { return forUser(lax, nil, nil) }, []string{"workloadName", "userId"}},
		{"userToken required", func() error { return forJWT(lax, aws.String(testWorkload), nil) }, []string{"userToken"}},
		{"userToken pattern", func() error { return forJWT(e.client, aws.String(testWorkload), aws.String("not a jwt at all")) }, []string{"userToken"}},
		{"userToken max 131072", func() error {
			return forJWT(e.client, aws.String(testWorkload), aws.String("a.b."+s("c", 131072-3)))
		}, []string{"userToken"}},
		{"workloadIdentityToken required", tok(lax, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.WorkloadIdentityToken = nil }), []string{"workloadIdentityToken"}},
		{"workloadIdentityToken min 1", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.WorkloadIdentityToken = aws.String("") }), []string{"workloadIdentityToken"}},
		{"provider required", tok(lax, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.ResourceCredentialProviderName = nil }), []string{"resourceCredentialProviderName"}},
		{"provider pattern", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) {
			in.ResourceCredentialProviderName = aws.String("git.hub")
		}), []string{"resourceCredentialProviderName"}},
		{"provider max 128", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) {
			in.ResourceCredentialProviderName = aws.String(s("p", 129))
		}), []string{"resourceCredentialProviderName"}},
		{"scopes required", tok(lax, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.Scopes = nil }), []string{"scopes"}},
		{"scope min 1", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.Scopes = []string{"ok", ""} }), []string{"scopes.2.member"}},
		{"scope max 128", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.Scopes = []string{s("x", 129)} }), []string{"scopes.1.member"}},
		{"oauth2Flow required", tok(lax, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.Oauth2Flow = "" }), []string{"oauth2Flow"}},
		{"oauth2Flow enum", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.Oauth2Flow = "IMPLICIT" }), []string{"oauth2Flow"}},
		{"sessionUri pattern", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.SessionUri = aws.String("urn:x:abc") }), []string{"sessionUri"}},
		{"sessionUri pattern chars", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) {
			in.SessionUri = aws.String(SessionURIPrefix + "a/b")
		}), []string{"sessionUri"}},
		{"sessionUri max 1024", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) {
			in.SessionUri = aws.String(SessionURIPrefix + s("a", 1025-len(SessionURIPrefix)))
		}), []string{"sessionUri"}},
		{"returnUrl pattern", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) {
			in.ResourceOauth2ReturnUrl = aws.String("not a url")
		}), []string{"resourceOauth2ReturnUrl"}},
		{"returnUrl max 2048", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) {
			in.ResourceOauth2ReturnUrl = aws.String("https://a.example/" + s("p", 2048))
		}), []string{"resourceOauth2ReturnUrl"}},
		{"customState min 1", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.CustomState = aws.String("") }), []string{"customState"}},
		{"customState max 4096", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.CustomState = aws.String(s("s", 4097)) }), []string{"customState"}},
		{"customParameters key pattern", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) {
			in.CustomParameters = map[string]string{"bad key": "v"}
		}), []string{"customParameters.key"}},
		{"customParameters value max", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) {
			in.CustomParameters = map[string]string{"prompt": s("v", 2049)}
		}), []string{"customParameters.value"}},
		{"resources member min", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.Resources = []string{""} }), []string{"resources.1.member"}},
		{"audiences member max", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) { in.Audiences = []string{s("a", 2049)} }), []string{"audiences.1.member"}},
		{"two errors at once", tok(e.client, func(in *bedrockagentcore.GetResourceOauth2TokenInput) {
			in.Oauth2Flow = "X"
			in.CustomState = aws.String("")
		}), []string{"oauth2Flow", "customState"}},
		{"complete sessionUri required", complete(lax, nil, uid), []string{"sessionUri"}},
		{"complete userIdentifier required", complete(lax, goodURI, nil), []string{"userIdentifier"}},
		{"complete sessionUri pattern", complete(e.client, aws.String("urn:ietf:params:oauth:request_uri:"), uid), []string{"sessionUri"}},
		{"complete userId max", complete(e.client, goodURI, &types.UserIdentifierMemberUserId{Value: s("u", 129)}), []string{"userIdentifier.userId"}},
		{"complete userToken pattern", complete(e.client, goodURI, &types.UserIdentifierMemberUserToken{Value: "abc"}), []string{"userIdentifier.userToken"}},
		{"api key provider required", apiKey(lax, aws.String(wat), nil), []string{"resourceCredentialProviderName"}},
		{"api key token required", apiKey(lax, nil, aws.String(apiKeyProv)), []string{"workloadIdentityToken"}},
		{"api key provider pattern", apiKey(e.client, aws.String(wat), aws.String("a b")), []string{"resourceCredentialProviderName"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ve *types.ValidationException
			if !errors.As(err, &ve) {
				t.Fatalf("error = %T %v, want *types.ValidationException", err, err)
			}
			if ve.Reason != types.ValidationExceptionReasonFieldValidationFailed {
				t.Errorf("reason = %q", ve.Reason)
			}
			var got []string
			for _, f := range ve.FieldList {
				got = append(got, aws.ToString(f.Name))
				if aws.ToString(f.Message) == "" {
					t.Errorf("field %s has no message", aws.ToString(f.Name))
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fieldList = %v, want %v (message %q)", got, tc.fields, ve.ErrorMessage())
			}
			if !strings.Contains(ve.ErrorMessage(), "validation error") {
				t.Errorf("message %q", ve.ErrorMessage())
			}
		})
	}
}

// TestSemanticErrors covers the errors that come from state rather than shape.
func TestSemanticErrors(t *testing.T) {
	e := newEnv(t)
	wat := e.userToken(t, "alice")

	_, err := e.client.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String("unknown-workload"), UserId: aws.String("alice")})
	asErr[*types.ResourceNotFoundException](t, err)

	_, err = e.client.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: aws.String(wat), ResourceCredentialProviderName: aws.String("nope"),
		Scopes: []string{"a"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation, ResourceOauth2ReturnUrl: aws.String(testReturnURL)})
	asErr[*types.ResourceNotFoundException](t, err)

	_, err = e.getToken("forged-token", []string{"a"}, nil, false)
	asErr[*types.UnauthorizedException](t, err)

	// Workload tokens expire.
	e.srv.Advance(WorkloadTokenTTL)
	_, err = e.getToken(wat, []string{"a"}, nil, false)
	asErr[*types.UnauthorizedException](t, err)
	wat = e.userToken(t, "alice")

	// Unregistered return URL, and no return URL at all when consent is needed.
	for _, ret := range []*string{aws.String("https://evil.example.com/cb"), aws.String(testReturnURL + "&x=1"), nil} {
		_, err = e.client.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
			WorkloadIdentityToken: aws.String(wat), ResourceCredentialProviderName: aws.String(testProvider),
			Scopes: []string{"a"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation, ResourceOauth2ReturnUrl: ret})
		ve := asErr[*types.ValidationException](t, err)
		if ve.ErrorMessage() != ReturnURLNotRegistered || len(ve.FieldList) != 1 || aws.ToString(ve.FieldList[0].Name) != "resourceOauth2ReturnUrl" {
			t.Errorf("return URL %v: %q %+v", aws.ToString(ret), ve.ErrorMessage(), ve.FieldList)
		}
	}
	// A workload without registered return URLs cannot run the flow.
	out, err := e.client.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String("no-return-urls"), UserId: aws.String("alice")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: out.WorkloadAccessToken, ResourceCredentialProviderName: aws.String(testProvider),
		Scopes: []string{"a"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation, ResourceOauth2ReturnUrl: aws.String(testReturnURL)})
	if ve := asErr[*types.ValidationException](t, err); ve.ErrorMessage() != ReturnURLNotRegistered {
		t.Errorf("message %q", ve.ErrorMessage())
	}

	// Follow-up calls must repeat the same return URL.
	flow := e.startFlow(t, wat, []string{"a"}, nil)
	_, err = e.client.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: aws.String(wat), ResourceCredentialProviderName: aws.String(testProvider),
		Scopes: []string{"a"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation, SessionUri: flow.SessionUri,
		ResourceOauth2ReturnUrl: aws.String(otherReturn)})
	ve := asErr[*types.ValidationException](t, err)
	if aws.ToString(ve.FieldList[0].Name) != "resourceOauth2ReturnUrl" {
		t.Errorf("fieldList %+v", ve.FieldList)
	}
	// Another user's session cannot be polled.
	_, err = e.getToken(e.userToken(t, "bob"), []string{"a"}, flow.SessionUri, false)
	asErr[*types.AccessDeniedException](t, err)
}

func TestRawWire(t *testing.T) {
	e := newEnv(t)
	path := "/identities/GetWorkloadAccessTokenForUserId"

	// Unsigned: 403 MissingAuthenticationTokenException, like AWS.
	status, h, body := rawCall(t, e.ts.URL, path, "", `{"workloadName":"consentflow-test","userId":"a"}`)
	if status != 403 || h.Get("X-Amzn-ErrorType") != "MissingAuthenticationTokenException" || body["message"] != "Missing Authentication Token" {
		t.Fatalf("unsigned: %d %v %v", status, h, body)
	}
	if h.Get("X-Amzn-Requestid") == "" {
		t.Error("no X-Amzn-Requestid")
	}
	// Scoped to another service.
	status, h, _ = rawCall(t, e.ts.URL, path, "s3", `{"workloadName":"consentflow-test","userId":"a"}`)
	if status != 403 || h.Get("X-Amzn-ErrorType") != "InvalidSignatureException" {
		t.Fatalf("wrong service: %d %v", status, h)
	}
	// Signed and valid, with an unknown member that must be ignored.
	status, h, body = rawCall(t, e.ts.URL, path, SigningName, `{"workloadName":"consentflow-test","userId":"a","futureMember":{"x":1}}`)
	if status != 200 || body["workloadAccessToken"] == "" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("valid: %d %v", status, body)
	}
	// Malformed JSON and wrong JSON types.
	for _, b := range []string{`{"workloadName":`, `{"workloadName":12}`, `[1]`} {
		status, h, body = rawCall(t, e.ts.URL, path, SigningName, b)
		if status != 400 || h.Get("X-Amzn-ErrorType") != "ValidationException" || body["reason"] != "CannotParse" {
			t.Errorf("%s: %d %v", b, status, body)
		}
	}
	// The union needs exactly one member.
	for _, b := range []string{
		`{"sessionUri":"urn:ietf:params:oauth:request_uri:abc","userIdentifier":{}}`,
		`{"sessionUri":"urn:ietf:params:oauth:request_uri:abc","userIdentifier":{"userId":"a","userToken":"a.b.c"}}`,
		`{"sessionUri":"urn:ietf:params:oauth:request_uri:abc","userIdentifier":{"userId":null,"unknown":"x"}}`,
	} {
		status, _, body = rawCall(t, e.ts.URL, "/identities/CompleteResourceTokenAuth", SigningName, b)
		fl, _ := body["fieldList"].([]any)
		if status != 400 || body["reason"] != "FieldValidationFailed" || len(fl) != 1 || fl[0].(map[string]any)["name"] != "userIdentifier" {
			t.Errorf("union %s: %d %v", b, status, body)
		}
	}
	// Sensitive values are never echoed.
	secretState := "SECRET-" + strings.Repeat("z", 4097)
	_, _, body = rawCall(t, e.ts.URL, "/identities/oauth2/token", SigningName,
		`{"workloadIdentityToken":"w","resourceCredentialProviderName":"p","scopes":[],"oauth2Flow":"M2M","customState":"`+secretState+`"}`)
	if strings.Contains(body["message"].(string), "SECRET") {
		t.Error("validation message echoes customState")
	}
	// Unknown path.
	status, h, _ = rawCall(t, e.ts.URL, "/identities/Nope", SigningName, `{}`)
	if status != 404 || h.Get("X-Amzn-ErrorType") != "UnknownOperationException" {
		t.Errorf("unknown path: %d %v", status, h)
	}
}

func TestUnsignedThroughSDK(t *testing.T) {
	e := newEnv(t)
	c := NewClient(e.ts.URL, func(o *bedrockagentcore.Options) {
		o.Credentials = aws.AnonymousCredentials{}
		o.Retryer = aws.NopRetryer{}
	})
	_, err := c.GetWorkloadAccessToken(ctx, &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String(testWorkload)})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "MissingAuthenticationTokenException" || ae.ErrorMessage() != "Missing Authentication Token" {
		t.Fatalf("unsigned via SDK: %T %v", err, err)
	}
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden {
		t.Fatalf("status: %v", err)
	}
}

func retryingClient(url string, attempts int) *bedrockagentcore.Client {
	return NewClient(url, func(o *bedrockagentcore.Options) {
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = attempts
			so.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			so.RateLimiter = ratelimit.None
		})
	})
}

func TestFaultInjection(t *testing.T) {
	e := newEnv(t)
	c := retryingClient(e.ts.URL, 3)
	in := &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String(testWorkload)}

	// Fewer faults than attempts: the SDK retries and succeeds.
	e.srv.InjectFault(OpGetWorkloadAccessToken, 2, Throttle)
	if _, err := c.GetWorkloadAccessToken(ctx, in); err != nil {
		t.Fatalf("2 throttles, 3 attempts: %v", err)
	}
	if n := len(e.srv.CallsTo(OpGetWorkloadAccessToken)); n != 3 {
		t.Fatalf("attempts = %d, want 3", n)
	}

	// As many faults as attempts: the SDK gives up with the typed exception.
	e.srv.ResetCalls()
	e.srv.InjectFault(OpGetWorkloadAccessToken, 3, Throttle)
	_, err := c.GetWorkloadAccessToken(ctx, in)
	asErr[*types.ThrottlingException](t, err)
	if n := len(e.srv.CallsTo(OpGetWorkloadAccessToken)); n != 3 {
		t.Fatalf("attempts = %d, want 3", n)
	}
	// Faults are consumed: the next call succeeds.
	if _, err := c.GetWorkloadAccessToken(ctx, in); err != nil {
		t.Fatal(err)
	}

	// Internal errors, without retries; other operations are unaffected.
	e.srv.InjectFault(OpCompleteResourceTokenAuth, 1, InternalError)
	if _, err := e.client.GetWorkloadAccessToken(ctx, in); err != nil {
		t.Fatalf("fault leaked to another operation: %v", err)
	}
	_, err = e.client.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri: aws.String(SessionURIPrefix + "x"), UserIdentifier: &types.UserIdentifierMemberUserId{Value: "a"}})
	asErr[*types.InternalServerException](t, err)

	// A transient fault does not burn a session: Complete succeeds on retry.
	wat := e.userToken(t, "alice")
	flow := e.startFlow(t, wat, []string{"r"}, nil)
	consent(t, aws.ToString(flow.AuthorizationUrl), "allow")
	e.srv.InjectFault(OpCompleteResourceTokenAuth, 1, Throttle)
	if _, err := c.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri: flow.SessionUri, UserIdentifier: &types.UserIdentifierMemberUserId{Value: "alice"}}); err != nil {
		t.Fatalf("complete after a throttle: %v", err)
	}

	// Delay.
	e.srv.InjectFault(OpGetWorkloadAccessToken, 1, Delay(150*time.Millisecond))
	start := time.Now()
	if _, err := e.client.GetWorkloadAccessToken(ctx, in); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("delay fault took only %v", d)
	}

	e.srv.InjectFault(OpGetResourceAPIKey, 5, Throttle)
	e.srv.ClearFaults()
	if _, err := e.client.GetResourceApiKey(ctx, &bedrockagentcore.GetResourceApiKeyInput{
		WorkloadIdentityToken: aws.String(wat), ResourceCredentialProviderName: aws.String(apiKeyProv)}); err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}

	defer func() {
		if recover() == nil {
			t.Error("InjectFault accepted an unknown operation")
		}
	}()
	e.srv.InjectFault("GetResourceOAuth2Token", 1, Throttle)
}

func TestParseFault(t *testing.T) {
	for in, want := range map[string]Fault{"throttle": Throttle, "internal": InternalError, "delay=2s": Delay(2 * time.Second),
		"drop-response": DropResponse, "slow=1s": Slow(time.Second)} {
		if got, err := ParseFault(in); err != nil || got != want {
			t.Errorf("ParseFault(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "slow", "delay=x", "delay=-1s", "slow=-1s", "drop"} {
		if _, err := ParseFault(bad); err == nil {
			t.Errorf("ParseFault(%q) accepted", bad)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"short workload": {Workloads: []Workload{{Name: "ab"}}},
		"relative url":   {Workloads: []Workload{{Name: "abc", AllowedReturnURLs: []string{"/cb"}}}},
		"bad provider":   {Providers: []Provider{{Name: "a b"}}},
		"dup provider":   {Providers: []Provider{{Name: "p"}, {Name: "p", Kind: APIKey}}},
		"bad kind":       {Providers: []Provider{{Name: "p", Kind: "saml"}}},
		"bad public url": {PublicURL: "ftp://x"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestCallsEndpointAndPublicURL(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PublicURL = "https://emu.example.test:8443/" })
	out := e.startFlow(t, e.userToken(t, "alice"), []string{"a"}, nil)
	if !strings.HasPrefix(aws.ToString(out.AuthorizationUrl), "https://emu.example.test:8443"+AuthorizePath+"?request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3A") {
		t.Fatalf("authorizationUrl %q", aws.ToString(out.AuthorizationUrl))
	}
	resp, err := http.Get(e.ts.URL + CallsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var calls []Call
	if err := jsonDecode(resp.Body, &calls); err != nil || len(calls) != 2 || calls[1].Op != OpGetResourceOauth2Token || calls[1].Outcome != "session-started" {
		t.Fatalf("calls %+v %v", calls, err)
	}
}

// The faults that leave the caller unsure: the call takes effect, its
// answer is lost (DropResponse) or arrives after the caller gave up (Slow).
func TestAmbiguousFaults(t *testing.T) {
	e := newEnv(t)
	noRetry := func(o *bedrockagentcore.Options) { o.RetryMaxAttempts = 1 }
	complete := func(ctx context.Context, uri *string) error {
		_, err := e.client.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
			SessionUri: uri, UserIdentifier: &types.UserIdentifierMemberUserId{Value: "alice"}}, noRetry)
		return err
	}
	inVault := func(wat string, uri *string) bool {
		t.Helper()
		out, err := e.getToken(wat, []string{"r"}, uri, false)
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.AccessToken) != ""
	}

	// DropResponse: the caller gets a transport error, the vault the token.
	wat := e.userToken(t, "alice")
	f := e.startFlow(t, wat, []string{"r"}, nil)
	consent(t, aws.ToString(f.AuthorizationUrl), "allow")
	e.srv.InjectFault(OpCompleteResourceTokenAuth, 1, DropResponse)
	err := complete(ctx, f.SessionUri)
	var ae smithy.APIError
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("dropped answer: want a transport error, got %v", err)
	}
	if !inVault(wat, f.SessionUri) {
		t.Fatal("the dropped call did not take effect")
	}
	if calls := e.srv.CallsTo(OpCompleteResourceTokenAuth); len(calls) != 1 || calls[0].Outcome != "completed+dropped" {
		t.Fatalf("calls %+v", calls)
	}
	// A second Complete is refused: the session is single use.
	asErr[*types.AccessDeniedException](t, complete(ctx, f.SessionUri))

	// Slow: the caller's deadline passes first; the call still takes effect.
	e.srv.ResetCalls()
	wat = e.userToken(t, "alice")
	f = e.startFlow(t, wat, []string{"r2"}, nil)
	consent(t, aws.ToString(f.AuthorizationUrl), "allow")
	e.srv.InjectFault(OpCompleteResourceTokenAuth, 1, Slow(300*time.Millisecond))
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	err = complete(cctx, f.SessionUri)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow call: want the caller's deadline, got %v", err)
	}
	out, err := e.getToken(wat, []string{"r2"}, f.SessionUri, false)
	if err != nil || aws.ToString(out.AccessToken) != "" {
		t.Fatalf("before the slow call took effect: %+v %v", out, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := e.getToken(wat, []string{"r2"}, f.SessionUri, false)
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.AccessToken) != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slow call never took effect")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A Delay fault whose caller gives up first: the call never takes effect
// (unlike Slow). Seen as a CompleteResourceTokenAuth that completed after
// its caller had timed out, because the server only notices a closed
// connection once the request body is read.
func TestDelayAbandonedByCallerHasNoEffect(t *testing.T) {
	e := newEnv(t)
	wat := e.userToken(t, "alice")
	flow := e.startFlow(t, wat, []string{"r"}, nil)
	consent(t, aws.ToString(flow.AuthorizationUrl), "allow")
	e.srv.InjectFault(OpCompleteResourceTokenAuth, 1, Delay(300*time.Millisecond))
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := e.client.CompleteResourceTokenAuth(cctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri: flow.SessionUri, UserIdentifier: &types.UserIdentifierMemberUserId{Value: "alice"}})
	cancel()
	if err == nil {
		t.Fatal("Complete answered before its delay")
	}
	time.Sleep(500 * time.Millisecond)
	out, err := e.getToken(wat, []string{"r"}, flow.SessionUri, false)
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.AccessToken) != "" {
		t.Fatal("the abandoned Complete took effect")
	}
	// The session still waits: a Complete now succeeds.
	if _, err := e.client.CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri: flow.SessionUri, UserIdentifier: &types.UserIdentifierMemberUserId{Value: "alice"}}); err != nil {
		t.Fatalf("Complete after the abandoned one: %v", err)
	}
}
