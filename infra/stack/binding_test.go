package stack

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/contract"
)

// Session binding (code, oidc, oidc+code; external sessions; JWT-cookie) and the custom
// domain. The variants are synthesized once in TestMain (stack_test.go).

// envOf returns the resolved environment of the function with logical id prefix prefix.
func envOf(t *testing.T, s *synthesized, prefix string) map[string]string {
	t.Helper()
	_, r := s.one(t, "AWS::Lambda::Function", prefix)
	vars := resolve(props(r)["Environment"].(map[string]any)["Variables"]).(map[string]any)
	out := map[string]string{}
	for k, v := range vars {
		out[k] = fmt.Sprint(v)
	}
	return out
}

func (s *synthesized) apiID(t *testing.T) string {
	t.Helper()
	id, _ := s.one(t, "AWS::ApiGatewayV2::Api", "CallbackApi")
	return id
}

func (s *synthesized) output(name string) (string, bool) {
	o, ok := s.json["Outputs"].(map[string]any)[name].(map[string]any)
	if !ok {
		return "", false
	}
	return str(o["Value"]), true
}

func routeKeys(s *synthesized) []string {
	var keys []string
	for _, r := range s.resources("AWS::ApiGatewayV2::Route") {
		keys = append(keys, props(r)["RouteKey"].(string))
	}
	sort.Strings(keys)
	return keys
}

// signInEnvKeys are the callback variables that only the oidc modes, external sessions and
// JWT-cookie binding set.
var signInEnvKeys = []string{
	contract.EnvOIDCIssuer, contract.EnvOIDCClientID, contract.EnvOIDCClientSecretName, contract.EnvOIDCUserClaim,
	contract.EnvOIDCUserPrefix, contract.EnvOIDCPrompt, contract.EnvOIDCScopes, contract.EnvExternalSessions,
	contract.EnvUserTokenIssuer, contract.EnvUserTokenAudience,
}

const (
	// googleSecret is the AgentCore-managed secret of the existing provider my-google.
	googleSecret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bedrock-agentcore-identity!default/oauth2/my-google-??????"
	// oidcNameSecret is oidcFull's oidcClientSecretName as the policy names it.
	oidcNameSecret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:consentflow/oidc-client-??????"
)

func TestBindingCodeHasNoSignInPieces(t *testing.T) {
	for name, s := range map[string]*synthesized{"main": &main, "alt": &alt} {
		need(t, s)
		if got, want := routeKeys(s), []string{"GET " + contract.CallbackPath, "POST " + contract.CallbackPath}; !slices.Equal(got, want) {
			t.Errorf("%s: routes %v, want %v", name, got, want)
		}
		for _, fn := range []string{"Initiate", "Callback"} {
			env := envOf(t, s, fn)
			for _, k := range signInEnvKeys {
				if v, ok := env[k]; ok {
					t.Errorf("%s: %s has %s=%s without the setting", name, fn, k, v)
				}
			}
		}
		for _, role := range []string{"InitiateRole", "CallbackRole", "ResumerRole"} {
			for _, st := range roleStatements(t, s, role) {
				if st.sid == "ReadOIDCClientSecret" {
					t.Errorf("%s: %s has a sign-in client secret grant %v", name, role, st.resources)
				}
			}
		}
		for _, o := range []string{"LoginRedirectUri", "CustomDomainTarget"} {
			if v, ok := s.output(o); ok {
				t.Errorf("%s: output %s = %s without the setting", name, o, v)
			}
		}
		for _, typ := range []string{"AWS::ApiGatewayV2::DomainName", "AWS::ApiGatewayV2::ApiMapping"} {
			if n := len(s.resources(typ)); n != 0 {
				t.Errorf("%s: %d %s without a custom domain", name, n, typ)
			}
		}
		_, api := s.one(t, "AWS::ApiGatewayV2::Api", "CallbackApi")
		if v, ok := props(api)["DisableExecuteApiEndpoint"]; ok {
			t.Errorf("%s: DisableExecuteApiEndpoint = %v without a custom domain", name, v)
		}
	}
	// The secret grants stay the provider's only.
	stmts := roleStatements(t, &alt, "CallbackRole")
	if got, want := resourcesOf(stmts, "secretsmanager:GetSecretValue"), []string{"arn:aws:secretsmanager:us-east-1:123456789012:secret:bedrock-agentcore-identity!default/oauth2/corp-github-??????"}; !slices.Equal(got, want) {
		t.Errorf("alt: callback GetSecretValue on %v, want %v", got, want)
	}
}

