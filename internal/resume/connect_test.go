package resume_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/consentflow/consentflow/internal/resume"
)

// The sessions table also holds Amazon Connect redirect records
// (internal/state/connect.go): their stream records are neither delivered
// nor reported as unreadable.
func TestConnectRedirectRecordsAreSkipped(t *testing.T) {
	var ev events.DynamoDBEvent
	if err := json.Unmarshal([]byte(`{"Records":[
		{"eventID":"c1","eventName":"INSERT","dynamodb":{"SequenceNumber":"1","NewImage":{
			"pk":{"S":"connect#5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"},"kind":{"S":"connect"},
			"status":{"S":"pending"},"claimedAt":{"N":"1760000000000"},"ttl":{"N":"1760086401"}}}},
		{"eventID":"c2","eventName":"MODIFY","dynamodb":{"SequenceNumber":"2","NewImage":{
			"pk":{"S":"connect#5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"},"kind":{"S":"connect"},
			"status":{"S":"done"},"claimedAt":{"N":"1760000000000"},"finishedAt":{"N":"1760000000400"},"ttl":{"N":"1760086401"}}}}]}`), &ev); err != nil {
		t.Fatal(err)
	}
	for _, r := range ev.Records {
		if s, err := resume.Session(r.Change.NewImage); err == nil {
			t.Fatalf("a connect record decoded as session %+v", s)
		}
	}
	d := &fakeDeliverer{}
	var logs bytes.Buffer
	h := &resume.Handler{Deliverer: d, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	resp, err := h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 || len(d.uris) != 0 || logs.Len() != 0 {
		t.Fatalf("delivered %v, failures %v, err %v, logs %q", d.uris, resp.BatchItemFailures, err, logs.String())
	}
}
