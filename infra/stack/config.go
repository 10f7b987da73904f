package stack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/consentflow/consentflow/internal/contract"
)

// Context keys the stack reads (cdk.json "context", or `-c key=value` on the CDK CLI).
const (
	CtxRemovalPolicy               = "removalPolicy"
	CtxUseDefaultEventBus          = "useDefaultEventBus"
	CtxEventBusName                = "eventBusName"
	CtxWorkloadName                = "workloadName"
	CtxStateMachineName            = "stateMachineName"
	CtxBindingMode                 = "bindingMode"
	CtxUserTokenCookie             = "userTokenCookie"
	CtxLogRetentionDays            = "logRetentionDays"
	CtxCredentialProviderName      = "credentialProviderName"
	CtxCredentialProviderSecretArn = "credentialProviderSecretArn"
	CtxOAuth2Provider              = "oauth2Provider"

	// Sign-in (oidc) binding: the application's OpenID Connect provider.
	CtxOIDCIssuer           = "oidcIssuer"
	CtxOIDCClientID         = "oidcClientId"
	CtxOIDCClientSecretName = "oidcClientSecretName"
	CtxOIDCUserClaim        = "oidcUserClaim"
	CtxOIDCUserPrefix       = "oidcUserPrefix"
	CtxOIDCPrompt           = "oidcPrompt"
	CtxOIDCScopes           = "oidcScopes"
	CtxExternalSessions     = "externalSessions"
	// CtxExternalAgents lists the agents whose sessions the callback may complete
	// (externalSessions): "workloadName/providerName" pairs.
	CtxExternalAgents = "externalAgents"

	// JWT-cookie binding: the issuer and audience of the users' JWTs.
	CtxUserTokenIssuer   = "userTokenIssuer"
	CtxUserTokenAudience = "userTokenAudience"

	// CtxAgentRuntimeARNs lists the AgentCore Runtime ARNs (each allows its DEFAULT endpoint)
	// and runtime endpoint ARNs (<runtime ARN>/runtime-endpoint/<name>: that endpoint) a
	// workflow may continue with (continueWith): the ContinueAgent step and its function exist
	// only when it is set.
	CtxAgentRuntimeARNs = "agentRuntimeArns"

	// CtxAppReturnURLs lists the application URLs a workflow may name as its returnTo: the
	// success page links back to it (APP_RETURN_URLS on initiate and the callback).
	CtxAppReturnURLs = "appReturnUrls"

	// Custom domain of the callback API.
	CtxDomainName     = "domainName"
	CtxCertificateArn = "certificateArn"

	// Amazon Connect customer authentication: the instance whose chats' "Authenticate
	// Customer" blocks redirect to the callback API (one of the two, or neither).
	CtxConnectInstanceArn = "connectInstanceArn"
	CtxConnectInstanceID  = "connectInstanceId"
)

// Config is everything the stack takes from the CDK context, validated.
type Config struct {
	// RemovalPolicy of the sessions table and the log groups: "retain" (default) or "destroy".
	RemovalPolicy string
	// UseDefaultEventBus publishes AuthorizationRequired on the account's default bus instead of
	// a new bus named EventBusName.
	UseDefaultEventBus bool
	EventBusName       string
	// WorkloadName is the AgentCore workload identity the stack creates.
	WorkloadName string
	// StateMachineName is explicit so the functions' policies can name the state machine's ARN
	// without referencing the construct (which would be a dependency cycle).
	StateMachineName string
	// BindingMode is one of contract.BindingModes(): "code" (default), "oidc", "oidc+code" or
	// "none".
	BindingMode      string
	UserTokenCookie  string
	LogRetentionDays int

	// OIDC configures the sign-in at the application's OpenID Connect provider; it is the zero
	// value unless BindingMode is an oidc mode (see OIDCBinding).
	OIDC OIDCConfig
	// ExternalSessions lets the callback complete sessions it did not start (agents in
	// AgentCore Runtime that start consent for a userId); only with an oidc mode.
	ExternalSessions bool
	// ExternalAgents are the workload identities and credential providers those sessions
	// belong to: CompleteResourceTokenAuth authorizes on them, so the callback role is granted
	// it there too (only with ExternalSessions).
	ExternalAgents []ExternalAgent
	// AgentRuntimeARNs are the agent runtimes the ContinueAgent step may invoke (context
	// agentRuntimeArns); none: no ContinueAgent step, no continue function, no permission.
	AgentRuntimeARNs []string
	// AppReturnURLs are the application pages a workflow may name as its returnTo (context
	// appReturnUrls): absolute https URLs, at most contract.MaxAppReturnURLs; none: initiate
	// refuses returnTo.
	AppReturnURLs []string
	// UserTokenIssuer and UserTokenAudience enable JWT-cookie binding (both or neither); they
	// need DomainName.
	UserTokenIssuer   string
	UserTokenAudience string
	// DomainName and CertificateArn put the callback API behind a custom domain (both or
	// neither); CertificateRegion is the Region named in CertificateArn.
	DomainName        string
	CertificateArn    string
	CertificateRegion string

	// Connect is the Amazon Connect instance of the customer-authentication route, nil
	// without one (then neither the route nor its permission exists).
	Connect *ConnectInstance

	// ProviderName is the name of the OAuth2 credential provider: the one NewProvider creates,
	// or the existing one named by credentialProviderName.
	ProviderName string
	// ProviderSecretArn optionally pins the client secret of an existing provider (for the
	// secretsmanager:GetSecretValue grant); empty means the AgentCore-managed secret name pattern.
	ProviderSecretArn string
	// NewProvider describes the credential provider to create, or is nil to use an existing one.
	NewProvider *ProviderSpec
}

