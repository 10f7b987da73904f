package resumer_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/consentflow/consentflow/internal/adapters/eventbus"
	"github.com/consentflow/consentflow/internal/app/resumer"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

func TestNew(t *testing.T) {
	cl := resumer.ClientsFromConfig(aws.Config{Region: "us-east-1"})
	log := slog.New(slog.DiscardHandler)
	h, err := resumer.New(cl, func(k string) string {
		return map[string]string{contract.EnvSessionsTable: "sessions"}[k]
	}, log)
	if err != nil || h == nil || h.Deliverer == nil || h.Log != log {
		t.Fatalf("New = %+v, %v", h, err)
	}
	if _, err := resumer.New(cl, func(string) string { return "" }, log); err == nil || !strings.Contains(err.Error(), contract.EnvSessionsTable) {
		t.Fatalf("without a table: %v", err)
	}
	if _, err := resumer.New(resumer.Clients{DynamoDB: cl.DynamoDB, SFN: cl.SFN}, func(k string) string {
		return map[string]string{contract.EnvSessionsTable: "sessions"}[k]
	}, log); err == nil || !strings.Contains(err.Error(), "EventBridge") {
		t.Fatalf("without an EventBridge client: %v", err)
	}
}

// The completion events go to EVENT_BUS_NAME, the account's default bus
// when it is unset.
func TestNewPublishesOnTheConfiguredBus(t *testing.T) {
	cl := resumer.ClientsFromConfig(aws.Config{Region: "us-east-1"})
	for env, want := range map[string]string{"": contract.DefaultEventBusName, "consentflow": "consentflow"} {
		h, err := resumer.New(cl, func(k string) string {
			return map[string]string{contract.EnvSessionsTable: "sessions", contract.EnvEventBusName: env}[k]
		}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		a, ok := h.Announcer.(*flow.Announcer)
		if !ok {
			t.Fatalf("Announcer is %T", h.Announcer)
		}
		n, ok := a.Notifier.(eventbus.Notifier)
		if !ok || n.Bus != want || n.API == nil {
			t.Errorf("%s=%q: notifier %+v, want bus %q", contract.EnvEventBusName, env, a.Notifier, want)
		}
	}
}
