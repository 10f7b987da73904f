package stack

import (
	"github.com/consentflow/consentflow/internal/contract"
	"reflect"
	"strings"
	"testing"
)

func ctx(m map[string]any) func(string) any { return func(k string) any { return m[k] } }

func TestLoadConfigDefaults(t *testing.T) {
	c, err := LoadConfig(ctx(map[string]any{CtxCredentialProviderName: "my-google"}))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{RemovalPolicy: "retain", EventBusName: "consentflow", WorkloadName: "consentflow",
		StateMachineName: "AuthorizeUser", BindingMode: "code", UserTokenCookie: "id_token",
		LogRetentionDays: 30, ProviderName: "my-google"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config\n got %+v\nwant %+v", c, want)
	}
}

func TestLoadConfigNeedsAProvider(t *testing.T) {
	_, err := LoadConfig(ctx(map[string]any{}))
	if err == nil || !strings.Contains(err.Error(), CtxCredentialProviderName) || !strings.Contains(err.Error(), CtxOAuth2Provider) {
		t.Fatalf("err = %v, want one naming both %s and %s", err, CtxCredentialProviderName, CtxOAuth2Provider)
	}
}

func TestLoadConfigProviderFromCLIString(t *testing.T) {
	// `-c oauth2Provider={...}` arrives as a string, cdk.json as an object: both work.
	for _, v := range []any{
		`{"vendor":"GithubOauth2","clientId":"abc","clientSecretName":"gh/secret","clientSecretJsonKey":"client_secret","name":"gh"}`,
		map[string]any{"vendor": "github", "clientId": "abc", "clientSecretName": "gh/secret", "clientSecretJsonKey": "client_secret", "name": "gh"},
	} {
		c, err := LoadConfig(ctx(map[string]any{CtxOAuth2Provider: v, CtxUseDefaultEventBus: true, CtxLogRetentionDays: "90"}))
		if err != nil {
			t.Fatal(err)
		}
		p := c.NewProvider
		if p == nil || p.Vendor != "github" || p.Name != "gh" || c.ProviderName != "gh" || p.SecretID() != "gh/secret" || p.ClientSecretJSONKey != "client_secret" {
			t.Errorf("provider = %+v (config %+v)", p, c)
		}
		if !c.UseDefaultEventBus || c.EventBusName != "default" || c.LogRetentionDays != 90 {
			t.Errorf("config = %+v", c)
		}
	}
}

