// Package stack defines consentflow's AWS infrastructure as one CDK stack: the sessions table,
// the initiate and callback functions, the callback HTTP API, the event bus, the AuthorizeUser
// state machine, and the AgentCore workload identity (plus, optionally, the OAuth2 credential
// provider).
package stack

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsbedrockagentcore"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscertificatemanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctionstasks"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/consentflow/consentflow/internal/contract"
)

// The task timeout is the session validity (contract.SessionValidity) plus
// TaskTimeoutMargin, so the callback's own expiry handling wins the race.
const (
	TaskTimeoutMargin = time.Minute

	// Default-stage throttling of the callback API (requests per second, burst).
	APIThrottleRate  = 20
	APIThrottleBurst = 50
)

// Errors named by the functions (Lambda errorType, or the error of SendTaskFailure).
var (
	// LambdaServiceErrors are the Lambda service-side failures worth a retry.
	LambdaServiceErrors = []string{"Lambda.ServiceException", "Lambda.AWSLambdaException",
		"Lambda.SdkClientException", LambdaThrottled}
)

// LambdaThrottled is the Lambda service error after which the function certainly did not run.
const LambdaThrottled = "Lambda.TooManyRequestsException"

// AccessLogFormat is the callback API's access log line. It deliberately has no field that holds
// the query string or the body ($context.path is the path only in HTTP APIs): the callback's query
// carries session ids and OAuth state, the POST body the verification code.
const AccessLogFormat = `{"requestId":"$context.requestId","extendedRequestId":"$context.extendedRequestId",` +
	`"requestTime":"$context.requestTime","ip":"$context.identity.sourceIp","httpMethod":"$context.httpMethod",` +
	`"routeKey":"$context.routeKey","path":"$context.path","protocol":"$context.protocol","status":"$context.status",` +
	`"responseLength":"$context.responseLength","responseLatency":"$context.responseLatency",` +
	`"integrationStatus":"$context.integrationStatus","integrationLatency":"$context.integrationLatency",` +
	`"integrationError":"$context.integrationErrorMessage","error":"$context.error.message"}`

// Props configure the stack.
type Props struct {
	awscdk.StackProps
	Config Config
	// InitiateCodeDir, CallbackCodeDir and ResumerCodeDir each hold a bootstrap binary (see
	// infra/gobuild).
	InitiateCodeDir string
	CallbackCodeDir string
	ResumerCodeDir  string
	// ContinueCodeDir holds the continue function's bootstrap; needed only with
	// Config.AgentRuntimeARNs.
	ContinueCodeDir string
}

// ConsentFlow is the stack and the constructs tests and callers may want to reach.
type ConsentFlow struct {
	Stack        awscdk.Stack
	Table        awsdynamodb.Table
	Bus          awsevents.IEventBus
	Initiate     awslambda.Function
	Callback     awslambda.Function
	Resumer      awslambda.Function
	InitiateRole awsiam.Role
	CallbackRole awsiam.Role
	ResumerRole  awsiam.Role
	// Continue and ContinueRole are the ContinueAgent step's function and role; nil without
	// Config.AgentRuntimeARNs.
	Continue     awslambda.Function
	ContinueRole awsiam.Role
	// AgentTokenPolicy is what an agent's execution role needs to read the tokens users
	// consented to through consentflow: they are in the vault under consentflow's workload
	// identity, which the agent's own (runtime-linked) identity does not see. Nil without
	// Config.AgentRuntimeARNs.
	AgentTokenPolicy awsiam.ManagedPolicy
	// ResumerDLQ receives the stream records the resumer gave up on; ResumerDLQAlarm fires on
	// any visible message.
	ResumerDLQ      awssqs.Queue
	ResumerDLQAlarm awscloudwatch.Alarm
	API             awsapigatewayv2.HttpApi
	StateMachine    awsstepfunctions.StateMachine
	Workload        awsbedrockagentcore.WorkloadIdentity
	// Provider is the credential provider the stack created, nil when an existing one is used.
	Provider awsbedrockagentcore.OAuth2CredentialProvider
	// Domain is the API's custom domain and Mapping maps the API's default stage to it; both
	// nil without a custom domain.
	Domain  awsapigatewayv2.DomainName
	Mapping awsapigatewayv2.ApiMapping
	// CallbackURL is the API's callback URL (a token without a custom domain): RETURN_URL and
	// the workload's allowed return URL.
	CallbackURL *string
	// LoginRedirectURI is the redirect URI to register at the application's OpenID Connect
	// provider (the callback URL's origin + contract.LoginCallbackPath); nil unless the binding
	// mode is an oidc mode.
	LoginRedirectURI *string
	// ConnectRedirectURI is the redirect URI to configure in the Cognito app client of the
	// Amazon Connect instance's customer authentication (the callback URL's origin +
	// contract.ConnectCallbackPath); nil without a Connect instance.
	ConnectRedirectURI *string
	// ConnectInstanceARN is the ARN the callback may call UpdateParticipantAuthentication on;
	// "" without a Connect instance.
	ConnectInstanceARN string
}

