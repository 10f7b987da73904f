package eventslocal_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"

	"github.com/consentflow/consentflow/internal/local/eventslocal"
)

func setup(t *testing.T, opts ...eventslocal.Option) (*eventslocal.Server, *eventbridge.Client) {
	t.Helper()
	s := eventslocal.New(opts...)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	c := eventbridge.New(eventbridge.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(ts.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDLOCAL", "local-secret", ""),
		RetryMaxAttempts: 1,
	})
	return s, c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func entry(detailType, detail string) types.PutEventsRequestEntry {
	return types.PutEventsRequestEntry{
		Source:       aws.String("consentflow"),
		DetailType:   aws.String(detailType),
		Detail:       aws.String(detail),
		EventBusName: aws.String("consentflow-bus"),
	}
}

func TestPutEventsRecordsAndReturnsIDs(t *testing.T) {
	s, c := setup(t)
	when := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	e1 := entry("AuthorizationRequired", `{"authorizationUrl":"https://example.test/a?x=1","verificationCode":"ABCD-EFGH"}`)
	e1.Time = &when
	e1.Resources = []string{"arn:aws:states:eu-west-1:123456789012:execution:sm:x"}
	out, err := c.PutEvents(ctx(t), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{
		e1, entry("AuthorizationCompleted", `{"n":2}`),
	}})
	if err != nil {
		t.Fatalf("PutEvents: %v", err)
	}
	if out.FailedEntryCount != 0 || len(out.Entries) != 2 || aws.ToString(out.Entries[0].EventId) == "" ||
		aws.ToString(out.Entries[0].EventId) == aws.ToString(out.Entries[1].EventId) {
		t.Fatalf("output = %+v", out)
	}
	evs := s.Events()
	if len(evs) != 2 {
		t.Fatalf("recorded %d events", len(evs))
	}
	ev := evs[0]
	if ev.ID != aws.ToString(out.Entries[0].EventId) || ev.Source != "consentflow" || ev.DetailType != "AuthorizationRequired" ||
		ev.EventBusName != "consentflow-bus" || !ev.Time.Equal(when) || len(ev.Resources) != 1 {
		t.Fatalf("event = %+v", ev)
	}
	var d map[string]string
	if err := json.Unmarshal(ev.Detail, &d); err != nil || d["verificationCode"] != "ABCD-EFGH" {
		t.Fatalf("detail = %s", ev.Detail)
	}
	var env map[string]any
	if err := json.Unmarshal(ev.Envelope("123456789012", "eu-west-1"), &env); err != nil ||
		env["detail-type"] != "AuthorizationRequired" || env["time"] != "2026-05-01T12:00:00Z" || env["account"] != "123456789012" {
		t.Fatalf("envelope = %v (%v)", env, err)
	}
}

