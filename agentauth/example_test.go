package agentauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"

	"github.com/consentflow/consentflow/agentauth"
	"github.com/consentflow/consentflow/agentcoretest"
)

// The examples run against agentcoretest, a local AgentCore Identity. With AWS, pass
// the configuration of config.LoadDefaultConfig instead of srv.Config().

const callbackURL = "https://app.example.com/oauth2/callback"

func testServer() *agentcoretest.Server {
	return agentcoretest.NewServer(
		agentcoretest.WithWorkload("my-agent", callbackURL),
		agentcoretest.WithProvider("github"),
		agentcoretest.WithAPIKeyProvider("weather", "wk-123"),
	)
}

// An agent outside AgentCore Runtime gets a GitHub token for its user. The first time,
// the user must consent: OnAuthURL shows them the link, then AccessToken waits (here by
// polling, as no consentflow sessions table is configured).
func Example() {
	srv := testServer()
	defer srv.Close()

	client, err := agentauth.New(srv.Config(),
		agentauth.WithWorkloadName("my-agent"),
		agentauth.WithReturnURL(callbackURL),
		agentauth.WithPolling(20*time.Millisecond, time.Minute), // default: 5 s, 600 s
	)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	req := agentauth.TokenRequest{
		Provider: "github",
		Scopes:   []string{"repo"},
		User:     agentauth.User{ID: "github|4242"},
		OnAuthURL: func(ctx context.Context, u agentauth.AuthURL) error {
			fmt.Println("Please connect your GitHub account (the link is valid for 10 minutes).")
			// The user consents in a browser and your callback completes the session;
			// in this example agentcoretest plays both.
			return srv.AllowAndComplete(ctx, u.URL)
		},
	}
	token, err := client.AccessToken(ctx, req)
	fmt.Println(token != "", err)

	// Now the token is in AgentCore's vault: no consent, one call.
	token, err = client.AccessToken(ctx, req)
	fmt.Println(token != "", err)
	// Output:
	// Please connect your GitHub account (the link is valid for 10 minutes).
	// true <nil>
	// true <nil>
}

// With consentflow deployed, the agent registers the consent session in consentflow's
// sessions table and waits for its callback instead of polling AgentCore. OnAuthURL
// then also gets the verification code the user types on consentflow's confirmation
// page.
func ExampleWithSessionsTable() {
	// The values are the outputs of consentflow's CDK stack.
	cfg := aws.Config{Region: "us-east-1"} // config.LoadDefaultConfig(ctx) in practice
	_, err := agentauth.New(cfg,
		agentauth.WithWorkloadName("my-agent"),
		agentauth.WithReturnURL("https://abc123.execute-api.us-east-1.amazonaws.com/oauth2/callback"),
		agentauth.WithSessionsTable("consentflow-sessions"),
	)
	fmt.Println(err)
	// Output: <nil>
}

// A request with NoWait (or without OnAuthURL) returns the link in a
// *ConsentRequiredError: an agent that answers at once can show it and ask the user to
// come back.
func ExampleConsentRequiredError() {
	srv := testServer()
	defer srv.Close()
	client, err := agentauth.New(srv.Config(), agentauth.WithWorkloadName("my-agent"), agentauth.WithReturnURL(callbackURL))
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.AccessToken(context.Background(), agentauth.TokenRequest{
		Provider: "github", Scopes: []string{"repo"}, User: agentauth.User{ID: "github|4242"}, NoWait: true,
	})
	var consent *agentauth.ConsentRequiredError
	if errors.As(err, &consent) {
		fmt.Println(err)
		fmt.Println(strings.HasPrefix(consent.AuthURL.URL, srv.URL+"/identities/oauth2/authorize?"))
	}
	// Output:
	// agentauth: github: user consent required
	// true
}

func ExampleClient_APIKey() {
	srv := testServer()
	defer srv.Close()
	client, err := agentauth.New(srv.Config(), agentauth.WithWorkloadName("my-agent"))
	if err != nil {
		log.Fatal(err)
	}
	key, err := client.APIKey(context.Background(), "weather", agentauth.User{})
	fmt.Println(key, err)

	_, err = client.APIKey(context.Background(), "no-such-provider", agentauth.User{})
	fmt.Println(errors.Is(err, agentauth.ErrNotFound))
	// Output:
	// wk-123 <nil>
	// true
}

// WithAPIKey is the counterpart of the Python SDK's @requires_api_key.
func ExampleWithAPIKey() {
	srv := testServer()
	defer srv.Close()
	client, err := agentauth.New(srv.Config(), agentauth.WithWorkloadName("my-agent"))
	if err != nil {
		log.Fatal(err)
	}
	forecast := agentauth.WithAPIKey(client, "weather", func(ctx context.Context, apiKey string, city string) (string, error) {
		// Call the weather API with apiKey.
		return "sunny in " + city, nil
	})
	fmt.Println(forecast(context.Background(), "Lisbon"))
	// Output: sunny in Lisbon <nil>
}

// WithAccessToken is the counterpart of the Python SDK's @requires_access_token.
func ExampleWithAccessToken() {
	srv := testServer()
	defer srv.Close()
	client, err := agentauth.New(srv.Config(), agentauth.WithWorkloadName("my-agent"),
		agentauth.WithReturnURL(callbackURL), agentauth.WithPolling(20*time.Millisecond, time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	listRepos := agentauth.WithAccessToken(client, agentauth.TokenRequest{
		Provider: "github", Scopes: []string{"repo"}, User: agentauth.User{ID: "github|4242"},
		OnAuthURL: func(ctx context.Context, u agentauth.AuthURL) error { return srv.AllowAndComplete(ctx, u.URL) },
	}, func(ctx context.Context, token string, owner string) ([]string, error) {
		// Call GitHub's API with token.
		return []string{owner + "/hello-world"}, nil
	})
	fmt.Println(listRepos(context.Background(), "octocat"))
	// Output: [octocat/hello-world] <nil>
}

// An agent served by AgentCore Runtime gets its workload access token and user with
// each request; Middleware hands them to AccessToken and APIKey through the context.
func ExampleMiddleware() {
	srv := testServer()
	defer srv.Close()
	client, err := agentauth.New(srv.Config()) // no workload name: Runtime brings the token
	if err != nil {
		log.Fatal(err)
	}
	agent := agentauth.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inv, _ := agentauth.FromContext(r.Context())
		key, err := client.APIKey(r.Context(), "weather", agentauth.User{})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "hello %s, the key has %d characters", inv.UserID, len(key))
	}))

	// What AgentCore Runtime sends: a workload access token minted for the user.
	ctx := context.Background()
	wat, err := srv.Client().GetWorkloadAccessTokenForUserId(ctx, &bedrockagentcore.GetWorkloadAccessTokenForUserIdInput{
		WorkloadName: aws.String("my-agent"), UserId: aws.String("alice")})
	if err != nil {
		log.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/invocations", strings.NewReader(`{"prompt":"weather?"}`))
	req.Header.Set(agentauth.HeaderWorkloadAccessToken, *wat.WorkloadAccessToken)
	req.Header.Set(agentauth.HeaderUserID, "alice")
	rec := httptest.NewRecorder()
	agent.ServeHTTP(rec, req)
	fmt.Println(rec.Body.String())
	// Output: hello alice, the key has 6 characters
}
