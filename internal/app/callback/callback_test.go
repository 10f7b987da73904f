package callback_test

import (
	"strings"
	"testing"

	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/consentflow/consentflow/internal/app/callback"
	"github.com/consentflow/consentflow/internal/contract"
)

func env(drop string, set map[string]string) func(string) string {
	m := map[string]string{contract.EnvSessionsTable: "sessions", contract.EnvWorkloadName: "consentflow",
		contract.EnvReturnURL: "https://abc.execute-api.us-east-1.amazonaws.com/oauth2/callback"}
	delete(m, drop)
	for k, v := range set {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func clients() callback.Clients {
	return callback.ClientsFromConfig(aws.Config{Region: "us-east-1"})
}

func TestNew(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	h, err := callback.New(clients(), env("", nil), log)
	if err != nil || h == nil || h.Domain == nil || h.Log != log {
		t.Fatalf("New = %+v, %v", h, err)
	}
	if h.UserTokenCookie != contract.DefaultUserTokenCookie {
		t.Errorf("cookie %q, want the default %q", h.UserTokenCookie, contract.DefaultUserTokenCookie)
	}
	h, err = callback.New(clients(), env("", map[string]string{contract.EnvUserTokenCookie: "app_jwt"}), log)
	if err != nil || h.UserTokenCookie != "app_jwt" {
		t.Errorf("cookie %q (%v), want app_jwt", h.UserTokenCookie, err)
	}
	urls := map[string]string{contract.EnvAppReturnURLs: "https://app.example.com/a, https://app.example.com/b"}
	if _, err := callback.New(clients(), env("", urls), log); err != nil {
		t.Errorf("with %s: %v", contract.EnvAppReturnURLs, err)
	}
}

func TestNewConfigurationErrors(t *testing.T) {
	for _, c := range []struct {
		name, drop string
		set        map[string]string
		naming     string
	}{
		{name: "no table", drop: contract.EnvSessionsTable, naming: contract.EnvSessionsTable},
		{name: "bad binding", set: map[string]string{contract.EnvBindingMode: "maybe"}, naming: contract.EnvBindingMode},
		{name: "http app return URL", set: map[string]string{contract.EnvAppReturnURLs: "https://app.example.com/,http://app.example.com/"}, naming: contract.EnvAppReturnURLs},
		{name: "no workload", drop: contract.EnvWorkloadName, naming: contract.EnvWorkloadName},
		{name: "no return URL", drop: contract.EnvReturnURL, naming: contract.EnvReturnURL},
		{name: "bad workload", set: map[string]string{contract.EnvWorkloadName: "a b"}, naming: contract.EnvWorkloadName},
		{name: "bad return URL", set: map[string]string{contract.EnvReturnURL: "http://example.com/cb"}, naming: contract.EnvReturnURL},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, err := callback.New(clients(), env(c.drop, c.set), slog.New(slog.DiscardHandler))
			if err == nil || h != nil {
				t.Fatalf("New = %v, %v; want an error", h, err)
			}
			if !strings.Contains(err.Error(), c.naming) || !strings.HasPrefix(err.Error(), "configuration: ") {
				t.Errorf("error %q does not name %s", err, c.naming)
			}
		})
	}
}

func TestConnectRoute(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	h, err := callback.New(clients(), env("", nil), log)
	if err != nil || h.Connect != nil {
		t.Fatalf("without %s: Connect = %v, %v", contract.EnvConnectInstanceID, h.Connect, err)
	}
	id := "00fbeee1-123e-111e-93e3-11111bfbfcc1"
	for _, set := range []map[string]string{
		{contract.EnvConnectInstanceID: id},
		{contract.EnvConnectInstanceID: id, contract.EnvConnectRegion: "eu-west-2"},
	} {
		h, err = callback.New(clients(), env("", set), log)
		if err != nil || h.Connect == nil || h.Connect.Domain == nil || h.Connect.Log != log {
			t.Fatalf("%v: Connect = %+v, %v", set, h, err)
		}
	}
	for name, c := range map[string]struct {
		set    map[string]string
		noConn bool
		naming string
	}{
		"an ARN":           {set: map[string]string{contract.EnvConnectInstanceID: "arn:aws:connect:us-east-1:123456789012:instance/" + id}, naming: contract.EnvConnectInstanceID},
		"a space":          {set: map[string]string{contract.EnvConnectInstanceID: "my instance"}, naming: contract.EnvConnectInstanceID},
		"too long":         {set: map[string]string{contract.EnvConnectInstanceID: strings.Repeat("a", 101)}, naming: contract.EnvConnectInstanceID},
		"region alone":     {set: map[string]string{contract.EnvConnectRegion: "eu-west-2"}, naming: contract.EnvConnectRegion},
		"bad region":       {set: map[string]string{contract.EnvConnectInstanceID: id, contract.EnvConnectRegion: "Frankfurt"}, naming: contract.EnvConnectRegion},
		"no client for it": {set: map[string]string{contract.EnvConnectInstanceID: id}, noConn: true, naming: contract.EnvConnectInstanceID},
	} {
		cl := clients()
		if c.noConn {
			cl.Connect = nil
		}
		h, err := callback.New(cl, env("", c.set), log)
		if err == nil || h != nil || !strings.Contains(err.Error(), c.naming) || !strings.HasPrefix(err.Error(), "configuration: ") {
			t.Errorf("%s: New = %v, %v; want a configuration error naming %s", name, h, err, c.naming)
		}
	}
}
