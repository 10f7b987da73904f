package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/jsii-runtime-go"

	"github.com/consentflow/consentflow/infra/gobuild"
	"github.com/consentflow/consentflow/internal/contract"
)

// One jsii runtime for the whole test binary: every synthesis happens in TestMain, the tests
// only read the results, and jsii.Close runs once at the end.

// synthesized is one synthesized variant of the stack.
type synthesized struct {
	cf          *ConsentFlow
	tmpl        assertions.Template
	json        map[string]any
	annotations assertions.Annotations
	outdir      string
	err         error // a panic during definition or synthesis (validation failures land here)
}

var (
	// main: a new Google credential provider, the default options, default-rule validation as
	// errors, cdk-nag AwsSolutions.
	main synthesized
	// alt: an existing provider, the default event bus, binding mode none, removal destroy,
	// application return URLs (returnto_test.go).
	alt synthesized
	// oidcFull: binding mode oidc with a client secret by name, every sign-in option,
	// external sessions, JWT-cookie binding and a custom domain (certificate in eu-west-1,
	// environment-agnostic stack: the Region is not known at synthesis).
	oidcFull synthesized
	// oidcPublic: binding mode oidc, a public client (no secret), externalSessions false, no
	// custom domain.
	oidcPublic synthesized
	// oidcCode: binding mode oidc+code, the client secret by ARN, a custom domain, and a stack
	// in us-east-1 (the certificate's Region, checked at synthesis).
	oidcCode synthesized
	// connectArn: an Amazon Connect instance by ARN, in another Region than the stack's
	// (environment-agnostic stack); connectID: an instance by id, binding mode oidc, a stack
	// with a known account and Region (connect_test.go); connectOtherAccount: an ARN of another
	// account than the stack's, which must fail to synthesize.
	connectArn, connectID, connectOtherAccount synthesized
	// agents: an existing provider and two agent runtimes the ContinueAgent step may invoke.
	agents synthesized
	// jwtNoDomain is JWT-cookie binding without a custom domain; certElsewhere a stack in
	// eu-west-1 with a us-east-1 certificate. Both must fail to synthesize.
	jwtNoDomain, certElsewhere synthesized
	// canaryErr is the synthesis error of a stack with a deliberate schema error, under the
	// same validation setting: proof that the default-rule validation runs in these syntheses.
	canaryErr error

	mainContext = map[string]any{
		"@aws-cdk/core:validateAgainstDefaultRules": true,
		CtxOAuth2Provider: map[string]any{
			"vendor":          "google",
			"clientId":        "1234-example.apps.googleusercontent.com",
			"clientSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:consentflow/google-AbCdEf",
		},
	}
	altContext = map[string]any{
		"@aws-cdk/core:validateAgainstDefaultRules": true,
		CtxCredentialProviderName:                   "corp-github",
		CtxUseDefaultEventBus:                       "true", // as `-c useDefaultEventBus=true` passes it
		CtxBindingMode:                              "none",
		CtxRemovalPolicy:                            "destroy",
		CtxStateMachineName:                         "AuthorizeUserStaging",
		CtxWorkloadName:                             "consentflow-staging",
		CtxAppReturnURLs:                            altAppReturnURLs, // as `-c appReturnUrls=...` passes it
	}
	oidcFullContext = map[string]any{
		"@aws-cdk/core:validateAgainstDefaultRules": true,
		CtxCredentialProviderName:                   "my-google",
		CtxBindingMode:                              contract.BindingOIDC,
		CtxOIDCIssuer:                               "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123",
		CtxOIDCClientID:                             "4example5client6id",
		CtxOIDCClientSecretName:                     "consentflow/oidc-client",
		CtxOIDCUserClaim:                            "email",
		CtxOIDCUserPrefix:                           "cognito|",
		CtxOIDCPrompt:                               "login",
		CtxOIDCScopes:                               []any{"openid", "email"},
		CtxExternalSessions:                         true,
		CtxExternalAgents:                           []any{"agent_one/my-google", "agent-two/my-google"},
		CtxUserTokenIssuer:                          "https://example.eu.auth0.com/",
		CtxUserTokenAudience:                        "app-client-id",
		CtxDomainName:                               "consent.example.com",
		CtxCertificateArn:                           "arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
	}
	oidcPublicContext = map[string]any{
		"@aws-cdk/core:validateAgainstDefaultRules": true,
		CtxCredentialProviderName:                   "my-google",
		CtxBindingMode:                              contract.BindingOIDC,
		CtxOIDCIssuer:                               "https://login.example.com",
		CtxOIDCClientID:                             "public-client",
		CtxExternalSessions:                         "false",
	}
	oidcCodeContext = map[string]any{
		"@aws-cdk/core:validateAgainstDefaultRules": true,
		CtxCredentialProviderName:                   "my-google",
		CtxBindingMode:                              contract.BindingOIDCCode,
		CtxOIDCIssuer:                               "https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0",
		CtxOIDCClientID:                             "11111111-2222-3333-4444-555555555555",
		CtxOIDCClientSecretName:                     oidcSecretARN,
		CtxDomainName:                               "auth.example.org",
		CtxCertificateArn:                           "arn:aws:acm:us-east-1:123456789012:certificate/abc",
	}
	agentsContext = map[string]any{
		"@aws-cdk/core:validateAgainstDefaultRules": true,
		CtxCredentialProviderName:                   "my-google",
		CtxAgentRuntimeARNs:                         []any{runtimeA, runtimeB},
	}
	jwtNoDomainContext = map[string]any{
		CtxCredentialProviderName: "my-google",
		CtxUserTokenIssuer:        "https://example.eu.auth0.com/",
		CtxUserTokenAudience:      "app-client-id",
	}
	certElsewhereContext = map[string]any{
		CtxCredentialProviderName: "my-google",
		CtxDomainName:             "auth.example.org",
		CtxCertificateArn:         "arn:aws:acm:us-east-1:123456789012:certificate/abc",
	}
)

const oidcSecretARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:consentflow/entra-AbCdEf"

const (
	runtimeA = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/calendar_agent-a1B2c3D4e5"
	// runtimeB is an endpoint ARN: it allows the runtime's "prod" endpoint only.
	runtimeB = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/mail_agent-f6G7h8I9j0/runtime-endpoint/prod"
)

// variants are the stacks that synthesize, by name.
func variants() map[string]*synthesized {
	return map[string]*synthesized{"main": &main, "alt": &alt, "oidcFull": &oidcFull, "oidcPublic": &oidcPublic, "oidcCode": &oidcCode,
		"connectArn": &connectArn, "connectID": &connectID, "agents": &agents}
}