// OIDCConfig is consentflow's client at the application's OpenID Connect provider (the oidc
// binding modes).
type OIDCConfig struct {
	// Issuer is the provider's issuer URL (https), exactly as its ID tokens carry it.
	Issuer string
	// ClientID is consentflow's client id at the provider.
	ClientID string
	// ClientSecretName is the name or ARN of the Secrets Manager secret with the client
	// secret; empty for a public client.
	ClientSecretName string
	// UserClaim is the ID token claim that identifies the user (default "sub").
	UserClaim string
	// UserPrefix goes before the claim's value to form the userId flows are started with.
	UserPrefix string
	// Prompt is the OpenID Connect prompt of the first sign-in ("" for none sent).
	Prompt string
	// Scopes are the scopes asked for at sign-in, space separated (default
	// contract.DefaultOIDCScopes); they always include openid.
	Scopes string
}

// ConnectInstance is the Amazon Connect instance the callback forwards Cognito's redirects to
// (UpdateParticipantAuthentication).
type ConnectInstance struct {
	// ID is the instance id (a UUID), the last part of its ARN.
	ID string
	// ARN is the instance's ARN when connectInstanceArn gave it; "" for connectInstanceId,
	// whose ARN the stack builds in its own partition, Region and account.
	ARN string
	// Partition, Region and Account are the ARN's; "" for connectInstanceId.
	Partition, Region, Account string
}

// OIDCBinding reports whether the binding mode signs the browser in at the application's
// OpenID Connect provider.
func (c Config) OIDCBinding() bool {
	return c.BindingMode == contract.BindingOIDC || c.BindingMode == contract.BindingOIDCCode
}

// ProviderSpec is the value of the oauth2Provider context: the OAuth2 credential provider the
// stack creates. The client secret stays in Secrets Manager: the template carries only a
// CloudFormation dynamic reference to it.
type ProviderSpec struct {
	// Name of the credential provider; default "consentflow-<vendor>".
	Name string `json:"name,omitempty"`
	// Vendor: google, github, slack, salesforce, microsoft, atlassian, linkedin, custom, or a
	// tenant-based one (auth0, cognito, okta, onelogin, pingone, cyberark, fusionauth). The
	// CloudFormation spellings (GoogleOauth2, ...) are accepted too.
	Vendor   string `json:"vendor"`
	ClientID string `json:"clientId"`
	// ClientSecretArn or ClientSecretName: the Secrets Manager secret holding the client secret
	// (exactly one of them).
	ClientSecretArn  string `json:"clientSecretArn,omitempty"`
	ClientSecretName string `json:"clientSecretName,omitempty"`
	// ClientSecretJSONKey selects a field when the secret is a JSON object; empty means the
	// whole secret string is the client secret.
	ClientSecretJSONKey string `json:"clientSecretJsonKey,omitempty"`
	// TenantID: microsoft only (optional).
	TenantID string `json:"tenantId,omitempty"`
	// DiscoveryURL: custom (required), the OpenID Connect discovery document.
	DiscoveryURL string `json:"discoveryUrl,omitempty"`
	// Issuer, AuthorizationEndpoint, TokenEndpoint: tenant-based vendors.
	Issuer                string `json:"issuer,omitempty"`
	AuthorizationEndpoint string `json:"authorizationEndpoint,omitempty"`
	TokenEndpoint         string `json:"tokenEndpoint,omitempty"`
	// Scopes is accepted for documentation only: scopes are not a property of the provider, each
	// execution asks for its own (the "scopes" field of the state machine input).
	Scopes []string `json:"scopes,omitempty"`
}

// SecretID is the secret's ARN or name, whichever was given.
func (p *ProviderSpec) SecretID() string {
	if p.ClientSecretArn != "" {
		return p.ClientSecretArn
	}
	return p.ClientSecretName
}

// vendorKinds maps accepted vendor spellings to a canonical kind.
var vendorKinds = map[string]string{
	"google": "google", "github": "github", "slack": "slack", "salesforce": "salesforce",
	"microsoft": "microsoft", "atlassian": "atlassian", "linkedin": "linkedin", "custom": "custom",
	"auth0": "auth0", "cognito": "cognito", "okta": "okta", "onelogin": "onelogin",
	"pingone": "pingone", "cyberark": "cyberark", "fusionauth": "fusionauth",
}