func TestSignInRoutes(t *testing.T) {
	want := []string{"GET " + contract.CallbackPath, "GET " + contract.LoginCallbackPath,
		"POST " + contract.CallbackPath, "POST " + contract.LoginCallbackPath}
	sort.Strings(want)
	for name, s := range map[string]*synthesized{"oidcFull": &oidcFull, "oidcPublic": &oidcPublic, "oidcCode": &oidcCode} {
		need(t, s)
		if got := routeKeys(s); !slices.Equal(got, want) {
			t.Errorf("%s: routes %v, want %v", name, got, want)
		}
		callbackID, _ := s.one(t, "AWS::Lambda::Function", "Callback")
		for _, r := range s.resources("AWS::ApiGatewayV2::Route") {
			p := props(r)
			integID := strings.TrimSuffix(strings.TrimPrefix(str(p["Target"]), "integrations/{"), "}")
			integ, ok := s.resources("AWS::ApiGatewayV2::Integration")[integID]
			if !ok {
				t.Fatalf("%s: route %s targets %v, not an integration of the stack", name, p["RouteKey"], p["Target"])
			}
			ip := props(integ)
			if ip["IntegrationType"] != "AWS_PROXY" || ip["PayloadFormatVersion"] != "2.0" ||
				!strings.HasSuffix(str(ip["IntegrationUri"]), ":function:"+callbackID) {
				t.Errorf("%s: route %s integration %v, want the callback function (AWS_PROXY 2.0)", name, p["RouteKey"], ip)
			}
		}
		// One invoke permission per route, each scoped to its path.
		perPath := map[string]int{}
		for id, r := range s.resources("AWS::Lambda::Permission") {
			src := str(props(r)["SourceArn"])
			switch {
			case strings.HasSuffix(src, "/*/*"+contract.CallbackPath):
				perPath[contract.CallbackPath]++
			case strings.HasSuffix(src, "/*/*"+contract.LoginCallbackPath):
				perPath[contract.LoginCallbackPath]++
			default:
				t.Errorf("%s: permission %s: SourceArn %s is not scoped to a callback route", name, id, src)
			}
		}
		if perPath[contract.CallbackPath] != 2 || perPath[contract.LoginCallbackPath] != 2 {
			t.Errorf("%s: invoke permissions per path %v, want 2 each", name, perPath)
		}
	}
}

