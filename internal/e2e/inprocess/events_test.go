package inprocess

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/events"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/eventslocal"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/local/sfnlocal"
)

// Completion events: the resumer, fed by the table's stream, publishes
// AuthorizationCompleted or AuthorizationFailed on the stack's bus for
// every session that settles. The tests subscribe before they act and wait
// on the subscription.

// completions subscribes to the completion events published on the stack's
// bus from now on.
func (f *fixture) completions() *eventslocal.Subscription {
	sub := f.s.Events.Subscribe(eventslocal.Match{Source: events.Source, EventBusName: runner.EventBus})
	f.t.Cleanup(sub.Close)
	return sub
}

// awaitCompletion returns the first completion event of correlationID on
// sub, and its detail.
func (f *fixture) awaitCompletion(sub *eventslocal.Subscription, correlationID string) (eventslocal.Event, map[string]any) {
	f.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-sub.C:
			if ev.DetailType == events.DetailTypeAuthorizationRequired {
				continue
			}
			var d map[string]any
			if err := json.Unmarshal(ev.Detail, &d); err != nil {
				f.t.Fatalf("%s detail: %v: %s", ev.DetailType, err, ev.Detail)
			}
			if d["correlationId"] == correlationID {
				return ev, d
			}
		case <-timeout:
			f.t.Fatalf("no completion event for %s", correlationID)
		}
	}
}