// VendorKind returns the canonical vendor ("google", ...) or "" when unsupported.
func VendorKind(v string) string {
	k := strings.ToLower(strings.TrimSpace(v))
	k = strings.TrimSuffix(k, "oauth2")
	return vendorKinds[k]
}

var (
	workloadNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)
	providerNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)
	// Step Functions state machine names: 1-80 characters, no whitespace, wildcards, brackets,
	// or special characters; letters, digits, - and _ are safe everywhere.
	stateMachineNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
	eventBusNameRE     = regexp.MustCompile(`^[A-Za-z0-9._-]{1,256}$`)
	cookieNameRE       = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
	secretArnRE        = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$`)
	httpsURLRE         = regexp.MustCompile(`^https://\S+$`)
	// Secrets Manager secret names: 1-512 characters of letters, digits and /_+=.@-.
	secretNameRE = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)
	// A claim name: a JSON member name without spaces or quotes, such as sub, email, oid,
	// cognito:username, custom:tenant_user or a namespaced https://example.com/uid.
	claimNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.:/#-]{0,127}$`)
	// An OAuth 2.0 scope token (RFC 6749 section 3.3).
	scopeTokenRE = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)
	// A client id or audience: printable ASCII without spaces.
	clientIDRE = regexp.MustCompile(`^[\x21-\x7E]{1,256}$`)
	// An ACM certificate ARN; group 1 is its Region.
	certificateArnRE = regexp.MustCompile(`^arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate/[A-Za-z0-9-]+$`)
	// An Amazon Connect instance id (a UUID, as the console and the APIs print it) and an
	// instance ARN (groups: partition, Region, account, id).
	connectInstanceIDRE  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	connectInstanceArnRE = regexp.MustCompile(`^arn:(aws|aws-cn|aws-us-gov):connect:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):(\d{12}):instance/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`)
	// A DNS host name: at least two labels of letters, digits and inner hyphens, no wildcard.
	domainNameRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// OIDCPrompts are the accepted values of oidcPrompt ("" sends no prompt).
var OIDCPrompts = []string{"", "none", "login", "consent", "select_account"}

// maxOIDCUserPrefix is the longest oidcUserPrefix (characters): a userId has at most 128.
const maxOIDCUserPrefix = 64

// retentionDays lists the retention periods CloudWatch Logs accepts (days) that we allow.
var retentionDays = map[int]bool{1: true, 3: true, 5: true, 7: true, 14: true, 30: true, 60: true,
	90: true, 120: true, 150: true, 180: true, 365: true, 400: true, 545: true, 731: true,
	1096: true, 1827: true, 2192: true, 2557: true, 2922: true, 3288: true, 3653: true}