func TestMain(m *testing.M) {
	code := func() int {
		b, err := gobuild.NewBuilder("")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer b.Cleanup()
		// A stand-in function: the stack does not care what the binary does, and the tests stay
		// independent of ./functions compiling at this moment. main.go builds the real ones.
		code, err := b.BuildPackage("./infra/gobuild/testdata/hello", "hello")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		base, err := cdkJSONContext()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		// Each variant synthesizes with cdk.json's context (feature flags, defaults) under its own
		// keys, as `npx cdk synth -c key=value` would.
		main = synth(merge(base, mainContext), code, nil)
		alt = synth(merge(base, altContext), code, nil)
		oidcFull = synth(merge(base, oidcFullContext), code, nil)
		oidcPublic = synth(merge(base, oidcPublicContext), code, nil)
		oidcCode = synth(merge(base, oidcCodeContext), code, &awscdk.Environment{Region: jsii.String("us-east-1")})
		connectArn = synth(merge(base, connectArnContext), code, nil)
		connectID = synth(merge(base, connectIDContext), code, &awscdk.Environment{Account: jsii.String(connectStackAccount), Region: jsii.String("eu-central-1")})
		connectOtherAccount = synth(merge(base, connectArnContext), code, &awscdk.Environment{Account: jsii.String(connectStackAccount), Region: jsii.String("eu-west-2")})
		agents = synth(merge(base, agentsContext), code, nil)
		jwtNoDomain = synth(merge(base, jwtNoDomainContext), code, nil)
		certElsewhere = synth(merge(base, certElsewhereContext), code, &awscdk.Environment{Region: jsii.String("eu-west-1")})
		canaryErr = synthCanary()
		for _, s := range []*synthesized{&main, &alt, &oidcFull, &oidcPublic, &oidcCode, &agents, &jwtNoDomain, &certElsewhere,
			&connectArn, &connectID, &connectOtherAccount} {
			defer os.RemoveAll(s.outdir)
		}
		return m.Run()
	}()
	jsii.Close()
	os.Exit(code)
}

func synth(ctx map[string]any, codeDir string, env *awscdk.Environment) (s synthesized) {
	dir, err := os.MkdirTemp("", "consentflow-cdk-out-")
	if err != nil {
		s.err = err
		return
	}
	s.outdir = dir
	s.err = catch(func() {
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir), Context: &ctx})
		cfg, err := LoadConfig(func(k string) any { return app.Node().TryGetContext(jsii.String(k)) })
		if err != nil {
			panic(err)
		}
		s.cf = New(app, "ConsentFlow", &Props{StackProps: awscdk.StackProps{Env: env}, Config: cfg,
			InitiateCodeDir: codeDir, CallbackCodeDir: codeDir, ResumerCodeDir: codeDir, ContinueCodeDir: codeDir})
		EnableNag(app)
		s.tmpl = assertions.Template_FromStack(s.cf.Stack, nil)
		s.annotations = assertions.Annotations_FromStack(s.cf.Stack)
		s.json = *s.tmpl.ToJSON()
	})
	return s
}

// cdkJSONContext reads the "context" object of the repository's cdk.json.
func cdkJSONContext() (map[string]any, error) {
	root, err := gobuild.ModuleRoot(".")
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(filepath.Join(root, "cdk.json"))
	if err != nil {
		return nil, err
	}
	var c struct {
		App     string         `json:"app"`
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("cdk.json: %w", err)
	}
	if c.App != "go run ./infra" {
		return nil, fmt.Errorf("cdk.json: app is %q, want \"go run ./infra\"", c.App)
	}
	return c.Context, nil
}

func merge(maps ...map[string]any) map[string]any {
	out := map[string]any{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func synthCanary() error {
	dir, err := os.MkdirTemp("", "consentflow-cdk-canary-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	return catch(func() {
		app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir), Context: &map[string]any{
			"@aws-cdk/core:validateAgainstDefaultRules": true,
		}})
		s := awscdk.NewStack(app, jsii.String("Canary"), nil)
		awscdk.NewCfnResource(s, jsii.String("Bad"), &awscdk.CfnResourceProps{
			Type: jsii.String("AWS::DynamoDB::Table"),
			Properties: &map[string]any{
				// KeySchema is required: a schema error (E3003), not a warning.
				"AttributeDefinitions": []any{map[string]any{"AttributeName": "pk", "AttributeType": "S"}},
				"BillingMode":          "PAY_PER_REQUEST",
			},
		})
		app.Synth(nil)
	})
}

// catch turns a panic (jsii errors, failing assertions) into an error.
func catch(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	f()
	return nil
}

// check runs assertions that panic on failure and reports the failure through t.
func check(t *testing.T, what string, f func()) {
	t.Helper()
	if err := catch(f); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func need(t *testing.T, s *synthesized) {
	t.Helper()
	if s.err != nil {
		t.Fatalf("synthesis failed: %v", s.err)
	}
}

// resources returns the template's resources of type typ by logical id.
func (s *synthesized) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.json["Resources"].(map[string]any) {
		if r := r.(map[string]any); r["Type"] == typ {
			out[id] = r
		}
	}
	return out
}

// one returns the single resource of type typ whose logical id starts with prefix.
func (s *synthesized) one(t *testing.T, typ, prefix string) (string, map[string]any) {
	t.Helper()
	var ids []string
	for id := range s.resources(typ) {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("want one %s with logical id %s*, have %v", typ, prefix, ids)
	}
	return ids[0], s.resources(typ)[ids[0]]
}

func props(r map[string]any) map[string]any { return r["Properties"].(map[string]any) }

// resolve evaluates the intrinsic functions of a template value with placeholder values, so
// tests can compare ARNs and definitions as plain strings.
func resolve(v any) any {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 1 {
			for k, arg := range t {
				switch k {
				case "Ref":
					switch arg {
					case "AWS::Partition":
						return "aws"
					case "AWS::Region":
						return "us-east-1"
					case "AWS::AccountId":
						return "123456789012"
					case "AWS::URLSuffix":
						return "amazonaws.com"
					}
					return "{" + arg.(string) + "}"
				case "Fn::GetAtt":
					a := arg.([]any)
					if a[1] == "Arn" {
						return "arn:aws:lambda:us-east-1:123456789012:function:" + a[0].(string)
					}
					return "{" + a[0].(string) + "." + a[1].(string) + "}"
				case "Fn::Join":
					a := arg.([]any)
					var parts []string
					for _, p := range a[1].([]any) {
						parts = append(parts, fmt.Sprint(resolve(p)))
					}
					return strings.Join(parts, a[0].(string))
				}
			}
		}
		out := map[string]any{}
		for k, x := range t {
			out[k] = resolve(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = resolve(x)
		}
		return out
	}
	return v
}

func str(v any) string { return fmt.Sprint(resolve(v)) }

// --- synthesis-level checks -------------------------------------------------------------------

