package resume_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	cfevents "github.com/consentflow/consentflow/events"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/resume"
)

type fakeDeliverer struct {
	mu   sync.Mutex
	uris []string
	fail map[string]bool
}

func (f *fakeDeliverer) Deliver(_ context.Context, uri string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uris = append(f.uris, uri)
	if f.fail[uri] {
		return errors.New("SendTaskSuccess: ThrottlingException")
	}
	return nil
}

const secretToken = "AQB4-secret-task-token"

// record is a stream record as Lambda delivers it (JSON).
func record(seq, uri, status string, extra string) string {
	return fmt.Sprintf(`{"eventID":"e%s","eventName":"MODIFY","eventSource":"aws:dynamodb","dynamodb":{
	"Keys":{"pk":{"S":"session#%s"}},"SequenceNumber":"%s","StreamViewType":"NEW_IMAGE",
	"NewImage":{"pk":{"S":"session#%s"},"kind":{"S":"session"},"sessionUri":{"S":"%s"},"status":{"S":"%s"},
	"provider":{"S":"google"},"scopes":{"L":[{"S":"openid"}]},"attempts":{"N":"0"},"wrongCodes":{"N":"0"},
	"createdAt":{"N":"1760000000000"},"expiresAt":{"N":"1760000600000"},"ttl":{"N":"1760090000"}%s}}}`,
		seq, uri, seq, uri, uri, status, extra)
}

func event(t *testing.T, recs ...string) events.DynamoDBEvent {
	t.Helper()
	var ev events.DynamoDBEvent
	if err := json.Unmarshal([]byte(`{"Records":[`+strings.Join(recs, ",")+`]}`), &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

const (
	task    = `,"taskToken":{"S":"` + secretToken + `"}`
	success = task + `,"resumeOutput":{"S":"{\"status\":\"AUTHORIZED\"}"}`
	failure = task + `,"resumeError":{"S":"consentflow.Expired"},"resumeCause":{"S":"expired"},"failureReason":{"S":"consentflow.Expired"}`
	resumed = `,"resumedAt":{"N":"1760000001000"}`
	claimed = `,"deliveryClaimedAt":{"N":"1760000000500"}`
)

func TestHandleDeliversDueSessionsOnce(t *testing.T) {
	d := &fakeDeliverer{fail: map[string]bool{"urn:c": true}}
	h := &resume.Handler{Deliverer: d}
	ev := event(t,
		record("1", "urn:a", "COMPLETED", success+claimed), // due (claimed: the deliverer decides)
		record("2", "urn:a", "COMPLETED", success+claimed+resumed),
		record("3", "urn:b", "PENDING", task),                             // open
		record("4", "urn:c", "EXPIRED", failure),                          // due, fails
		record("5", "urn:d", "FAILED", `,"failureReason":{"S":"x"}`),      // no task token
		record("6", "urn:e", "FAILED", task+`,"failureReason":{"S":"x"}`), // no outbox (settled before the outbox)
		record("7", "urn:c", "EXPIRED", failure),
	)
	// A task-token record and a REMOVE are skipped.
	var extra events.DynamoDBEvent
	if err := json.Unmarshal([]byte(`{"Records":[{"eventID":"t","eventName":"INSERT","dynamodb":{"SequenceNumber":"8","NewImage":{"pk":{"S":"task#ab"},"kind":{"S":"task"},"sessionUri":{"S":"urn:f"}}}},
		{"eventID":"r","eventName":"REMOVE","dynamodb":{"SequenceNumber":"9","OldImage":{"pk":{"S":"session#urn:g"}}}}]}`), &extra); err != nil {
		t.Fatal(err)
	}
	ev.Records = append(ev.Records, extra.Records...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := h.Handle(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(d.uris)
	if !slices.Equal(d.uris, []string{"urn:a", "urn:c"}) {
		t.Fatalf("delivered %v", d.uris)
	}
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"4", "7"}) {
		t.Fatalf("batch item failures %v", ids)
	}
}

func TestSessionDecodesTheStreamImage(t *testing.T) {
	ev := event(t, record("1", "urn:a", "COMPLETED", success+claimed))
	s, err := resume.Session(ev.Records[0].Change.NewImage)
	if err != nil {
		t.Fatal(err)
	}
	if s.SessionURI != "urn:a" || s.TaskToken != secretToken || s.Outbox.Output != `{"status":"AUTHORIZED"}` ||
		s.DeliveryClaimedAt.UnixMilli() != 1760000000500 || !s.DeliveryDue() || s.Scopes[0] != "openid" {
		t.Fatalf("%+v", s)
	}
}

// --- completion events ------------------------------------------------------------------------

// notifier records the completion events it is asked to publish.
type notifier struct {
	mu        sync.Mutex
	completed []cfevents.AuthorizationCompleted
	failed    []cfevents.AuthorizationFailed
	fail      bool
}

func (n *notifier) AuthorizationCompleted(_ context.Context, ev cfevents.AuthorizationCompleted) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.completed = append(n.completed, ev)
	if n.fail {
		return errors.New("PutEvents: ThrottlingException")
	}
	return nil
}

func (n *notifier) AuthorizationFailed(_ context.Context, ev cfevents.AuthorizationFailed) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.failed = append(n.failed, ev)
	if n.fail {
		return errors.New("PutEvents: ThrottlingException")
	}
	return nil
}

