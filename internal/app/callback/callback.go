// Package callback wires the callback function: it reads its configuration
// (environment variables named in internal/contract), builds the AWS clients
// and adapters it uses (AgentCore Identity, DynamoDB, Step Functions, and
// Amazon Connect when its route is configured; never EventBridge) and
// returns its driving adapter, an internal/web Handler.
// functions/callback only calls FromEnvironment and starts the runtime.
package callback

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	awsconnect "github.com/aws/aws-sdk-go-v2/service/connect"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/consentflow/consentflow/internal/adapters/agentcore"
	"github.com/consentflow/consentflow/internal/adapters/awsconf"
	connectadapter "github.com/consentflow/consentflow/internal/adapters/connect"
	"github.com/consentflow/consentflow/internal/adapters/oidc"
	"github.com/consentflow/consentflow/internal/adapters/stepfunctions"
	"github.com/consentflow/consentflow/internal/app"
	"github.com/consentflow/consentflow/internal/connectauth"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/state"
	"github.com/consentflow/consentflow/internal/web"
)

// Clients are the AWS service clients the callback function uses.
type Clients struct {
	AgentCore agentcore.API
	DynamoDB  *dynamodb.Client
	SFN       stepfunctions.API
	// Secrets reads the OpenID Connect client secret (only when
	// contract.EnvOIDCClientSecretName is set).
	Secrets SecretsAPI
	// HTTP makes the requests to OpenID Connect providers (nil: a client
	// with oidc.DefaultTimeout).
	HTTP *http.Client
	// Connect calls Amazon Connect's UpdateParticipantAuthentication (only
	// when contract.EnvConnectInstanceID is set).
	Connect connectadapter.API
}

// SecretsAPI is the Secrets Manager call the callback makes.
type SecretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// ClientsFromConfig builds the clients from the shared configuration
// (endpoint overrides come from the SDK's AWS_ENDPOINT_URL_* settings).
func ClientsFromConfig(cfg aws.Config) Clients {
	return Clients{
		AgentCore: bedrockagentcore.NewFromConfig(cfg),
		DynamoDB:  dynamodb.NewFromConfig(cfg),
		SFN:       sfn.NewFromConfig(cfg),
		Secrets:   secretsmanager.NewFromConfig(cfg),
		Connect:   awsconnect.NewFromConfig(cfg),
	}
}

// FromEnvironment is the production wiring: the SDK's default configuration
// and os.Getenv.
func FromEnvironment(ctx context.Context, log *slog.Logger) (*web.Handler, error) {
	cfg, err := awsconf.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration failed: %w", err)
	}
	return New(ClientsFromConfig(cfg), os.Getenv, log)
}

// New wires the callback handler from configuration.
func New(cl Clients, get app.Getenv, log *slog.Logger, opts ...app.Option) (*web.Handler, error) {
	o := app.Apply(opts)
	// The workload identity and the callback's own registered URL let the
	// callback ask AgentCore's vault whether a session completed when
	// CompleteResourceTokenAuth's answer was lost or refused.
	c, err := app.ReadCommon(get)
	if err != nil {
		return nil, err
	}
	cookie := app.Or(get, contract.EnvUserTokenCookie, contract.DefaultUserTokenCookie)
	cfg := flow.CallbackConfig{Binding: c.Binding, WorkloadName: c.WorkloadName, ReturnURL: c.ReturnURL, CompleteTimeout: o.CompleteTimeout}
	if cfg.AppReturnURLs, err = app.AppReturnURLs(get); err != nil {
		return nil, err
	}
	store := state.New(cl.DynamoDB, c.Table, o.StoreOptions()...)
	d := flow.Deps{
		Identity: agentcore.Identity{API: cl.AgentCore},
		Store:    store,
		Resumer:  stepfunctions.Resumer{API: cl.SFN},
		Clock:    o.Clock,
		Random:   app.RandomBytes,
		Log:      log,
	}
	h := &web.Handler{UserTokenCookie: cookie, LoginCookie: contract.LoginCookie, Log: log}
	if iss := get(contract.EnvUserTokenIssuer); iss != "" {
		aud, err := app.Required(get, contract.EnvUserTokenAudience)
		if err != nil {
			return nil, err
		}
		if d.UserTokens, err = oidc.NewVerifier(iss, aud, cl.HTTP); err != nil {
			return nil, fmt.Errorf("configuration: %w (%s)", err, contract.EnvUserTokenIssuer)
		}
	}
	if c.Binding.NeedsSignIn() {
		si, err := signIn(cl, get, c.ReturnURL)
		if err != nil {
			return nil, err
		}
		d.SignIn, d.Logins = si, store
		cfg.Prompt = get(contract.EnvOIDCPrompt)
		h.FormAction = si.AuthOrigin
	}
	switch v := get(contract.EnvExternalSessions); v {
	case "", "false":
	case "true":
		cfg.ExternalSessions = true
	default:
		return nil, fmt.Errorf("configuration: %s must be \"true\" or \"false\"", contract.EnvExternalSessions)
	}
	cb, err := flow.NewCallback(cfg, d)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w (%s / %s / %s)", err, contract.EnvBindingMode, contract.EnvWorkloadName, contract.EnvReturnURL)
	}
	h.Domain = cb
	if h.Connect, err = connectRoute(cl, get, store, o, log); err != nil {
		return nil, err
	}
	return h, nil
}

