package flow_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// countingStore counts the attempts the store granted: each is one
// verification-code comparison the domain may make.
type countingStore struct {
	flow.SessionStore
	granted atomic.Int32
}

func (c *countingStore) ReserveAttempt(ctx context.Context, uri string, max int, now time.Time) (*flow.Session, error) {
	s, err := c.SessionStore.ReserveAttempt(ctx, uri, max, now)
	if err == nil {
		c.granted.Add(1)
	}
	return s, err
}

func withStore(t *testing.T, e *env, st flow.SessionStore) *flow.Callback {
	t.Helper()
	cb, err := flow.NewCallback(flow.CallbackConfig{Binding: flow.BindingCode, ClaimWait: 2 * time.Second}, flow.Deps{
		Identity: e.id, Store: st, Resumer: e.resumer, Clock: func() time.Time { e.clockMu.Lock(); defer e.clockMu.Unlock(); return e.now },
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return cb
}

// However many guesses race, at most MaxCodeAttempts are compared, the
// right code completes only if it was among them, and exactly once.
func TestAttemptLimitUnderConcurrency(t *testing.T) {
	for round := 0; round < 20; round++ {
		e := newEnv(t, flow.BindingCode)
		p, code := started(t, e)
		st := &countingStore{SessionStore: e.store}
		cb := withStore(t, e, st)
		const n = 20
		right := round % n
		outcomes := make([]*flow.Outcome, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			q := p
			q.Code = "WRONG-CODE" + string(rune('A'+i))
			if i == right {
				q.Code = code
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				outcomes[i] = cb.Confirm(context.Background(), q)
			}()
		}
		close(start)
		wg.Wait()
		if g := st.granted.Load(); g > flow.MaxCodeAttempts {
			t.Fatalf("round %d: %d comparisons granted, limit %d", round, g, flow.MaxCodeAttempts)
		}
		s := e.store.sessions[p.SessionID]
		if s.Attempts > flow.MaxCodeAttempts {
			t.Fatalf("round %d: attempts %d", round, s.Attempts)
		}
		completes := e.id.count("CompleteResourceTokenAuth")
		if completes > 1 {
			t.Fatalf("round %d: %d completions", round, completes)
		}
		wrong := 0
		for i, o := range outcomes {
			switch o.Kind {
			case flow.KindWrongCode:
				wrong++
			case flow.KindConnected:
				if i != right {
					t.Fatalf("round %d: a wrong code connected", round)
				}
			}
		}
		if wrong > flow.MaxCodeAttempts-1 {
			t.Fatalf("round %d: %d wrong-code answers", round, wrong)
		}
		if completes == 1 != (s.Status == flow.StatusCompleted) {
			t.Fatalf("round %d: %d completions, session %s", round, completes, s.Status)
		}
		if outcomes[right].Kind == flow.KindConnected && len(e.resumer.all()) != 1 {
			t.Fatalf("round %d: resumes %+v", round, e.resumer.all())
		}
	}
}

// A session stuck in COMPLETING under a stale claim (its completer died)
// still counts every comparison: after MaxCodeAttempts wrong codes even the
// right one is refused.
func TestAttemptLimitHoldsUnderStaleClaim(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	if _, err := e.store.Claim(context.Background(), p.SessionID, e.now); err != nil {
		t.Fatal(err)
	}
	e.advance(flow.ClaimLease + time.Second)
	for i := 0; i < 20; i++ {
		q := p
		q.Code = "WRONG-CODE" + string(rune('A'+i))
		o := e.cb.Confirm(context.Background(), q)
		if o.Kind == flow.KindTryAgain || o.Kind == flow.KindConnected {
			t.Fatalf("wrong code %d: %v", i, o.Kind)
		}
	}
	if s := e.store.sessions[p.SessionID]; s.Attempts != flow.MaxCodeAttempts {
		t.Fatalf("attempts %d after 20 wrong codes, want %d", s.Attempts, flow.MaxCodeAttempts)
	}
	q := p
	q.Code = code
	if o := e.cb.Confirm(context.Background(), q); o.Kind != flow.KindTooManyAttempts {
		t.Fatalf("right code after the limit: %v", o.Kind)
	}
	if n := e.id.count("CompleteResourceTokenAuth"); n != 0 {
		t.Fatalf("%d completions after the limit", n)
	}
}

// A right code after MaxCodeAttempts wrong ones is refused, and the
// session and its task fail once.
func TestRightCodeAfterLimitRefused(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	for i := 0; i < flow.MaxCodeAttempts; i++ {
		q := p
		q.Code = "WRONG-CODE" + string(rune('A'+i))
		e.cb.Confirm(context.Background(), q)
	}
	q := p
	q.Code = code
	if o := e.cb.Confirm(context.Background(), q); o.Kind != flow.KindTooManyAttempts {
		t.Fatalf("right code after the limit: %v", o.Kind)
	}
	if n := e.id.count("CompleteResourceTokenAuth"); n != 0 {
		t.Fatalf("%d completions", n)
	}
	if rs := e.resumer.all(); len(rs) != 1 || rs[0].OK {
		t.Fatalf("task results %+v", rs)
	}
}

// A POST without the code is a bad request, not a counted attempt.
func TestMissingCodeIsNotAnAttempt(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	for i := 0; i < 2*flow.MaxCodeAttempts; i++ {
		if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindBadRequest || o.Reason != flow.ReasonMissingCode {
			t.Fatalf("no code: %+v", o)
		}
	}
	if s := e.store.sessions[p.SessionID]; s.Attempts != 0 || s.Status != flow.StatusPending {
		t.Fatalf("session after codeless POSTs: %+v", s)
	}
	p.Code = code
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindConnected {
		t.Fatalf("right code: %v", o.Kind)
	}
}

// A transient AgentCore failure gives the right code's attempt back: the
// user can retry as often as the outage lasts.
func TestTransientFailureGivesAttemptBack(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	p.Code = code
	const outage = 2 * flow.MaxCodeAttempts
	e.id.completeFn = func(n int) error {
		if n <= outage {
			return &flow.Failure{Name: contract.ErrAgentCoreUnavailable}
		}
		return nil
	}
	for i := 0; i < outage; i++ {
		if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindTryAgain {
			t.Fatalf("try %d during the outage: %v", i, o.Kind)
		}
	}
	if s := e.store.sessions[p.SessionID]; s.Attempts != 0 || s.Status != flow.StatusPending {
		t.Fatalf("session after the outage: %+v", s)
	}
	if o := e.cb.Confirm(context.Background(), p); o.Kind != flow.KindConnected {
		t.Fatalf("after the outage: %v", o.Kind)
	}
}