// LoadConfig reads and validates the context. get is usually node.TryGetContext; it returns nil
// for unset keys. Values from `-c` arrive as strings, values from cdk.json keep their JSON type.
func LoadConfig(get func(key string) any) (Config, error) {
	var errs []error
	c := Config{
		RemovalPolicy:    strOr(get(CtxRemovalPolicy), "retain"),
		EventBusName:     strOr(get(CtxEventBusName), "consentflow"),
		WorkloadName:     strOr(get(CtxWorkloadName), "consentflow"),
		StateMachineName: strOr(get(CtxStateMachineName), "AuthorizeUser"),
		BindingMode:      strOr(get(CtxBindingMode), contract.BindingCode),
		UserTokenCookie:  strOr(get(CtxUserTokenCookie), contract.DefaultUserTokenCookie),
	}
	c.RemovalPolicy = strings.ToLower(c.RemovalPolicy)
	if c.RemovalPolicy != "retain" && c.RemovalPolicy != "destroy" {
		errs = append(errs, fmt.Errorf("context %s must be \"retain\" or \"destroy\", got %q", CtxRemovalPolicy, c.RemovalPolicy))
	}
	var err error
	if c.UseDefaultEventBus, err = boolOf(get(CtxUseDefaultEventBus)); err != nil {
		errs = append(errs, fmt.Errorf("context %s: %w", CtxUseDefaultEventBus, err))
	}
	if c.UseDefaultEventBus {
		c.EventBusName = "default"
	}
	if c.LogRetentionDays, err = intOr(get(CtxLogRetentionDays), 30); err != nil || !retentionDays[c.LogRetentionDays] {
		errs = append(errs, fmt.Errorf("context %s must be a CloudWatch Logs retention in days (1, 3, 5, 7, 14, 30, 60, 90, 180, 365, ...), got %v", CtxLogRetentionDays, get(CtxLogRetentionDays)))
	}
	if !workloadNameRE.MatchString(c.WorkloadName) {
		errs = append(errs, fmt.Errorf("context %s %q: 3-255 characters of A-Z a-z 0-9 _ . -", CtxWorkloadName, c.WorkloadName))
	}
	if !stateMachineNameRE.MatchString(c.StateMachineName) {
		errs = append(errs, fmt.Errorf("context %s %q: 1-80 characters of A-Z a-z 0-9 _ -", CtxStateMachineName, c.StateMachineName))
	}
	if !eventBusNameRE.MatchString(c.EventBusName) {
		errs = append(errs, fmt.Errorf("context %s %q is not a valid event bus name", CtxEventBusName, c.EventBusName))
	}
	if !slices.Contains(contract.BindingModes(), c.BindingMode) {
		errs = append(errs, fmt.Errorf("context %s must be one of %s, got %q", CtxBindingMode, quoted(contract.BindingModes()), c.BindingMode))
	}
	if !cookieNameRE.MatchString(c.UserTokenCookie) {
		errs = append(errs, fmt.Errorf("context %s %q is not a valid cookie name", CtxUserTokenCookie, c.UserTokenCookie))
	}
	if c.AgentRuntimeARNs, err = agentRuntimeARNsOf(get(CtxAgentRuntimeARNs)); err != nil {
		errs = append(errs, err)
	}
	if c.AppReturnURLs, err = appReturnURLsOf(get(CtxAppReturnURLs)); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, loadOIDC(get, &c)...)
	errs = append(errs, loadDomainAndUserToken(get, &c)...)
	errs = append(errs, loadConnect(get, &c)...)

	existing := strOr(get(CtxCredentialProviderName), "")
	c.ProviderSecretArn = strOr(get(CtxCredentialProviderSecretArn), "")
	spec, err := providerSpecOf(get(CtxOAuth2Provider))
	switch {
	case err != nil:
		errs = append(errs, err)
	case spec != nil && existing != "":
		errs = append(errs, fmt.Errorf("set either context %s (create a credential provider) or %s (use an existing one), not both", CtxOAuth2Provider, CtxCredentialProviderName))
	case spec != nil:
		c.NewProvider = spec
		c.ProviderName = spec.Name
		if c.ProviderSecretArn != "" {
			errs = append(errs, fmt.Errorf("context %s applies to an existing provider (%s) only", CtxCredentialProviderSecretArn, CtxCredentialProviderName))
		}
	case existing != "":
		c.ProviderName = existing
		if !providerNameRE.MatchString(existing) {
			errs = append(errs, fmt.Errorf("context %s %q: 1-128 characters of a-z A-Z 0-9 _ -", CtxCredentialProviderName, existing))
		}
		if c.ProviderSecretArn != "" && !secretArnRE.MatchString(c.ProviderSecretArn) {
			errs = append(errs, fmt.Errorf("context %s %q is not a Secrets Manager secret ARN", CtxCredentialProviderSecretArn, c.ProviderSecretArn))
		}
	default:
		errs = append(errs, fmt.Errorf("no OAuth2 credential provider configured: set context %s to the name of an existing AgentCore credential provider "+
			"(-c %s=my-google), or %s to a JSON description of one to create "+
			"(-c '%s={\"vendor\":\"google\",\"clientId\":\"...\",\"clientSecretArn\":\"arn:aws:secretsmanager:...\"}'); see docs/deploy.md",
			CtxCredentialProviderName, CtxCredentialProviderName, CtxOAuth2Provider, CtxOAuth2Provider))
	}
	return c, errors.Join(errs...)
}

