package flow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/events"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// recordingNotifier records the completion events it is asked to publish.
type recordingNotifier struct {
	completed []events.AuthorizationCompleted
	failed    []events.AuthorizationFailed
	err       error
}

func (n *recordingNotifier) AuthorizationCompleted(_ context.Context, ev events.AuthorizationCompleted) error {
	n.completed = append(n.completed, ev)
	return n.err
}

func (n *recordingNotifier) AuthorizationFailed(_ context.Context, ev events.AuthorizationFailed) error {
	n.failed = append(n.failed, ev)
	return n.err
}

func TestSettles(t *testing.T) {
	s := func(st flow.Status) *flow.Session { return &flow.Session{Status: st} }
	for _, c := range []struct {
		old, new *flow.Session
		want     bool
	}{
		{s(flow.StatusPending), s(flow.StatusCompleted), true},
		{s(flow.StatusCompleting), s(flow.StatusCompleted), true},
		{s(flow.StatusPending), s(flow.StatusFailed), true},
		{s(flow.StatusCompleting), s(flow.StatusFailed), true},
		{s(flow.StatusPending), s(flow.StatusExpired), true},
		{s(flow.StatusCompleting), s(flow.StatusExpired), true},
		{s(flow.StatusPending), s(flow.StatusCompleting), false},  // a claim
		{s(flow.StatusCompleting), s(flow.StatusPending), false},  // a release
		{s(flow.StatusPending), s(flow.StatusPending), false},     // an attempt, a notification
		{s(flow.StatusCompleted), s(flow.StatusCompleted), false}, // delivery claim, resumedAt
		{s(flow.StatusFailed), s(flow.StatusFailed), false},
		{nil, s(flow.StatusCompleted), false}, // an insert (no old image)
		{s(flow.StatusCompleted), nil, false}, // a removal (TTL)
	} {
		var o, n flow.Status
		if c.old != nil {
			o = c.old.Status
		}
		if c.new != nil {
			n = c.new.Status
		}
		if got := flow.Settles(c.old, c.new); got != c.want {
			t.Errorf("Settles(%q -> %q) = %v, want %v", o, n, got, c.want)
		}
	}
}

// settled is a session as stored, with every secret the record holds.
func settled(st flow.Status, reason string) *flow.Session {
	return &flow.Session{
		SessionURI: "urn:ietf:params:oauth:request_uri:SECRET-SESSION", CorrelationID: "corr-1",
		StateHash: "STATEHASH", UserID: "github|4242", Provider: "github", Scopes: []string{"repo", "read:user"},
		TaskToken: "SECRET-TASK-TOKEN", AuthorizationURL: "https://agentcore.example/authorize?request_uri=SECRET-SESSION",
		Binding: flow.BindingCode, CodeHash: "CODEHASH", Status: st, FailureReason: reason,
		Outbox: flow.Outbox{Output: `{"status":"AUTHORIZED"}`},
	}
}

func TestAnnounce(t *testing.T) {
	at := time.Date(2026, 1, 1, 0, 1, 36, 0, time.FixedZone("x", 3600))
	ctx := context.Background()
	for _, c := range []struct {
		name       string
		s          *flow.Session
		detailType string
		want       any
	}{
		{"completed", settled(flow.StatusCompleted, ""), events.DetailTypeAuthorizationCompleted,
			events.AuthorizationCompleted{CorrelationID: "corr-1", UserID: "github|4242", Provider: "github",
				Scopes: []string{"repo", "read:user"}, At: at.UTC()}},
		{"denied", settled(flow.StatusFailed, contract.ErrConsentDenied), events.DetailTypeAuthorizationFailed,
			events.AuthorizationFailed{CorrelationID: "corr-1", UserID: "github|4242", Provider: "github",
				Scopes: []string{"repo", "read:user"}, At: at.UTC(), Reason: contract.ErrConsentDenied}},
		{"expired", settled(flow.StatusExpired, contract.ErrExpired), events.DetailTypeAuthorizationFailed,
			events.AuthorizationFailed{CorrelationID: "corr-1", UserID: "github|4242", Provider: "github",
				Scopes: []string{"repo", "read:user"}, At: at.UTC(), Reason: contract.ErrExpired}},
		{"expired without a reason", settled(flow.StatusExpired, ""), events.DetailTypeAuthorizationFailed,
			events.AuthorizationFailed{CorrelationID: "corr-1", UserID: "github|4242", Provider: "github",
				Scopes: []string{"repo", "read:user"}, At: at.UTC(), Reason: contract.ErrExpired}},
		{"failed without a reason", settled(flow.StatusFailed, ""), events.DetailTypeAuthorizationFailed,
			events.AuthorizationFailed{CorrelationID: "corr-1", UserID: "github|4242", Provider: "github",
				Scopes: []string{"repo", "read:user"}, At: at.UTC(), Reason: contract.ErrAuthorizationFailed}},
		{"external", &flow.Session{SessionURI: "urn:x", CorrelationID: "corr-2", External: true, Binding: flow.BindingOIDC,
			Status: flow.StatusCompleted}, events.DetailTypeAuthorizationCompleted,
			events.AuthorizationCompleted{CorrelationID: "corr-2", Scopes: []string{}, External: true, At: at.UTC()}},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := &recordingNotifier{}
			var logs bytes.Buffer
			a := &flow.Announcer{Notifier: n, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
			if err := a.Announce(ctx, c.s, at); err != nil {
				t.Fatal(err)
			}
			var got any
			switch {
			case len(n.completed)+len(n.failed) != 1:
				t.Fatalf("%d completed and %d failed events, want one", len(n.completed), len(n.failed))
			case c.detailType == events.DetailTypeAuthorizationCompleted && len(n.completed) == 1:
				got = n.completed[0]
			case c.detailType == events.DetailTypeAuthorizationFailed && len(n.failed) == 1:
				got = n.failed[0]
			default:
				t.Fatalf("wrong event: completed %+v, failed %+v", n.completed, n.failed)
			}
			b, _ := json.Marshal(got)
			w, _ := json.Marshal(c.want)
			if string(b) != string(w) {
				t.Fatalf("event\n got %s\nwant %s", b, w)
			}
			for _, secret := range []string{"SECRET", "STATEHASH", "CODEHASH", "AUTHORIZED", "urn:"} {
				if strings.Contains(string(b), secret) || strings.Contains(logs.String(), secret) {
					t.Errorf("%q in the event %s or the logs", secret, b)
				}
			}
			if !strings.Contains(logs.String(), c.detailType+" published") || !strings.Contains(logs.String(), c.s.CorrelationID) {
				t.Errorf("logs: %s", logs.String())
			}
		})
	}
}

