package agentcoretest_test

import (
	"context"
	"fmt"
	"log"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"

	"github.com/consentflow/consentflow/agentcoretest"
)

// A test of code that uses the AWS SDK's bedrockagentcore client directly.
func Example() {
	srv := agentcoretest.NewServer(
		agentcoretest.WithWorkload("my-agent", "https://app.example.com/oauth2/callback"),
		agentcoretest.WithProvider("github"),
	)
	defer srv.Close()
	client := bedrockagentcore.NewFromConfig(srv.Config())
	ctx := context.Background()

	wat, err := client.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String("my-agent"), UserId: aws.String("alice")})
	if err != nil {
		log.Fatal(err)
	}
	req := &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken:          wat.WorkloadAccessToken,
		ResourceCredentialProviderName: aws.String("github"),
		Scopes:                         []string{"repo"},
		Oauth2Flow:                     types.Oauth2FlowTypeUserFederation,
		ResourceOauth2ReturnUrl:        aws.String("https://app.example.com/oauth2/callback"),
	}
	out, err := client.GetResourceOauth2Token(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("consent needed:", out.AccessToken == nil, out.SessionStatus)

	// The user consents and the application's callback completes the session.
	if err := srv.AllowAndComplete(ctx, *out.AuthorizationUrl); err != nil {
		log.Fatal(err)
	}
	out, err = client.GetResourceOauth2Token(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("token:", out.AccessToken != nil)

	for _, c := range srv.Calls() {
		fmt.Println(c.Op, c.Outcome)
	}
	// Output:
	// consent needed: true IN_PROGRESS
	// token: true
	// GetWorkloadAccessTokenForUserId token-issued
	// GetResourceOauth2Token session-started
	// Consent allowed
	// CompleteResourceTokenAuth completed
	// GetResourceOauth2Token vault-hit
}

// Allow is the user's consent at the provider; the browser then goes back to the
// application's callback with the session and the state.
func ExampleServer_Allow() {
	srv := agentcoretest.NewServer(
		agentcoretest.WithWorkload("my-agent", "https://app.example.com/oauth2/callback"),
		agentcoretest.WithProvider("github"),
	)
	defer srv.Close()
	client := srv.Client()
	ctx := context.Background()
	wat, err := client.GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String("my-agent"), UserId: aws.String("alice")})
	if err != nil {
		log.Fatal(err)
	}
	out, err := client.GetResourceOauth2Token(ctx, &bedrockagentcore.GetResourceOauth2TokenInput{
		WorkloadIdentityToken:          wat.WorkloadAccessToken,
		ResourceCredentialProviderName: aws.String("github"),
		Scopes:                         []string{"repo"},
		Oauth2Flow:                     types.Oauth2FlowTypeUserFederation,
		ResourceOauth2ReturnUrl:        aws.String("https://app.example.com/oauth2/callback"),
		CustomState:                    aws.String("csrf-state-123"),
	})
	if err != nil {
		log.Fatal(err)
	}
	back, err := srv.Allow(*out.AuthorizationUrl)
	if err != nil {
		log.Fatal(err)
	}
	u, _ := url.Parse(back)
	fmt.Println(u.Host + u.Path)
	fmt.Println(u.Query().Get("session_id") == *out.SessionUri, u.Query().Get("state"))
	// Output:
	// app.example.com/oauth2/callback
	// true csrf-state-123
}

// A user JWT from the server's identity provider: what an agent behind a JWT authorizer
// gets, and what GetWorkloadAccessTokenForJWT verifies.
func ExampleServer_UserJWT() {
	srv := agentcoretest.NewServer(agentcoretest.WithWorkload("my-agent"))
	defer srv.Close()
	jwt, err := srv.UserJWT("alice", "my-app", time.Hour)
	if err != nil {
		log.Fatal(err)
	}
	client := bedrockagentcore.NewFromConfig(srv.Config())
	_, err = client.GetWorkloadAccessTokenForJWT(context.Background(), &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{
		WorkloadName: aws.String("my-agent"), UserToken: aws.String(jwt)})
	fmt.Println("accepted:", err == nil)
	forged := jwt[:len(jwt)-4] + "AAAA"
	_, err = client.GetWorkloadAccessTokenForJWT(context.Background(), &bedrockagentcore.GetWorkloadAccessTokenForJWTInput{
		WorkloadName: aws.String("my-agent"), UserToken: aws.String(forged)})
	fmt.Println("forged accepted:", err == nil)
	// Output:
	// accepted: true
	// forged accepted: false
}
