// Package awsconf loads the one AWS configuration every client shares.
// Endpoint overrides come from the SDK's own settings
// (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>), retries are the SDK's
// standard retryer.
package awsconf

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Load returns the shared configuration.
func Load(ctx context.Context) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx,
		config.WithRetryer(func() aws.Retryer { return retry.NewStandard() }),
	)
}
