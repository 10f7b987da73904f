package stack

import (
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
	if c != want {
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