// agentRuntimeARNsOf reads agentRuntimeArns: ARNs comma- or space-separated
// (`-c agentRuntimeArns=arn:...,arn:...`) or a JSON array of strings (cdk.json).
func agentRuntimeARNsOf(v any) ([]string, error) {
	var list []string
	switch t := v.(type) {
	case nil:
	case string:
		list = strings.FieldsFunc(t, func(r rune) bool { return r == ',' || r == ' ' })
	case []any:
		for _, x := range t {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("context %s: want AgentCore Runtime ARN strings, got %v", CtxAgentRuntimeARNs, x)
			}
			list = append(list, s)
		}
	default:
		return nil, fmt.Errorf("context %s: want a list of AgentCore Runtime ARNs, got %v", CtxAgentRuntimeARNs, v)
	}
	var out []string
	for _, s := range list {
		if _, ok := contract.ParseAgentRuntimeTarget(s); !ok {
			return nil, fmt.Errorf("context %s: %q is not an AgentCore Runtime ARN (arn:aws:bedrock-agentcore:<region>:<account>:runtime/<id>, its DEFAULT endpoint) or runtime endpoint ARN (<runtime ARN>/runtime-endpoint/<name>); no wildcards", CtxAgentRuntimeARNs, s)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// maxAppReturnURL bounds each appReturnUrls item (characters), as the functions do.
const maxAppReturnURL = 2048

// appReturnURLsOf reads appReturnUrls: URLs comma- or space-separated (`-c
// appReturnUrls=https://app.example.com/a,https://app.example.com/b`) or a JSON array of
// strings (cdk.json). Each is an absolute https URL with a host, without user info or
// fragment, written with RFC 3986 characters but ',' (the functions get them comma-separated
// and refuse anything else); duplicates are dropped, at most contract.MaxAppReturnURLs remain.
// The functions compare a workflow's returnTo with them byte for byte: no normalization.
func appReturnURLsOf(v any) ([]string, error) {
	list, bad, err := stringsOf(v, func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	})
	switch {
	case bad != nil:
		return nil, fmt.Errorf("context %s: want URL strings, got %v", CtxAppReturnURLs, *bad)
	case err != nil:
		return nil, fmt.Errorf("context %s: want a list of https URLs, got %v", CtxAppReturnURLs, v)
	}
	var out []string
	for _, s := range list {
		if err := checkAppReturnURL(s); err != nil {
			return nil, fmt.Errorf("context %s: %q %w", CtxAppReturnURLs, s, err)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) > contract.MaxAppReturnURLs {
		return nil, fmt.Errorf("context %s: at most %d URLs, got %d", CtxAppReturnURLs, contract.MaxAppReturnURLs, len(out))
	}
	return out, nil
}

// checkAppReturnURL accepts one appReturnUrls item (see appReturnURLsOf).
func checkAppReturnURL(s string) error {
	if len(s) > maxAppReturnURL {
		return fmt.Errorf("is longer than %d characters", maxAppReturnURL)
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("-._~:/?#[]@!$&'()*+;=%", b) >= 0) {
			return errors.New("has a character outside RFC 3986 or a ',' (percent-encode it)")
		}
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || !strings.HasPrefix(s, "https://") || u.Hostname() == "" || u.Opaque != "":
		return errors.New("must be an absolute https URL with a host, such as https://app.example.com/chat")
	case u.User != nil:
		return errors.New("must not carry user info (user@host)")
	case strings.Contains(s, "#"):
		return errors.New("must not have a fragment (#...)")
	}
	if _, ok := contract.PlainURLAuthority(s); !ok {
		return errors.New("must have a plain host: a DNS name or IP address, a port of 1-65535, nothing percent-encoded (the page shows it)")
	}
	return nil
}

// ExternalAgent is one agent's workload identity and the credential provider its sessions use.
type ExternalAgent struct {
	WorkloadName, ProviderName string
}

// externalAgentsOf reads externalAgents: "workload/provider" pairs, comma- or
// space-separated (`-c externalAgents=a/p,b/q`) or a JSON array of strings (cdk.json).
func externalAgentsOf(v any) ([]ExternalAgent, error) {
	list, bad, err := stringsOf(v, func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	})
	switch {
	case bad != nil:
		return nil, fmt.Errorf("context %s: want \"workloadName/providerName\" strings, got %v", CtxExternalAgents, *bad)
	case err != nil:
		return nil, fmt.Errorf("context %s: want \"workloadName/providerName\" pairs, got %v", CtxExternalAgents, v)
	}
	var out []ExternalAgent
	for _, s := range list {
		w, p, ok := strings.Cut(s, "/")
		if !ok || !workloadNameRE.MatchString(w) || !providerNameRE.MatchString(p) {
			return nil, fmt.Errorf("context %s: %q is not \"workloadName/providerName\" (the agent's workload identity, 3-255 of [A-Za-z0-9_.-], "+
				"and the credential provider its sessions use, 1-128 of [a-zA-Z0-9_-])", CtxExternalAgents, s)
		}
		out = append(out, ExternalAgent{WorkloadName: w, ProviderName: p})
	}
	return out, nil
}