func TestSynthesisPassesDefaultRuleValidationAsErrors(t *testing.T) {
	// Both variants synthesize with @aws-cdk/core:validateAgainstDefaultRules=true, which turns
	// every CloudFormation Validate finding (schema, linting, F3004 dependency cycles) into a
	// synthesis error.
	for name, s := range variants() {
		if s.err != nil {
			t.Errorf("%s: synthesis with validateAgainstDefaultRules=true failed: %v", name, s.err)
		}
	}
	if canaryErr == nil {
		t.Error("a stack with a table without KeySchema synthesized without error: default-rule validation is not active, so the check above proves nothing")
	} else if !strings.Contains(canaryErr.Error(), "Validation failed") {
		t.Errorf("canary failed for another reason than validation: %v", canaryErr)
	}
	for name, s := range variants() {
		need(t, s)
		raw, err := os.ReadFile(filepath.Join(s.outdir, "validation-report.json"))
		if err != nil {
			t.Fatalf("%s: validation report: %v", name, err)
		}
		var report struct {
			PluginReports []struct {
				PluginName string           `json:"pluginName"`
				Violations []map[string]any `json:"violations"`
			} `json:"pluginReports"`
		}
		if err := json.Unmarshal(raw, &report); err != nil {
			t.Fatalf("%s: validation report: %v", name, err)
		}
		for _, r := range report.PluginReports {
			for _, v := range r.Violations {
				t.Errorf("%s: %s: %v", name, r.PluginName, v)
			}
		}
	}
}

func TestCdkNagAwsSolutionsHasNoUnsuppressedErrors(t *testing.T) {
	for name, s := range variants() {
		need(t, s)
		var errs []string
		check(t, name+" annotations", func() {
			for _, m := range *s.annotations.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
				errs = append(errs, fmt.Sprintf("%s: %v", *m.Id, m.Entry.Data))
			}
		})
		if len(errs) > 0 {
			t.Errorf("%s: unsuppressed cdk-nag errors:\n%s", name, strings.Join(errs, "\n"))
		}
	}
}

func TestEveryNagSuppressionHasAReason(t *testing.T) {
	need(t, &main)
	n := 0
	for id, r := range main.json["Resources"].(map[string]any) {
		md, _ := r.(map[string]any)["Metadata"].(map[string]any)
		nag, _ := md["cdk_nag"].(map[string]any)
		rules, _ := nag["rules_to_suppress"].([]any)
		for _, rule := range rules {
			rule := rule.(map[string]any)
			n++
			if reason, _ := rule["reason"].(string); len(strings.TrimSpace(reason)) < 20 {
				t.Errorf("%s: suppression of %v has no real reason: %q", id, rule["id"], reason)
			}
		}
	}
	if n == 0 {
		t.Error("no cdk-nag suppressions found in the template metadata; expected the documented ones")
	}
}

func TestCdkJSONDefaultsMatchLoadConfig(t *testing.T) {
	base, err := cdkJSONContext()
	if err != nil {
		t.Fatal(err)
	}
	if base["@aws-cdk/core:validateAgainstDefaultRules"] != true {
		t.Error("cdk.json must set @aws-cdk/core:validateAgainstDefaultRules to true")
	}
	if base[CtxOAuth2Provider] != nil || base[CtxCredentialProviderName] != nil {
		t.Error("cdk.json must not default the credential provider: a deploy has to name one")
	}
	get := func(m map[string]any) func(string) any { return func(k string) any { return m[k] } }
	provider := map[string]any{CtxCredentialProviderName: "p"}
	fromFile, err := LoadConfig(get(merge(base, provider)))
	if err != nil {
		t.Fatalf("cdk.json context is invalid: %v", err)
	}
	builtIn, _ := LoadConfig(get(provider))
	if !reflect.DeepEqual(fromFile, builtIn) {
		t.Errorf("cdk.json defaults differ from LoadConfig's:\n cdk.json %+v\n built-in %+v", fromFile, builtIn)
	}
}

// --- DynamoDB -----------------------------------------------------------------------------------

func TestSessionsTable(t *testing.T) {
	need(t, &main)
	check(t, "table", func() {
		main.tmpl.ResourceCountIs(jsii.String("AWS::DynamoDB::Table"), jsii.Number(1))
		main.tmpl.HasResource(jsii.String("AWS::DynamoDB::Table"), map[string]any{
			"DeletionPolicy":      "Retain",
			"UpdateReplacePolicy": "Retain",
			"Properties": map[string]any{
				"KeySchema":                        []any{map[string]any{"AttributeName": "pk", "KeyType": "HASH"}},
				"AttributeDefinitions":             []any{map[string]any{"AttributeName": "pk", "AttributeType": "S"}},
				"BillingMode":                      "PAY_PER_REQUEST",
				"TimeToLiveSpecification":          map[string]any{"AttributeName": "ttl", "Enabled": true},
				"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
			},
		})
	})
	need(t, &alt)
	check(t, "alt table removal policy destroy", func() {
		alt.tmpl.HasResource(jsii.String("AWS::DynamoDB::Table"), map[string]any{"DeletionPolicy": "Delete"})
	})
}

// --- Lambda -------------------------------------------------------------------------------------

