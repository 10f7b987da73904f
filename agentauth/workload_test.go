package agentauth_test

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"

	"github.com/consentflow/consentflow/agentauth"
	"github.com/consentflow/consentflow/agentcoretest"
)

// In AgentCore Runtime with WithWorkloadName the client does not use the
// request's token (the runtime's own identity's): it mints for the named
// workload identity and the invocation's user id, and refuses an
// invocation without a user rather than guess one.
func TestWorkloadNameInRuntime(t *testing.T) {
	const wl, ret = "consentflow", "https://consent.example.com/oauth2/callback"
	srv := agentcoretest.NewServer(agentcoretest.WithWorkload(wl, ret), agentcoretest.WithWorkload("runtime_own", ret),
		agentcoretest.WithProvider("github"))
	defer srv.Close()
	ctx := context.Background()
	own, err := srv.Client().GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String("runtime_own"), UserId: aws.String("github|4242")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := agentauth.New(srv.Config(), agentauth.WithWorkloadName(wl), agentauth.WithReturnURL(ret))
	if err != nil {
		t.Fatal(err)
	}
	inv := agentauth.NewContext(ctx, agentauth.Invocation{WorkloadToken: aws.ToString(own.WorkloadAccessToken), UserID: "github|4242"})
	req := agentauth.TokenRequest{Provider: "github", Scopes: []string{"repo"}, NoWait: true}
	var consent *agentauth.ConsentRequiredError
	if _, err := c.AccessToken(inv, req); !errors.As(err, &consent) {
		t.Fatalf("before consent: %v", err)
	}
	if err := srv.AllowAndComplete(ctx, consent.AuthURL.URL); err != nil {
		t.Fatal(err)
	}
	if tok, err := c.AccessToken(inv, req); err != nil || tok == "" {
		t.Fatalf("after consent: %v", err)
	}
	mints := srv.CallsTo(agentcoretest.OpGetWorkloadAccessTokenForUserID)
	if last := mints[len(mints)-1]; last.Workload != wl || last.UserKind != "userId" {
		t.Fatalf("minted %+v", last)
	}
	for _, call := range srv.CallsTo(agentcoretest.OpGetResourceOauth2Token) {
		if call.Workload != wl {
			t.Fatalf("the runtime's own token was used: %+v", call)
		}
	}
	// An invocation without a user id: nothing is minted, nothing guessed.
	n := len(srv.CallsTo(agentcoretest.OpGetWorkloadAccessTokenForUserID))
	noUser := agentauth.NewContext(ctx, agentauth.Invocation{WorkloadToken: aws.ToString(own.WorkloadAccessToken)})
	if _, err := c.AccessToken(noUser, req); !errors.Is(err, agentauth.ErrInvalidRequest) {
		t.Fatalf("without a user: %v", err)
	}
	if len(srv.CallsTo(agentcoretest.OpGetWorkloadAccessTokenForUserID)) != n {
		t.Fatal("minted for no user")
	}
	// A user id header without a workload access token is not an AgentCore Runtime
	// invocation: the header alone names nobody.
	forged := agentauth.NewContext(ctx, agentauth.Invocation{UserID: "github|4242"})
	if _, err := c.AccessToken(forged, req); !errors.Is(err, agentauth.ErrInvalidRequest) {
		t.Fatalf("a user id header alone: %v", err)
	}
	if _, err := c.APIKey(forged, "github", agentauth.User{}); !errors.Is(err, agentauth.ErrInvalidRequest) {
		t.Fatalf("an API key for a user id header alone: %v", err)
	}
	if len(srv.CallsTo(agentcoretest.OpGetWorkloadAccessTokenForUserID)) != n {
		t.Fatal("minted for a user id header alone")
	}
}
