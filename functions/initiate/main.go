// Command initiate is the consentflow initiate Lambda function: it only wires the
// configuration and AWS clients (internal/app) and starts the Lambda runtime.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/consentflow/consentflow/internal/adapters/awsconf"
	"github.com/consentflow/consentflow/internal/app"
)

func main() {
	log := lambdacontext.NewLogger()
	// The runtime library reports function errors through the standard
	// logger: route it through the same JSON handler.
	slog.SetDefault(log)
	cfg, err := awsconf.Load(context.Background())
	if err != nil {
		log.Error("loading AWS configuration failed", "error", err.Error())
		os.Exit(1)
	}
	h, err := app.NewInitiate(app.ClientsFromConfig(cfg), os.Getenv, log)
	if err != nil {
		log.Error(err.Error())
		os.Exit(1)
	}
	lambda.Start(h)
}
