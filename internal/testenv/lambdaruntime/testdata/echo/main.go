// Command echo is a tiny Lambda function for the lambdaruntime tests. Its
// input selects what it does:
//
//	{"mode":"echo","value":...}  returns {"echo":value, "requestId", "functionName", "arn", "deadlineInMs", "env"}
//	{"mode":"error","value":"m"} returns an *EchoError (errorType "EchoError")
//	{"mode":"panic"}             panics
package main

import (
	"context"
	"encoding/json"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

type input struct {
	Mode  string          `json:"mode"`
	Value json.RawMessage `json:"value"`
}

type output struct {
	Echo         json.RawMessage `json:"echo"`
	RequestID    string          `json:"requestId"`
	FunctionName string          `json:"functionName"`
	ARN          string          `json:"arn"`
	DeadlineInMs int64           `json:"deadlineInMs"`
	Env          string          `json:"env"`
	TraceID      string          `json:"traceId"`
}

// EchoError is the error the "error" mode returns.
type EchoError struct{ Msg string }

func (e *EchoError) Error() string { return e.Msg }

func handle(ctx context.Context, in input) (output, error) {
	switch in.Mode {
	case "error":
		var m string
		_ = json.Unmarshal(in.Value, &m)
		return output{}, &EchoError{Msg: m}
	case "panic":
		panic("echo: asked to panic")
	}
	lc, _ := lambdacontext.FromContext(ctx)
	out := output{Echo: in.Value, FunctionName: lambdacontext.FunctionName, Env: os.Getenv("ECHO_EXTRA")}
	if lc != nil {
		out.RequestID, out.ARN = lc.AwsRequestID, lc.InvokedFunctionArn
	}
	if dl, ok := ctx.Deadline(); ok {
		out.DeadlineInMs = time.Until(dl).Milliseconds()
	}
	out.TraceID, _ = ctx.Value("x-amzn-trace-id").(string)
	return out, nil
}

func main() { lambda.Start(handle) }