func TestSignInEnvironment(t *testing.T) {
	custom := func(host string) string { return "https://" + host + contract.CallbackPath }
	for _, tc := range []struct {
		name               string
		s                  *synthesized
		initiate, callback map[string]string
	}{
		{"oidcFull", &oidcFull, map[string]string{
			contract.EnvBindingMode:     "oidc",
			contract.EnvReturnURL:       custom("consent.example.com"),
			contract.EnvUserTokenIssuer: "https://example.eu.auth0.com/",
			contract.EnvEventBusName:    "consentflow",
		}, map[string]string{
			contract.EnvBindingMode:          "oidc",
			contract.EnvReturnURL:            custom("consent.example.com"),
			contract.EnvUserTokenCookie:      "id_token",
			contract.EnvOIDCIssuer:           "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
			contract.EnvOIDCClientID:         "4example5client6id",
			contract.EnvOIDCClientSecretName: "consentflow/oidc-client",
			contract.EnvOIDCUserClaim:        "email",
			contract.EnvOIDCUserPrefix:       "cognito|",
			contract.EnvOIDCPrompt:           "login",
			contract.EnvOIDCScopes:           "openid email",
			contract.EnvExternalSessions:     "true",
			contract.EnvUserTokenIssuer:      "https://example.eu.auth0.com/",
			contract.EnvUserTokenAudience:    "app-client-id",
		}},
		{"oidcPublic", &oidcPublic, map[string]string{
			contract.EnvBindingMode:  "oidc",
			contract.EnvReturnURL:    "{" + oidcPublic.apiID(t) + ".ApiEndpoint}" + contract.CallbackPath,
			contract.EnvEventBusName: "consentflow",
		}, map[string]string{
			// A public client: no secret; defaults for the claim and scopes; no prefix or
			// prompt; externalSessions=false sets nothing.
			contract.EnvBindingMode:     "oidc",
			contract.EnvReturnURL:       "{" + oidcPublic.apiID(t) + ".ApiEndpoint}" + contract.CallbackPath,
			contract.EnvUserTokenCookie: "id_token",
			contract.EnvOIDCIssuer:      "https://login.example.com",
			contract.EnvOIDCClientID:    "public-client",
			contract.EnvOIDCUserClaim:   contract.DefaultOIDCUserClaim,
			contract.EnvOIDCScopes:      contract.DefaultOIDCScopes,
		}},
		{"oidcCode", &oidcCode, map[string]string{
			contract.EnvBindingMode:  "oidc+code",
			contract.EnvReturnURL:    custom("auth.example.org"),
			contract.EnvEventBusName: "consentflow",
		}, map[string]string{
			contract.EnvBindingMode:          "oidc+code",
			contract.EnvReturnURL:            custom("auth.example.org"),
			contract.EnvUserTokenCookie:      "id_token",
			contract.EnvOIDCIssuer:           "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0",
			contract.EnvOIDCClientID:         "11111111-2222-3333-4444-555555555555",
			contract.EnvOIDCClientSecretName: oidcSecretARN,
			contract.EnvOIDCUserClaim:        contract.DefaultOIDCUserClaim,
			contract.EnvOIDCScopes:           contract.DefaultOIDCScopes,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			need(t, tc.s)
			tableID, _ := tc.s.one(t, "AWS::DynamoDB::Table", "Sessions")
			common := map[string]string{contract.EnvSessionsTable: "{" + tableID + "}", contract.EnvWorkloadName: "consentflow", "GOMAXPROCS": "1"}
			for fn, want := range map[string]map[string]string{"Initiate": merge2(common, tc.initiate), "Callback": merge2(common, tc.callback)} {
				if got := envOf(t, tc.s, fn); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s environment\n got %v\nwant %v", fn, got, want)
				}
			}
		})
	}
}

