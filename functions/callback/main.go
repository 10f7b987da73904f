// Placeholder so the CDK app can build the binary; the real wiring lands with the core flow.
package main

import "github.com/aws/aws-lambda-go/lambda"

func main() {
	lambda.Start(func() error { return nil })
}