// image is a session item's stream image with every secret a record holds.
func image(uri, status, extra string) string {
	return fmt.Sprintf(`{"pk":{"S":"session#%s"},"kind":{"S":"session"},"sessionUri":{"S":"%s"},"status":{"S":"%s"},
	"correlationId":{"S":"corr-%s"},"userId":{"S":"github|4242"},"provider":{"S":"google"},"scopes":{"L":[{"S":"openid"}]},
	"stateHash":{"S":"STATEHASH-secret"},"codeHash":{"S":"CODEHASH-secret"},"binding":{"S":"code"},
	"authorizationUrl":{"S":"https://agentcore.example/authorize?request_uri=%s"},
	"attempts":{"N":"1"},"wrongCodes":{"N":"0"},"createdAt":{"N":"1760000000000"},"expiresAt":{"N":"1760000600000"},"ttl":{"N":"1760090000"}%s}`,
		uri, uri, status, uri, uri, extra)
}

// change is a NEW_AND_OLD_IMAGES stream record of a session going from
// oldStatus (oldExtra) to newStatus (newExtra), written at 1760000096 s.
func change(seq, uri, oldStatus, oldExtra, newStatus, newExtra string) string {
	return fmt.Sprintf(`{"eventID":"e%s","eventName":"MODIFY","eventSource":"aws:dynamodb","dynamodb":{
	"ApproximateCreationDateTime":1760000096,"Keys":{"pk":{"S":"session#%s"}},"SequenceNumber":"%s","StreamViewType":"NEW_AND_OLD_IMAGES",
	"OldImage":%s,"NewImage":%s}}`, seq, uri, seq, image(uri, oldStatus, oldExtra), image(uri, newStatus, newExtra))
}

func announcing(n *notifier, d *fakeDeliverer) *resume.Handler {
	return &resume.Handler{Deliverer: d, Announcer: &flow.Announcer{Notifier: n}}
}

func handle(t *testing.T, h *resume.Handler, ev events.DynamoDBEvent) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := h.Handle(ctx, ev)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range resp.BatchItemFailures {
		ids = append(ids, f.ItemIdentifier)
	}
	return ids
}