func TestFunctions(t *testing.T) {
	need(t, &main)
	tableID, _ := main.one(t, "AWS::DynamoDB::Table", "Sessions")
	for _, fn := range []struct {
		prefix  string
		timeout float64
		env     map[string]string
	}{
		{"Initiate", 15, map[string]string{
			"SESSIONS_TABLE": "{" + tableID + "}",
			"WORKLOAD_NAME":  "consentflow",
			"RETURN_URL":     "{" + apiID(t) + ".ApiEndpoint}/oauth2/callback",
			"EVENT_BUS_NAME": "consentflow",
			"BINDING_MODE":   "code",
			"GOMAXPROCS":     "1",
		}},
		{"Callback", 10, map[string]string{
			"SESSIONS_TABLE":    "{" + tableID + "}",
			"WORKLOAD_NAME":     "consentflow",
			"RETURN_URL":        "{" + apiID(t) + ".ApiEndpoint}/oauth2/callback",
			"BINDING_MODE":      "code",
			"USER_TOKEN_COOKIE": "id_token",
			"GOMAXPROCS":        "1",
		}},
	} {
		t.Run(fn.prefix, func(t *testing.T) {
			_, r := main.one(t, "AWS::Lambda::Function", fn.prefix)
			p := props(r)
			want := map[string]any{
				"Runtime": "provided.al2023", "Handler": "bootstrap", "Architectures": []any{"arm64"},
				"MemorySize": float64(256), "Timeout": fn.timeout, "TracingConfig": map[string]any{"Mode": "Active"},
			}
			for k, v := range want {
				if got := p[k]; fmt.Sprint(got) != fmt.Sprint(v) {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
			lc, _ := p["LoggingConfig"].(map[string]any)
			if lc["LogFormat"] != "JSON" {
				t.Errorf("LoggingConfig.LogFormat = %v, want JSON", lc["LogFormat"])
			}
			lgRef := str(lc["LogGroup"])
			lgID := strings.Trim(lgRef, "{}")
			lg, ok := main.resources("AWS::Logs::LogGroup")[lgID]
			if !ok {
				t.Fatalf("LoggingConfig.LogGroup %s is not a log group of the stack", lgRef)
			}
			if props(lg)["RetentionInDays"] != float64(30) {
				t.Errorf("log group retention = %v, want 30", props(lg)["RetentionInDays"])
			}
			vars := resolve(p["Environment"].(map[string]any)["Variables"]).(map[string]any)
			got := map[string]string{}
			for k, v := range vars {
				got[k] = fmt.Sprint(v)
			}
			if fmt.Sprint(got) != fmt.Sprint(fn.env) {
				t.Errorf("environment\n got %v\nwant %v", got, fn.env)
			}
			if _, ok := p["Code"].(map[string]any)["S3Key"]; !ok {
				t.Errorf("Code is not an asset: %v", p["Code"])
			}
		})
	}
	need(t, &alt)
	_, r := alt.one(t, "AWS::Lambda::Function", "Initiate")
	vars := resolve(props(r)["Environment"].(map[string]any)["Variables"]).(map[string]any)
	if vars["EVENT_BUS_NAME"] != "default" || vars["BINDING_MODE"] != "none" || vars["WORKLOAD_NAME"] != "consentflow-staging" {
		t.Errorf("alt initiate environment = %v", vars)
	}
}

// TestFunctionsRunWithOneP: both Go functions, in every configuration,
// run with GOMAXPROCS=1 (see goMaxProcs).
func TestFunctionsRunWithOneP(t *testing.T) {
	for _, st := range variants() {
		need(t, st)
		for _, prefix := range []string{"Initiate", "Callback"} {
			_, r := st.one(t, "AWS::Lambda::Function", prefix)
			vars := resolve(props(r)["Environment"].(map[string]any)["Variables"]).(map[string]any)
			if vars["GOMAXPROCS"] != "1" {
				t.Errorf("%s: GOMAXPROCS = %v, want 1", prefix, vars["GOMAXPROCS"])
			}
		}
	}
}

func apiID(t *testing.T) string {
	id, _ := main.one(t, "AWS::ApiGatewayV2::Api", "CallbackApi")
	return id
}

// --- HTTP API -----------------------------------------------------------------------------------

func TestCallbackRoutes(t *testing.T) {
	need(t, &main)
	var keys []string
	for _, r := range main.resources("AWS::ApiGatewayV2::Route") {
		p := props(r)
		keys = append(keys, p["RouteKey"].(string))
		target := str(p["Target"])
		integID := strings.TrimSuffix(strings.TrimPrefix(target, "integrations/{"), "}")
		integ, ok := main.resources("AWS::ApiGatewayV2::Integration")[integID]
		if !ok {
			t.Fatalf("route %s targets %s, not an integration of the stack", p["RouteKey"], target)
		}
		ip := props(integ)
		if ip["IntegrationType"] != "AWS_PROXY" || ip["PayloadFormatVersion"] != "2.0" {
			t.Errorf("integration %s: type %v payload %v, want AWS_PROXY 2.0", integID, ip["IntegrationType"], ip["PayloadFormatVersion"])
		}
		callbackID, _ := main.one(t, "AWS::Lambda::Function", "Callback")
		if u := str(ip["IntegrationUri"]); !strings.HasSuffix(u, ":function:"+callbackID) {
			t.Errorf("integration %s calls %s, want the callback function", integID, u)
		}
	}
	sort.Strings(keys)
	if want := []string{"GET /oauth2/callback", "POST /oauth2/callback"}; !slices.Equal(keys, want) {
		t.Errorf("routes = %v, want %v", keys, want)
	}
	// API Gateway may invoke the callback function only from these routes.
	for id, r := range main.resources("AWS::Lambda::Permission") {
		if src := str(props(r)["SourceArn"]); !strings.Contains(src, "/oauth2/callback") {
			t.Errorf("permission %s: SourceArn %s is not scoped to the callback route", id, src)
		}
	}
}

func TestCallbackStage(t *testing.T) {
	need(t, &main)
	_, stage := main.one(t, "AWS::ApiGatewayV2::Stage", "CallbackApi")
	p := props(stage)
	if p["StageName"] != "$default" || p["AutoDeploy"] != true {
		t.Errorf("stage %v autodeploy %v, want $default true", p["StageName"], p["AutoDeploy"])
	}
	rs, _ := p["DefaultRouteSettings"].(map[string]any)
	if rs["ThrottlingBurstLimit"] != float64(50) || rs["ThrottlingRateLimit"] != float64(20) {
		t.Errorf("DefaultRouteSettings = %v, want burst 50 rate 20", rs)
	}
	al, _ := p["AccessLogSettings"].(map[string]any)
	if dest := str(al["DestinationArn"]); !strings.Contains(dest, "CallbackApiAccessLogs") {
		t.Errorf("access logs go to %s, want the CallbackApiAccessLogs log group", dest)
	}
	format, _ := al["Format"].(string)
	var fields map[string]string
	if err := json.Unmarshal([]byte(format), &fields); err != nil {
		t.Fatalf("access log format is not one JSON object: %v\n%s", err, format)
	}
	for _, need := range []string{"$context.requestId", "$context.routeKey", "$context.status", "$context.identity.sourceIp"} {
		if !strings.Contains(format, need) {
			t.Errorf("access log format lacks %s", need)
		}
	}
	// Nothing that carries the query string (session_id, state) or the body (code).
	forbidden := regexp.MustCompile(`(?i)requestUri|querystring|\$request\.|\$input|rawQuery|\$context\.authorizer|\$context\.requestOverride|body`)
	if m := forbidden.FindString(format); m != "" {
		t.Errorf("access log format contains %q, which can carry the query string or body", m)
	}
}

// --- EventBridge --------------------------------------------------------------------------------

func TestEventBus(t *testing.T) {
	need(t, &main)
	check(t, "bus", func() {
		main.tmpl.HasResourceProperties(jsii.String("AWS::Events::EventBus"), map[string]any{"Name": "consentflow"})
	})
	need(t, &alt)
	check(t, "alt uses the default bus", func() {
		alt.tmpl.ResourceCountIs(jsii.String("AWS::Events::EventBus"), jsii.Number(0))
	})
	for _, role := range []string{"InitiateRole", "ResumerRole"} {
		stmts := roleStatements(t, &alt, role)
		if got := resourcesOf(stmts, "events:PutEvents"); !slices.Equal(got, []string{"arn:aws:events:us-east-1:123456789012:event-bus/default"}) {
			t.Errorf("alt %s PutEvents resources = %v", role, got)
		}
		_, fn := alt.one(t, "AWS::Lambda::Function", strings.TrimSuffix(role, "Role"))
		if v := resolve(props(fn)["Environment"].(map[string]any)["Variables"]).(map[string]any)[contract.EnvEventBusName]; v != "default" {
			t.Errorf("alt %s %s = %v, want default", role, contract.EnvEventBusName, v)
		}
	}
	// The callback publishes nothing.
	if got := resourcesOf(roleStatements(t, &main, "CallbackRole"), "events:PutEvents"); len(got) != 0 {
		t.Errorf("callback PutEvents on %v", got)
	}

	// Only the initiate role may publish AuthorizationRequired, and only the resumer role the
	// other consentflow events, on the stack's bus.
	initiateID, _ := main.one(t, "AWS::IAM::Role", "InitiateRole")
	resumerID, _ := main.one(t, "AWS::IAM::Role", "ResumerRole")
	pols := map[string]string{}
	for _, pol := range main.resources("AWS::Events::EventBusPolicy") {
		st, _ := json.Marshal(resolve(props(pol)["Statement"]))
		pols[strings.TrimPrefix(fmt.Sprint(props(pol)["StatementId"]), "cdk-")] = string(st)
	}
	for sid, wants := range map[string][]string{
		"OnlyInitiatePublishesAuthorizationRequired": {`"StringEquals":{"events:detail-type":"AuthorizationRequired","events:source":"consentflow"}`,
			`"aws:PrincipalArn":"` + getAttArn + initiateID + `"`},
		"OnlyResumerPublishesOtherConsentflowEvents": {`"StringEquals":{"events:source":"consentflow"}`,
			`"StringNotEquals":{"events:detail-type":"AuthorizationRequired"}`, `"aws:PrincipalArn":"` + getAttArn + resumerID + `"`},
	} {
		st, ok := pols[sid]
		if !ok {
			t.Errorf("no bus policy %s (have %v)", sid, pols)
			continue
		}
		for _, want := range append([]string{`"Effect":"Deny"`, `"Action":"events:PutEvents"`, `"Principal":{"AWS":"*"}`}, wants...) {
			if !strings.Contains(st, want) {
				t.Errorf("bus policy %s lacks %s: %s", sid, want, st)
			}
		}
	}
	if len(pols) != 2 {
		t.Errorf("%d bus policies, want 2: %v", len(pols), pols)
	}
	if n := len(alt.resources("AWS::Events::EventBusPolicy")); n != 0 {
		t.Errorf("alt (default bus) has %d bus policies", n)
	}
}

// --- Step Functions -----------------------------------------------------------------------------

func stateMachine(t *testing.T, s *synthesized) (string, map[string]any) {
	t.Helper()
	return s.one(t, "AWS::StepFunctions::StateMachine", "AuthorizeUser")
}

func definition(t *testing.T, s *synthesized) map[string]any {
	t.Helper()
	_, sm := stateMachine(t, s)
	var def map[string]any
	if err := json.Unmarshal([]byte(str(props(sm)["DefinitionString"])), &def); err != nil {
		t.Fatalf("definition: %v", err)
	}
	return def
}

func TestStateMachineResource(t *testing.T) {
	need(t, &main)
	_, sm := stateMachine(t, &main)
	p := props(sm)
	if p["StateMachineType"] != "STANDARD" || p["StateMachineName"] != "AuthorizeUser" {
		t.Errorf("type %v name %v, want STANDARD AuthorizeUser", p["StateMachineType"], p["StateMachineName"])
	}
	if tc, _ := p["TracingConfiguration"].(map[string]any); tc["Enabled"] != true {
		t.Errorf("TracingConfiguration = %v", p["TracingConfiguration"])
	}
	lc, _ := p["LoggingConfiguration"].(map[string]any)
	if lc["Level"] != "ALL" || lc["IncludeExecutionData"] != false {
		t.Errorf("LoggingConfiguration level %v includeExecutionData %v, want ALL false", lc["Level"], lc["IncludeExecutionData"])
	}
	if d := str(lc["Destinations"]); !strings.Contains(d, "AuthorizeUserLogs") {
		t.Errorf("execution logs go to %s", d)
	}
}

func TestStateMachineDefinition(t *testing.T) {
	need(t, &main)
	def := definition(t, &main)
	states := def["States"].(map[string]any)
	start := def["StartAt"].(string)
	task := states[start].(map[string]any)
	if task["Type"] != "Task" || task["Resource"] != "arn:aws:states:::lambda:invoke.waitForTaskToken" {
		t.Fatalf("start state %s: %v %v, want a lambda:invoke.waitForTaskToken task", start, task["Type"], task["Resource"])
	}
	params := task["Parameters"].(map[string]any)
	initiateID, _ := main.one(t, "AWS::Lambda::Function", "Initiate")
	if !strings.HasSuffix(fmt.Sprint(params["FunctionName"]), ":function:"+initiateID) {
		t.Errorf("FunctionName = %v, want the initiate function", params["FunctionName"])
	}
	payload := params["Payload"].(map[string]any)
	if payload["taskToken.$"] != "$$.Task.Token" || payload["executionArn.$"] != "$$.Execution.Id" || payload["input.$"] != "$" || len(payload) != 3 {
		t.Errorf("Payload = %v, want {taskToken.$: $$.Task.Token, executionArn.$: $$.Execution.Id, input.$: $}", payload)
	}
	if task["TimeoutSeconds"] != float64(660) {
		t.Errorf("TimeoutSeconds = %v, want 660 (10-minute session + 1-minute margin)", task["TimeoutSeconds"])
	}
	if task["Next"] == nil || states[task["Next"].(string)].(map[string]any)["Type"] != "Succeed" || task["Next"] != "Authorized" {
		t.Errorf("success leads to %v, want the Succeed state Authorized", task["Next"])
	}

	var retried []string
	for _, r := range task["Retry"].([]any) {
		r := r.(map[string]any)
		for _, e := range r["ErrorEquals"].([]any) {
			retried = append(retried, e.(string))
		}
		if r["BackoffRate"] == nil || r["MaxAttempts"] == nil || r["IntervalSeconds"] == nil {
			t.Errorf("retrier %v lacks backoff settings", r)
		}
	}
	sort.Strings(retried)
	wantRetried := append(append([]string{}, contract.RetryableErrors()...), LambdaServiceErrors...)
	sort.Strings(wantRetried)
	if !slices.Equal(retried, wantRetried) {
		t.Errorf("retried errors = %v, want %v", retried, wantRetried)
	}

	var caught [][2]string
	for _, c := range task["Catch"].([]any) {
		c := c.(map[string]any)
		for _, e := range c["ErrorEquals"].([]any) {
			caught = append(caught, [2]string{e.(string), c["Next"].(string)})
		}
	}
	wantCaught := [][2]string{
		{"States.Timeout", "AuthorizationTimedOut"},
		{"consentflow.BindingFailed", "BindingFailed"},
		{"consentflow.ConsentDenied", "ConsentDenied"},
		{"consentflow.InvalidInput", "InvalidInput"},
		{"consentflow.Expired", "AuthorizationExpired"},
		{"States.ALL", "AuthorizationFailed"}, // must be last
	}
	if !slices.Equal(caught, wantCaught) {
		t.Errorf("catchers = %v, want %v", caught, wantCaught)
	}
	for _, c := range wantCaught {
		st, _ := states[c[1]].(map[string]any)
		if st["Type"] != "Fail" || st["Error"] != c[1] {
			t.Errorf("state %s = %v, want a Fail state with Error %s", c[1], st, c[1])
		}
	}
	// Never put the caught error's message (Cause) into the failure: only its name.
	if cp := states["AuthorizationFailed"].(map[string]any)["CausePath"]; !strings.Contains(fmt.Sprint(cp), "$.Error") || strings.Contains(fmt.Sprint(cp), "$.Cause") {
		t.Errorf("AuthorizationFailed CausePath = %v", cp)
	}
}

// Every variant of the state machine passes initiate the same envelope: the task token, the
// execution's ARN (which initiate stores and the session's events carry) and the execution input,
// the ARN beside the input and never in it.
func TestRequestAuthorizationPayload(t *testing.T) {
	for name, s := range map[string]*synthesized{"main": &main, "alt": &alt, "agents": &agents} {
		need(t, s)
		task, _ := definition(t, s)["States"].(map[string]any)["RequestAuthorization"].(map[string]any)
		params, _ := task["Parameters"].(map[string]any)
		payload, _ := params["Payload"].(map[string]any)
		want := map[string]any{"taskToken.$": "$$.Task.Token", "executionArn.$": "$$.Execution.Id", "input.$": "$"}
		if !reflect.DeepEqual(payload, want) {
			t.Errorf("%s: RequestAuthorization Payload = %v, want %v", name, payload, want)
		}
	}
}

func TestStateMachineDefinitionPassesAslValidator(t *testing.T) {
	need(t, &main)
	root, err := gobuild.ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "node_modules", ".bin", "asl-validator")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `npm ci` in %s first (package.json pins asl-validator@4.0.0)", bin, root)
	}
	for name, s := range map[string]*synthesized{"main": &main, "alt": &alt, "agents": &agents} {
		need(t, s)
		def, err := json.Marshal(definition(t, s))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), name+".asl.json")
		if err := os.WriteFile(f, def, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "--json-path", f).CombinedOutput()
		if err != nil {
			t.Errorf("%s: asl-validator rejects the definition: %v\n%s\n%s", name, err, out, def)
		}
	}
}

