package agentcoretest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"

	"github.com/consentflow/consentflow/agentcoretest"
)

const returnURL = "https://app.example.com/oauth2/callback"

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func newServer(t *testing.T, opts ...agentcoretest.Option) *agentcoretest.Server {
	t.Helper()
	srv := agentcoretest.NewServer(append([]agentcoretest.Option{
		agentcoretest.WithWorkload("my-agent", returnURL), agentcoretest.WithProvider("github"),
	}, opts...)...)
	t.Cleanup(srv.Close)
	return srv
}

// startSession asks for a token for user and returns AgentCore's answer
// (a session: the vault is empty) and the request to repeat.
func startSession(t *testing.T, srv *agentcoretest.Server, user string) (*bedrockagentcore.GetResourceOauth2TokenOutput, *bedrockagentcore.GetResourceOauth2TokenInput) {
	t.Helper()
	ctx := context.Background()
	wat, err := srv.Client().GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String("my-agent"), UserId: aws.String(user)})
	if err != nil {
		t.Fatal(err)
	}
	in := &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: wat.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("github"),
		Scopes: []string{"repo"}, Oauth2Flow: types.Oauth2FlowTypeUserFederation,
		ResourceOauth2ReturnUrl: aws.String(returnURL), CustomState: aws.String("st"),
	}
	out, err := srv.Client().GetResourceOauth2Token(ctx, in)
	if err != nil || out.AuthorizationUrl == nil {
		t.Fatalf("%+v %v", out, err)
	}
	in.CustomState = nil
	in.SessionUri = out.SessionUri
	return out, in
}

func TestDenyFailsTheSession(t *testing.T) {
	srv := newServer(t)
	out, again := startSession(t, srv, "bob")
	back, err := srv.Deny(*out.AuthorizationUrl)
	if err != nil {
		t.Fatal(err)
	}
	q := mustQuery(t, back)
	if q.Get("error") != "access_denied" || q.Get("session_id") != *out.SessionUri || q.Get("state") != "st" {
		t.Fatalf("redirect %s", back)
	}
	res, err := srv.Client().GetResourceOauth2Token(context.Background(), again)
	if err != nil || res.SessionStatus != types.SessionStatusFailed {
		t.Fatalf("%+v %v", res, err)
	}
	// Answered already: no second answer.
	if _, err := srv.Allow(*out.AuthorizationUrl); !errors.Is(err, agentcoretest.ErrNoSession) {
		t.Fatalf("second answer: %v", err)
	}
	if err := srv.AllowAndComplete(context.Background(), *out.AuthorizationUrl); !errors.Is(err, agentcoretest.ErrNoSession) {
		t.Fatalf("AllowAndComplete after Deny: %v", err)
	}
	if _, err := srv.Allow("https://example.com/not-an-authorization-url"); err == nil {
		t.Fatal("a foreign URL was accepted")
	}
}

func mustQuery(t *testing.T, u string) url.Values {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.Query()
}

// TestAllowLeavesCompletionToTheCallback: after Allow the session waits
// for CompleteResourceTokenAuth with the exact user.
func TestAllowLeavesCompletionToTheCallback(t *testing.T) {
	srv := newServer(t)
	out, again := startSession(t, srv, "carol")
	if _, err := srv.Allow(*out.AuthorizationUrl); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := srv.Client().GetResourceOauth2Token(ctx, again)
	if err != nil || res.AccessToken != nil || res.SessionStatus != types.SessionStatusInProgress {
		t.Fatalf("before completion: %+v %v", res, err)
	}
	_, err = srv.Client().CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri: out.SessionUri, UserIdentifier: &types.UserIdentifierMemberUserId{Value: "mallory"}})
	var ade *types.AccessDeniedException
	if !errors.As(err, &ade) {
		t.Fatalf("completion for another user: %v", err)
	}
	_, err = srv.Client().CompleteResourceTokenAuth(ctx, &bedrockagentcore.CompleteResourceTokenAuthInput{
		SessionUri: out.SessionUri, UserIdentifier: &types.UserIdentifierMemberUserId{Value: "carol"}})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := srv.Client().GetResourceOauth2Token(ctx, again); err != nil || res.AccessToken == nil {
		t.Fatalf("after completion: %+v %v", res, err)
	}
	last := srv.CallsTo(agentcoretest.OpCompleteResourceTokenAuth)
	if len(last) != 2 || last[0].Outcome != "denied:identifier-mismatch" || last[1].Outcome != "completed" {
		t.Fatalf("calls %+v", last)
	}
}