// New defines the consentflow stack.
func New(scope constructs.Construct, id string, props *Props) *ConsentFlow {
	cfg := props.Config
	s := awscdk.NewStack(scope, jsii.String(id), &props.StackProps)
	cf := &ConsentFlow{Stack: s}

	removal := awscdk.RemovalPolicy_RETAIN
	if cfg.RemovalPolicy == "destroy" {
		removal = awscdk.RemovalPolicy_DESTROY
	}
	logGroup := func(id string) awslogs.LogGroup {
		return awslogs.NewLogGroup(s, jsii.String(id), &awslogs.LogGroupProps{
			Retention:     retention(cfg.LogRetentionDays),
			RemovalPolicy: removal,
		})
	}

	// Sessions table: one item per session (and one per task token), expired by TTL.
	cf.Table = awsdynamodb.NewTable(s, jsii.String("Sessions"), &awsdynamodb.TableProps{
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String(contract.AttrPK), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		TimeToLiveAttribute: jsii.String(contract.AttrTTL),
		// The resumer reads every write: a settled session's outbox is in the new image, and
		// the write that settled it is the one whose old image is still open (its completion
		// event). Changing the view type of a deployed table replaces its stream (a new
		// stream ARN, so a new event source mapping reading it from its start).
		Stream: awsdynamodb.StreamViewType(contract.StreamViewType),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		RemovalPolicy: removal,
	})

	// Event bus for AuthorizationRequired (initiate), AuthorizationCompleted and
	// AuthorizationFailed (resumer).
	var ownBus awsevents.EventBus // nil when publishing to the account's default bus
	if cfg.UseDefaultEventBus {
		cf.Bus = awsevents.EventBus_FromEventBusName(s, jsii.String("DefaultBus"), jsii.String("default"))
	} else {
		ownBus = awsevents.NewEventBus(s, jsii.String("Bus"), &awsevents.EventBusProps{
			EventBusName: jsii.String(cfg.EventBusName),
			Description:  jsii.String("consentflow: AuthorizationRequired events (source consentflow)"),
		})
		cf.Bus = ownBus
	}

	// Callback HTTP API (its routes are added once the callback function exists). With a
	// custom domain the execute-api endpoint is disabled: every URL the stack hands out (the
	// return URL, the login redirect URI) is on the custom domain, the cookies the callback
	// reads are only sent there, and a second way in would only be a second origin to defend.
	apiProps := &awsapigatewayv2.HttpApiProps{
		ApiName:     jsii.String(id + "-callback"),
		Description: jsii.String("consentflow: the OAuth return URL (" + contract.CallbackPath + ")"),
	}
	if cfg.DomainName != "" {
		apiProps.DisableExecuteApiEndpoint = jsii.Bool(true)
	}
	cf.API = awsapigatewayv2.NewHttpApi(s, jsii.String("CallbackApi"), apiProps)
	var origin string // scheme and host of every URL the API serves
	if cfg.DomainName != "" {
		cf.Domain, cf.Mapping = newCustomDomain(s, cfg, cf.API)
		origin = "https://" + cfg.DomainName
	} else {
		origin = *cf.API.ApiEndpoint() // (the construct refuses to name it when disabled)
	}
	cf.CallbackURL = jsii.String(origin + contract.CallbackPath)
	if cfg.OIDCBinding() {
		cf.LoginRedirectURI = jsii.String(origin + contract.LoginCallbackPath)
	}
	if cfg.Connect != nil {
		cf.ConnectRedirectURI = jsii.String(origin + contract.ConnectCallbackPath)
		cf.ConnectInstanceARN = connectInstanceARN(s, cfg.Connect)
	}
	accessLogs := logGroup("CallbackApiAccessLogs")
	stage := cf.API.DefaultStage().Node().DefaultChild().(awsapigatewayv2.CfnStage)
	stage.SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: accessLogs.LogGroupArn(),
		Format:         jsii.String(AccessLogFormat),
	})
	stage.SetDefaultRouteSettings(&awsapigatewayv2.CfnStage_RouteSettingsProperty{
		ThrottlingBurstLimit: jsii.Number(APIThrottleBurst),
		ThrottlingRateLimit:  jsii.Number(APIThrottleRate),
	})

	// AgentCore workload identity: the callback URL is its only allowed OAuth2 return URL.
	cf.Workload = awsbedrockagentcore.NewWorkloadIdentity(s, jsii.String("Workload"), &awsbedrockagentcore.WorkloadIdentityProps{
		WorkloadIdentityName:            jsii.String(cfg.WorkloadName),
		AllowedResourceOauth2ReturnUrls: &[]*string{cf.CallbackURL},
	})
	if cfg.NewProvider != nil {
		cf.Provider = newProvider(s, cfg.NewProvider)
	}

	arns := newARNs(s, cfg)

	// Functions.
	initiateRole := functionRole(s, "InitiateRole", "consentflow initiate function")
	callbackRole := functionRole(s, "CallbackRole", "consentflow callback function")
	cf.InitiateRole, cf.CallbackRole = initiateRole, callbackRole
	cf.Initiate = newFunction(s, "Initiate", functionSpec{
		description: "consentflow: starts an AgentCore 3-legged OAuth session for a Step Functions task",
		codeDir:     props.InitiateCodeDir,
		timeout:     15,
		role:        initiateRole,
		logs:        logGroup("InitiateLogs"),
		env:         initiateEnv(cfg, cf),
	})
	cf.Callback = newFunction(s, "Callback", functionSpec{
		description: "consentflow: OAuth return URL; binds the session to the user and resumes the task",
		codeDir:     props.CallbackCodeDir,
		timeout:     10,
		role:        callbackRole,
		logs:        logGroup("CallbackLogs"),
		env:         callbackEnv(cfg, cf),
	})
	// The functions use the workload identity and the provider by name: deploy those first.
	for _, fn := range []awslambda.Function{cf.Initiate, cf.Callback} { // the resumer uses neither
		fn.Node().AddDependency(cf.Workload)
		if cf.Provider != nil {
			fn.Node().AddDependency(cf.Provider)
		}
	}
	grantInitiate(initiateRole, cf, arns)
	grantCallback(callbackRole, cf, arns)
	newResumer(s, cf, cfg, props, arns, logGroup("ResumerLogs"), removal)
	if ownBus != nil {
		restrictPublishers(ownBus, initiateRole, cf.ResumerRole)
	}

	// One integration for the callback's routes: the AgentCore return URL and, with an oidc
	// binding, the provider's redirect after sign-in. Each route gets its own invoke
	// permission, scoped to its method and path.
	integration := awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("CallbackIntegration"), cf.Callback,
		&awsapigatewayv2integrations.HttpLambdaIntegrationProps{
			PayloadFormatVersion: awsapigatewayv2.PayloadFormatVersion_VERSION_2_0(),
		})
	paths := []string{contract.CallbackPath}
	if cfg.OIDCBinding() {
		paths = append(paths, contract.LoginCallbackPath)
	}
	for _, path := range paths {
		cf.API.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(path),
			Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod_GET, awsapigatewayv2.HttpMethod_POST},
			Integration: integration,
		})
	}
	if cfg.Connect != nil {
		// Cognito's redirect after a Connect customer's sign-in: GET only.
		cf.API.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(contract.ConnectCallbackPath),
			Methods:     &[]awsapigatewayv2.HttpMethod{awsapigatewayv2.HttpMethod_GET},
			Integration: integration,
		})
	}

	if len(cfg.AgentRuntimeARNs) > 0 {
		newContinue(s, cf, cfg, props, logGroup("ContinueLogs"))
		cf.AgentTokenPolicy = newAgentTokenPolicy(s, cf, arns)
	}
	cf.StateMachine = newStateMachine(s, cfg, cf.Initiate, cf.Continue, logGroup("AuthorizeUserLogs"))

	out := func(id, value, desc string) {
		awscdk.NewCfnOutput(s, jsii.String(id), &awscdk.CfnOutputProps{Value: jsii.String(value), Description: jsii.String(desc)})
	}
	out("CallbackUrl", *cf.CallbackURL, "consentflow's OAuth return URL (registered on the workload identity)")
	out("StateMachineArn", *cf.StateMachine.StateMachineArn(), "Start an execution here to authorize a user")
	out("SessionsTableName", *cf.Table.TableName(), "DynamoDB table of authorization sessions")
	out("EventBusName", cfg.EventBusName, "Bus receiving consentflow's events (source consentflow): AuthorizationRequired, AuthorizationCompleted, AuthorizationFailed")
	out("WorkloadName", *cf.Workload.WorkloadIdentityName(), "AgentCore workload identity")
	out("ResumerDeadLetterQueueUrl", *cf.ResumerDLQ.QueueUrl(), "Stream records the resumer gave up on (alarmed)")
	out("CredentialProviderName", cfg.ProviderName, "AgentCore OAuth2 credential provider used by the flow")
	if cf.Provider != nil {
		out("CredentialProviderCallbackUrl", *cf.Provider.CallbackUrl(),
			"Register this as the redirect URI of the OAuth client at the provider")
	}
	if cf.LoginRedirectURI != nil {
		out("LoginRedirectUri", *cf.LoginRedirectURI,
			"Register this as a redirect URI of consentflow's client at your OpenID Connect provider (sign-in binding)")
	}
	if cf.AgentTokenPolicy != nil {
		out("AgentTokenPolicyArn", *cf.AgentTokenPolicy.ManagedPolicyArn(),
			"Attach to the execution role of each agent runtime in agentRuntimeArns: it reads users' tokens under the workload identity WorkloadName (agentauth.WithWorkloadName)")
	}
	if cf.ConnectRedirectURI != nil {
		out("ConnectRedirectUri", *cf.ConnectRedirectURI,
			"Add this as an allowed callback URL of the Cognito app client your Amazon Connect instance uses for customer authentication")
	}
	if cf.Domain != nil {
		out("CustomDomainTarget", *cf.Domain.RegionalDomainName(),
			"Point a DNS CNAME (or Route 53 alias) record for "+cfg.DomainName+" at this name")
	}

	addNagSuppressions(cf)
	return cf
}

