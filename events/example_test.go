package events_test

import (
	"encoding/json"
	"fmt"

	"github.com/consentflow/consentflow/events"
)

// An AuthorizationFailed event's detail, as an EventBridge rule's target
// gets it in the event's "detail" field. The session was started by the
// state machine, so the event names its execution.
func ExampleAuthorizationFailed() {
	detail := []byte(`{"correlationId":"6f1d2c3b-8a4e-4f5d-9b7c-0e1a2b3c4d5e","userId":"github|4242",
		"provider":"github","scopes":["repo"],"at":"2026-01-01T00:01:36Z","reason":"consentflow.ConsentDenied",
		"executionArn":"arn:aws:states:eu-west-1:123456789012:execution:AuthorizeUser:7b1e2c4d-0f3a-4b5c-8d9e-1a2b3c4d5e6f"}`)
	var ev events.AuthorizationFailed
	if err := json.Unmarshal(detail, &ev); err != nil {
		panic(err)
	}
	fmt.Println(ev.CorrelationID, ev.UserID, ev.Provider, ev.Scopes, ev.At.Unix(), ev.Reason)
	fmt.Println(ev.ExecutionARN)
	// Output:
	// 6f1d2c3b-8a4e-4f5d-9b7c-0e1a2b3c4d5e github|4242 github [repo] 1767225696 consentflow.ConsentDenied
	// arn:aws:states:eu-west-1:123456789012:execution:AuthorizeUser:7b1e2c4d-0f3a-4b5c-8d9e-1a2b3c4d5e6f
}

// A consumer of every consentflow event (an SQS queue or a Lambda function
// behind an EventBridge rule on source "consentflow") dispatches on the
// detail type. The envelope struct is the consumer's own (aws-lambda-go's
// events.CloudWatchEvent has the same fields).
func Example_dispatch() {
	type envelope struct {
		Source     string          `json:"source"`
		DetailType string          `json:"detail-type"`
		Detail     json.RawMessage `json:"detail"`
	}
	in := []string{
		`{"version":"0","id":"1","source":"consentflow","detail-type":"AuthorizationCompleted","detail":
			{"correlationId":"c-1","userId":"github|4242","provider":"github","scopes":["repo"],"at":"2026-01-01T00:01:36Z",
			"executionArn":"arn:aws:states:eu-west-1:123456789012:execution:AuthorizeUser:c-1"}}`,
		`{"version":"0","id":"2","source":"consentflow","detail-type":"AuthorizationCompleted","detail":
			{"correlationId":"c-2","scopes":[],"external":true,"at":"2026-01-01T00:02:00Z"}}`,
		`{"version":"0","id":"3","source":"consentflow","detail-type":"AuthorizationFailed","detail":
			{"correlationId":"c-3","userId":"github|7","provider":"github","scopes":["repo"],"at":"2026-01-01T00:03:00Z","reason":"consentflow.BindingFailed"}}`,
	}
	for _, raw := range in {
		var e envelope
		if err := json.Unmarshal([]byte(raw), &e); err != nil || e.Source != events.Source {
			continue
		}
		switch e.DetailType {
		case events.DetailTypeAuthorizationCompleted:
			var d events.AuthorizationCompleted
			if err := json.Unmarshal(e.Detail, &d); err != nil {
				panic(err)
			}
			fmt.Printf("%s connected (user %q, provider %q, external %v, execution %q)\n", d.CorrelationID, d.UserID, d.Provider, d.External, d.ExecutionARN)
		case events.DetailTypeAuthorizationFailed:
			var d events.AuthorizationFailed
			if err := json.Unmarshal(e.Detail, &d); err != nil {
				panic(err)
			}
			fmt.Printf("%s failed: %s\n", d.CorrelationID, d.Reason)
		}
	}
	// Output:
	// c-1 connected (user "github|4242", provider "github", external false, execution "arn:aws:states:eu-west-1:123456789012:execution:AuthorizeUser:c-1")
	// c-2 connected (user "", provider "", external true, execution "")
	// c-3 failed: consentflow.BindingFailed
}