// loadOIDC reads the oidc binding's keys into c.OIDC and c.ExternalSessions.
func loadOIDC(get func(key string) any, c *Config) []error {
	var errs []error
	o := OIDCConfig{
		Issuer:           strOr(get(CtxOIDCIssuer), ""),
		ClientID:         strOr(get(CtxOIDCClientID), ""),
		ClientSecretName: strOr(get(CtxOIDCClientSecretName), ""),
		UserClaim:        strOr(get(CtxOIDCUserClaim), ""),
		UserPrefix:       strOr(get(CtxOIDCUserPrefix), ""),
		Prompt:           strOr(get(CtxOIDCPrompt), ""),
	}
	scopes, err := scopesOf(get(CtxOIDCScopes))
	if err != nil {
		errs = append(errs, err)
	}
	external, err := boolOf(get(CtxExternalSessions))
	if err != nil {
		errs = append(errs, fmt.Errorf("context %s: %w", CtxExternalSessions, err))
	}
	oidcModes := fmt.Sprintf("%s %q or %q", CtxBindingMode, contract.BindingOIDC, contract.BindingOIDCCode)
	if !c.OIDCBinding() {
		for _, k := range []struct{ key, value string }{
			{CtxOIDCIssuer, o.Issuer}, {CtxOIDCClientID, o.ClientID}, {CtxOIDCClientSecretName, o.ClientSecretName},
			{CtxOIDCUserClaim, o.UserClaim}, {CtxOIDCUserPrefix, o.UserPrefix}, {CtxOIDCPrompt, o.Prompt},
			{CtxOIDCScopes, strings.Join(scopes, " ")},
		} {
			if k.value != "" {
				errs = append(errs, fmt.Errorf("context %s applies to %s only (%s is %q): remove it, or set %s to an oidc mode",
					k.key, oidcModes, CtxBindingMode, c.BindingMode, CtxBindingMode))
			}
		}
		if get(CtxExternalAgents) != nil {
			errs = append(errs, fmt.Errorf("context %s applies only with %s=true and %s: remove it", CtxExternalAgents, CtxExternalSessions, oidcModes))
		}
		if external {
			errs = append(errs, fmt.Errorf("context %s=true needs %s: a session the callback did not start has no record of the user who started it "+
				"and no verification code, so without a strong binding (the browser signed in at your OpenID Connect provider) "+
				"the callback cannot know whom an unknown session belongs to; set %s with %s and %s, or leave %s false",
				CtxExternalSessions, oidcModes, CtxBindingMode, CtxOIDCIssuer, CtxOIDCClientID, CtxExternalSessions))
		}
		return errs
	}

	c.ExternalSessions = external
	agents, err := externalAgentsOf(get(CtxExternalAgents))
	switch {
	case err != nil:
		errs = append(errs, err)
	case len(agents) > 0 && !external:
		errs = append(errs, fmt.Errorf("context %s applies only with %s=true: remove it, or enable %s", CtxExternalAgents, CtxExternalSessions, CtxExternalSessions))
	default:
		c.ExternalAgents = agents
	}
	if o.UserClaim == "" {
		o.UserClaim = contract.DefaultOIDCUserClaim
	}
	if len(scopes) == 0 {
		scopes = strings.Fields(contract.DefaultOIDCScopes)
	}
	o.Scopes = strings.Join(scopes, " ")
	c.OIDC = o
	if o.Issuer == "" {
		errs = append(errs, fmt.Errorf("context %s is required with %s %q: the issuer URL of your OpenID Connect provider, "+
			"exactly as its ID tokens carry it in iss (for example https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123)",
			CtxOIDCIssuer, CtxBindingMode, c.BindingMode))
	} else if err := checkIssuer(o.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("context %s %q: %w", CtxOIDCIssuer, o.Issuer, err))
	}
	if o.ClientID == "" {
		errs = append(errs, fmt.Errorf("context %s is required with %s %q: consentflow's client id at your OpenID Connect provider (see docs/deploy.md, Sign-in binding)",
			CtxOIDCClientID, CtxBindingMode, c.BindingMode))
	} else if !clientIDRE.MatchString(o.ClientID) {
		errs = append(errs, fmt.Errorf("context %s %q: 1-256 printable characters without spaces", CtxOIDCClientID, o.ClientID))
	}
	if s := o.ClientSecretName; s != "" && !secretArnRE.MatchString(s) && !(secretNameRE.MatchString(s) && !strings.HasPrefix(s, "arn:")) {
		errs = append(errs, fmt.Errorf("context %s %q is neither a Secrets Manager secret name (1-512 characters of A-Z a-z 0-9 /_+=.@-) nor a secret ARN; "+
			"leave it unset for a public client", CtxOIDCClientSecretName, s))
	}
	if !claimNameRE.MatchString(o.UserClaim) {
		errs = append(errs, fmt.Errorf("context %s %q is not a claim name (a letter or _, then up to 127 of A-Z a-z 0-9 _ . : / # -; for example sub, email, cognito:username)",
			CtxOIDCUserClaim, o.UserClaim))
	}
	if n := utf8.RuneCountInString(o.UserPrefix); n > maxOIDCUserPrefix || !printable(o.UserPrefix) {
		errs = append(errs, fmt.Errorf("context %s %q: at most %d printable characters (a userId has at most 128, and the claim's value follows the prefix)",
			CtxOIDCUserPrefix, o.UserPrefix, maxOIDCUserPrefix))
	}
	if !slices.Contains(OIDCPrompts, o.Prompt) {
		errs = append(errs, fmt.Errorf("context %s must be empty or one of none, login, consent, select_account, got %q", CtxOIDCPrompt, o.Prompt))
	}
	if !slices.Contains(scopes, "openid") {
		errs = append(errs, fmt.Errorf("context %s %q must include openid: without it the provider returns no ID token to sign the user in with", CtxOIDCScopes, o.Scopes))
	}
	return errs
}