func TestWaitForSeesEarlierAndLaterEvents(t *testing.T) {
	s, c := setup(t)
	put := func(dt string) {
		t.Helper()
		if _, err := c.PutEvents(ctx(t), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry(dt, `{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	put("Other")
	put("AuthorizationRequired") // before WaitFor: must still be found
	ev, err := s.WaitFor(ctx(t), eventslocal.Match{DetailType: "AuthorizationRequired"})
	if err != nil || ev.DetailType != "AuthorizationRequired" {
		t.Fatalf("WaitFor = %+v, %v", ev, err)
	}
	got := make(chan eventslocal.Event, 1)
	go func() {
		ev, err := s.WaitFor(context.Background(), eventslocal.Match{DetailType: "AuthorizationRequired"})
		if err != nil {
			t.Error(err)
		}
		got <- ev
	}()
	select {
	case <-got:
		t.Fatal("WaitFor returned an event already taken")
	case <-time.After(100 * time.Millisecond):
	}
	put("AuthorizationRequired")
	select {
	case ev2 := <-got:
		if ev2.ID == ev.ID {
			t.Fatal("WaitFor returned the same event twice")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WaitFor did not see the new event")
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.WaitFor(short, eventslocal.Match{DetailType: "Never"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor(no match) = %v", err)
	}
}

func TestSubscribe(t *testing.T) {
	s, c := setup(t)
	sub := s.Subscribe(eventslocal.Match{DetailType: "A"})
	for i := 0; i < 3; i++ {
		_, err := c.PutEvents(ctx(t), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry("A", `{}`), entry("B", `{}`)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		select {
		case ev := <-sub.C:
			if ev.DetailType != "A" {
				t.Fatalf("got %q", ev.DetailType)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("event %d not delivered", i)
		}
	}
	sub.Close()
	if _, ok := <-sub.C; ok {
		t.Fatal("C must be closed after Close")
	}
}

func TestEntryValidation(t *testing.T) {
	s, c := setup(t)
	noSource := entry("X", `{}`)
	noSource.Source = nil
	awsSource := entry("X", `{}`)
	awsSource.Source = aws.String("aws.states")
	out, err := c.PutEvents(ctx(t), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{
		entry("Good", `{"ok":true}`),
		entry("X", `{"unterminated":`),
		entry("X", `["an","array"]`),
		noSource,
		awsSource,
		{Source: aws.String("consentflow"), Detail: aws.String(`{}`)}, // no DetailType
	}})
	if err != nil {
		t.Fatalf("PutEvents: %v", err)
	}
	want := []string{"", "MalformedDetail", "MalformedDetail", "InvalidArgument", "NotAuthorizedForSourceException", "InvalidArgument"}
	if int(out.FailedEntryCount) != len(want)-1 {
		t.Fatalf("FailedEntryCount = %d", out.FailedEntryCount)
	}
	for i, w := range want {
		if got := aws.ToString(out.Entries[i].ErrorCode); got != w {
			t.Errorf("entry %d: ErrorCode %q, want %q", i, got, w)
		}
		if (w == "") != (out.Entries[i].EventId != nil) {
			t.Errorf("entry %d: EventId %v with ErrorCode %q", i, out.Entries[i].EventId, w)
		}
	}
	if evs := s.Events(); len(evs) != 1 || evs[0].DetailType != "Good" {
		t.Fatalf("only the valid entry must be recorded, got %d", len(evs))
	}
}

func TestRequestValidation(t *testing.T) {
	_, c := setup(t)
	many := make([]types.PutEventsRequestEntry, 11)
	for i := range many {
		many[i] = entry("X", `{}`)
	}
	badBus := entry("X", `{}`)
	badBus.EventBusName = aws.String("bad bus name!")
	big := entry("X", `{"x":"`+strings.Repeat("a", eventslocal.MaxRequestSize)+`"}`)
	for name, entries := range map[string][]types.PutEventsRequestEntry{
		"11 entries": many,
		"bad bus":    {badBus},
		"too big":    {big},
	} {
		_, err := c.PutEvents(ctx(t), &eventbridge.PutEventsInput{Entries: entries})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" {
			t.Errorf("%s: err = %v, want ValidationException", name, err)
		}
	}
}

func TestRestrictedBusesAndInjectedError(t *testing.T) {
	s, c := setup(t, eventslocal.WithEventBuses("consentflow-bus"))
	other := entry("X", `{}`)
	other.EventBusName = aws.String("other-bus")
	out, err := c.PutEvents(ctx(t), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry("X", `{}`), other}})
	if err != nil {
		t.Fatal(err)
	}
	if out.FailedEntryCount != 1 || aws.ToString(out.Entries[1].ErrorCode) != "ResourceNotFoundException" {
		t.Fatalf("output = %+v", out.Entries)
	}

	s.InjectError("ThrottlingException", 400, "Rate exceeded")
	_, err = c.PutEvents(ctx(t), &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry("X", `{}`)}})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ThrottlingException" {
		t.Fatalf("err = %v, want ThrottlingException", err)
	}
	if reqs, failed := s.Calls(); reqs != 2 || failed != 1 {
		t.Fatalf("Calls = %d, %d", reqs, failed)
	}
	if len(s.Events()) != 1 {
		t.Fatalf("events = %d", len(s.Events()))
	}
}