func TestSettlingRecordPublishesOneEvent(t *testing.T) {
	denied := `,"failureReason":{"S":"consentflow.ConsentDenied"}`
	for _, c := range []struct {
		name       string
		rec        string
		detailType string
		want       string
	}{
		{"completed", change("1", "urn:a", "COMPLETING", task+`,"claimedAt":{"N":"1760000095000"}`, "COMPLETED", success+claimed),
			cfevents.DetailTypeAuthorizationCompleted,
			`{"correlationId":"corr-urn:a","userId":"github|4242","provider":"google","scopes":["openid"],"at":"2025-10-09T08:54:56Z"}`},
		{"denied", change("1", "urn:a", "PENDING", task, "FAILED", task+denied+`,"resumeError":{"S":"consentflow.ConsentDenied"}`),
			cfevents.DetailTypeAuthorizationFailed,
			`{"correlationId":"corr-urn:a","userId":"github|4242","provider":"google","scopes":["openid"],"at":"2025-10-09T08:54:56Z","reason":"consentflow.ConsentDenied"}`},
		{"expired", change("1", "urn:a", "COMPLETING", task, "EXPIRED", failure),
			cfevents.DetailTypeAuthorizationFailed,
			`{"correlationId":"corr-urn:a","userId":"github|4242","provider":"google","scopes":["openid"],"at":"2025-10-09T08:54:56Z","reason":"consentflow.Expired"}`},
		{"binding failed", change("1", "urn:a", "PENDING", task, "FAILED", task+`,"failureReason":{"S":"consentflow.BindingFailed"},"resumeError":{"S":"consentflow.BindingFailed"}`),
			cfevents.DetailTypeAuthorizationFailed,
			`{"correlationId":"corr-urn:a","userId":"github|4242","provider":"google","scopes":["openid"],"at":"2025-10-09T08:54:56Z","reason":"consentflow.BindingFailed"}`},
		{"no task token (agentauth, direct invocation)", change("1", "urn:a", "COMPLETING", "", "COMPLETED", ""),
			cfevents.DetailTypeAuthorizationCompleted,
			`{"correlationId":"corr-urn:a","userId":"github|4242","provider":"google","scopes":["openid"],"at":"2025-10-09T08:54:56Z"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			n, d := &notifier{}, &fakeDeliverer{}
			if ids := handle(t, announcing(n, d), event(t, c.rec)); len(ids) != 0 {
				t.Fatalf("batch item failures %v", ids)
			}
			var got []any
			for _, e := range n.completed {
				got = append(got, e)
			}
			for _, e := range n.failed {
				got = append(got, e)
			}
			if len(got) != 1 {
				t.Fatalf("%d events, want 1: %+v", len(got), got)
			}
			if (len(n.completed) == 1) != (c.detailType == cfevents.DetailTypeAuthorizationCompleted) {
				t.Fatalf("wrong detail type: completed %+v failed %+v", n.completed, n.failed)
			}
			b, _ := json.Marshal(got[0])
			if string(b) != c.want {
				t.Errorf("event\n got %s\nwant %s", b, c.want)
			}
			for _, secret := range []string{secretToken, "urn:ietf", "request_uri", "STATEHASH", "CODEHASH", "AUTHORIZED", "resume"} {
				if strings.Contains(string(b), secret) {
					t.Errorf("the event carries %q: %s", secret, b)
				}
			}
		})
	}
}

func TestOnlySettlingRecordsPublish(t *testing.T) {
	n, d := &notifier{}, &fakeDeliverer{}
	ev := event(t,
		change("1", "urn:a", "PENDING", task, "PENDING", task+`,"notifiedAt":{"N":"1760000000100"}`),   // notified
		change("2", "urn:a", "PENDING", task, "COMPLETING", task+`,"claimedAt":{"N":"1760000095000"}`), // claimed
		change("3", "urn:a", "COMPLETING", task, "PENDING", task),                                      // released
		change("4", "urn:b", "COMPLETED", success+claimed, "COMPLETED", success+claimed+resumed),       // resumedAt
		change("5", "urn:c", "FAILED", failure, "FAILED", failure+claimed),                             // delivery claim
		record("6", "urn:d", "COMPLETED", success),                                                     // NEW_IMAGE only
	)
	// An insert (no old image), a removal, and a task-token record.
	var extra events.DynamoDBEvent
	if err := json.Unmarshal([]byte(`{"Records":[
		{"eventID":"i","eventName":"INSERT","dynamodb":{"SequenceNumber":"7","NewImage":`+image("urn:e", "PENDING", task)+`}},
		{"eventID":"r","eventName":"REMOVE","dynamodb":{"SequenceNumber":"8","OldImage":`+image("urn:f", "PENDING", task)+`}},
		{"eventID":"t","eventName":"MODIFY","dynamodb":{"SequenceNumber":"9","OldImage":{"pk":{"S":"task#ab"},"kind":{"S":"task"}},"NewImage":{"pk":{"S":"task#ab"},"kind":{"S":"task"},"status":{"S":"COMPLETED"}}}}]}`), &extra); err != nil {
		t.Fatal(err)
	}
	ev.Records = append(ev.Records, extra.Records...)
	if ids := handle(t, announcing(n, d), ev); len(ids) != 0 {
		t.Fatalf("batch item failures %v", ids)
	}
	if len(n.completed)+len(n.failed) != 0 {
		t.Fatalf("published %+v %+v", n.completed, n.failed)
	}
}

// A session's records in one batch: only the settling one announces it,
// and delivery and announcement both run.
func TestSettlingAmongTheSessionsRecords(t *testing.T) {
	n, d := &notifier{}, &fakeDeliverer{}
	ev := event(t,
		change("1", "urn:a", "PENDING", task, "COMPLETING", task),
		change("2", "urn:a", "COMPLETING", task, "COMPLETED", success+claimed),
		change("3", "urn:a", "COMPLETED", success+claimed, "COMPLETED", success+claimed+resumed),
	)
	if ids := handle(t, announcing(n, d), ev); len(ids) != 0 {
		t.Fatalf("batch item failures %v", ids)
	}
	if len(n.completed) != 1 || len(n.failed) != 0 || n.completed[0].CorrelationID != "corr-urn:a" {
		t.Fatalf("published %+v %+v", n.completed, n.failed)
	}
	if !slices.Equal(d.uris, []string{"urn:a"}) {
		t.Fatalf("delivered %v", d.uris)
	}
}

func TestPublishFailureIsABatchItemFailure(t *testing.T) {
	n, d := &notifier{fail: true}, &fakeDeliverer{}
	ev := event(t,
		change("1", "urn:a", "PENDING", task, "COMPLETING", task),
		change("2", "urn:a", "COMPLETING", "", "COMPLETED", ""), // settles; no task
		change("3", "urn:b", "PENDING", "", "PENDING", ""),
	)
	if ids := handle(t, announcing(n, d), ev); !slices.Equal(ids, []string{"2"}) {
		t.Fatalf("batch item failures %v, want the settling record 2", ids)
	}
	// Delivery and publishing both fail on one record: it is reported once.
	n, d = &notifier{fail: true}, &fakeDeliverer{fail: map[string]bool{"urn:c": true}}
	ev = event(t, change("4", "urn:c", "COMPLETING", task, "COMPLETED", success))
	if ids := handle(t, announcing(n, d), ev); !slices.Equal(ids, []string{"4"}) {
		t.Fatalf("batch item failures %v, want [4]", ids)
	}
}

// A session started elsewhere: no task token, no provider, no user.
func TestExternalSessionPublishes(t *testing.T) {
	n, d := &notifier{}, &fakeDeliverer{}
	ext := func(status, extra string) string {
		return `{"pk":{"S":"session#urn:x"},"kind":{"S":"session"},"sessionUri":{"S":"urn:x"},"status":{"S":"` + status + `"},
		"correlationId":{"S":"corr-x"},"binding":{"S":"oidc"},"external":{"BOOL":true},"attempts":{"N":"0"},"wrongCodes":{"N":"0"},
		"createdAt":{"N":"1760000000000"},"expiresAt":{"N":"1760000600000"},"ttl":{"N":"1760090000"}` + extra + `}`
	}
	var ev events.DynamoDBEvent
	if err := json.Unmarshal([]byte(`{"Records":[{"eventID":"x","eventName":"MODIFY","dynamodb":{"SequenceNumber":"1",
		"OldImage":`+ext("COMPLETING", "")+`,"NewImage":`+ext("COMPLETED", "")+`}}]}`), &ev); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := announcing(n, d)
	h.Clock = func() time.Time { return now } // the record has no ApproximateCreationDateTime
	if ids := handle(t, h, ev); len(ids) != 0 {
		t.Fatalf("batch item failures %v", ids)
	}
	if len(n.completed) != 1 {
		t.Fatalf("published %+v", n.completed)
	}
	b, _ := json.Marshal(n.completed[0])
	if want := `{"correlationId":"corr-x","scopes":[],"external":true,"at":"2026-01-01T00:00:00Z"}`; string(b) != want {
		t.Fatalf("event\n got %s\nwant %s", b, want)
	}
	if len(d.uris) != 0 {
		t.Fatalf("delivered %v for a session without a task", d.uris)
	}
}

func TestNoAnnouncerPublishesNothing(t *testing.T) {
	d := &fakeDeliverer{}
	h := &resume.Handler{Deliverer: d}
	if ids := handle(t, h, event(t, change("1", "urn:a", "COMPLETING", task, "COMPLETED", success))); len(ids) != 0 {
		t.Fatalf("batch item failures %v", ids)
	}
	if !slices.Equal(d.uris, []string{"urn:a"}) {
		t.Fatalf("delivered %v", d.uris)
	}
}