// arnSet are the ARNs the function policies name. They are built from names (not construct
// references) so that no function policy depends on the state machine that invokes the function.
type arnSet struct {
	workloadDirectory, workload, tokenVault, provider string
	providerSecret                                    string
	stateMachine                                      string
	// oidcClientSecret is the sign-in client's secret (oidcClientSecretName), "" when unset.
	oidcClientSecret string
	// externalWorkloads, externalProviders and externalSecrets are the external agents'
	// workload identities, credential providers and the providers' AgentCore-managed secrets.
	externalWorkloads, externalProviders, externalSecrets []string
}

func newARNs(s awscdk.Stack, cfg Config) arnSet {
	agentcore := func(resource string) string {
		return *s.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("bedrock-agentcore"), Resource: jsii.String(resource), ArnFormat: awscdk.ArnFormat_NO_RESOURCE_NAME,
		})
	}
	a := arnSet{
		workloadDirectory: agentcore("workload-identity-directory/default"),
		workload:          agentcore("workload-identity-directory/default/workload-identity/" + cfg.WorkloadName),
		tokenVault:        agentcore("token-vault/default"),
		provider:          agentcore("token-vault/default/oauth2credentialprovider/" + cfg.ProviderName),
		stateMachine: *s.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("states"), Resource: jsii.String("stateMachine"),
			ResourceName: jsii.String(cfg.StateMachineName), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
		}),
	}
	a.oidcClientSecret = secretARN(s, cfg.OIDC.ClientSecretName)
	for _, ag := range cfg.ExternalAgents {
		w := agentcore("workload-identity-directory/default/workload-identity/" + ag.WorkloadName)
		p := agentcore("token-vault/default/oauth2credentialprovider/" + ag.ProviderName)
		sec := *s.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("secretsmanager"), Resource: jsii.String("secret"),
			ResourceName: jsii.String("bedrock-agentcore-identity!default/oauth2/" + ag.ProviderName + "-??????"),
			ArnFormat:    awscdk.ArnFormat_COLON_RESOURCE_NAME,
		})
		if !slices.Contains(a.externalWorkloads, w) {
			a.externalWorkloads = append(a.externalWorkloads, w)
		}
		if !slices.Contains(a.externalProviders, p) {
			a.externalProviders = append(a.externalProviders, p)
			a.externalSecrets = append(a.externalSecrets, sec)
		}
	}
	switch {
	case cfg.ProviderSecretArn != "":
		a.providerSecret = cfg.ProviderSecretArn
	case cfg.NewProvider == nil:
		// The secret AgentCore Identity created for the existing provider:
		// bedrock-agentcore-identity!default/oauth2/<provider name> plus Secrets Manager's
		// 6-character suffix.
		a.providerSecret = *s.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("secretsmanager"), Resource: jsii.String("secret"),
			ResourceName: jsii.String("bedrock-agentcore-identity!default/oauth2/" + cfg.ProviderName + "-??????"),
			ArnFormat:    awscdk.ArnFormat_COLON_RESOURCE_NAME,
		})
	}
	return a
}

// connectInstanceARN is the instance's ARN as given (connectInstanceArn), or built from its id
// in the stack's partition, Region and account (connectInstanceId). A given ARN in another
// account than a stack with a known account is refused: Amazon Connect has no resource-based
// policies, so a role of one account cannot be allowed to call another account's instance.
func connectInstanceARN(s awscdk.Stack, c *ConnectInstance) string {
	if c.ARN == "" {
		return *s.FormatArn(&awscdk.ArnComponents{
			Service: jsii.String("connect"), Resource: jsii.String("instance"), ResourceName: jsii.String(c.ID),
			ArnFormat: awscdk.ArnFormat_SLASH_RESOURCE_NAME,
		})
	}
	if a := s.Account(); !*awscdk.Token_IsUnresolved(a) && *a != c.Account {
		panic(fmt.Errorf("context %s is in account %s but the stack deploys to account %s: the callback's role can only be allowed to call "+
			"UpdateParticipantAuthentication on an instance of its own account; deploy the stack there", CtxConnectInstanceArn, c.Account, *a))
	}
	return c.ARN
}

// secretARN is the ARN an IAM policy names for a secret given by name or ARN: an ARN as given,
// a name as the partial ARN arn:${Partition}:secretsmanager:${Region}:${Account}:secret:<name>-??????
// (Secrets Manager appends six random characters to the name). "" for "".
func secretARN(s awscdk.Stack, nameOrARN string) string {
	switch {
	case nameOrARN == "":
		return ""
	case secretArnRE.MatchString(nameOrARN):
		return nameOrARN
	}
	return *s.FormatArn(&awscdk.ArnComponents{
		Service: jsii.String("secretsmanager"), Resource: jsii.String("secret"),
		ResourceName: jsii.String(nameOrARN + "-??????"), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
	})
}

// newCustomDomain defines the API's custom domain (regional, TLS 1.2, the imported ACM
// certificate) and maps the API's default stage to its root.
func newCustomDomain(s awscdk.Stack, cfg Config, api awsapigatewayv2.HttpApi) (awsapigatewayv2.DomainName, awsapigatewayv2.ApiMapping) {
	// A regional custom domain needs a certificate in its own Region. The stack is usually
	// environment-agnostic (the Region is a token) and then API Gateway checks it at deploy.
	if r := s.Region(); !*awscdk.Token_IsUnresolved(r) && *r != cfg.CertificateRegion {
		panic(fmt.Errorf("context %s is in Region %s but the stack deploys to %s: API Gateway needs the custom domain's ACM certificate in the stack's Region; "+
			"request or import one there", CtxCertificateArn, cfg.CertificateRegion, *r))
	}
	cert := awscertificatemanager.Certificate_FromCertificateArn(s, jsii.String("CallbackCertificate"), jsii.String(cfg.CertificateArn))
	domain := awsapigatewayv2.NewDomainName(s, jsii.String("CallbackDomain"), &awsapigatewayv2.DomainNameProps{
		DomainName:     jsii.String(cfg.DomainName),
		Certificate:    cert,
		EndpointType:   awsapigatewayv2.EndpointType_REGIONAL,
		SecurityPolicy: awsapigatewayv2.SecurityPolicy_TLS_1_2,
	})
	mapping := awsapigatewayv2.NewApiMapping(s, jsii.String("CallbackApiMapping"), &awsapigatewayv2.ApiMappingProps{
		Api:        api,
		DomainName: domain,
		Stage:      api.DefaultStage(),
	})
	return domain, mapping
}

