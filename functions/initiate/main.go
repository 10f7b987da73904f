// Command initiate is the consentflow initiate Lambda function: it only calls its
// wiring (internal/app/initiate: configuration, AWS clients, adapters) and starts
// the Lambda runtime.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/consentflow/consentflow/internal/app/initiate"
)

func main() {
	log := lambdacontext.NewLogger()
	// The runtime library reports function errors through the standard
	// logger: route it through the same JSON handler.
	slog.SetDefault(log)
	h, err := initiate.FromEnvironment(context.Background(), log)
	if err != nil {
		log.Error(err.Error())
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}
