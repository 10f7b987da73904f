package flow_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/flow"
)

// gateStore holds the FIRST successful ReserveAttempt (the right code's)
// between its reservation and its return, i.e. between reserve and Claim.
type gateStore struct {
	flow.SessionStore
	once     sync.Once
	reserved chan struct{}
	gate     chan struct{}
}

func (g *gateStore) ReserveAttempt(ctx context.Context, uri string, max int, now time.Time) (*flow.Session, error) {
	s, err := g.SessionStore.ReserveAttempt(ctx, uri, max, now)
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.reserved)
		<-g.gate
	}
	return s, err
}

// A right code reserved (attempt 1) and compared before the wrong codes is
// not refused because the wrong code that takes the last attempt comes
// before its Claim: an open comparison keeps the session from failing.
// (Found by review.)
func TestRightCodeReservedFirstIsNotFailedByLaterWrongCodes(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	g := &gateStore{SessionStore: e.store, reserved: make(chan struct{}), gate: make(chan struct{})}
	cb := withStore(t, e, g)
	done := make(chan *flow.Outcome)
	go func() { q := p; q.Code = code; done <- cb.Confirm(context.Background(), q) }()
	<-g.reserved // right code holds attempt 1, compared OK, not yet claimed
	for i := 0; i < flow.MaxCodeAttempts-1; i++ {
		q := p
		q.Code = "WRONG-CODE" + string(rune('A'+i))
		cb.Confirm(context.Background(), q)
	}
	close(g.gate)
	o := <-done
	t.Logf("right code: kind %v; Complete calls %d; task results %+v", o.Kind, e.id.count("CompleteResourceTokenAuth"), e.resumer.all())
	if o.Kind != flow.KindConnected {
		t.Fatalf("right code reserved within the limit was refused: kind %v", o.Kind)
	}
	if rs := e.resumer.all(); len(rs) != 1 || !rs[0].OK {
		t.Fatalf("task results %+v", rs)
	}
}

// Under a stale claim, the fifth wrong code fails the session and its task,
// as it does on a PENDING session. (Found by review.)
func TestStaleClaimExhaustionSettles(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, _ := started(t, e)
	if _, err := e.store.Claim(context.Background(), p.SessionID, e.now); err != nil {
		t.Fatal(err)
	}
	e.advance(flow.ClaimLease + time.Second)
	for i := 0; i < flow.MaxCodeAttempts+3; i++ {
		q := p
		q.Code = "WRONG-CODE" + string(rune('A'+i))
		e.cb.Confirm(context.Background(), q)
	}
	s := e.store.sessions[p.SessionID]
	t.Logf("stored status %s attempts %d reason %q; task results %+v", s.Status, s.Attempts, s.FailureReason, e.resumer.all())
	if s.Status != flow.StatusFailed || len(e.resumer.all()) != 1 {
		t.Fatalf("session out of attempts not settled: status %s, task results %d", s.Status, len(e.resumer.all()))
	}
}

// A code that is only separators or spaces is no code: a bad request, not
// an attempt. (Found by review.)
func TestBlankCodeIsNotAnAttempt(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, _ := started(t, e)
	for _, c := range []string{" ", "-", "  -- "} {
		q := p
		q.Code = c
		if o := e.cb.Confirm(context.Background(), q); o.Kind != flow.KindBadRequest || o.Reason != flow.ReasonMissingCode {
			t.Errorf("code %q: kind %v reason %v", c, o.Kind, o.Reason)
		}
	}
	if s := e.store.sessions[p.SessionID]; s.Attempts != 0 {
		t.Fatalf("blank codes used %d attempts", s.Attempts)
	}
}

// If recording COMPLETED fails once, the write is retried, so a resubmitted
// right code after the lease finds the session completed and calls nothing.
// (Found by review.)
func TestLostCompletedWriteIsRetried(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	p.Code = code
	e.id.completeFn = func(n int) error {
		if n == 1 {
			e.store.mu.Lock()
			e.store.failNext = errBoom // the Transition to COMPLETED fails
			e.store.mu.Unlock()
			return nil
		}
		return &flow.Failure{Name: "consentflow.AuthorizationFailed"}
	}
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindConnected {
		t.Fatalf("first: %v", o.Kind)
	}
	e.advance(flow.ClaimLease + time.Second)
	o := e.cb.Confirm(context.Background(), p)
	s := e.store.sessions[p.SessionID]
	t.Logf("resubmit: kind %v; Complete calls %d; stored %s; task results %d", o.Kind, e.id.count("CompleteResourceTokenAuth"), s.Status, len(e.resumer.all()))
	if n := e.id.count("CompleteResourceTokenAuth"); n != 1 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
	if o.Kind != flow.KindAlreadyConnected || s.Status != flow.StatusCompleted {
		t.Fatalf("resubmit: %v, stored %s", o.Kind, s.Status)
	}
	if rs := e.resumer.all(); len(rs) != 1 || !rs[0].OK {
		t.Fatalf("task results %+v", rs)
	}
}