// --- AgentCore ----------------------------------------------------------------------------------

func TestWorkloadIdentityAllowsTheCallbackURL(t *testing.T) {
	need(t, &main)
	_, wi := main.one(t, "AWS::BedrockAgentCore::WorkloadIdentity", "Workload")
	p := props(wi)
	want := "{" + apiID(t) + ".ApiEndpoint}/oauth2/callback"
	if p["Name"] != "consentflow" {
		t.Errorf("workload name = %v", p["Name"])
	}
	urls, _ := resolve(p["AllowedResourceOauth2ReturnUrls"]).([]any)
	if len(urls) != 1 || urls[0] != want {
		t.Errorf("AllowedResourceOauth2ReturnUrls = %v, want [%s]", urls, want)
	}
	outs := main.json["Outputs"].(map[string]any)
	if got := str(outs["CallbackUrl"].(map[string]any)["Value"]); got != want {
		t.Errorf("CallbackUrl output = %s, want %s", got, want)
	}
}

func TestCredentialProviderFromContext(t *testing.T) {
	need(t, &main)
	_, cp := main.one(t, "AWS::BedrockAgentCore::OAuth2CredentialProvider", "CredentialProvider")
	p := props(cp)
	if p["Name"] != "consentflow-google" || p["CredentialProviderVendor"] != "GoogleOauth2" {
		t.Errorf("provider name %v vendor %v", p["Name"], p["CredentialProviderVendor"])
	}
	raw, _ := json.Marshal(p)
	secret := "{{resolve:secretsmanager:arn:aws:secretsmanager:us-east-1:123456789012:secret:consentflow/google-AbCdEf:SecretString:::}}"
	if !strings.Contains(string(raw), strings.ReplaceAll(secret, "&", `\u0026`)) {
		t.Errorf("the client secret is not a Secrets Manager dynamic reference: %s", raw)
	}
	need(t, &alt)
	check(t, "alt creates no provider", func() {
		alt.tmpl.ResourceCountIs(jsii.String("AWS::BedrockAgentCore::OAuth2CredentialProvider"), jsii.Number(0))
	})
}

