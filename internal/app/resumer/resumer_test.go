package resumer_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/consentflow/consentflow/internal/app/resumer"
	"github.com/consentflow/consentflow/internal/contract"
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
}
