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
