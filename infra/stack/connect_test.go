package stack

import (
	"slices"
	"strings"
	"testing"

	"github.com/consentflow/consentflow/internal/contract"
)

// Amazon Connect customer authentication. The variants are synthesized once in TestMain
// (stack_test.go).

const (
	connectInstance     = "00fbeee1-123e-111e-93e3-11111bfbfcc1"
	testConnectARN      = "arn:aws:connect:eu-west-2:123456789012:instance/" + connectInstance
	connectStackAccount = "210987654321"
)

var (
	connectArnContext = map[string]any{
		"@aws-cdk/core:validateAgainstDefaultRules": true,
		CtxCredentialProviderName:                   "my-google",
		CtxConnectInstanceArn:                       testConnectARN,
	}
	connectIDContext = map[string]any{
		"@aws-cdk/core:validateAgainstDefaultRules": true,
		CtxCredentialProviderName:                   "my-google",
		CtxConnectInstanceID:                        connectInstance,
		CtxBindingMode:                              contract.BindingOIDC,
		CtxOIDCIssuer:                               "https://login.example.com",
		CtxOIDCClientID:                             "public-client",
	}
)

const connectUpdate = "connect:UpdateParticipantAuthentication"

func TestConnectRoute(t *testing.T) {
	base := []string{"GET " + contract.CallbackPath, "POST " + contract.CallbackPath}
	signIn := []string{"GET " + contract.LoginCallbackPath, "POST " + contract.LoginCallbackPath}
	connect := "GET " + contract.ConnectCallbackPath
	for name, c := range map[string]struct {
		s    *synthesized
		want []string
	}{
		"connectArn": {&connectArn, append(slices.Clone(base), connect)},
		"connectID":  {&connectID, append(append(slices.Clone(base), signIn...), connect)},
	} {
		need(t, c.s)
		slices.Sort(c.want)
		if got := routeKeys(c.s); !slices.Equal(got, c.want) {
			t.Errorf("%s: routes %v, want %v", name, got, c.want)
		}
		// The route reaches the callback function, with an invoke permission of its own.
		callbackID, _ := c.s.one(t, "AWS::Lambda::Function", "Callback")
		for _, r := range c.s.resources("AWS::ApiGatewayV2::Route") {
			if p := props(r); p["RouteKey"] == connect {
				integID := strings.TrimSuffix(strings.TrimPrefix(str(p["Target"]), "integrations/{"), "}")
				if u := str(props(c.s.resources("AWS::ApiGatewayV2::Integration")[integID])["IntegrationUri"]); !strings.HasSuffix(u, ":function:"+callbackID) {
					t.Errorf("%s: the Connect route calls %s", name, u)
				}
			}
		}
		// (API Gateway's own route permissions are per path, any stage and method.)
		scoped := 0
		for _, r := range c.s.resources("AWS::Lambda::Permission") {
			if src := str(props(r)["SourceArn"]); strings.HasSuffix(src, "/*/*"+contract.ConnectCallbackPath) {
				scoped++
			}
		}
		if scoped != 1 {
			t.Errorf("%s: %d invoke permissions scoped to %s, want 1", name, scoped, contract.ConnectCallbackPath)
		}
	}
	// Without a Connect instance there is no such route.
	for name, s := range variants() {
		if s == &connectArn || s == &connectID {
			continue
		}
		need(t, s)
		if slices.Contains(routeKeys(s), connect) {
			t.Errorf("%s: a Connect route without a Connect instance", name)
		}
	}
}

func TestConnectGrantIsTheInstanceOnly(t *testing.T) {
	for name, c := range map[string]struct {
		s   *synthesized
		arn string
	}{
		"connectArn": {&connectArn, testConnectARN},
		// By id: the ARN in the stack's own partition, Region and account.
		"connectID": {&connectID, "arn:aws:connect:eu-central-1:" + connectStackAccount + ":instance/" + connectInstance},
	} {
		need(t, c.s)
		stmts := roleStatements(t, c.s, "CallbackRole")
		if got := resourcesOf(stmts, connectUpdate); !slices.Equal(got, []string{c.arn}) {
			t.Errorf("%s: %s on %v, want exactly %s", name, connectUpdate, got, c.arn)
		}
		for _, st := range stmts {
			if slices.Contains(st.actions, connectUpdate) && (len(st.actions) != 1 || st.sid != "ConnectParticipantAuthentication") {
				t.Errorf("%s: the Connect statement %s grants %v", name, st.sid, st.actions)
			}
		}
		// The redirect records need nothing beyond the callback's GetItem and UpdateItem.
		if got := actionsOf(stmts); slices.Contains(got, "dynamodb:PutItem") || slices.Contains(got, "dynamodb:DeleteItem") {
			t.Errorf("%s: the callback role has %v", name, got)
		}
		for _, role := range []string{"InitiateRole", "ResumerRole"} {
			for _, a := range actionsOf(roleStatements(t, c.s, role)) {
				if strings.HasPrefix(a, "connect:") {
					t.Errorf("%s: %s has %s", name, role, a)
				}
			}
		}
	}
	for name, s := range variants() {
		if s == &connectArn || s == &connectID {
			continue
		}
		for _, st := range s.statements() {
			for _, a := range st.actions {
				if strings.HasPrefix(a, "connect:") {
					t.Errorf("%s: %s/%s grants %s without a Connect instance", name, st.policy, st.sid, a)
				}
			}
		}
	}
}