// initiateEnv is the initiate function's environment.
func initiateEnv(cfg Config, cf *ConsentFlow) map[string]string {
	env := map[string]string{
		contract.EnvSessionsTable: *cf.Table.TableName(),
		contract.EnvWorkloadName:  cfg.WorkloadName,
		contract.EnvReturnURL:     *cf.CallbackURL,
		contract.EnvEventBusName:  cfg.EventBusName,
		contract.EnvBindingMode:   cfg.BindingMode,
	}
	// Initiate refuses a userToken input unless JWT-cookie binding is configured.
	setIf(env, contract.EnvUserTokenIssuer, cfg.UserTokenIssuer)
	// ... and a continueWith naming a runtime the ContinueAgent step may not invoke ...
	setIf(env, contract.EnvAgentRuntimeARNs, strings.Join(cfg.AgentRuntimeARNs, ","))
	// ... and a returnTo that is not one of the application's pages.
	setIf(env, contract.EnvAppReturnURLs, strings.Join(cfg.AppReturnURLs, ","))
	return env
}

// resumerEnv is the resumer function's environment: the table whose stream it reads and the
// bus its completion events go to.
func resumerEnv(cfg Config, cf *ConsentFlow) map[string]string {
	return map[string]string{
		contract.EnvSessionsTable: *cf.Table.TableName(),
		contract.EnvEventBusName:  cfg.EventBusName,
	}
}

// callbackEnv is the callback function's environment: the sign-in settings only with an oidc
// binding mode, external sessions only when enabled, the JWT-cookie settings only when set.
func callbackEnv(cfg Config, cf *ConsentFlow) map[string]string {
	env := map[string]string{
		contract.EnvSessionsTable:   *cf.Table.TableName(),
		contract.EnvWorkloadName:    cfg.WorkloadName,
		contract.EnvReturnURL:       *cf.CallbackURL,
		contract.EnvBindingMode:     cfg.BindingMode,
		contract.EnvUserTokenCookie: cfg.UserTokenCookie,
	}
	if cfg.OIDCBinding() {
		o := cfg.OIDC
		env[contract.EnvOIDCIssuer] = o.Issuer
		env[contract.EnvOIDCClientID] = o.ClientID
		env[contract.EnvOIDCUserClaim] = o.UserClaim
		env[contract.EnvOIDCScopes] = o.Scopes
		setIf(env, contract.EnvOIDCClientSecretName, o.ClientSecretName)
		setIf(env, contract.EnvOIDCUserPrefix, o.UserPrefix)
		setIf(env, contract.EnvOIDCPrompt, o.Prompt)
	}
	if cfg.ExternalSessions {
		env[contract.EnvExternalSessions] = "true"
	}
	if c := cfg.Connect; c != nil {
		env[contract.EnvConnectInstanceID] = c.ID
		// The instance's Region when its ARN names one (it may differ from the stack's).
		setIf(env, contract.EnvConnectRegion, c.Region)
	}
	setIf(env, contract.EnvUserTokenIssuer, cfg.UserTokenIssuer)
	setIf(env, contract.EnvUserTokenAudience, cfg.UserTokenAudience)
	// The success page links back to a session's returnTo only while it is listed here.
	setIf(env, contract.EnvAppReturnURLs, strings.Join(cfg.AppReturnURLs, ","))
	return env
}

func setIf(env map[string]string, key, value string) {
	if value != "" {
		env[key] = value
	}
}

func functionRole(s awscdk.Stack, id, what string) awsiam.Role {
	// An explicit role without AWSLambdaBasicExecutionRole: the function writes to its own log
	// group only (granted below), not to any log group of the account.
	return awsiam.NewRole(s, jsii.String(id), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("Execution role of the " + what),
	})
}

type functionSpec struct {
	description string
	codeDir     string
	timeout     float64
	role        awsiam.Role
	logs        awslogs.LogGroup
	env         map[string]string
}

// goMaxProcs is the functions' GOMAXPROCS. A 256 MB function gets a fraction
// of one vCPU but sees 2 CPUs, and Go's default (the CPU count; since Go 1.25
// also a cgroup CPU limit, but one below 2 is rounded up to 2) is then 2:
// with 1, a warm invocation costs 27-29% less CPU time (measured on the
// bootstraps under the Runtime API: BenchmarkInvocationCPU in
// internal/e2e/binaries), and start-up is unchanged.
const goMaxProcs = "1"

func newFunction(s awscdk.Stack, id string, spec functionSpec) awslambda.Function {
	env := map[string]*string{"GOMAXPROCS": jsii.String(goMaxProcs)}
	for k, v := range spec.env {
		env[k] = jsii.String(v)
	}
	spec.logs.GrantWrite(spec.role)
	fn := awslambda.NewFunction(s, jsii.String(id), &awslambda.FunctionProps{
		Description:   jsii.String(spec.description),
		Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:  awslambda.Architecture_ARM_64(),
		Handler:       jsii.String("bootstrap"),
		Code:          awslambda.Code_FromAsset(jsii.String(spec.codeDir), nil),
		MemorySize:    jsii.Number(256),
		Timeout:       awscdk.Duration_Seconds(jsii.Number(spec.timeout)),
		Tracing:       awslambda.Tracing_ACTIVE,
		LoggingFormat: awslambda.LoggingFormat_JSON,
		LogGroup:      spec.logs,
		Role:          spec.role,
		Environment:   &env,
	})
	// The role's log permission must exist before the function first runs.
	fn.Node().AddDependency(spec.role)
	return fn
}

func statement(sid string, actions []string, resources ...string) awsiam.PolicyStatement {
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String(sid),
		Effect:    awsiam.Effect_ALLOW,
		Actions:   jsii.Strings(actions...),
		Resources: jsii.Strings(resources...),
	})
}

// The task-response actions are granted on the state machine ARN built from its name, not
// through StateMachine.GrantTaskResponse: the state machine invokes the initiate function, so a
// policy referencing the state machine construct would make a CloudFormation dependency cycle.
// Each function gets only what it calls: initiate resumes at once when the vault already holds
// a token; the callback resumes or fails the task. Neither sends heartbeats.
var (
	initiateTaskActions = []string{"states:SendTaskSuccess"}
	callbackTaskActions = []string{"states:SendTaskSuccess", "states:SendTaskFailure"}
)

// providerSecretStatement lets AgentCore Identity read the provider's client secret with the
// caller's credentials: it does so when it exchanges the authorization code
// (CompleteResourceTokenAuth) and when it obtains or refreshes a token (GetResourceOauth2Token).
// aws-cdk-lib's OAuth2CredentialProvider.grantUse grants the same actions together.
func providerSecretStatement(cf *ConsentFlow, a arnSet) awsiam.PolicyStatement {
	secret := a.providerSecret
	if cf.Provider != nil {
		secret = *cf.Provider.ClientSecretArn()
	}
	return statement("ReadProviderClientSecret", []string{"secretsmanager:GetSecretValue"}, secret)
}

