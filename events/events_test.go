package events_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/consentflow/consentflow/events"
	"github.com/consentflow/consentflow/internal/contract"
)

// The public names equal the contract's (the CDK stack, the functions and
// the bus policy use contract's).
func TestNamesAgreeWithContract(t *testing.T) {
	for _, c := range [][2]string{
		{events.Source, contract.EventSource},
		{events.DetailTypeAuthorizationRequired, contract.DetailTypeAuthorizationRequired},
		{events.DetailTypeAuthorizationCompleted, contract.DetailTypeAuthorizationCompleted},
		{events.DetailTypeAuthorizationFailed, contract.DetailTypeAuthorizationFailed},
	} {
		if c[0] != c[1] {
			t.Errorf("events has %q, contract %q", c[0], c[1])
		}
	}
}

// The detail's JSON field names: the schema the README documents.
func TestJSONFields(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 1, 36, 0, time.UTC)
	const execARN = "arn:aws:states:eu-west-1:123456789012:execution:AuthorizeUser:7b1e2c4d-0f3a-4b5c-8d9e-1a2b3c4d5e6f"
	for _, c := range []struct {
		v    any
		want string
	}{
		{events.AuthorizationRequired{CorrelationID: "c", UserID: "u", Provider: "p", Scopes: []string{"s"},
			AuthorizationURL: "https://a", ExpiresAt: at, VerificationCode: "ABCDE-FGHJK"},
			`{"correlationId":"c","userId":"u","provider":"p","scopes":["s"],"authorizationUrl":"https://a","expiresAt":"2026-01-01T00:01:36Z","verificationCode":"ABCDE-FGHJK"}`},
		{events.AuthorizationCompleted{CorrelationID: "c", UserID: "u", Provider: "p", Scopes: []string{"s"}, At: at},
			`{"correlationId":"c","userId":"u","provider":"p","scopes":["s"],"at":"2026-01-01T00:01:36Z"}`},
		{events.AuthorizationCompleted{CorrelationID: "c", Scopes: []string{}, External: true, At: at},
			`{"correlationId":"c","scopes":[],"external":true,"at":"2026-01-01T00:01:36Z"}`},
		{events.AuthorizationFailed{CorrelationID: "c", UserID: "u", Provider: "p", Scopes: []string{"s"}, At: at, Reason: contract.ErrConsentDenied},
			`{"correlationId":"c","userId":"u","provider":"p","scopes":["s"],"at":"2026-01-01T00:01:36Z","reason":"consentflow.ConsentDenied"}`},
		{events.AuthorizationRequired{CorrelationID: "c", Provider: "p", Scopes: []string{"s"}, AuthorizationURL: "https://a",
			ExpiresAt: at, Context: json.RawMessage(`{"chat":"c-1"}`)},
			`{"correlationId":"c","provider":"p","scopes":["s"],"authorizationUrl":"https://a","expiresAt":"2026-01-01T00:01:36Z","context":{"chat":"c-1"}}`},
		{events.AuthorizationCompleted{CorrelationID: "c", Scopes: []string{}, At: at, Context: json.RawMessage(`{"a":1}`)},
			`{"correlationId":"c","scopes":[],"at":"2026-01-01T00:01:36Z","context":{"a":1}}`},
		{events.AuthorizationFailed{CorrelationID: "c", Scopes: []string{}, At: at, Reason: contract.ErrExpired, Context: json.RawMessage(`{"a":1}`)},
			`{"correlationId":"c","scopes":[],"at":"2026-01-01T00:01:36Z","reason":"consentflow.Expired","context":{"a":1}}`},
		{events.AuthorizationRequired{CorrelationID: "c", Provider: "p", Scopes: []string{"s"}, AuthorizationURL: "https://a",
			ExpiresAt: at, ExecutionARN: execARN},
			`{"correlationId":"c","provider":"p","scopes":["s"],"authorizationUrl":"https://a","expiresAt":"2026-01-01T00:01:36Z","executionArn":"` + execARN + `"}`},
		{events.AuthorizationCompleted{CorrelationID: "c", Scopes: []string{}, At: at, ExecutionARN: execARN},
			`{"correlationId":"c","scopes":[],"at":"2026-01-01T00:01:36Z","executionArn":"` + execARN + `"}`},
		{events.AuthorizationFailed{CorrelationID: "c", Scopes: []string{}, At: at, Reason: contract.ErrConsentDenied, ExecutionARN: execARN},
			`{"correlationId":"c","scopes":[],"at":"2026-01-01T00:01:36Z","reason":"consentflow.ConsentDenied","executionArn":"` + execARN + `"}`},
	} {
		b, err := json.Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("%T:\n got %s (%v)\nwant %s", c.v, b, err, c.want)
		}
		back := reflect.New(reflect.TypeOf(c.v))
		if err := json.Unmarshal(b, back.Interface()); err != nil || !reflect.DeepEqual(back.Elem().Interface(), c.v) {
			t.Errorf("%T does not round-trip: %+v", c.v, back.Elem().Interface())
		}
	}
}