// regionRE is an AWS Region name (us-east-1, eu-central-2, us-gov-west-1).
var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d{1,2}$`)

// connectRoute is the Amazon Connect customer-authentication route when
// contract.EnvConnectInstanceID is set, nil otherwise.
func connectRoute(cl Clients, get app.Getenv, store *state.Store, o app.Options, log *slog.Logger) (*web.ConnectHandler, error) {
	id := get(contract.EnvConnectInstanceID)
	region := get(contract.EnvConnectRegion)
	switch {
	case id == "" && region != "":
		return nil, fmt.Errorf("configuration: %s applies only with %s", contract.EnvConnectRegion, contract.EnvConnectInstanceID)
	case id == "":
		return nil, nil
	case !connectauth.ValidInstanceID(id) || strings.ContainsAny(id, ":/"):
		return nil, fmt.Errorf("configuration: %s must be the Amazon Connect instance id (1-100 printable characters without spaces, "+
			"the last part of the instance ARN), not the ARN or a name", contract.EnvConnectInstanceID)
	case region != "" && !regionRE.MatchString(region):
		return nil, fmt.Errorf("configuration: %s %q is not a Region name such as eu-west-2", contract.EnvConnectRegion, region)
	case cl.Connect == nil:
		return nil, fmt.Errorf("configuration: %s is set but no Amazon Connect client was given", contract.EnvConnectInstanceID)
	}
	svc, err := connectauth.New(connectauth.Config{InstanceID: id}, connectauth.Deps{
		Connect: connectadapter.Participants{API: cl.Connect, Region: region},
		Store:   store,
		Clock:   connectauth.Clock(o.Clock),
		Log:     log,
	})
	if err != nil {
		return nil, fmt.Errorf("configuration: %w (%s)", err, contract.EnvConnectInstanceID)
	}
	return &web.ConnectHandler{Domain: svc, Log: log}, nil
}

// prompts are the OpenID Connect prompt values a first sign-in may use.
var prompts = map[string]bool{"": true, "none": true, "login": true, "consent": true, "select_account": true}

// signIn configures the OpenID Connect provider of the sign-in binding
// modes. The login callback's URL is the callback URL's, with
// contract.LoginCallbackPath for contract.CallbackPath.
func signIn(cl Clients, get app.Getenv, returnURL string) (*oidc.SignIn, error) {
	var cfg oidc.Config
	var err error
	if cfg.Issuer, err = app.Required(get, contract.EnvOIDCIssuer); err != nil {
		return nil, err
	}
	if cfg.ClientID, err = app.Required(get, contract.EnvOIDCClientID); err != nil {
		return nil, err
	}
	if p := get(contract.EnvOIDCPrompt); !prompts[p] {
		return nil, fmt.Errorf("configuration: %s must be empty or one of none, login, consent, select_account", contract.EnvOIDCPrompt)
	}
	if cfg.RedirectURL, err = LoginRedirectURL(returnURL); err != nil {
		return nil, err
	}
	cfg.Scopes = strings.Fields(app.Or(get, contract.EnvOIDCScopes, contract.DefaultOIDCScopes))
	cfg.UserClaim = app.Or(get, contract.EnvOIDCUserClaim, contract.DefaultOIDCUserClaim)
	cfg.UserPrefix = get(contract.EnvOIDCUserPrefix)
	cfg.HTTPClient = cl.HTTP
	if name := get(contract.EnvOIDCClientSecretName); name != "" {
		if cfg.ClientSecret, err = clientSecret(cl.Secrets, name); err != nil {
			return nil, err
		}
	}
	si, err := oidc.NewSignIn(cfg)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w (%s)", err, contract.EnvOIDCIssuer)
	}
	return si, nil
}

// LoginRedirectURL is the login callback's URL for the callback URL
// returnURL: the same origin, contract.LoginCallbackPath for
// contract.CallbackPath (under the same path prefix, if any).
func LoginRedirectURL(returnURL string) (string, error) {
	u, err := url.Parse(returnURL)
	if err != nil || !strings.HasSuffix(u.Path, contract.CallbackPath) {
		return "", fmt.Errorf("configuration: %s must end in %s", contract.EnvReturnURL, contract.CallbackPath)
	}
	u.Path = strings.TrimSuffix(u.Path, contract.CallbackPath) + contract.LoginCallbackPath
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}

// clientSecret reads the OpenID Connect client secret (the secret's whole
// string) once, when the function starts.
func clientSecret(sm SecretsAPI, name string) (string, error) {
	if sm == nil {
		return "", fmt.Errorf("configuration: %s is set but no Secrets Manager client was given", contract.EnvOIDCClientSecretName)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: &name})
	if err != nil {
		return "", fmt.Errorf("configuration: reading the OpenID Connect client secret (%s) failed: %w", contract.EnvOIDCClientSecretName, err)
	}
	if out.SecretString == nil || *out.SecretString == "" {
		return "", fmt.Errorf("configuration: the secret named by %s has no string value", contract.EnvOIDCClientSecretName)
	}
	return *out.SecretString, nil
}