func merge2(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

func TestExternalSessions(t *testing.T) {
	for name, tc := range map[string]struct {
		s    *synthesized
		want bool
	}{"oidcFull (true)": {&oidcFull, true}, "oidcPublic (false)": {&oidcPublic, false}, "oidcCode (unset)": {&oidcCode, false}, "main": {&main, false}} {
		need(t, tc.s)
		v, ok := envOf(t, tc.s, "Callback")[contract.EnvExternalSessions]
		if tc.want && v != "true" || !tc.want && ok {
			t.Errorf("%s: %s = %q (set %v), want set=%v", name, contract.EnvExternalSessions, v, ok, tc.want)
		}
	}
}

func TestSignInClientSecretGrant(t *testing.T) {
	for name, tc := range map[string]struct {
		s    *synthesized
		want string // the sign-in client secret's ARN in the policy, "" for none
	}{
		"by name":       {&oidcFull, oidcNameSecret},
		"by ARN":        {&oidcCode, oidcSecretARN},
		"public client": {&oidcPublic, ""},
	} {
		t.Run(name, func(t *testing.T) {
			need(t, tc.s)
			stmts := roleStatements(t, tc.s, "CallbackRole")
			var grant []stmt
			for _, st := range stmts {
				if st.sid == "ReadOIDCClientSecret" {
					grant = append(grant, st)
				}
			}
			want := []string{googleSecret}
			if tc.want == "" {
				if len(grant) != 0 {
					t.Errorf("a public client's stack grants %v", grant)
				}
			} else {
				want = append(want, tc.want)
				if len(grant) != 1 || !slices.Equal(grant[0].actions, []string{"secretsmanager:GetSecretValue"}) || !slices.Equal(grant[0].resources, []string{tc.want}) {
					t.Errorf("ReadOIDCClientSecret = %+v, want GetSecretValue on exactly %s", grant, tc.want)
				}
			}
			sort.Strings(want)
			if got := resourcesOf(stmts, "secretsmanager:GetSecretValue"); !slices.Equal(got, want) {
				t.Errorf("callback GetSecretValue on\n %v\nwant %v", got, want)
			}
			// Only the callback signs users in.
			for _, role := range []string{"InitiateRole", "ResumerRole"} {
				if got := resourcesOf(roleStatements(t, tc.s, role), "secretsmanager:GetSecretValue"); tc.want != "" && slices.Contains(got, tc.want) {
					t.Errorf("%s may read the sign-in client secret", role)
				}
			}
		})
	}
}

func TestJWTCookieBinding(t *testing.T) {
	need(t, &oidcFull)
	cb, in := envOf(t, &oidcFull, "Callback"), envOf(t, &oidcFull, "Initiate")
	if cb[contract.EnvUserTokenIssuer] != "https://example.eu.auth0.com/" || cb[contract.EnvUserTokenAudience] != "app-client-id" {
		t.Errorf("callback user token settings %q %q", cb[contract.EnvUserTokenIssuer], cb[contract.EnvUserTokenAudience])
	}
	if in[contract.EnvUserTokenIssuer] != "https://example.eu.auth0.com/" {
		t.Errorf("initiate %s = %q: it refuses userToken input without it", contract.EnvUserTokenIssuer, in[contract.EnvUserTokenIssuer])
	}
	if _, ok := in[contract.EnvUserTokenAudience]; ok {
		t.Errorf("initiate has %s; only the callback verifies the JWT", contract.EnvUserTokenAudience)
	}
	// Without a custom domain the callback would never see the application's cookie.
	if jwtNoDomain.err == nil || !strings.Contains(jwtNoDomain.err.Error(), "execute-api.amazonaws.com host") ||
		!strings.Contains(jwtNoDomain.err.Error(), CtxDomainName) || !strings.Contains(jwtNoDomain.err.Error(), CtxCertificateArn) {
		t.Errorf("JWT-cookie binding without a custom domain: synthesis error %v, want one naming %s and %s", jwtNoDomain.err, CtxDomainName, CtxCertificateArn)
	}
}

func TestCustomDomain(t *testing.T) {
	for name, tc := range map[string]struct {
		s          *synthesized
		host, cert string
	}{
		"oidcFull": {&oidcFull, "consent.example.com", "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"},
		"oidcCode": {&oidcCode, "auth.example.org", "arn:aws:acm:us-east-1:123456789012:certificate/abc"},
	} {
		t.Run(name, func(t *testing.T) {
			s := tc.s
			need(t, s)
			domainID, domain := s.one(t, "AWS::ApiGatewayV2::DomainName", "CallbackDomain")
			dp := props(domain)
			wantConf := []any{map[string]any{"CertificateArn": tc.cert, "EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"}}
			if dp["DomainName"] != tc.host || fmt.Sprint(dp["DomainNameConfigurations"]) != fmt.Sprint(wantConf) {
				t.Errorf("domain name %v %v, want %s %v", dp["DomainName"], dp["DomainNameConfigurations"], tc.host, wantConf)
			}
			_, mapping := s.one(t, "AWS::ApiGatewayV2::ApiMapping", "CallbackApiMapping")
			mp := resolve(props(mapping)).(map[string]any)
			if mp["ApiId"] != "{"+s.apiID(t)+"}" || mp["DomainName"] != "{"+domainID+"}" || mp["Stage"] != "$default" || mp["ApiMappingKey"] != nil {
				t.Errorf("API mapping %v, want the API's $default stage at the domain's root", mp)
			}
			_, api := s.one(t, "AWS::ApiGatewayV2::Api", "CallbackApi")
			if props(api)["DisableExecuteApiEndpoint"] != true {
				t.Errorf("DisableExecuteApiEndpoint = %v, want true with a custom domain", props(api)["DisableExecuteApiEndpoint"])
			}

			// Every URL handed out is on the custom domain.
			callbackURL := "https://" + tc.host + contract.CallbackPath
			if got, _ := s.output("CallbackUrl"); got != callbackURL {
				t.Errorf("CallbackUrl output = %s, want %s", got, callbackURL)
			}
			for _, fn := range []string{"Initiate", "Callback"} {
				if got := envOf(t, s, fn)[contract.EnvReturnURL]; got != callbackURL {
					t.Errorf("%s %s = %s, want %s", fn, contract.EnvReturnURL, got, callbackURL)
				}
			}
			_, wi := s.one(t, "AWS::BedrockAgentCore::WorkloadIdentity", "Workload")
			if urls, _ := resolve(props(wi)["AllowedResourceOauth2ReturnUrls"]).([]any); len(urls) != 1 || urls[0] != callbackURL {
				t.Errorf("AllowedResourceOauth2ReturnUrls = %v, want [%s]", urls, callbackURL)
			}
			if got, _ := s.output("LoginRedirectUri"); got != "https://"+tc.host+contract.LoginCallbackPath {
				t.Errorf("LoginRedirectUri output = %s", got)
			}
			if got, _ := s.output("CustomDomainTarget"); got != "{"+domainID+".RegionalDomainName}" {
				t.Errorf("CustomDomainTarget output = %s, want the domain's RegionalDomainName", got)
			}
			// Nothing names the disabled execute-api endpoint.
			raw, _ := json.Marshal(s.json)
			if strings.Contains(string(raw), `"ApiEndpoint"]`) {
				t.Error("the template references the API's execute-api endpoint, which is disabled")
			}
		})
	}
}

func TestLoginRedirectUriWithoutCustomDomain(t *testing.T) {
	need(t, &oidcPublic)
	endpoint := "{" + oidcPublic.apiID(t) + ".ApiEndpoint}"
	if got, _ := oidcPublic.output("LoginRedirectUri"); got != endpoint+contract.LoginCallbackPath {
		t.Errorf("LoginRedirectUri = %s, want %s", got, endpoint+contract.LoginCallbackPath)
	}
	if got, _ := oidcPublic.output("CallbackUrl"); got != endpoint+contract.CallbackPath {
		t.Errorf("CallbackUrl = %s", got)
	}
	if v, ok := oidcPublic.output("CustomDomainTarget"); ok {
		t.Errorf("CustomDomainTarget = %s without a custom domain", v)
	}
}

func TestCertificateRegion(t *testing.T) {
	// oidcCode deploys to us-east-1 with a us-east-1 certificate; certElsewhere to eu-west-1.
	need(t, &oidcCode)
	want := "context certificateArn is in Region us-east-1 but the stack deploys to eu-west-1"
	if certElsewhere.err == nil || !strings.Contains(certElsewhere.err.Error(), want) {
		t.Errorf("synthesis error %v, want one containing %q", certElsewhere.err, want)
	}
}

// Sessions of external agents: CompleteResourceTokenAuth on exactly their workload identities and
// providers (and the vault and directory), their providers' AgentCore-managed secrets; nothing
// of the kind without externalAgents.
func TestExternalAgentGrants(t *testing.T) {
	need(t, &oidcFull)
	arn := func(r string) string { return "arn:aws:bedrock-agentcore:us-east-1:123456789012:" + r }
	var complete, secrets []stmt
	for _, st := range roleStatements(t, &oidcFull, "CallbackRole") {
		switch st.sid {
		case "CompleteExternalSessions":
			complete = append(complete, st)
		case "ReadExternalProviderSecrets":
			secrets = append(secrets, st)
		}
	}
	want := []string{arn("token-vault/default"), arn("workload-identity-directory/default"),
		arn("workload-identity-directory/default/workload-identity/agent_one"),
		arn("workload-identity-directory/default/workload-identity/agent-two"),
		arn("token-vault/default/oauth2credentialprovider/my-google")}
	sort.Strings(want)
	if len(complete) != 1 || !slices.Equal(complete[0].actions, []string{"bedrock-agentcore:CompleteResourceTokenAuth"}) || !slices.Equal(complete[0].resources, want) {
		t.Errorf("CompleteExternalSessions = %+v\nwant resources %v", complete, want)
	}
	if len(secrets) != 1 || !slices.Equal(secrets[0].resources, []string{googleSecret}) {
		t.Errorf("ReadExternalProviderSecrets = %+v", secrets)
	}
	for name, s := range map[string]*synthesized{"main": &main, "oidcPublic": &oidcPublic} {
		need(t, s)
		for _, st := range roleStatements(t, s, "CallbackRole") {
			if st.sid == "CompleteExternalSessions" || st.sid == "ReadExternalProviderSecrets" {
				t.Errorf("%s grants %s without externalAgents", name, st.sid)
			}
		}
	}
}
