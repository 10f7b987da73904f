// Package awsconf loads the one AWS configuration every client shares.
// Endpoint overrides come from the SDK's own settings
// (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>), retries are the SDK's
// standard retryer, and the SDK's own log lines (warnings, by default
// nothing else) go through the functions' slog JSON handler.
package awsconf

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"
)

// Load returns the shared configuration.
func Load(ctx context.Context) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx,
		config.WithRetryer(func() aws.Retryer { return retry.NewStandard() }),
		config.WithLogger(Logger(slog.Default)),
	)
}

// Logger adapts the SDK's logger to slog: each line becomes one record at
// the matching level, marked source=aws-sdk, with the context of the SDK
// call that logged it (so the Lambda request id is on it). log is called
// per line, so the record goes to whatever slog.Default is then (the
// functions install their JSON handler at start-up). The SDK logs request
// and response contents only when asked to (ClientLogMode), which
// consentflow never does.
func Logger(log func() *slog.Logger) logging.Logger {
	return sdkLogger{log: log, ctx: context.Background()}
}

type sdkLogger struct {
	log func() *slog.Logger
	ctx context.Context
}

// WithContext implements logging.ContextLogger: the SDK hands each
// operation's context over before it logs.
func (l sdkLogger) WithContext(ctx context.Context) logging.Logger {
	return sdkLogger{log: l.log, ctx: ctx}
}

// Logf implements logging.Logger.
func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelInfo
	switch c {
	case logging.Warn:
		level = slog.LevelWarn
	case logging.Debug:
		level = slog.LevelDebug
	}
	l.log().Log(l.ctx, level, fmt.Sprintf(format, v...), "source", "aws-sdk")
}
