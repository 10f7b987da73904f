package eventbus

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/consentflow/consentflow/events"
	"github.com/consentflow/consentflow/internal/flow"
)

type fakeEvents struct {
	in  *eventbridge.PutEventsInput
	out *eventbridge.PutEventsOutput
}

func (f *fakeEvents) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	f.in = in
	return f.out, nil
}

func TestPublishesOneEntry(t *testing.T) {
	f := &fakeEvents{out: &eventbridge.PutEventsOutput{}}
	ev := flow.AuthorizationRequired{CorrelationID: "c", Provider: "github", Scopes: []string{"repo"}, AuthorizationURL: "https://x", ExpiresAt: time.Unix(0, 0).UTC(), VerificationCode: "ABCDE-FGHJK"}
	if err := (Notifier{API: f, Bus: "consentflow"}).AuthorizationRequired(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	e := f.in.Entries[0]
	if aws.ToString(e.Source) != "consentflow" || aws.ToString(e.DetailType) != "AuthorizationRequired" || aws.ToString(e.EventBusName) != "consentflow" {
		t.Fatalf("%+v", e)
	}
	var got flow.AuthorizationRequired
	if err := json.Unmarshal([]byte(aws.ToString(e.Detail)), &got); err != nil || got.VerificationCode != ev.VerificationCode || got.CorrelationID != "c" {
		t.Fatalf("detail %s", aws.ToString(e.Detail))
	}
}

func TestRejectedEntryIsAnError(t *testing.T) {
	f := &fakeEvents{out: &eventbridge.PutEventsOutput{FailedEntryCount: 1, Entries: []types.PutEventsResultEntry{{ErrorCode: aws.String("InternalFailure"), ErrorMessage: aws.String("ABCDE-FGHJK")}}}}
	err := (Notifier{API: f, Bus: "b"}).AuthorizationRequired(context.Background(), flow.AuthorizationRequired{VerificationCode: "ABCDE-FGHJK"})
	if err == nil || !strings.Contains(err.Error(), "InternalFailure") || strings.Contains(err.Error(), "ABCDE") {
		t.Fatalf("err = %v", err)
	}
}

func TestPublishesCompletionEvents(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 1, 36, 0, time.UTC)
	for _, c := range []struct {
		detailType string
		publish    func(Notifier) error
		want       string
	}{
		{"AuthorizationCompleted", func(n Notifier) error {
			return n.AuthorizationCompleted(context.Background(), events.AuthorizationCompleted{CorrelationID: "c", UserID: "u", Provider: "github", Scopes: []string{"repo"}, At: at})
		}, `{"correlationId":"c","userId":"u","provider":"github","scopes":["repo"],"at":"2026-01-01T00:01:36Z"}`},
		{"AuthorizationFailed", func(n Notifier) error {
			return n.AuthorizationFailed(context.Background(), events.AuthorizationFailed{CorrelationID: "c", Scopes: []string{}, External: true, At: at, Reason: "consentflow.ConsentDenied"})
		}, `{"correlationId":"c","scopes":[],"external":true,"at":"2026-01-01T00:01:36Z","reason":"consentflow.ConsentDenied"}`},
	} {
		f := &fakeEvents{out: &eventbridge.PutEventsOutput{}}
		if err := c.publish(Notifier{API: f, Bus: "consentflow"}); err != nil {
			t.Fatal(err)
		}
		if len(f.in.Entries) != 1 {
			t.Fatalf("%d entries", len(f.in.Entries))
		}
		e := f.in.Entries[0]
		if aws.ToString(e.Source) != events.Source || aws.ToString(e.DetailType) != c.detailType || aws.ToString(e.EventBusName) != "consentflow" ||
			aws.ToString(e.Detail) != c.want {
			t.Errorf("%s entry: %s %s %s %s", c.detailType, aws.ToString(e.Source), aws.ToString(e.DetailType), aws.ToString(e.EventBusName), aws.ToString(e.Detail))
		}
	}
	f := &fakeEvents{out: &eventbridge.PutEventsOutput{FailedEntryCount: 1, Entries: []types.PutEventsResultEntry{{ErrorCode: aws.String("ThrottlingException")}}}}
	if err := (Notifier{API: f, Bus: "b"}).AuthorizationFailed(context.Background(), events.AuthorizationFailed{}); err == nil || !strings.Contains(err.Error(), "ThrottlingException") {
		t.Fatalf("rejected entry: %v", err)
	}
}
