package state

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/consentflow/consentflow/internal/contract"
)

// CreateTableInput describes the sessions table exactly as the CDK stack
// creates it: partition key contract.AttrPK (S), no sort key, on-demand
// billing, a stream of new and old images (the resumer reads it).
// TTL (contract.AttrTTL) is a separate call: see EnsureTable.
func CreateTableInput(table string) *dynamodb.CreateTableInput {
	return &dynamodb.CreateTableInput{
		TableName: aws.String(table),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(contract.AttrPK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(contract.AttrPK), KeyType: types.KeyTypeHash},
		},
		BillingMode:         types.BillingModePayPerRequest,
		StreamSpecification: streamSpec(),
	}
}

// StreamViewType is the view type of the table's stream
// (contract.StreamViewType).
const StreamViewType = types.StreamViewType(contract.StreamViewType)

// streamSpec is the table's stream.
func streamSpec() *types.StreamSpecification {
	return &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: StreamViewType}
}

// EnsureTable creates the table if it does not exist, waits until it is
// ACTIVE and enables TTL on contract.AttrTTL (if not enabled already). For the local
// demo and tests; in AWS the CDK stack owns the table.
func EnsureTable(ctx context.Context, client *dynamodb.Client, table string) error {
	_, err := client.CreateTable(ctx, CreateTableInput(table))
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("state: create table %s: %w", table, err)
	}
	if err := waitActive(ctx, client, table); err != nil {
		return err
	}
	if err := ensureStream(ctx, client, table); err != nil {
		return err
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		return fmt.Errorf("state: describe TTL of %s: %w", table, err)
	}
	if d := ttl.TimeToLiveDescription; d != nil && aws.ToString(d.AttributeName) == contract.AttrTTL &&
		(d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
		return nil
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(contract.AttrTTL),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil {
		return fmt.Errorf("state: enable TTL on %s: %w", table, err)
	}
	return nil
}

// ensureStream enables the stream on a table created without one, and
// replaces a stream of another view type (DynamoDB changes a view type
// only by disabling the stream and enabling a new one).
func ensureStream(ctx context.Context, client *dynamodb.Client, table string) error {
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		return fmt.Errorf("state: describe table %s: %w", table, err)
	}
	if sp := out.Table.StreamSpecification; sp != nil && aws.ToBool(sp.StreamEnabled) {
		if sp.StreamViewType == StreamViewType {
			return nil
		}
		if _, err := client.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String(table),
			StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(false)}}); err != nil {
			return fmt.Errorf("state: disable the %s stream on %s: %w", sp.StreamViewType, table, err)
		}
		if err := waitActive(ctx, client, table); err != nil {
			return err
		}
	}
	if _, err := client.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String(table), StreamSpecification: streamSpec()}); err != nil {
		return fmt.Errorf("state: enable the stream on %s: %w", table, err)
	}
	return waitActive(ctx, client, table)
}

func waitActive(ctx context.Context, client *dynamodb.Client, table string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		var notFound *types.ResourceNotFoundException
		switch {
		case err == nil && out.Table != nil && out.Table.TableStatus == types.TableStatusActive:
			return nil
		case err != nil && !errors.As(err, &notFound):
			return fmt.Errorf("state: describe table %s: %w", table, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("state: table %s not active: %w", table, ctx.Err())
		case <-time.After(delay):
		}
		if delay < 2*time.Second {
			delay *= 2
		}
	}
}
