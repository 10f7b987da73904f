package stack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

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
	// BindingMode is "code" (default) or "none".
	BindingMode      string
	UserTokenCookie  string
	LogRetentionDays int

	// ProviderName is the name of the OAuth2 credential provider: the one NewProvider creates,
	// or the existing one named by credentialProviderName.
	ProviderName string
	// ProviderSecretArn optionally pins the client secret of an existing provider (for the
	// secretsmanager:GetSecretValue grant); empty means the AgentCore-managed secret name pattern.
	ProviderSecretArn string
	// NewProvider describes the credential provider to create, or is nil to use an existing one.
	NewProvider *ProviderSpec
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
)

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
	if c.BindingMode != contract.BindingCode && c.BindingMode != contract.BindingNone {
		errs = append(errs, fmt.Errorf("context %s must be \"code\" or \"none\", got %q", CtxBindingMode, c.BindingMode))
	}
	if !cookieNameRE.MatchString(c.UserTokenCookie) {
		errs = append(errs, fmt.Errorf("context %s %q is not a valid cookie name", CtxUserTokenCookie, c.UserTokenCookie))
	}

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