// loadDomainAndUserToken reads the custom domain and the JWT-cookie binding's keys.
func loadDomainAndUserToken(get func(key string) any, c *Config) []error {
	var errs []error
	c.DomainName = strings.ToLower(strOr(get(CtxDomainName), ""))
	c.CertificateArn = strOr(get(CtxCertificateArn), "")
	c.UserTokenIssuer = strOr(get(CtxUserTokenIssuer), "")
	c.UserTokenAudience = strOr(get(CtxUserTokenAudience), "")

	if c.DomainName != "" && (len(c.DomainName) > 253 || !domainNameRE.MatchString(c.DomainName)) {
		errs = append(errs, fmt.Errorf("context %s %q is not a host name such as consent.example.com (no scheme, path, port or wildcard)", CtxDomainName, c.DomainName))
	}
	if c.CertificateArn != "" {
		if m := certificateArnRE.FindStringSubmatch(c.CertificateArn); m != nil {
			c.CertificateRegion = m[1]
		} else {
			errs = append(errs, fmt.Errorf("context %s %q is not an ACM certificate ARN (arn:aws:acm:<region>:<account>:certificate/<id>)", CtxCertificateArn, c.CertificateArn))
		}
	}
	if (c.DomainName == "") != (c.CertificateArn == "") {
		errs = append(errs, fmt.Errorf("set both context %s and %s for a custom domain, or neither: the custom domain needs an ACM certificate for it "+
			"in the stack's Region", CtxDomainName, CtxCertificateArn))
	}

	if c.UserTokenIssuer != "" {
		if err := checkIssuer(c.UserTokenIssuer); err != nil {
			errs = append(errs, fmt.Errorf("context %s %q: %w", CtxUserTokenIssuer, c.UserTokenIssuer, err))
		}
		if c.UserTokenAudience == "" {
			errs = append(errs, fmt.Errorf("context %s needs %s: the audience (client id) your application's JWTs carry; the callback accepts no JWT without checking it",
				CtxUserTokenIssuer, CtxUserTokenAudience))
		}
		if c.DomainName == "" {
			errs = append(errs, fmt.Errorf("context %s (JWT-cookie binding) needs a custom domain: the callback reads the user's JWT from your application's cookie, "+
				"and the browser never sends that cookie to the callback on its execute-api.amazonaws.com host; "+
				"set %s to a host under your application's domain and %s to its ACM certificate (see docs/deploy.md, JWT-cookie binding)",
				CtxUserTokenIssuer, CtxDomainName, CtxCertificateArn))
		}
	}
	if c.UserTokenAudience != "" {
		if c.UserTokenIssuer == "" {
			errs = append(errs, fmt.Errorf("context %s applies with %s only (JWT-cookie binding): set the issuer too, or remove it", CtxUserTokenAudience, CtxUserTokenIssuer))
		}
		if !clientIDRE.MatchString(c.UserTokenAudience) {
			errs = append(errs, fmt.Errorf("context %s %q: 1-256 printable characters without spaces", CtxUserTokenAudience, c.UserTokenAudience))
		}
	}
	return errs
}

// loadConnect reads connectInstanceArn or connectInstanceId into c.Connect.
func loadConnect(get func(key string) any, c *Config) []error {
	arn := strings.TrimSpace(strOr(get(CtxConnectInstanceArn), ""))
	id := strings.TrimSpace(strOr(get(CtxConnectInstanceID), ""))
	switch {
	case arn != "" && id != "":
		return []error{fmt.Errorf("set either context %s or %s, not both: the ARN already names the instance id", CtxConnectInstanceArn, CtxConnectInstanceID)}
	case arn != "":
		m := connectInstanceArnRE.FindStringSubmatch(arn)
		if m == nil {
			return []error{fmt.Errorf("context %s %q is not an Amazon Connect instance ARN (arn:aws:connect:<region>:<account>:instance/<instance id>, "+
				"as the Amazon Connect console shows it on the instance's overview)", CtxConnectInstanceArn, arn)}
		}
		c.Connect = &ConnectInstance{ARN: arn, Partition: m[1], Region: m[2], Account: m[3], ID: m[4]}
	case id != "":
		if strings.HasPrefix(id, "arn:") {
			return []error{fmt.Errorf("context %s %q is an ARN: give it as %s instead", CtxConnectInstanceID, id, CtxConnectInstanceArn)}
		}
		if !connectInstanceIDRE.MatchString(id) {
			return []error{fmt.Errorf("context %s %q is not an Amazon Connect instance id (a lower-case UUID such as 00fbeee1-123e-111e-93e3-11111bfbfcc1, "+
				"the last part of the instance ARN); for an instance in another Region give %s", CtxConnectInstanceID, id, CtxConnectInstanceArn)}
		}
		c.Connect = &ConnectInstance{ID: id}
	}
	return nil
}

// checkIssuer accepts an OpenID Connect issuer: an https URL with a host and no query or
// fragment (OpenID Connect Discovery 1.0). It is kept verbatim: tokens must carry exactly it.
func checkIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil || !httpsURLRE.MatchString(s) || u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.Contains(s, "#") || u.User != nil {
		return errors.New("must be an https URL with a host and no query or fragment (the issuer exactly as the tokens carry it in iss)")
	}
	return nil
}

// stringsOf reads a list-valued context key: a string (from `-c key=value`) that split cuts
// into items, or a JSON array of strings (cdk.json); nil gives no items. An array item that is
// not a string (null included) is returned as bad; a value of another type is an error.
func stringsOf(v any, split func(string) []string) (list []string, bad *any, err error) {
	switch t := v.(type) {
	case nil:
		return nil, nil, nil
	case string:
		return split(t), nil, nil
	case []any:
		for _, x := range t {
			s, ok := x.(string)
			if !ok {
				return nil, &x, nil
			}
			list = append(list, s)
		}
		return list, nil, nil
	}
	return nil, nil, errors.New("neither a string nor a list")
}