func TestAnnounceOpenSessionPublishesNothing(t *testing.T) {
	n := &recordingNotifier{}
	a := &flow.Announcer{Notifier: n}
	for _, st := range []flow.Status{flow.StatusPending, flow.StatusCompleting} {
		if err := a.Announce(context.Background(), settled(st, ""), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if len(n.completed)+len(n.failed) != 0 {
		t.Fatalf("published %+v %+v", n.completed, n.failed)
	}
}

func TestAnnounceFailureIsReturned(t *testing.T) {
	n := &recordingNotifier{err: errors.New("PutEvents: ThrottlingException")}
	a := &flow.Announcer{Notifier: n}
	if err := a.Announce(context.Background(), settled(flow.StatusFailed, contract.ErrBindingFailed), time.Now()); err == nil {
		t.Fatal("no error")
	}
}

// The event's scopes are a copy: the consumer of the event cannot change
// the session.
func TestAnnounceCopiesScopes(t *testing.T) {
	n := &recordingNotifier{}
	s := settled(flow.StatusCompleted, "")
	if err := (&flow.Announcer{Notifier: n}).Announce(context.Background(), s, time.Now()); err != nil {
		t.Fatal(err)
	}
	n.completed[0].Scopes[0] = "x"
	if s.Scopes[0] != "repo" {
		t.Fatal("the event shares the session's scopes")
	}
}

// Anyone who can sign in can record a session "started elsewhere" with a
// made-up link: only its completion is announced, never its end.
func TestAnnounceExternalFailureNotPublished(t *testing.T) {
	n := &recordingNotifier{}
	a := &flow.Announcer{Notifier: n}
	for _, st := range []flow.Status{flow.StatusFailed, flow.StatusExpired} {
		s := &flow.Session{SessionURI: "urn:x", CorrelationID: "c", External: true, Status: st, FailureReason: contract.ErrExpired}
		if err := a.Announce(context.Background(), s, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if len(n.failed) != 0 {
		t.Fatalf("published %+v", n.failed)
	}
}

// The completion events carry the session's context unchanged; a session
// without one announces none.
func TestAnnounceCarriesContext(t *testing.T) {
	for _, st := range []flow.Status{flow.StatusCompleted, flow.StatusFailed} {
		n := &recordingNotifier{}
		s := settled(st, contract.ErrConsentDenied)
		s.Context = `{"conversation":"c-1"}`
		if err := (&flow.Announcer{Notifier: n}).Announce(context.Background(), s, time.Now()); err != nil {
			t.Fatal(err)
		}
		var got json.RawMessage
		if st == flow.StatusCompleted {
			got = n.completed[0].Context
		} else {
			got = n.failed[0].Context
		}
		if string(got) != s.Context {
			t.Fatalf("%s: context %s", st, got)
		}
		s.Context = ""
		n = &recordingNotifier{}
		_ = (&flow.Announcer{Notifier: n}).Announce(context.Background(), s, time.Now())
		var ev any = n.completed
		if st != flow.StatusCompleted {
			ev = n.failed
		}
		if b, _ := json.Marshal(ev); !strings.Contains(string(b), "correlationId") || strings.Contains(string(b), "context") {
			t.Fatalf("%s: context without one: %s", st, b)
		}
	}
}

// The completion events carry the session's execution ARN; a session
// without one announces none.
func TestAnnounceCarriesExecutionARN(t *testing.T) {
	const arn = "arn:aws:states:us-east-1:123456789012:execution:AuthorizeUser:run-1"
	for _, st := range []flow.Status{flow.StatusCompleted, flow.StatusFailed, flow.StatusExpired} {
		for _, want := range []string{arn, ""} {
			n := &recordingNotifier{}
			s := settled(st, contract.ErrConsentDenied)
			s.ExecutionARN = want
			if err := (&flow.Announcer{Notifier: n}).Announce(context.Background(), s, time.Now()); err != nil {
				t.Fatal(err)
			}
			var ev any
			var got string
			if st == flow.StatusCompleted {
				ev, got = n.completed[0], n.completed[0].ExecutionARN
			} else {
				ev, got = n.failed[0], n.failed[0].ExecutionARN
			}
			b, _ := json.Marshal(ev)
			if got != want || strings.Contains(string(b), "executionArn") != (want != "") {
				t.Fatalf("%s, execution %q: event %s", st, want, b)
			}
		}
	}
}
