// Command continue is the consentflow continue Lambda function: the
// AuthorizeUser state machine's ContinueAgent step, which invokes the
// user's agent in AgentCore Runtime once the user has authorized. It only
// calls its wiring (internal/app/continuation) and starts the Lambda
// runtime.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/consentflow/consentflow/internal/app/continuation"
)

func main() {
	log := lambdacontext.NewLogger()
	slog.SetDefault(log)
	h, err := continuation.FromEnvironment(context.Background(), log)
	if err != nil {
		log.Error(err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