func TestLoadConfigRejects(t *testing.T) {
	good := map[string]any{"vendor": "google", "clientId": "x", "clientSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:s-AbCdEf"}
	with := func(k string, v any) map[string]any {
		m := map[string]any{}
		for a, b := range good {
			m[a] = b
		}
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for name, tc := range map[string]struct {
		ctx  map[string]any
		want string
	}{
		"both providers":       {map[string]any{CtxOAuth2Provider: good, CtxCredentialProviderName: "p"}, "not both"},
		"unknown vendor":       {map[string]any{CtxOAuth2Provider: with("vendor", "myspace")}, "unsupported vendor"},
		"no client id":         {map[string]any{CtxOAuth2Provider: with("clientId", nil)}, "clientId is required"},
		"two secrets":          {map[string]any{CtxOAuth2Provider: with("clientSecretName", "n")}, "exactly one"},
		"bad secret arn":       {map[string]any{CtxOAuth2Provider: with("clientSecretArn", "arn:aws:s3:::b")}, "not a Secrets Manager"},
		"unknown field":        {map[string]any{CtxOAuth2Provider: with("clientSecret", "plaintext!")}, "unknown field"},
		"custom without disco": {map[string]any{CtxOAuth2Provider: with("vendor", "custom")}, "discoveryUrl"},
		"bad provider name":    {map[string]any{CtxCredentialProviderName: "has space"}, CtxCredentialProviderName},
		"bad removal":          {map[string]any{CtxCredentialProviderName: "p", CtxRemovalPolicy: "snapshot"}, CtxRemovalPolicy},
		"bad binding":          {map[string]any{CtxCredentialProviderName: "p", CtxBindingMode: "maybe"}, CtxBindingMode},
		"bad retention":        {map[string]any{CtxCredentialProviderName: "p", CtxLogRetentionDays: "31"}, CtxLogRetentionDays},
		"bad bool":             {map[string]any{CtxCredentialProviderName: "p", CtxUseDefaultEventBus: "yes please"}, CtxUseDefaultEventBus},
		"bad workload":         {map[string]any{CtxCredentialProviderName: "p", CtxWorkloadName: "a b"}, CtxWorkloadName},
		"bad state machine":    {map[string]any{CtxCredentialProviderName: "p", CtxStateMachineName: "a:b"}, CtxStateMachineName},
		"secret arn with new":  {map[string]any{CtxOAuth2Provider: good, CtxCredentialProviderSecretArn: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:s"}, "existing provider"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadConfig(ctx(tc.ctx))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// oidcCtx is a valid context with an oidc binding mode, plus extra keys (a nil value deletes).
func oidcCtx(extra map[string]any) map[string]any {
	m := map[string]any{
		CtxCredentialProviderName: "p",
		CtxBindingMode:            "oidc",
		CtxOIDCIssuer:             "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
		CtxOIDCClientID:           "4example5client6id",
	}
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

func TestLoadConfigOIDCDefaults(t *testing.T) {
	for _, mode := range []string{"oidc", "oidc+code"} {
		c, err := LoadConfig(ctx(oidcCtx(map[string]any{CtxBindingMode: mode})))
		if err != nil {
			t.Fatal(err)
		}
		want := OIDCConfig{Issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123", ClientID: "4example5client6id",
			UserClaim: "sub", Scopes: "openid email profile"}
		if c.OIDC != want || c.ExternalSessions || !c.OIDCBinding() {
			t.Errorf("%s: OIDC\n got %+v (external %v)\nwant %+v", mode, c.OIDC, c.ExternalSessions, want)
		}
	}
	c, _ := LoadConfig(ctx(map[string]any{CtxCredentialProviderName: "p"}))
	if c.OIDCBinding() || c.OIDC != (OIDCConfig{}) {
		t.Errorf("code binding has OIDC settings %+v", c.OIDC)
	}
}

func TestLoadConfigOIDCAll(t *testing.T) {
	// `-c key=value` strings and cdk.json values (a list of scopes, a bool) both work.
	for _, extra := range []map[string]any{
		{CtxOIDCScopes: "openid email openid offline_access", CtxExternalSessions: "true"},
		{CtxOIDCScopes: []any{"openid", "email", "openid", "offline_access"}, CtxExternalSessions: true},
	} {
		m := oidcCtx(extra)
		m[CtxOIDCClientSecretName] = "consentflow/oidc-client"
		m[CtxOIDCUserClaim] = "https://example.com/claims/uid"
		m[CtxOIDCUserPrefix] = strings.Repeat("ü", 63) + "|"
		m[CtxOIDCPrompt] = "select_account"
		c, err := LoadConfig(ctx(m))
		if err != nil {
			t.Fatal(err)
		}
		o := c.OIDC
		if o.ClientSecretName != "consentflow/oidc-client" || o.UserClaim != "https://example.com/claims/uid" || o.Prompt != "select_account" ||
			o.Scopes != "openid email offline_access" || o.UserPrefix != m[CtxOIDCUserPrefix] || !c.ExternalSessions {
			t.Errorf("config %+v", c)
		}
	}
	for _, claim := range []string{"email", "cognito:username", "custom:tenant_user", "oid", "preferred_username"} {
		if _, err := LoadConfig(ctx(oidcCtx(map[string]any{CtxOIDCUserClaim: claim}))); err != nil {
			t.Errorf("claim %q: %v", claim, err)
		}
	}
	for _, p := range OIDCPrompts {
		if _, err := LoadConfig(ctx(oidcCtx(map[string]any{CtxOIDCPrompt: p}))); err != nil {
			t.Errorf("prompt %q: %v", p, err)
		}
	}
	arn := "arn:aws:secretsmanager:eu-west-1:123456789012:secret:consentflow/oidc-AbCdEf"
	if c, err := LoadConfig(ctx(oidcCtx(map[string]any{CtxOIDCClientSecretName: arn}))); err != nil || c.OIDC.ClientSecretName != arn {
		t.Errorf("secret ARN: %v %+v", err, c.OIDC)
	}
}

func TestLoadConfigDomainAndUserToken(t *testing.T) {
	c, err := LoadConfig(ctx(map[string]any{
		CtxCredentialProviderName: "p",
		CtxDomainName:             "Consent.Example.COM",
		CtxCertificateArn:         "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
		CtxUserTokenIssuer:        "https://example.eu.auth0.com/",
		CtxUserTokenAudience:      "app-client-id",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DomainName != "consent.example.com" || c.CertificateRegion != "eu-west-1" ||
		c.UserTokenIssuer != "https://example.eu.auth0.com/" || c.UserTokenAudience != "app-client-id" {
		t.Errorf("config %+v", c)
	}
	// JWT-cookie binding works with every binding mode; a custom domain alone too.
	if _, err := LoadConfig(ctx(oidcCtx(map[string]any{
		CtxBindingMode: "oidc+code", CtxDomainName: "auth.example.org",
		CtxCertificateArn: "arn:aws:acm:us-east-1:123456789012:certificate/abc",
	}))); err != nil {
		t.Error(err)
	}
}

func TestLoadConfigRejectsBinding(t *testing.T) {
	code := func(k string, v any) map[string]any { return map[string]any{CtxCredentialProviderName: "p", k: v} }
	oidc := func(k string, v any) map[string]any { return oidcCtx(map[string]any{k: v}) }
	cert := "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d"
	jwt := func(extra map[string]any) map[string]any {
		m := map[string]any{CtxCredentialProviderName: "p", CtxUserTokenIssuer: "https://idp.example.com", CtxUserTokenAudience: "aud",
			CtxDomainName: "consent.example.com", CtxCertificateArn: cert}
		for k, v := range extra {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	for name, tc := range map[string]struct {
		ctx  map[string]any
		want string
	}{
		"unknown mode":              {code(CtxBindingMode, "oidc-code"), `"code", "oidc", "oidc+code", "none"`},
		"oidc without issuer":       {oidc(CtxOIDCIssuer, nil), "context oidcIssuer is required"},
		"oidc+code without issuer":  {oidcCtx(map[string]any{CtxBindingMode: "oidc+code", CtxOIDCIssuer: nil}), "context oidcIssuer is required"},
		"issuer http":               {oidc(CtxOIDCIssuer, "http://idp.example.com"), "oidcIssuer \"http://idp.example.com\": must be an https URL"},
		"issuer query":              {oidc(CtxOIDCIssuer, "https://idp.example.com/?tenant=1"), "no query or fragment"},
		"issuer fragment":           {oidc(CtxOIDCIssuer, "https://idp.example.com/#x"), "no query or fragment"},
		"issuer no host":            {oidc(CtxOIDCIssuer, "https:///path"), "with a host"},
		"oidc without client id":    {oidc(CtxOIDCClientID, nil), "context oidcClientId is required"},
		"client id with space":      {oidc(CtxOIDCClientID, "my client"), "oidcClientId \"my client\": 1-256 printable"},
		"secret name bad":           {oidc(CtxOIDCClientSecretName, "has space"), "neither a Secrets Manager secret name"},
		"secret arn bad":            {oidc(CtxOIDCClientSecretName, "arn:aws:s3:::bucket"), "neither a Secrets Manager secret name"},
		"claim with space":          {oidc(CtxOIDCUserClaim, "user id"), "oidcUserClaim \"user id\" is not a claim name"},
		"claim starts with digit":   {oidc(CtxOIDCUserClaim, "1sub"), "is not a claim name"},
		"claim too long":            {oidc(CtxOIDCUserClaim, strings.Repeat("a", 129)), "is not a claim name"},
		"prefix too long":           {oidc(CtxOIDCUserPrefix, strings.Repeat("x", 65)), "oidcUserPrefix"},
		"prefix not printable":      {oidc(CtxOIDCUserPrefix, "a\x01|"), "at most 64 printable characters"},
		"prefix newline":            {oidc(CtxOIDCUserPrefix, "a\n"), "at most 64 printable characters"},
		"prompt unknown":            {oidc(CtxOIDCPrompt, "always"), "context oidcPrompt must be empty or one of"},
		"scopes without openid":     {oidc(CtxOIDCScopes, "email profile"), "must include openid"},
		"scope list without openid": {oidc(CtxOIDCScopes, []any{"email"}), "must include openid"},
		"scope not a token":         {oidc(CtxOIDCScopes, `openid "email"`), "is not a scope"},
		"scopes not a list":         {oidc(CtxOIDCScopes, 42.0), "space-separated string or a list"},
		"scope not a string":        {oidc(CtxOIDCScopes, []any{"openid", 1.0}), "want scopes as strings"},
		"external not a bool":       {oidc(CtxExternalSessions, "sometimes"), "context externalSessions"},

		// The sign-in keys without an oidc mode.
		"issuer with code":          {code(CtxOIDCIssuer, "https://idp.example.com"), "context oidcIssuer applies to bindingMode \"oidc\" or \"oidc+code\" only"},
		"client id with code":       {code(CtxOIDCClientID, "c"), "context oidcClientId applies to"},
		"secret with code":          {code(CtxOIDCClientSecretName, "s"), "context oidcClientSecretName applies to"},
		"claim with code":           {code(CtxOIDCUserClaim, "sub"), "context oidcUserClaim applies to"},
		"prefix with code":          {code(CtxOIDCUserPrefix, "x|"), "context oidcUserPrefix applies to"},
		"prompt with code":          {code(CtxOIDCPrompt, "login"), "context oidcPrompt applies to"},
		"scopes with code":          {code(CtxOIDCScopes, "openid"), "context oidcScopes applies to"},
		"issuer with none":          {map[string]any{CtxCredentialProviderName: "p", CtxBindingMode: "none", CtxOIDCIssuer: "https://i.example"}, "(bindingMode is \"none\")"},
		"external with code":        {code(CtxExternalSessions, true), "cannot know whom an unknown session belongs to"},
		"external with none":        {map[string]any{CtxCredentialProviderName: "p", CtxBindingMode: "none", CtxExternalSessions: "true"}, "externalSessions=true needs bindingMode"},
		"external not a bool, code": {code(CtxExternalSessions, 1.0), "context externalSessions"},
		"agents with code":          {code(CtxExternalAgents, "w1/p1"), "context externalAgents applies only with"},

		// JWT-cookie binding and the custom domain.
		"jwt without audience": {jwt(map[string]any{CtxUserTokenAudience: nil}), "context userTokenIssuer needs userTokenAudience"},
		"jwt without domain":   {jwt(map[string]any{CtxDomainName: nil, CtxCertificateArn: nil}), "never sends that cookie to the callback on its execute-api.amazonaws.com host"},
		"jwt issuer http":      {jwt(map[string]any{CtxUserTokenIssuer: "http://idp.example.com"}), "context userTokenIssuer \"http://idp.example.com\": must be an https URL"},
		"audience without jwt": {jwt(map[string]any{CtxUserTokenIssuer: nil}), "context userTokenAudience applies with userTokenIssuer only"},
		"audience with space":  {jwt(map[string]any{CtxUserTokenAudience: "a b"}), "userTokenAudience \"a b\": 1-256 printable"},
		"domain without cert":  {code(CtxDomainName, "consent.example.com"), "set both context domainName and certificateArn"},
		"cert without domain":  {code(CtxCertificateArn, cert), "set both context domainName and certificateArn"},
		"domain with scheme":   {jwt(map[string]any{CtxDomainName: "https://consent.example.com"}), "context domainName \"https://consent.example.com\" is not a host name"},
		"domain wildcard":      {jwt(map[string]any{CtxDomainName: "*.example.com"}), "is not a host name"},
		"domain one label":     {jwt(map[string]any{CtxDomainName: "localhost"}), "is not a host name"},
		"domain with port":     {jwt(map[string]any{CtxDomainName: "consent.example.com:8443"}), "is not a host name"},
		"cert not acm":         {jwt(map[string]any{CtxCertificateArn: "arn:aws:iam::123456789012:server-certificate/x"}), "context certificateArn \"arn:aws:iam::123456789012:server-certificate/x\" is not an ACM certificate ARN"},
		"cert without region":  {jwt(map[string]any{CtxCertificateArn: "arn:aws:acm::123456789012:certificate/x"}), "is not an ACM certificate ARN"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadConfig(ctx(tc.ctx))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestExternalAgents(t *testing.T) {
	base := func(extra map[string]any) map[string]any {
		m := map[string]any{CtxCredentialProviderName: "p", CtxBindingMode: contract.BindingOIDC,
			CtxOIDCIssuer: "https://issuer.example", CtxOIDCClientID: "cid"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	c, err := LoadConfig(ctx(base(map[string]any{CtxExternalSessions: true, CtxExternalAgents: "agent-a/github, agent.b/google"})))
	if err != nil {
		t.Fatal(err)
	}
	want := []ExternalAgent{{"agent-a", "github"}, {"agent.b", "google"}}
	if !reflect.DeepEqual(c.ExternalAgents, want) {
		t.Fatalf("agents %+v", c.ExternalAgents)
	}
	for name, tc := range map[string]struct {
		extra map[string]any
		want  string
	}{
		"without externalSessions": {map[string]any{CtxExternalAgents: "a1b/p"}, "applies only with externalSessions=true"},
		"no provider":              {map[string]any{CtxExternalSessions: true, CtxExternalAgents: "agent-a"}, "is not \"workloadName/providerName\""},
		"bad workload":             {map[string]any{CtxExternalSessions: true, CtxExternalAgents: "a/p"}, "is not \"workloadName/providerName\""},
		"not strings":              {map[string]any{CtxExternalSessions: true, CtxExternalAgents: []any{1.0}}, "want \"workloadName/providerName\" strings"},
		"a null item":              {map[string]any{CtxExternalSessions: true, CtxExternalAgents: []any{"agent-a/p", nil}}, "want \"workloadName/providerName\" strings"},
	} {
		if _, err := LoadConfig(ctx(base(tc.extra))); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAgentRuntimeARNs(t *testing.T) {
	const a = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/agent_a-a1B2c3D4e5"
	const b = "arn:aws:bedrock-agentcore:eu-west-1:123456789012:runtime/agent_b-a1B2c3D4e5"
	const e = a + "/runtime-endpoint/prod_1"
	for _, v := range []any{a + ", " + b + " " + e, []any{a, b, a, e}} {
		c, err := LoadConfig(ctx(map[string]any{CtxCredentialProviderName: "p", CtxAgentRuntimeARNs: v}))
		if err != nil || !reflect.DeepEqual(c.AgentRuntimeARNs, []string{a, b, e}) {
			t.Errorf("%v: %v %v", v, c.AgentRuntimeARNs, err)
		}
	}
	for name, v := range map[string]any{
		"wildcard":          "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/*",
		"endpoint wildcard": a + "/runtime-endpoint/*",
		"endpoint name":     a + "/runtime-endpoint/1prod",
		"endpoint empty":    a + "/runtime-endpoint/",
		"other service":     "arn:aws:lambda:us-east-1:123456789012:function:x",
		"not strings":       []any{1.0},
		"not a list":        map[string]any{},
		"partial account":   "arn:aws:bedrock-agentcore:us-east-1:1234:runtime/agent_a-a1B2c3D4e5",
	} {
		if _, err := LoadConfig(ctx(map[string]any{CtxCredentialProviderName: "p", CtxAgentRuntimeARNs: v})); err == nil || !strings.Contains(err.Error(), CtxAgentRuntimeARNs) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