func TestAdvanceExpiresSessions(t *testing.T) {
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := newServer(t, agentcoretest.WithClock(func() time.Time { return base }))
	out, again := startSession(t, srv, "dave")
	srv.Advance(agentcoretest.SessionValidity)
	if !srv.Now().Equal(base.Add(agentcoretest.SessionValidity)) {
		t.Fatalf("now %v", srv.Now())
	}
	if _, err := srv.Allow(*out.AuthorizationUrl); !errors.Is(err, agentcoretest.ErrNoSession) {
		t.Fatalf("consent on an expired session: %v", err)
	}
	res, err := srv.Client().GetResourceOauth2Token(context.Background(), again)
	if err != nil || res.SessionStatus != types.SessionStatusFailed {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestInjectFault(t *testing.T) {
	srv := newServer(t, agentcoretest.WithAPIKeyProvider("weather", ""))
	noRetry := func(o *bedrockagentcore.Options) { o.Retryer = retry.AddWithMaxAttempts(retry.NewStandard(), 1) }
	ctx := context.Background()
	srv.InjectFault(agentcoretest.OpGetWorkloadAccessToken, 1, agentcoretest.Throttle)
	_, err := srv.Client().GetWorkloadAccessToken(ctx, &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String("my-agent")}, noRetry)
	var te *types.ThrottlingException
	if !errors.As(err, &te) {
		t.Fatalf("throttle: %v", err)
	}
	srv.InjectFault(agentcoretest.OpGetWorkloadAccessToken, 1, agentcoretest.InternalError)
	_, err = srv.Client().GetWorkloadAccessToken(ctx, &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String("my-agent")}, noRetry)
	var ise *types.InternalServerException
	if !errors.As(err, &ise) {
		t.Fatalf("internal: %v", err)
	}
	srv.InjectFault(agentcoretest.OpGetWorkloadAccessToken, 1, agentcoretest.Delay(time.Hour))
	srv.ClearFaults()
	wat, err := srv.Client().GetWorkloadAccessToken(ctx, &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String("my-agent")}, noRetry)
	if err != nil {
		t.Fatalf("after ClearFaults: %v", err)
	}
	// The SDK retries: one injected fault ends in success.
	srv.InjectFault(agentcoretest.OpGetResourceAPIKey, 1, agentcoretest.InternalError)
	key, err := srv.Client().GetResourceApiKey(ctx, &bedrockagentcore.GetResourceApiKeyInput{
		WorkloadIdentityToken: wat.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("weather")})
	if err != nil || !strings.HasPrefix(aws.ToString(key.ApiKey), "emu_") {
		t.Fatalf("retried: %v", err)
	}
	calls := srv.CallsTo(agentcoretest.OpGetResourceAPIKey)
	if len(calls) != 2 || calls[0].Outcome != "fault" || calls[0].HTTPStatus != 500 || calls[1].Outcome != "token-issued" {
		t.Fatalf("calls %+v", calls)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("an unknown operation did not panic")
		}
	}()
	srv.InjectFault("ListEverything", 1, agentcoretest.Throttle)
}

func TestAddWorkloadAndProviders(t *testing.T) {
	srv := agentcoretest.NewServer()
	defer srv.Close()
	ctx := context.Background()
	_, err := srv.Client().GetWorkloadAccessToken(ctx, &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String("late")})
	var rnf *types.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Fatalf("unknown workload: %v", err)
	}
	if err := srv.AddWorkload("late", returnURL); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddProvider("gitlab"); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddAPIKeyProvider("maps", "mk-1"); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"bad workload":  srv.AddWorkload("x"),
		"relative URL":  srv.AddWorkload("late", "/callback"),
		"bad provider":  srv.AddProvider("no spaces"),
		"duplicate":     srv.AddProvider("gitlab"),
		"duplicate key": srv.AddAPIKeyProvider("maps", ""),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	wat, err := srv.Client().GetWorkloadAccessToken(ctx, &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String("late")})
	if err != nil {
		t.Fatal(err)
	}
	key, err := srv.Client().GetResourceApiKey(ctx, &bedrockagentcore.GetResourceApiKeyInput{
		WorkloadIdentityToken: wat.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("maps")})
	if err != nil || aws.ToString(key.ApiKey) != "mk-1" {
		t.Fatalf("%v", err)
	}
	m2m, err := srv.Client().GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken: wat.WorkloadAccessToken, ResourceCredentialProviderName: aws.String("gitlab"),
		Scopes: []string{"api"}, Oauth2Flow: types.Oauth2FlowTypeM2m})
	if err != nil || m2m.AccessToken == nil {
		t.Fatalf("M2M: %v", err)
	}
}

