// Command resumer is the consentflow resumer Lambda function: triggered by
// the sessions table's stream, it delivers every settled session's outbox
// to its waiting Step Functions task and publishes each settled session's
// AuthorizationCompleted or AuthorizationFailed event. It only calls its
// wiring (internal/app/resumer) and starts the Lambda runtime.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/consentflow/consentflow/internal/app/resumer"
)

func main() {
	log := lambdacontext.NewLogger()
	slog.SetDefault(log)
	h, err := resumer.FromEnvironment(context.Background(), log)
	if err != nil {
		log.Error(err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