func TestConnectEnvironmentAndOutput(t *testing.T) {
	need(t, &connectArn)
	env := envOf(t, &connectArn, "Callback")
	if env[contract.EnvConnectInstanceID] != connectInstance || env[contract.EnvConnectRegion] != "eu-west-2" {
		t.Errorf("connectArn: callback env %s=%q %s=%q", contract.EnvConnectInstanceID, env[contract.EnvConnectInstanceID],
			contract.EnvConnectRegion, env[contract.EnvConnectRegion])
	}
	uri, ok := connectArn.output("ConnectRedirectUri")
	callback, _ := connectArn.output("CallbackUrl")
	if !ok || uri != strings.TrimSuffix(callback, contract.CallbackPath)+contract.ConnectCallbackPath {
		t.Errorf("ConnectRedirectUri %q (callback URL %q)", uri, callback)
	}
	need(t, &connectID)
	env = envOf(t, &connectID, "Callback")
	if _, set := env[contract.EnvConnectRegion]; set || env[contract.EnvConnectInstanceID] != connectInstance {
		t.Errorf("connectID: callback env %v", env)
	}
	if _, ok := connectID.output("ConnectRedirectUri"); !ok {
		t.Error("connectID: no ConnectRedirectUri output")
	}
	for _, fn := range []string{"Initiate", "Resumer"} {
		for k := range envOf(t, &connectArn, fn) {
			if strings.HasPrefix(k, "CONNECT_") {
				t.Errorf("%s has %s", fn, k)
			}
		}
	}
	for name, s := range variants() {
		if s == &connectArn || s == &connectID {
			continue
		}
		if v, ok := s.output("ConnectRedirectUri"); ok {
			t.Errorf("%s: ConnectRedirectUri = %s without a Connect instance", name, v)
		}
		for k := range envOf(t, s, "Callback") {
			if strings.HasPrefix(k, "CONNECT_") {
				t.Errorf("%s: the callback has %s without a Connect instance", name, k)
			}
		}
	}
}

func TestConnectInstanceOfAnotherAccountFails(t *testing.T) {
	if connectOtherAccount.err == nil || !strings.Contains(connectOtherAccount.err.Error(), CtxConnectInstanceArn) ||
		!strings.Contains(connectOtherAccount.err.Error(), "account 123456789012") {
		t.Fatalf("synthesis error %v, want one naming %s and the instance's account", connectOtherAccount.err, CtxConnectInstanceArn)
	}
}

func TestLoadConfigConnect(t *testing.T) {
	provider := map[string]any{CtxCredentialProviderName: "p"}
	with := func(m map[string]any) map[string]any { return merge(provider, m) }
	c, err := LoadConfig(ctx(with(map[string]any{CtxConnectInstanceArn: "arn:aws-us-gov:connect:us-gov-west-1:123456789012:instance/" + connectInstance})))
	if err != nil || c.Connect == nil || *c.Connect != (ConnectInstance{ID: connectInstance, ARN: "arn:aws-us-gov:connect:us-gov-west-1:123456789012:instance/" + connectInstance,
		Partition: "aws-us-gov", Region: "us-gov-west-1", Account: "123456789012"}) {
		t.Fatalf("ARN: %+v %v", c.Connect, err)
	}
	c, err = LoadConfig(ctx(with(map[string]any{CtxConnectInstanceID: connectInstance})))
	if err != nil || c.Connect == nil || *c.Connect != (ConnectInstance{ID: connectInstance}) {
		t.Fatalf("id: %+v %v", c.Connect, err)
	}
	if c, err := LoadConfig(ctx(provider)); err != nil || c.Connect != nil {
		t.Fatalf("unset: %+v %v", c.Connect, err)
	}
	for name, c := range map[string]struct {
		set  map[string]any
		says string
	}{
		"both":             {map[string]any{CtxConnectInstanceArn: testConnectARN, CtxConnectInstanceID: connectInstance}, "not both"},
		"an ARN as the id": {map[string]any{CtxConnectInstanceID: testConnectARN}, "give it as " + CtxConnectInstanceArn},
		"a name as the id": {map[string]any{CtxConnectInstanceID: "my-contact-center"}, "not an Amazon Connect instance id"},
		"upper-case id":    {map[string]any{CtxConnectInstanceID: strings.ToUpper(connectInstance)}, "lower-case UUID"},
		"an alias ARN":     {map[string]any{CtxConnectInstanceArn: "arn:aws:connect:eu-west-2:123456789012:instance/" + connectInstance + "/queue/q"}, "not an Amazon Connect instance ARN"},
		"another service":  {map[string]any{CtxConnectInstanceArn: "arn:aws:cognito-idp:eu-west-2:123456789012:userpool/eu-west-2_AbC"}, "not an Amazon Connect instance ARN"},
		"a short account":  {map[string]any{CtxConnectInstanceArn: "arn:aws:connect:eu-west-2:1234:instance/" + connectInstance}, "not an Amazon Connect instance ARN"},
	} {
		_, err := LoadConfig(ctx(with(c.set)))
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want an error saying %q", name, err, c.says)
		}
	}
}