func grantInitiate(role awsiam.Role, cf *ConsentFlow, a arnSet) {
	// GetWorkloadAccessToken* authorize on the workload identity and its directory.
	role.AddToPolicy(statement("WorkloadAccessToken", []string{
		"bedrock-agentcore:GetWorkloadAccessToken",
		"bedrock-agentcore:GetWorkloadAccessTokenForUserId",
		"bedrock-agentcore:GetWorkloadAccessTokenForJWT",
	}, a.workloadDirectory, a.workload))
	// GetResourceOauth2Token authorizes on the token vault, the credential provider, and the
	// workload identity (with its directory) the workload access token belongs to.
	role.AddToPolicy(statement("ResourceOauth2Token", []string{"bedrock-agentcore:GetResourceOauth2Token"},
		a.tokenVault, a.provider, a.workloadDirectory, a.workload))
	role.AddToPolicy(providerSecretStatement(cf, a))
	// Session store: conditional create (PutItem, also inside TransactWriteItems, which IAM
	// authorizes per contained action), reads, conditional updates. No Scan/Query/Delete.
	role.AddToPolicy(statement("SessionsTable", []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
		*cf.Table.TableArn()))
	role.AddToPolicy(statement("PublishAuthorizationRequired", []string{"events:PutEvents"}, *cf.Bus.EventBusArn()))
	role.AddToPolicy(statement("TaskResponse", initiateTaskActions, a.stateMachine))
}

func grantCallback(role awsiam.Role, cf *ConsentFlow, a arnSet) {
	// CompleteResourceTokenAuth authorizes on the same four resources as GetResourceOauth2Token.
	role.AddToPolicy(statement("CompleteResourceTokenAuth", []string{"bedrock-agentcore:CompleteResourceTokenAuth"},
		a.tokenVault, a.provider, a.workloadDirectory, a.workload))
	if len(a.externalWorkloads) > 0 {
		// Sessions started elsewhere belong to the agents' own workload identities and
		// providers; completing them reads those providers' client secrets (AgentCore-managed).
		role.AddToPolicy(statement("CompleteExternalSessions", []string{"bedrock-agentcore:CompleteResourceTokenAuth"},
			append(append([]string{a.tokenVault, a.workloadDirectory}, a.externalWorkloads...), a.externalProviders...)...))
		role.AddToPolicy(statement("ReadExternalProviderSecrets", []string{"secretsmanager:GetSecretValue"}, a.externalSecrets...))
	}
	// When Complete's answer is lost or refused, the callback asks the vault whether the
	// session completed: a workload access token for the session's user (a userId or the
	// browser's JWT; never the user-less GetWorkloadAccessToken), then GetResourceOauth2Token
	// with the sessionUri.
	role.AddToPolicy(statement("VaultCheckWorkloadAccessToken", []string{
		"bedrock-agentcore:GetWorkloadAccessTokenForUserId",
		"bedrock-agentcore:GetWorkloadAccessTokenForJWT",
	}, a.workloadDirectory, a.workload))
	role.AddToPolicy(statement("VaultCheckResourceOauth2Token", []string{"bedrock-agentcore:GetResourceOauth2Token"},
		a.tokenVault, a.provider, a.workloadDirectory, a.workload))
	role.AddToPolicy(providerSecretStatement(cf, a))
	role.AddToPolicy(statement("SessionsTable", []string{"dynamodb:GetItem", "dynamodb:UpdateItem"}, *cf.Table.TableArn()))
	role.AddToPolicy(statement("TaskResponse", callbackTaskActions, a.stateMachine))
	if cf.ConnectInstanceARN != "" {
		// Amazon Connect customer authentication: UpdateParticipantAuthentication authorizes on
		// the instance (resource type instance*, Service Authorization Reference), exactly this
		// one. The redirect records use the table's GetItem/UpdateItem granted above.
		role.AddToPolicy(statement("ConnectParticipantAuthentication", []string{"connect:UpdateParticipantAuthentication"}, cf.ConnectInstanceARN))
	}
	if a.oidcClientSecret != "" {
		// The client secret of consentflow's client at the application's OpenID Connect
		// provider (sign-in binding): exactly that secret.
		role.AddToPolicy(statement("ReadOIDCClientSecret", []string{"secretsmanager:GetSecretValue"}, a.oidcClientSecret))
	}
}

// Resumer tuning: the event source mapping retries a failed record (a delivery or a completion
// event; each invocation already retries inside: a live delivery claim is waited out, up to
// flow.DeliveryLease = 15 s, the SDK retries PutEvents) and then sends it to the dead-letter queue; the task's own timeout (11 minutes) bounds how long a
// delivery can matter, so records older than that are not retried either.
const (
	resumerTimeout       = 60
	resumerRetryAttempts = 10
	resumerMaxRecordAge  = 15 // minutes
	resumerBatchSize     = 10
)

// resumerTaskActions are the Step Functions actions the resumer needs: it sends the outbox.
var resumerTaskActions = []string{"states:SendTaskSuccess", "states:SendTaskFailure"}