// --- IAM ----------------------------------------------------------------------------------------

// wildcardResourceActions are the only actions that may have Resource "*": AWS offers no
// narrower resource for them (Service Authorization Reference: no resource types).
var wildcardResourceActions = map[string]string{
	"xray:PutTraceSegments":         "X-Ray has no resource-level permissions for sending segments (Lambda active tracing, Step Functions tracing)",
	"xray:PutTelemetryRecords":      "X-Ray has no resource-level permissions for telemetry",
	"dynamodb:ListStreams":          "ListStreams has no resource type; the event source mapping's stream grant (Table.grantStreamRead) adds it for the resumer",
	"xray:GetSamplingRules":         "X-Ray sampling rules are read account-wide (Step Functions tracing)",
	"xray:GetSamplingTargets":       "X-Ray sampling targets are read account-wide (Step Functions tracing)",
	"logs:CreateLogDelivery":        "CloudWatch Logs vended-log delivery actions have no resource types (Step Functions execution logging)",
	"logs:GetLogDelivery":           "as logs:CreateLogDelivery",
	"logs:UpdateLogDelivery":        "as logs:CreateLogDelivery",
	"logs:DeleteLogDelivery":        "as logs:CreateLogDelivery",
	"logs:ListLogDeliveries":        "as logs:CreateLogDelivery",
	"logs:PutResourcePolicy":        "Step Functions execution logging sets the log group resource policy; no resource type",
	"logs:DescribeResourcePolicies": "as logs:PutResourcePolicy",
	"logs:DescribeLogGroups":        "Step Functions execution logging lists log groups; no resource type",
}

type stmt struct {
	policy    string
	sid       string
	actions   []string
	resources []string
}

func asStrings(v any) []string {
	switch t := v.(type) {
	case nil:
		return nil
	case []any:
		var out []string
		for _, x := range t {
			out = append(out, str(x))
		}
		return out
	}
	return []string{str(v)}
}

// statements lists every identity-policy statement of the template (AWS::IAM::Policy and the
// inline policies of AWS::IAM::Role) with resolved ARNs.
func (s *synthesized) statements() []stmt {
	var out []stmt
	add := func(owner string, doc any) {
		d, _ := doc.(map[string]any)
		list, _ := d["Statement"].([]any)
		for _, x := range list {
			x := x.(map[string]any)
			sid, _ := x["Sid"].(string)
			out = append(out, stmt{owner, sid, asStrings(x["Action"]), asStrings(x["Resource"])})
		}
	}
	for id, r := range s.resources("AWS::IAM::Policy") {
		add(id, props(r)["PolicyDocument"])
	}
	for id, r := range s.resources("AWS::IAM::ManagedPolicy") {
		add(id, props(r)["PolicyDocument"])
	}
	for id, r := range s.resources("AWS::IAM::Role") {
		pols, _ := props(r)["Policies"].([]any)
		for _, p := range pols {
			add(id, p.(map[string]any)["PolicyDocument"])
		}
	}
	return out
}

// roleStatements returns the statements of the policies attached to the role with logical id
// prefix rolePrefix.
func roleStatements(t *testing.T, s *synthesized, rolePrefix string) []stmt {
	t.Helper()
	roleID, _ := s.one(t, "AWS::IAM::Role", rolePrefix)
	var out []stmt
	for id, r := range s.resources("AWS::IAM::Policy") {
		for _, role := range asStrings(props(r)["Roles"]) {
			if role == "{"+roleID+"}" {
				for _, st := range s.statements() {
					if st.policy == id {
						out = append(out, st)
					}
				}
			}
		}
	}
	return out
}

