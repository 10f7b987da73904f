package initiate_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/consentflow/consentflow/internal/app/initiate"
	"github.com/consentflow/consentflow/internal/contract"
)

func env(drop string, set map[string]string) func(string) string {
	m := map[string]string{
		contract.EnvSessionsTable: "sessions",
		contract.EnvWorkloadName:  "consentflow-test",
		contract.EnvReturnURL:     "https://example.com" + contract.CallbackPath,
	}
	delete(m, drop)
	for k, v := range set {
		m[k] = v
	}
	return func(k string) string { return m[k] }
}

func clients() initiate.Clients {
	return initiate.ClientsFromConfig(aws.Config{Region: "us-east-1"})
}

func TestNew(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h, err := initiate.New(clients(), env("", nil), log)
	if err != nil || h == nil || h.Domain == nil || h.Log != log {
		t.Fatalf("New = %+v, %v", h, err)
	}
	if logs.Len() != 0 {
		t.Errorf("logged at wiring: %s", logs.String())
	}
	urls := map[string]string{contract.EnvAppReturnURLs: "https://app.example.com/a, https://app.example.com/b"}
	if _, err := initiate.New(clients(), env("", urls), log); err != nil {
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
		{name: "no workload", drop: contract.EnvWorkloadName, naming: contract.EnvWorkloadName},
		{name: "no return URL", drop: contract.EnvReturnURL, naming: contract.EnvReturnURL},
		{name: "bad binding", set: map[string]string{contract.EnvBindingMode: "maybe"}, naming: contract.EnvBindingMode},
		{name: "http app return URL", set: map[string]string{contract.EnvAppReturnURLs: "https://app.example.com/,http://app.example.com/"}, naming: contract.EnvAppReturnURLs},
		{name: "bad return URL", set: map[string]string{contract.EnvReturnURL: "not a url"}, naming: contract.EnvReturnURL},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, err := initiate.New(clients(), env(c.drop, c.set), slog.New(slog.DiscardHandler))
			if err == nil || h != nil {
				t.Fatalf("New = %v, %v; want an error", h, err)
			}
			if !strings.Contains(err.Error(), c.naming) || !strings.HasPrefix(err.Error(), "configuration: ") {
				t.Errorf("error %q does not name %s", err, c.naming)
			}
		})
	}
}

func TestNewBindingNoneWarns(t *testing.T) {
	var logs bytes.Buffer
	_, err := initiate.New(clients(), env("", map[string]string{contract.EnvBindingMode: contract.BindingNone}),
		slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), "binding mode none") {
		t.Errorf("no warning for binding mode none: %s", logs.String())
	}
}