// newResumer defines the resumer function on the table's stream, its dead-letter queue and
// the alarm on it. It delivers settled sessions' outboxes and publishes their completion
// events.
func newResumer(s awscdk.Stack, cf *ConsentFlow, cfg Config, props *Props, a arnSet, logs awslogs.LogGroup, removal awscdk.RemovalPolicy) {
	role := functionRole(s, "ResumerRole", "consentflow resumer function")
	cf.ResumerRole = role
	cf.Resumer = newFunction(s, "Resumer", functionSpec{
		description: "consentflow: delivers settled sessions' outcomes to their Step Functions tasks and publishes completion events (table stream)",
		codeDir:     props.ResumerCodeDir,
		timeout:     resumerTimeout,
		role:        role,
		logs:        logs,
		env:         resumerEnv(cfg, cf),
	})
	// The conditional updates of the outbox (claim, release, resumedAt), and the read the
	// store makes when a conditional write fails without returning the item (a record
	// deleted by TTL meanwhile); the stream read is granted by the event source below
	// (Table.grantStreamRead).
	role.AddToPolicy(statement("SessionsTable", []string{"dynamodb:GetItem", "dynamodb:UpdateItem"}, *cf.Table.TableArn()))
	role.AddToPolicy(statement("TaskResponse", resumerTaskActions, a.stateMachine))
	role.AddToPolicy(statement("PublishCompletionEvents", []string{"events:PutEvents"}, *cf.Bus.EventBusArn()))

	cf.ResumerDLQ = awssqs.NewQueue(s, jsii.String("ResumerDLQ"), &awssqs.QueueProps{
		Encryption:      awssqs.QueueEncryption_SQS_MANAGED,
		EnforceSSL:      jsii.Bool(true),
		RetentionPeriod: awscdk.Duration_Days(jsii.Number(14)),
		RemovalPolicy:   removal,
	})
	cf.Resumer.AddEventSource(awslambdaeventsources.NewDynamoEventSource(cf.Table, &awslambdaeventsources.DynamoEventSourceProps{
		StartingPosition:        awslambda.StartingPosition_TRIM_HORIZON,
		BatchSize:               jsii.Number(resumerBatchSize),
		RetryAttempts:           jsii.Number(resumerRetryAttempts),
		MaxRecordAge:            awscdk.Duration_Minutes(jsii.Number(resumerMaxRecordAge)),
		BisectBatchOnError:      jsii.Bool(true),
		ReportBatchItemFailures: jsii.Bool(true),
		OnFailure:               awslambdaeventsources.NewSqsDlq(cf.ResumerDLQ),
		// Only session items concern the resumer: task-token and sign-in (login#) items, and
		// TTL deletions, never invoke it (anyone can make the callback write a sign-in item).
		Filters: &[]*map[string]any{awslambda.FilterCriteria_Filter(&map[string]any{
			"dynamodb": map[string]any{"NewImage": map[string]any{"kind": map[string]any{"S": awslambda.FilterRule_IsEqual(jsii.String("session"))}}},
		})},
	}))
	cf.ResumerDLQAlarm = awscloudwatch.NewAlarm(s, jsii.String("ResumerDLQAlarm"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String("consentflow: a settled session's outcome could not be delivered to its workflow task, or its completion event not published; see the resumer's logs and the dead-letter queue"),
		Metric: cf.ResumerDLQ.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{
			Period: awscdk.Duration_Minutes(jsii.Number(1)), Statistic: jsii.String("Maximum"),
		}),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
}

// restrictPublishers lets only the initiate role (AuthorizationRequired) and the resumer role
// (AuthorizationCompleted, AuthorizationFailed) publish consentflow events on the stack's own
// bus: an AuthorizationRequired event tells an application which link and code to show a user,
// so a forged one is the account-linking attack by another route, and a forged completion
// would tell an application a user connected who did not. (The account's default bus is not
// the stack's to constrain; see docs/deploy.md.)
func restrictPublishers(bus awsevents.EventBus, initiate, resumer awsiam.Role) {
	// Each role publishes only its own events: a compromised initiate cannot announce a
	// completion, a compromised resumer cannot ask a user to open a link.
	bus.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("OnlyInitiatePublishesAuthorizationRequired"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings("events:PutEvents"),
		Resources:  jsii.Strings(*bus.EventBusArn()),
		Conditions: &map[string]any{
			"StringEquals": map[string]any{"events:source": contract.EventSource, "events:detail-type": contract.DetailTypeAuthorizationRequired},
			"ArnNotEquals": map[string]any{"aws:PrincipalArn": *initiate.RoleArn()},
		},
	}))
	bus.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("OnlyResumerPublishesOtherConsentflowEvents"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewAnyPrincipal()},
		Actions:    jsii.Strings("events:PutEvents"),
		Resources:  jsii.Strings(*bus.EventBusArn()),
		Conditions: &map[string]any{
			"StringEquals":    map[string]any{"events:source": contract.EventSource},
			"StringNotEquals": map[string]any{"events:detail-type": contract.DetailTypeAuthorizationRequired},
			"ArnNotEquals":    map[string]any{"aws:PrincipalArn": *resumer.RoleArn()},
		},
	}))
}

func newStateMachine(s awscdk.Stack, cfg Config, initiate, continueFn awslambda.Function, logs awslogs.LogGroup) awsstepfunctions.StateMachine {
	// With a ContinueAgent step the authorization's result is kept beside the input (which holds
	// continueWith) instead of replacing it.
	var resultPath *string
	if continueFn != nil {
		resultPath = jsii.String("$.authorization")
	}
	task := awsstepfunctionstasks.NewLambdaInvoke(s, jsii.String("RequestAuthorization"), &awsstepfunctionstasks.LambdaInvokeProps{
		ResultPath:         resultPath,
		Comment:            jsii.String("Start the AgentCore authorization session and wait for the callback to resume the task"),
		LambdaFunction:     initiate,
		IntegrationPattern: awsstepfunctions.IntegrationPattern_WAIT_FOR_TASK_TOKEN,
		// The execution's ARN goes beside the token, not into the input (whose unknown fields
		// initiate refuses): the session's events name the execution.
		Payload: awsstepfunctions.TaskInput_FromObject(&map[string]any{
			"taskToken":    awsstepfunctions.JsonPath_TaskToken(),
			"executionArn": awsstepfunctions.JsonPath_ExecutionId(),
			"input":        awsstepfunctions.JsonPath_EntirePayload(),
		}),
		// The session is valid for 10 minutes; bound the wait so an abandoned consent ends.
		TaskTimeout:              awsstepfunctions.Timeout_Duration(awscdk.Duration_Seconds(jsii.Number((contract.SessionValidity + TaskTimeoutMargin).Seconds()))),
		RetryOnServiceExceptions: jsii.Bool(false), // replaced by the explicit retriers below
	})
	task.AddRetry(&awsstepfunctions.RetryProps{
		Errors:         jsii.Strings(LambdaServiceErrors...),
		Interval:       awscdk.Duration_Seconds(jsii.Number(2)),
		MaxAttempts:    jsii.Number(6),
		BackoffRate:    jsii.Number(2),
		MaxDelay:       awscdk.Duration_Seconds(jsii.Number(30)),
		JitterStrategy: awsstepfunctions.JitterType_FULL,
	})
	task.AddRetry(&awsstepfunctions.RetryProps{
		Errors:         jsii.Strings(contract.RetryableErrors()...),
		Interval:       awscdk.Duration_Seconds(jsii.Number(2)),
		MaxAttempts:    jsii.Number(4),
		BackoffRate:    jsii.Number(2),
		MaxDelay:       awscdk.Duration_Seconds(jsii.Number(30)),
		JitterStrategy: awsstepfunctions.JitterType_FULL,
	})
	fail := func(name, cause string) awsstepfunctions.Fail {
		return awsstepfunctions.NewFail(s, jsii.String(name), &awsstepfunctions.FailProps{
			Error: jsii.String(name), Cause: jsii.String(cause),
		})
	}
	for _, c := range []struct {
		errors []string
		state  awsstepfunctions.Fail
	}{
		{[]string{"States.Timeout"}, fail("AuthorizationTimedOut", "The user did not complete the authorization while the session was valid.")},
		{[]string{contract.ErrBindingFailed}, fail("BindingFailed", "The verification code was wrong too many times; the session was closed.")},
		{[]string{contract.ErrConsentDenied}, fail("ConsentDenied", "The user denied consent at the provider.")},
		{[]string{contract.ErrInvalidInput}, fail("InvalidInput", "The execution input is invalid (see the task failure for the field).")},
		{[]string{contract.ErrExpired}, fail("AuthorizationExpired", "The authorization session expired before it was completed.")},
		{[]string{"States.ALL"}, awsstepfunctions.NewFail(s, jsii.String("AuthorizationFailed"), &awsstepfunctions.FailProps{
			Error: jsii.String("AuthorizationFailed"),
			// The caught error's name (e.g. consentflow.AccessDenied), never its message.
			CausePath: awsstepfunctions.JsonPath_Format(jsii.String("The authorization task failed with {}."), awsstepfunctions.JsonPath_StringAt(jsii.String("$.Error"))),
		})},
	} {
		task.AddCatch(c.state, &awsstepfunctions.CatchProps{Errors: jsii.Strings(c.errors...)})
	}
	authorized := awsstepfunctions.NewSucceed(s, jsii.String("Authorized"), &awsstepfunctions.SucceedProps{
		Comment: jsii.String("The user authorized; the token is in the AgentCore token vault"),
	})
	var definition awsstepfunctions.IChainable
	if continueFn != nil {
		definition = task.Next(continuation(s, continueFn, authorized))
	} else {
		definition = task.Next(authorized)
	}
	return awsstepfunctions.NewStateMachine(s, jsii.String("AuthorizeUser"), &awsstepfunctions.StateMachineProps{
		StateMachineName: jsii.String(cfg.StateMachineName),
		StateMachineType: awsstepfunctions.StateMachineType_STANDARD,
		Comment:          jsii.String("consentflow: authorize a user at an OAuth2 provider through AgentCore Identity"),
		DefinitionBody:   awsstepfunctions.DefinitionBody_FromChainable(definition),
		Logs: &awsstepfunctions.LogOptions{
			Destination:          logs,
			Level:                awsstepfunctions.LogLevel_ALL,
			IncludeExecutionData: jsii.Bool(false), // inputs hold user ids and JWTs
		},
		TracingEnabled: jsii.Bool(true),
	})
}

