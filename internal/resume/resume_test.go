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