// scopesOf reads oidcScopes: a space-separated string (`-c oidcScopes="openid email"`) or a
// JSON array of strings (cdk.json). Duplicates are dropped, the order is kept.
func scopesOf(v any) ([]string, error) {
	list, bad, err := stringsOf(v, strings.Fields)
	switch {
	case bad != nil:
		return nil, fmt.Errorf("context %s: want scopes as strings, got %v", CtxOIDCScopes, *bad)
	case err != nil:
		return nil, fmt.Errorf("context %s: want a space-separated string or a list of scopes, got %v", CtxOIDCScopes, v)
	}
	var out []string
	for _, s := range list {
		if !scopeTokenRE.MatchString(s) {
			return nil, fmt.Errorf("context %s: %q is not a scope (printable ASCII without spaces, quotes or backslashes)", CtxOIDCScopes, s)
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return utf8.ValidString(s)
}

func quoted(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func providerSpecOf(v any) (*ProviderSpec, error) {
	if v == nil {
		return nil, nil
	}
	var raw []byte
	switch t := v.(type) {
	case string:
		if strings.TrimSpace(t) == "" {
			return nil, nil
		}
		raw = []byte(t)
	default:
		b, err := json.Marshal(t)
		if err != nil {
			return nil, fmt.Errorf("context %s: %w", CtxOAuth2Provider, err)
		}
		raw = b
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var p ProviderSpec
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("context %s must be a JSON object with vendor, clientId and clientSecretArn or clientSecretName: %w", CtxOAuth2Provider, err)
	}
	var errs []error
	kind := VendorKind(p.Vendor)
	if kind == "" {
		errs = append(errs, fmt.Errorf("context %s: unsupported vendor %q (google, github, slack, salesforce, microsoft, atlassian, linkedin, custom, auth0, cognito, okta, onelogin, pingone, cyberark, fusionauth)", CtxOAuth2Provider, p.Vendor))
	}
	p.Vendor = kind
	if p.Name == "" && kind != "" {
		p.Name = "consentflow-" + kind
	}
	if !providerNameRE.MatchString(p.Name) {
		errs = append(errs, fmt.Errorf("context %s: name %q: 1-128 characters of a-z A-Z 0-9 _ -", CtxOAuth2Provider, p.Name))
	}
	if strings.TrimSpace(p.ClientID) == "" {
		errs = append(errs, fmt.Errorf("context %s: clientId is required", CtxOAuth2Provider))
	}
	switch {
	case (p.ClientSecretArn == "") == (p.ClientSecretName == ""):
		errs = append(errs, fmt.Errorf("context %s: give exactly one of clientSecretArn and clientSecretName (the Secrets Manager secret holding the client secret)", CtxOAuth2Provider))
	case p.ClientSecretArn != "" && !secretArnRE.MatchString(p.ClientSecretArn):
		errs = append(errs, fmt.Errorf("context %s: clientSecretArn %q is not a Secrets Manager secret ARN", CtxOAuth2Provider, p.ClientSecretArn))
	}
	if kind == "custom" && !httpsURLRE.MatchString(p.DiscoveryURL) {
		errs = append(errs, fmt.Errorf("context %s: vendor custom needs discoveryUrl (https://.../.well-known/openid-configuration)", CtxOAuth2Provider))
	}
	if kind != "custom" && p.DiscoveryURL != "" {
		errs = append(errs, fmt.Errorf("context %s: discoveryUrl applies to vendor custom only", CtxOAuth2Provider))
	}
	if p.TenantID != "" && kind != "microsoft" {
		errs = append(errs, fmt.Errorf("context %s: tenantId applies to vendor microsoft only", CtxOAuth2Provider))
	}
	for field, u := range map[string]string{"issuer": p.Issuer, "authorizationEndpoint": p.AuthorizationEndpoint, "tokenEndpoint": p.TokenEndpoint} {
		if u != "" && !httpsURLRE.MatchString(u) {
			errs = append(errs, fmt.Errorf("context %s: %s must be an https URL", CtxOAuth2Provider, field))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &p, nil
}

func strOr(v any, def string) string {
	switch t := v.(type) {
	case nil:
		return def
	case string:
		if t == "" {
			return def
		}
		return t
	default:
		return fmt.Sprint(t)
	}
}

func boolOf(v any) (bool, error) {
	switch t := v.(type) {
	case nil:
		return false, nil
	case bool:
		return t, nil
	case string:
		if t == "" {
			return false, nil
		}
		return strconv.ParseBool(t)
	default:
		return false, fmt.Errorf("want true or false, got %v", v)
	}
}

func intOr(v any, def int) (int, error) {
	switch t := v.(type) {
	case nil:
		return def, nil
	case float64:
		if t != float64(int(t)) {
			return 0, fmt.Errorf("not an integer: %v", t)
		}
		return int(t), nil
	case int:
		return t, nil
	case string:
		if t == "" {
			return def, nil
		}
		return strconv.Atoi(t)
	default:
		return 0, fmt.Errorf("not an integer: %v", v)
	}
}