// continuation is what follows an authorization when the stack may continue agents: with
// continueWith in the input, the ContinueAgent step (the continue function) invokes the agent
// and the execution ends with {authorization, continuation}, or, when only the continuation
// failed, with {authorization, continuationError} (still SUCCEEDED: the user did authorize);
// without it, the output is the authorization's result, as in a stack without agent runtimes.
func continuation(s awscdk.Stack, fn awslambda.Function, authorized awsstepfunctions.Succeed) awsstepfunctions.Choice {
	step := awsstepfunctionstasks.NewLambdaInvoke(s, jsii.String("ContinueAgent"), &awsstepfunctionstasks.LambdaInvokeProps{
		Comment:        jsii.String("Invoke the user's agent in AgentCore Runtime (InvokeAgentRuntime) as the user who authorized"),
		LambdaFunction: fn,
		Payload: awsstepfunctions.TaskInput_FromObject(&map[string]any{
			"continueWith":  awsstepfunctions.JsonPath_ObjectAt(jsii.String("$.continueWith")),
			"authorization": awsstepfunctions.JsonPath_ObjectAt(jsii.String("$.authorization")),
			// Without a runtimeSessionId of the caller's, the runtime session is derived from it.
			"executionId": awsstepfunctions.JsonPath_StringAt(jsii.String("$$.Execution.Id")),
		}),
		PayloadResponseOnly:      jsii.Bool(true),
		ResultPath:               jsii.String("$.continuation"),
		RetryOnServiceExceptions: jsii.Bool(false),
	})
	// Of Lambda's own errors only throttling: the others may follow an invocation that ran (and
	// invoked the agent).
	step.AddRetry(&awsstepfunctions.RetryProps{
		Errors:   jsii.Strings(LambdaThrottled),
		Interval: awscdk.Duration_Seconds(jsii.Number(2)), MaxAttempts: jsii.Number(6), BackoffRate: jsii.Number(2),
		MaxDelay: awscdk.Duration_Seconds(jsii.Number(30)), JitterStrategy: awsstepfunctions.JitterType_FULL,
	})
	// Only throttling: after it the agent certainly did not run. A server error or a lost answer
	// may follow an invocation that ran, so it is not repeated.
	step.AddRetry(&awsstepfunctions.RetryProps{
		Errors:   jsii.Strings(contract.ContinuationRetryableErrors()...),
		Interval: awscdk.Duration_Seconds(jsii.Number(2)), MaxAttempts: jsii.Number(5), BackoffRate: jsii.Number(2),
		MaxDelay: awscdk.Duration_Seconds(jsii.Number(30)), JitterStrategy: awsstepfunctions.JitterType_FULL,
	})
	failed := awsstepfunctions.NewPass(s, jsii.String("ContinuationFailed"), &awsstepfunctions.PassProps{
		Comment: jsii.String("The user authorized, but the agent could not be continued: keep the authorization visible"),
		Parameters: &map[string]any{
			"authorization.$":     "$.authorization",
			"continuationError.$": "$.continuationError",
		},
	}).Next(awsstepfunctions.NewSucceed(s, jsii.String("AuthorizedContinuationFailed"), &awsstepfunctions.SucceedProps{
		Comment: jsii.String("Authorized; the ContinueAgent step failed (continuationError holds its error name and cause)"),
	}))
	step.AddCatch(failed, &awsstepfunctions.CatchProps{Errors: jsii.Strings("States.ALL"), ResultPath: jsii.String("$.continuationError")})
	continued := step.Next(awsstepfunctions.NewPass(s, jsii.String("Continued"), &awsstepfunctions.PassProps{
		Parameters: &map[string]any{
			"authorization.$": "$.authorization",
			"continuation.$":  "$.continuation",
		},
	})).Next(awsstepfunctions.NewSucceed(s, jsii.String("AuthorizedAndContinued"), &awsstepfunctions.SucceedProps{
		Comment: jsii.String("Authorized, and the agent answered (continuation: status code, content type, the start of its answer)"),
	}))
	only := awsstepfunctions.NewPass(s, jsii.String("AuthorizationOnly"), &awsstepfunctions.PassProps{
		Comment:    jsii.String("No continueWith: the output is the authorization's result"),
		OutputPath: jsii.String("$.authorization"),
	}).Next(authorized)
	// A token already in the vault proves nothing about who started this execution: the agent
	// is invoked for the user only after the user consented in it (authorization.consented).
	needsConsent := awsstepfunctions.NewPass(s, jsii.String("NotContinuedWithoutConsent"), &awsstepfunctions.PassProps{
		Comment: jsii.String("The vault already held the token: nobody consented in this execution, so no agent is invoked for the user"),
		Result: awsstepfunctions.Result_FromObject(&map[string]any{
			"Error": contract.ErrContinuationNeedsConsent,
			"Cause": "the vault already held the user's token: nobody consented in this execution, so the agent is not invoked for the user",
		}),
		ResultPath: jsii.String("$.continuationError"),
	}).Next(failed)
	consented := awsstepfunctions.Condition_And(
		awsstepfunctions.Condition_IsPresent(jsii.String("$.authorization.consented")),
		awsstepfunctions.Condition_BooleanEquals(jsii.String("$.authorization.consented"), jsii.Bool(true)))
	return awsstepfunctions.NewChoice(s, jsii.String("ContinueWithAgent"), &awsstepfunctions.ChoiceProps{
		Comment: jsii.String("Does the input name an agent to continue (continueWith), and did the user consent in this execution?"),
	}).When(awsstepfunctions.Condition_And(awsstepfunctions.Condition_IsPresent(jsii.String("$.continueWith")), consented), continued, nil).
		When(awsstepfunctions.Condition_IsPresent(jsii.String("$.continueWith")), needsConsent, nil).
		Otherwise(only)
}

// continueTimeout bounds one agent invocation (the function's timeout, seconds).
const continueTimeout = 300