func actionsOf(stmts []stmt) []string {
	var out []string
	for _, s := range stmts {
		out = append(out, s.actions...)
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func resourcesOf(stmts []stmt, action string) []string {
	var out []string
	for _, s := range stmts {
		if slices.Contains(s.actions, action) {
			out = append(out, s.resources...)
		}
	}
	sort.Strings(out)
	return slices.Compact(out)
}

func TestIAMHasNoWildcardActionsAndOnlyJustifiedWildcardResources(t *testing.T) {
	for name, s := range variants() {
		need(t, s)
		for _, st := range s.statements() {
			for _, a := range st.actions {
				if a == "*" || strings.HasSuffix(a, ":*") || strings.Contains(a, "*") {
					t.Errorf("%s: %s/%s grants wildcard action %q", name, st.policy, st.sid, a)
				}
			}
			if slices.Contains(st.resources, "*") {
				for _, a := range st.actions {
					if _, ok := wildcardResourceActions[a]; !ok {
						t.Errorf("%s: %s/%s grants %s on Resource \"*\"", name, st.policy, st.sid, a)
					}
				}
			}
		}
	}
}

const (
	arnPrefix = "arn:aws:bedrock-agentcore:us-east-1:123456789012:"
	smARN     = "arn:aws:states:us-east-1:123456789012:stateMachine:AuthorizeUser"
	// getAttArn is how resolve renders {"Fn::GetAtt": [X, "Arn"]}: getAttArn + X.
	getAttArn   = "arn:aws:lambda:us-east-1:123456789012:function:"
	dirARN      = arnPrefix + "workload-identity-directory/default"
	workloadARN = arnPrefix + "workload-identity-directory/default/workload-identity/consentflow"
	vaultARN    = arnPrefix + "token-vault/default"
	providerARN = arnPrefix + "token-vault/default/oauth2credentialprovider/consentflow-google"
)

func TestIAMInitiate(t *testing.T) {
	need(t, &main)
	stmts := roleStatements(t, &main, "InitiateRole")
	want := []string{
		"bedrock-agentcore:GetResourceOauth2Token", "bedrock-agentcore:GetWorkloadAccessToken",
		"bedrock-agentcore:GetWorkloadAccessTokenForJWT", "bedrock-agentcore:GetWorkloadAccessTokenForUserId",
		"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "events:PutEvents",
		"logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue",
		"states:SendTaskSuccess",
		"xray:PutTelemetryRecords", "xray:PutTraceSegments",
	}
	if got := actionsOf(stmts); !slices.Equal(got, want) {
		t.Errorf("initiate actions\n got %v\nwant %v", got, want)
	}
	tableID, _ := main.one(t, "AWS::DynamoDB::Table", "Sessions")
	busID, _ := main.one(t, "AWS::Events::EventBus", "Bus")
	logsID, _ := main.one(t, "AWS::Logs::LogGroup", "InitiateLogs")
	providerID, _ := main.one(t, "AWS::BedrockAgentCore::OAuth2CredentialProvider", "CredentialProvider")
	expect := map[string][]string{
		"bedrock-agentcore:GetWorkloadAccessToken":          {dirARN, workloadARN},
		"bedrock-agentcore:GetWorkloadAccessTokenForUserId": {dirARN, workloadARN},
		"bedrock-agentcore:GetWorkloadAccessTokenForJWT":    {dirARN, workloadARN},
		"bedrock-agentcore:GetResourceOauth2Token":          {dirARN, workloadARN, providerARN, vaultARN},
		"dynamodb:PutItem":              {getAttArn + tableID},
		"events:PutEvents":              {getAttArn + busID},
		"logs:PutLogEvents":             {getAttArn + logsID},
		"states:SendTaskSuccess":        {smARN},
		"secretsmanager:GetSecretValue": {"{" + providerID + ".ClientSecretArn}"},
	}
	for action, res := range expect {
		sort.Strings(res)
		if got := resourcesOf(stmts, action); !slices.Equal(got, res) {
			t.Errorf("%s on\n %v\nwant %v", action, got, res)
		}
	}
}

func TestIAMCallback(t *testing.T) {
	need(t, &main)
	stmts := roleStatements(t, &main, "CallbackRole")
	want := []string{
		"bedrock-agentcore:CompleteResourceTokenAuth", "bedrock-agentcore:GetResourceOauth2Token",
		"bedrock-agentcore:GetWorkloadAccessTokenForJWT", "bedrock-agentcore:GetWorkloadAccessTokenForUserId",
		"dynamodb:GetItem", "dynamodb:UpdateItem",
		"logs:CreateLogStream", "logs:PutLogEvents", "secretsmanager:GetSecretValue",
		"states:SendTaskFailure", "states:SendTaskSuccess",
		"xray:PutTelemetryRecords", "xray:PutTraceSegments",
	}
	if got := actionsOf(stmts); !slices.Equal(got, want) {
		t.Errorf("callback actions\n got %v\nwant %v", got, want)
	}
	res := []string{dirARN, workloadARN, providerARN, vaultARN}
	sort.Strings(res)
	for _, a := range []string{"bedrock-agentcore:CompleteResourceTokenAuth", "bedrock-agentcore:GetResourceOauth2Token"} {
		if got := resourcesOf(stmts, a); !slices.Equal(got, res) {
			t.Errorf("%s on %v, want %v", a, got, res)
		}
	}
	// The vault check mints workload tokens for a user only, on the workload identity.
	for _, a := range []string{"bedrock-agentcore:GetWorkloadAccessTokenForUserId", "bedrock-agentcore:GetWorkloadAccessTokenForJWT"} {
		if got := resourcesOf(stmts, a); !slices.Equal(got, []string{dirARN, workloadARN}) {
			t.Errorf("%s on %v, want the workload identity", a, got)
		}
	}
	for _, a := range callbackTaskActions {
		if got := resourcesOf(stmts, a); !slices.Equal(got, []string{smARN}) {
			t.Errorf("%s on %v, want the state machine %s", a, got, smARN)
		}
	}
}

func TestIAMExistingProviderUsesItsName(t *testing.T) {
	need(t, &alt)
	stmts := roleStatements(t, &alt, "CallbackRole")
	p := arnPrefix + "token-vault/default/oauth2credentialprovider/corp-github"
	w := arnPrefix + "workload-identity-directory/default/workload-identity/consentflow-staging"
	res := []string{dirARN, p, vaultARN, w}
	sort.Strings(res)
	if got := resourcesOf(stmts, "bedrock-agentcore:CompleteResourceTokenAuth"); !slices.Equal(got, res) {
		t.Errorf("CompleteResourceTokenAuth on %v, want %v", got, res)
	}
	secret := "arn:aws:secretsmanager:us-east-1:123456789012:secret:bedrock-agentcore-identity!default/oauth2/corp-github-??????"
	if got := resourcesOf(stmts, "secretsmanager:GetSecretValue"); !slices.Equal(got, []string{secret}) {
		t.Errorf("GetSecretValue on %v, want %v", got, secret)
	}
	sm := "arn:aws:states:us-east-1:123456789012:stateMachine:AuthorizeUserStaging"
	if got := resourcesOf(stmts, "states:SendTaskSuccess"); !slices.Equal(got, []string{sm}) {
		t.Errorf("SendTaskSuccess on %v, want %v", got, sm)
	}
}

// --- resumer ------------------------------------------------------------------------------------

func TestResumer(t *testing.T) {
	need(t, &main)
	tableID, table := main.one(t, "AWS::DynamoDB::Table", "Sessions")
	// The resumer needs the old image too: the write whose old image is open settled the session.
	if got := props(table)["StreamSpecification"]; fmt.Sprint(got) != fmt.Sprint(map[string]any{"StreamViewType": "NEW_AND_OLD_IMAGES"}) {
		t.Errorf("table StreamSpecification = %v, want NEW_AND_OLD_IMAGES", got)
	}
	if awsdynamodb.StreamViewType_NEW_AND_OLD_IMAGES != awsdynamodb.StreamViewType(contract.StreamViewType) {
		t.Errorf("contract.StreamViewType %q is not the CDK's NEW_AND_OLD_IMAGES", contract.StreamViewType)
	}
	fnID, fn := main.one(t, "AWS::Lambda::Function", "Resumer")
	p := props(fn)
	if p["Timeout"] != float64(resumerTimeout) || p["Handler"] != "bootstrap" || p["Runtime"] != "provided.al2023" {
		t.Errorf("resumer function %v", p)
	}
	vars := resolve(p["Environment"].(map[string]any)["Variables"]).(map[string]any)
	if fmt.Sprint(vars) != fmt.Sprint(map[string]any{"SESSIONS_TABLE": "{" + tableID + "}", "EVENT_BUS_NAME": "consentflow", "GOMAXPROCS": "1"}) {
		t.Errorf("resumer environment %v", vars)
	}
	qID, _ := main.one(t, "AWS::SQS::Queue", "ResumerDLQ")
	esms := main.resources("AWS::Lambda::EventSourceMapping")
	if len(esms) != 1 {
		t.Fatalf("%d event source mappings, want 1", len(esms))
	}
	for _, r := range esms {
		m := resolve(props(r)).(map[string]any)
		want := map[string]any{
			"FunctionName":               "{" + fnID + "}",
			"EventSourceArn":             "{" + tableID + ".StreamArn}",
			"StartingPosition":           "TRIM_HORIZON",
			"BatchSize":                  float64(resumerBatchSize),
			"MaximumRetryAttempts":       float64(resumerRetryAttempts),
			"MaximumRecordAgeInSeconds":  float64(resumerMaxRecordAge * 60),
			"BisectBatchOnFunctionError": true,
			"FunctionResponseTypes":      []any{"ReportBatchItemFailures"},
			"DestinationConfig":          map[string]any{"OnFailure": map[string]any{"Destination": getAttArn + qID}},
			// Only session items: sign-in and task-token items never invoke the resumer.
			"FilterCriteria": map[string]any{"Filters": []any{map[string]any{"Pattern": `{"dynamodb":{"NewImage":{"kind":{"S":["session"]}}}}`}}},
		}
		for k, v := range want {
			if fmt.Sprint(m[k]) != fmt.Sprint(v) {
				t.Errorf("event source mapping %s = %v, want %v", k, m[k], v)
			}
		}
	}
	alarms := main.resources("AWS::CloudWatch::Alarm")
	found := false
	for _, r := range alarms {
		a := resolve(props(r)).(map[string]any)
		if a["MetricName"] != "ApproximateNumberOfMessagesVisible" || a["Namespace"] != "AWS/SQS" {
			continue
		}
		dims := fmt.Sprint(a["Dimensions"])
		if !strings.Contains(dims, qID) {
			continue
		}
		found = true
		if a["Threshold"] != float64(1) || a["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" || a["EvaluationPeriods"] != float64(1) {
			t.Errorf("DLQ alarm %v", a)
		}
	}
	if !found {
		t.Errorf("no alarm on the DLQ's visible messages among %d alarms", len(alarms))
	}

	stmts := roleStatements(t, &main, "ResumerRole")
	want := []string{
		"dynamodb:DescribeStream", "dynamodb:GetItem", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams",
		"dynamodb:UpdateItem",
		"events:PutEvents",
		"logs:CreateLogStream", "logs:PutLogEvents",
		"sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage",
		"states:SendTaskFailure", "states:SendTaskSuccess",
		"xray:PutTelemetryRecords", "xray:PutTraceSegments",
	}
	if got := actionsOf(stmts); !slices.Equal(got, want) {
		t.Errorf("resumer actions\n got %v\nwant %v", got, want)
	}
	for _, a := range resumerTaskActions {
		if got := resourcesOf(stmts, a); !slices.Equal(got, []string{smARN}) {
			t.Errorf("%s on %v, want the state machine %s", a, got, smARN)
		}
	}
	for _, a := range []string{"dynamodb:GetItem", "dynamodb:UpdateItem"} {
		if got := resourcesOf(stmts, a); len(got) != 1 || !strings.Contains(got[0], tableID) {
			t.Errorf("%s on %v, want the table", a, got)
		}
	}
	if got := resourcesOf(stmts, "dynamodb:GetRecords"); len(got) != 1 || !strings.Contains(got[0], tableID+".StreamArn") {
		t.Errorf("GetRecords on %v, want the table's stream", got)
	}
	// Completion events: PutEvents on exactly the stack's bus.
	busID, _ := main.one(t, "AWS::Events::EventBus", "Bus")
	if got := resourcesOf(stmts, "events:PutEvents"); !slices.Equal(got, []string{getAttArn + busID}) {
		t.Errorf("resumer PutEvents on %v, want the bus %s", got, busID)
	}
}

func TestFunctionPoliciesDoNotReferenceTheStateMachine(t *testing.T) {
	// The state machine invokes the initiate function; a function policy naming the state
	// machine construct would be a dependency cycle (F3004).
	need(t, &main)
	smID, _ := stateMachine(t, &main)
	for _, role := range []string{"InitiateRole", "CallbackRole", "ResumerRole"} {
		for _, st := range roleStatements(t, &main, role) {
			if strings.Contains(strings.Join(st.resources, " "), smID) {
				t.Errorf("%s/%s references the state machine construct %s", role, st.sid, smID)
			}
		}
	}
}

// --- outputs ------------------------------------------------------------------------------------

func TestOutputs(t *testing.T) {
	need(t, &main)
	outs := main.json["Outputs"].(map[string]any)
	for _, name := range []string{"CallbackUrl", "StateMachineArn", "SessionsTableName", "EventBusName", "WorkloadName",
		"CredentialProviderName", "CredentialProviderCallbackUrl"} {
		if _, ok := outs[name]; !ok {
			t.Errorf("output %s missing", name)
		}
	}
	if got := str(outs["EventBusName"].(map[string]any)["Value"]); got != "consentflow" {
		t.Errorf("EventBusName = %s", got)
	}
	need(t, &alt)
	if _, ok := alt.json["Outputs"].(map[string]any)["CredentialProviderCallbackUrl"]; ok {
		t.Error("alt: CredentialProviderCallbackUrl output without a created provider")
	}
}
