package state_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/state"
	"github.com/consentflow/consentflow/internal/testenv/dynamotest"
	"github.com/consentflow/consentflow/internal/testenv/storetest"
)

// The DynamoDB store against DynamoDB Local follows the port's contract
// (the domain's in-memory fake runs the same suite).
func TestStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clock func() time.Time) flow.SessionStore {
		db := dynamotest.Shared(t)
		table := dynamotest.TableName(t)
		if err := state.EnsureTable(context.Background(), db.Client(), table); err != nil {
			t.Fatalf("EnsureTable: %v", err)
		}
		t.Cleanup(func() {
			_, _ = db.Client().DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
		})
		return state.New(db.Client(), table, state.WithClock(clock), state.WithCallTimeout(15*time.Second))
	})
}