// TestConfigKeepsAgentCoreOnTheServer: another BaseEndpoint in the
// configuration (DynamoDB Local, say) leaves AgentCore clients on the
// server.
func TestConfigKeepsAgentCoreOnTheServer(t *testing.T) {
	srv := newServer(t)
	cfg := srv.Config()
	cfg.BaseEndpoint = aws.String("http://127.0.0.1:1")
	c := bedrockagentcore.NewFromConfig(cfg)
	if _, err := c.GetWorkloadAccessToken(context.Background(), &bedrockagentcore.GetWorkloadAccessTokenInput{WorkloadName: aws.String("my-agent")}); err != nil {
		t.Fatal(err)
	}
	if cfg.Region != agentcoretest.Region {
		t.Fatal(cfg.Region)
	}
}

func TestCallsHoldNoSecrets(t *testing.T) {
	srv := newServer(t)
	out, _ := startSession(t, srv, "erin-secret-id")
	if err := srv.AllowAndComplete(context.Background(), *out.AuthorizationUrl); err != nil {
		t.Fatal(err)
	}
	dump := fmt.Sprintf("%+v", srv.Calls())
	for _, secret := range []string{"erin-secret-id", *out.SessionUri} {
		if strings.Contains(dump, secret) {
			t.Errorf("the call log shows %q", secret)
		}
	}
	if !strings.Contains(dump, "UserKind:userId") {
		t.Fatalf("calls %s", dump)
	}
	srv.ResetCalls()
	if n := len(srv.Calls()); n != 0 {
		t.Fatalf("%d calls after ResetCalls", n)
	}
}

func TestNewServerPanicsOnBadOptions(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "agentcoretest:") {
			t.Fatalf("recovered %v", r)
		}
	}()
	agentcoretest.NewServer(agentcoretest.WithWorkload("x"))
}

func TestAutoApprove(t *testing.T) {
	srv := newServer(t, agentcoretest.WithAutoApprove())
	out, _ := startSession(t, srv, "frank")
	srv.SetAutoApprove(false)
	srv.SetAutoApprove(true)
	// Opening the link consents at once and redirects to the return URL.
	resp, err := noRedirects.Get(*out.AuthorizationUrl)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), returnURL+"?") {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestUserJWTIsAcceptedAndKeyedOnTheUser(t *testing.T) {
	srv := agentcoretest.NewServer(agentcoretest.WithWorkload("agent", "https://app.example/cb"), agentcoretest.WithProvider("github"),
		agentcoretest.WithTestUser("carol", "carol@example.com"))
	defer srv.Close()
	ctx := context.Background()
	jwt, err := srv.UserJWT("carol", "my-app", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	out, err := srv.Client().GetWorkloadAccessTokenForJWT(ctx, &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{
		WorkloadName: aws.String("agent"), UserToken: aws.String(jwt)})
	if err != nil || aws.ToString(out.WorkloadAccessToken) == "" {
		t.Fatalf("a JWT of the server's provider: %v", err)
	}
	expired, _ := srv.UserJWT("carol", "my-app", 0)
	if _, err := srv.Client().GetWorkloadAccessTokenForJWT(ctx, &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{
		WorkloadName: aws.String("agent"), UserToken: aws.String(expired)}); err == nil {
		t.Fatal("an expired JWT was accepted")
	}
	if err := srv.SignInAs("alice"); err == nil {
		t.Fatal("alice exists although WithTestUser named the users")
	}
	if err := srv.SignInAs("carol"); err != nil {
		t.Fatal(err)
	}
	if srv.Issuer() != srv.URL {
		t.Fatalf("issuer %q, URL %q", srv.Issuer(), srv.URL)
	}
	if err := srv.SignInAs("nobody"); err == nil {
		t.Fatal("SignInAs an unknown user")
	}
}