// checkCompletion checks an event's envelope and detail: the type, the
// fields, their time, and that no secret of the flow is in it.
func (f *fixture) checkCompletion(ev eventslocal.Event, detail map[string]any, a authorization, detailType, reason string, secrets map[string]string) {
	f.t.Helper()
	if ev.DetailType != detailType || ev.Source != contract.EventSource || ev.EventBusName != runner.EventBus {
		f.t.Fatalf("event %s from %s on %s, want %s from %s on %s", ev.DetailType, ev.Source, ev.EventBusName,
			detailType, contract.EventSource, runner.EventBus)
	}
	want := map[string]any{
		"correlationId": a.event.CorrelationID, "userId": a.event.UserID, "provider": a.event.Provider,
		"scopes": fmt.Sprint(a.event.Scopes), "at": detail["at"],
	}
	if reason != "" {
		want["reason"] = reason
	}
	if a.execution != "" { // the execution that started the session
		want["executionArn"] = a.execution
	}
	got := map[string]any{}
	for k, v := range detail {
		got[k] = v
		if k == "scopes" {
			got[k] = fmt.Sprint(v)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		f.t.Errorf("detail\n got %v\nwant %v", got, want)
	}
	at, err := time.Parse(time.RFC3339, fmt.Sprint(detail["at"]))
	// DynamoDB Local rounds a stream record's ApproximateCreationDateTime
	// down to the minute (AWS: to the second), so "now" is within two.
	if err != nil || at.Before(time.Now().Add(-2*time.Minute)) || at.After(time.Now().Add(time.Minute)) {
		f.t.Errorf("at = %v (%v), want about now", detail["at"], err)
	}
	// The typed schema reads it.
	switch detailType {
	case events.DetailTypeAuthorizationCompleted:
		var c events.AuthorizationCompleted
		if err := json.Unmarshal(ev.Detail, &c); err != nil || c.CorrelationID != a.event.CorrelationID || c.External || c.ExecutionARN != a.execution {
			f.t.Errorf("AuthorizationCompleted %+v: %v", c, err)
		}
	case events.DetailTypeAuthorizationFailed:
		var c events.AuthorizationFailed
		if err := json.Unmarshal(ev.Detail, &c); err != nil || c.CorrelationID != a.event.CorrelationID || c.Reason != reason || c.ExecutionARN != a.execution {
			f.t.Errorf("AuthorizationFailed %+v: %v", c, err)
		}
	}
	cb, _ := url.Parse(a.callback)
	secrets["state"] = cb.Query().Get("state")
	secrets["session URI"] = cb.Query().Get("session_id")
	secrets["task token"] = a.taskToken
	secrets["authorization URL"] = a.event.AuthorizationURL
	secrets["verification code"] = a.event.VerificationCode
	for name, v := range secrets {
		if v != "" && strings.Contains(string(ev.Detail), v) {
			f.t.Errorf("the %s event carries the %s: %s", detailType, name, ev.Detail)
		}
	}
}

// noOtherCompletion checks that no completion event of another type was
// published for correlationID.
func (f *fixture) noOtherCompletion(correlationID, detailType string) {
	f.t.Helper()
	for _, ev := range f.s.Events.Events() {
		if ev.DetailType == events.DetailTypeAuthorizationRequired || ev.DetailType == detailType {
			continue
		}
		if strings.Contains(string(ev.Detail), correlationID) {
			f.t.Errorf("also a %s event for the session: %s", ev.DetailType, ev.Detail)
		}
	}
}

func TestCompletedSessionPublishesAuthorizationCompleted(t *testing.T) {
	f := start(t, "code")
	sub := f.completions()
	a := f.initiate(`{"userId":"user-42","provider":"github","scopes":["repo","read:user"]}`)
	f.consent(&a, "allow")
	resp, body := f.do("POST", a.callback, url.Values{"code": {a.event.VerificationCode}}.Encode())
	if resp.StatusCode != 200 || outcomeOf(body) != "ok: Connected" {
		t.Fatalf("POST callback: %d %s", resp.StatusCode, outcomeOf(body))
	}
	if r := f.waitTask(a.taskToken); r.Status != sfnlocal.StatusSucceeded {
		t.Fatalf("task %+v", r)
	}
	ev, d := f.awaitCompletion(sub, a.event.CorrelationID)
	f.checkCompletion(ev, d, a, events.DetailTypeAuthorizationCompleted, "", map[string]string{})
	f.noOtherCompletion(a.event.CorrelationID, events.DetailTypeAuthorizationCompleted)
}

func TestDeniedSessionPublishesAuthorizationFailed(t *testing.T) {
	f := start(t, "code")
	sub := f.completions()
	a := f.initiate(`{"userId":"user-8","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "deny")
	if resp, body := f.do("GET", a.callback, ""); resp.StatusCode != 200 || !strings.Contains(outcomeOf(body), "Access not granted") {
		t.Fatalf("%d %s", resp.StatusCode, outcomeOf(body))
	}
	if r := f.waitTask(a.taskToken); r.Status != sfnlocal.StatusFailed || r.Error != contract.ErrConsentDenied {
		t.Fatalf("task %+v", r)
	}
	ev, d := f.awaitCompletion(sub, a.event.CorrelationID)
	f.checkCompletion(ev, d, a, events.DetailTypeAuthorizationFailed, contract.ErrConsentDenied, map[string]string{})
	f.noOtherCompletion(a.event.CorrelationID, events.DetailTypeAuthorizationFailed)
}

func TestFiveWrongCodesPublishAuthorizationFailed(t *testing.T) {
	f := start(t, "code")
	sub := f.completions()
	a := f.initiate(`{"userId":"user-10","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	wrong := map[string]string{}
	for i := 1; i <= flow.MaxCodeAttempts; i++ {
		code := fmt.Sprintf("ZZZZZ-ZZZZ%d", i+1)
		wrong[fmt.Sprintf("wrong code %d", i)] = code
		if resp, body := f.do("POST", a.callback, url.Values{"code": {code}}.Encode()); resp.StatusCode != 403 {
			t.Fatalf("attempt %d: %d %s", i, resp.StatusCode, outcomeOf(body))
		}
	}
	if r := f.waitTask(a.taskToken); r.Status != sfnlocal.StatusFailed || r.Error != contract.ErrBindingFailed {
		t.Fatalf("task %+v", r)
	}
	ev, d := f.awaitCompletion(sub, a.event.CorrelationID)
	f.checkCompletion(ev, d, a, events.DetailTypeAuthorizationFailed, contract.ErrBindingFailed, wrong)
	f.noOtherCompletion(a.event.CorrelationID, events.DetailTypeAuthorizationFailed)
}

// A session without a task (initiate invoked directly, as agentauth
// registers them) is announced too.
func TestSessionWithoutTaskPublishesAuthorizationCompleted(t *testing.T) {
	f := start(t, "code")
	sub := f.completions()
	req := f.s.Events.Subscribe(eventslocal.Match{DetailType: events.DetailTypeAuthorizationRequired})
	defer req.Close()
	res, err := f.s.Initiate(context.Background(), json.RawMessage(`{"userId":"user-12","provider":"github","scopes":["repo"]}`))
	if err != nil || res.Status != flow.StatusAuthorizationRequired {
		t.Fatalf("initiate: %v %+v", err, res)
	}
	var a authorization
	select {
	case ev := <-req.C:
		if err := json.Unmarshal(ev.Detail, &a.event); err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no AuthorizationRequired event")
	}
	f.consent(&a, "allow")
	if resp, body := f.do("POST", a.callback, url.Values{"code": {a.event.VerificationCode}}.Encode()); outcomeOf(body) != "ok: Connected" {
		t.Fatalf("POST callback: %d %s", resp.StatusCode, outcomeOf(body))
	}
	ev, d := f.awaitCompletion(sub, a.event.CorrelationID)
	f.checkCompletion(ev, d, a, events.DetailTypeAuthorizationCompleted, "", map[string]string{})
}

// EventBridge failing the resumer's PutEvents beyond the SDK's retries: the
// settling record is a batch item failure, the stream hands it over again,
// and the event arrives.
func TestCompletionEventRetriedAfterEventBridgeFailure(t *testing.T) {
	f := start(t, "code")
	sub := f.completions()
	a := f.initiate(`{"userId":"user-13","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	before, _ := f.s.Events.Calls()
	// As many as the SDK's standard retryer makes attempts (3): one
	// invocation's publish fails.
	for range 3 {
		f.s.Events.InjectError("InternalException", 500, "injected")
	}
	if resp, body := f.do("POST", a.callback, url.Values{"code": {a.event.VerificationCode}}.Encode()); outcomeOf(body) != "ok: Connected" {
		t.Fatalf("POST callback: %d %s", resp.StatusCode, outcomeOf(body))
	}
	if r := f.waitTask(a.taskToken); r.Status != sfnlocal.StatusSucceeded {
		t.Fatalf("task %+v", r)
	}
	ev, d := f.awaitCompletion(sub, a.event.CorrelationID)
	f.checkCompletion(ev, d, a, events.DetailTypeAuthorizationCompleted, "", map[string]string{})
	if after, _ := f.s.Events.Calls(); after-before < 4 {
		t.Errorf("%d PutEvents calls, want the 3 failed ones and the one that went through", after-before)
	}
	if !strings.Contains(f.logs.String(), "publishing AuthorizationCompleted failed; the stream retries it") {
		t.Error("the failed publish was not logged")
	}
	if n := f.s.Stream.Dropped(); n != 0 {
		t.Errorf("%d stream records dropped", n)
	}
}

// Every event names the execution that started its session: two
// executions at once, and each session's AuthorizationRequired, its
// completion event and its task name its own execution.
func TestEventsNameTheirExecution(t *testing.T) {
	f := start(t, "code")
	subA, subB := f.completions(), f.completions()
	a := f.initiate(`{"userId":"user-20","provider":"github","scopes":["repo"]}`)
	b := f.initiate(`{"userId":"user-21","provider":"github","scopes":["repo"]}`)
	if a.execution == b.execution || !strings.HasPrefix(a.execution, "arn:aws:states:"+runner.Region+":"+runner.Account+":execution:AuthorizeUser:") {
		t.Fatalf("executions %q and %q", a.execution, b.execution)
	}
	if a.event.ExecutionARN != a.execution || b.event.ExecutionARN != b.execution {
		t.Fatalf("AuthorizationRequired events name %q and %q", a.event.ExecutionARN, b.event.ExecutionARN)
	}
	f.consent(&a, "allow")
	f.consent(&b, "deny")
	if resp, body := f.do("POST", a.callback, url.Values{"code": {a.event.VerificationCode}}.Encode()); outcomeOf(body) != "ok: Connected" {
		t.Fatalf("POST callback: %d %s", resp.StatusCode, outcomeOf(body))
	}
	if resp, body := f.do("GET", b.callback, ""); !strings.Contains(outcomeOf(body), "Access not granted") {
		t.Fatalf("GET callback: %d %s", resp.StatusCode, outcomeOf(body))
	}
	if r := f.waitTask(a.taskToken); r.Status != sfnlocal.StatusSucceeded || r.ExecutionARN != a.execution {
		t.Fatalf("task of %s: %+v", a.execution, r)
	}
	if r := f.waitTask(b.taskToken); r.Status != sfnlocal.StatusFailed || r.ExecutionARN != b.execution {
		t.Fatalf("task of %s: %+v", b.execution, r)
	}
	evA, dA := f.awaitCompletion(subA, a.event.CorrelationID)
	f.checkCompletion(evA, dA, a, events.DetailTypeAuthorizationCompleted, "", map[string]string{})
	evB, dB := f.awaitCompletion(subB, b.event.CorrelationID)
	f.checkCompletion(evB, dB, b, events.DetailTypeAuthorizationFailed, contract.ErrConsentDenied, map[string]string{})
	if dA["executionArn"] != a.execution || dB["executionArn"] != b.execution {
		t.Fatalf("completion events name %v and %v, want %s and %s", dA["executionArn"], dB["executionArn"], a.execution, b.execution)
	}
}
