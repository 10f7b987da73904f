// Command hello is a stand-in Lambda function for tests of the build and of the stack: it keeps
// them independent of the state of ./functions while those are being written.
package main

import "github.com/aws/aws-lambda-go/lambda"

func main() {
	lambda.Start(func() (string, error) { return "hello", nil })
}