// newAgentTokenPolicy is the managed policy an agent's execution role attaches to get, for the
// user it was invoked for, the token that user consented to through consentflow: a workload
// access token for consentflow's workload identity and that user id (never the user-less or
// JWT forms), and GetResourceOauth2Token on consentflow's provider. AgentCore keeps a token
// under the workload identity that obtained it, and a runtime's own workload identity can
// neither see it nor mint tokens for callers.
func newAgentTokenPolicy(s awscdk.Stack, cf *ConsentFlow, a arnSet) awsiam.ManagedPolicy {
	return awsiam.NewManagedPolicy(s, jsii.String("AgentTokenPolicy"), &awsiam.ManagedPolicyProps{
		Description: jsii.String("consentflow: lets an agent runtime read users' tokens under consentflow's workload identity"),
		Statements: &[]awsiam.PolicyStatement{
			statement("WorkloadAccessTokenForUser", []string{"bedrock-agentcore:GetWorkloadAccessTokenForUserId"},
				a.workloadDirectory, a.workload),
			statement("ResourceOauth2Token", []string{"bedrock-agentcore:GetResourceOauth2Token"},
				a.tokenVault, a.provider, a.workloadDirectory, a.workload),
			providerSecretStatement(cf, a),
		},
	})
}

// newContinue defines the ContinueAgent step's function: it may invoke exactly the configured
// agent runtimes, for a user (InvokeAgentRuntimeForUser, needed with runtimeUserId) or not.
func newContinue(s awscdk.Stack, cf *ConsentFlow, cfg Config, props *Props, logs awslogs.LogGroup) {
	cf.ContinueRole = functionRole(s, "ContinueRole", "consentflow continue function")
	cf.Continue = newFunction(s, "Continue", functionSpec{
		description: "consentflow: continues the user's agent in AgentCore Runtime after consent (ContinueAgent)",
		codeDir:     props.ContinueCodeDir,
		timeout:     continueTimeout,
		role:        cf.ContinueRole,
		logs:        logs,
		env:         map[string]string{contract.EnvAgentRuntimeARNs: strings.Join(cfg.AgentRuntimeARNs, ",")},
	})
	// AgentCore authorizes an invocation on the runtime and on the endpoint it goes to: each
	// configured entry grants exactly those two (a runtime ARN: its DEFAULT endpoint).
	var resources []string
	for _, a := range cfg.AgentRuntimeARNs {
		t, _ := contract.ParseAgentRuntimeTarget(a) // checked by ConfigFrom
		for _, r := range t.IAMResources() {
			if !slices.Contains(resources, r) {
				resources = append(resources, r)
			}
		}
	}
	cf.ContinueRole.AddToPolicy(statement("InvokeAgentRuntime", []string{
		"bedrock-agentcore:InvokeAgentRuntime",
		"bedrock-agentcore:InvokeAgentRuntimeForUser",
	}, resources...))
}

func newProvider(s awscdk.Stack, p *ProviderSpec) awsbedrockagentcore.OAuth2CredentialProvider {
	var opts *awscdk.SecretsManagerSecretOptions
	if p.ClientSecretJSONKey != "" {
		opts = &awscdk.SecretsManagerSecretOptions{JsonField: jsii.String(p.ClientSecretJSONKey)}
	}
	// A CloudFormation dynamic reference: the template holds the secret's id, never its value.
	secret := awscdk.SecretValue_SecretsManager(jsii.String(p.SecretID()), opts)
	id, name, clientID := jsii.String("CredentialProvider"), jsii.String(p.Name), jsii.String(p.ClientID)
	opt := func(v string) *string {
		if v == "" {
			return nil
		}
		return jsii.String(v)
	}
	switch p.Vendor {
	case "google":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingGoogle(s, id, &awsbedrockagentcore.GoogleOAuth2CredentialProviderProps{
			OAuth2CredentialProviderName: name, ClientId: clientID, ClientSecret: secret})
	case "github":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingGithub(s, id, &awsbedrockagentcore.GithubOAuth2CredentialProviderProps{
			OAuth2CredentialProviderName: name, ClientId: clientID, ClientSecret: secret})
	case "slack":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingSlack(s, id, &awsbedrockagentcore.SlackOAuth2CredentialProviderProps{
			OAuth2CredentialProviderName: name, ClientId: clientID, ClientSecret: secret})
	case "salesforce":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingSalesforce(s, id, &awsbedrockagentcore.SalesforceOAuth2CredentialProviderProps{
			OAuth2CredentialProviderName: name, ClientId: clientID, ClientSecret: secret})
	case "microsoft":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingMicrosoft(s, id, &awsbedrockagentcore.MicrosoftOAuth2CredentialProviderProps{
			OAuth2CredentialProviderName: name, ClientId: clientID, ClientSecret: secret, TenantId: opt(p.TenantID)})
	case "atlassian":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingAtlassian(s, id, &awsbedrockagentcore.AtlassianOAuth2CredentialProviderProps{
			OAuth2CredentialProviderName: name, ClientId: clientID, ClientSecret: secret})
	case "linkedin":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingLinkedin(s, id, &awsbedrockagentcore.LinkedinOAuth2CredentialProviderProps{
			OAuth2CredentialProviderName: name, ClientId: clientID, ClientSecret: secret})
	case "custom":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingCustom(s, id, &awsbedrockagentcore.CustomOAuth2CredentialProviderProps{
			OAuth2CredentialProviderName: name, ClientId: clientID, ClientSecret: secret, DiscoveryUrl: jsii.String(p.DiscoveryURL)})
	}
	tenant := &awsbedrockagentcore.IncludedOauth2TenantCredentialProviderProps{
		OAuth2CredentialProviderName: name, ClientId: clientID, ClientSecret: secret,
		Issuer: opt(p.Issuer), AuthorizationEndpoint: opt(p.AuthorizationEndpoint), TokenEndpoint: opt(p.TokenEndpoint),
	}
	switch p.Vendor {
	case "auth0":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingAuth0(s, id, tenant)
	case "cognito":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingCognito(s, id, tenant)
	case "okta":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingOkta(s, id, tenant)
	case "onelogin":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingOneLogin(s, id, tenant)
	case "pingone":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingPingOne(s, id, tenant)
	case "cyberark":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingCyberArk(s, id, tenant)
	case "fusionauth":
		return awsbedrockagentcore.OAuth2CredentialProvider_UsingFusionAuth(s, id, tenant)
	}
	panic(fmt.Sprintf("stack: unsupported vendor %q (LoadConfig validates it)", p.Vendor))
}

func retention(days int) awslogs.RetentionDays {
	m := map[int]awslogs.RetentionDays{
		1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
		7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
		60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
		150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
		400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS, 731: awslogs.RetentionDays_TWO_YEARS,
		1096: awslogs.RetentionDays_THREE_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS, 2192: awslogs.RetentionDays_SIX_YEARS,
		2557: awslogs.RetentionDays_SEVEN_YEARS, 2922: awslogs.RetentionDays_EIGHT_YEARS, 3288: awslogs.RetentionDays_NINE_YEARS,
		3653: awslogs.RetentionDays_TEN_YEARS,
	}
	if r, ok := m[days]; ok {
		return r
	}
	return awslogs.RetentionDays_ONE_MONTH
}
