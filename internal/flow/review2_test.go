package flow_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// noAnswer is a Complete that got no answer at all: it may still be
// running at AgentCore.
func noAnswer() error {
	return &flow.Failure{Name: contract.ErrAgentCoreUnavailable, Message: "AgentCore call timed out",
		Err: fmt.Errorf("%w: %w: %w", flow.ErrNoAnswer, flow.ErrOutcomeUnknown, context.DeadlineExceeded)}
}

// A Complete without an answer whose session the vault still shows waiting
// keeps its claim: a retry within the lease calls nothing (the first call
// may still land); after the lease the retry asks again and, the first call
// having landed, succeeds. (Found by review: releasing at once let a retry
// put a second Complete in flight.)
func TestNoAnswerKeepsClaimUntilLease(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	landed := false
	e.id.completeFn = func(n int) error {
		if n == 1 {
			return noAnswer()
		}
		return refused() // already completed by the first call
	}
	e.id.vaultFn = func(flow.TokenRequest) (flow.VaultState, error) {
		if landed {
			return flow.VaultStored, nil
		}
		return flow.VaultPending, nil
	}
	if o := confirm(); o.Kind != flow.KindInProgress {
		t.Fatalf("first try: %v", o.Kind)
	}
	if s := e.store.sessions[p.SessionID]; s.Status != flow.StatusCompleting {
		t.Fatalf("claim released: %s", s.Status)
	}
	if o := confirm(); o.Kind != flow.KindInProgress {
		t.Fatalf("retry within the lease: %v", o.Kind)
	}
	if n := e.id.count("CompleteResourceTokenAuth"); n != 1 {
		t.Fatalf("%d Complete calls within the lease", n)
	}
	landed = true
	e.advance(flow.ClaimLease + time.Second)
	if o := confirm(); o.Kind != flow.KindConnected {
		t.Fatalf("after the lease: %v", o.Kind)
	}
	wantTask(t, e, true, "")
}

// An attempted completion that never settled is not failed as expired
// when the vault shows it took effect. (Found by review.)
func TestExpiredUnsettledCompletionThatLandedIsCompleted(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	landed := false
	e.id.completeFn = func(int) error { return noAnswer() }
	e.id.vaultFn = func(flow.TokenRequest) (flow.VaultState, error) {
		if landed {
			return flow.VaultStored, nil
		}
		return flow.VaultPending, nil
	}
	if o := confirm(); o.Kind != flow.KindInProgress {
		t.Fatalf("first try: %v", o.Kind)
	}
	landed = true
	e.advance(contract.SessionValidity + flow.ClaimLease)
	if o := e.cb.View(context.Background(), p); o.Kind != flow.KindAlreadyConnected || !o.WorkflowResumed {
		t.Fatalf("later visit: %+v", o)
	}
	wantTask(t, e, true, "")
	if s := e.store.sessions[p.SessionID]; s.Status != flow.StatusCompleted {
		t.Fatalf("session %s", s.Status)
	}
	// Not landed: expired as before.
	e2 := newEnv(t, flow.BindingCode)
	p2, confirm2 := confirmWithCode(t, e2)
	e2.id.completeFn = func(int) error { return noAnswer() }
	e2.id.vaultFn = func(flow.TokenRequest) (flow.VaultState, error) { return flow.VaultPending, nil }
	confirm2()
	e2.advance(contract.SessionValidity + flow.ClaimLease)
	if o := e2.cb.View(context.Background(), p2); o.Kind != flow.KindExpired {
		t.Fatalf("not landed: %v", o.Kind)
	}
	wantTask(t, e2, false, contract.ErrExpired)
}

// A reservation whose request ended without recording it (a double-click
// loser) stops counting as open after ReservationLease: a session out of
// attempts then fails instead of answering "in progress" until it expires.
// (Found by review.)
func TestLeakedReservationSettles(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	// The double-click loser's reservation (right code, lost the claim).
	if _, err := e.store.ReserveAttempt(context.Background(), p.SessionID, flow.MaxCodeAttempts, e.now); err != nil {
		t.Fatal(err)
	}
	e.id.completeFn = func(int) error { return &flow.Failure{Name: contract.ErrThrottled} }
	q := p
	q.Code = code
	if o := e.cb.Confirm(context.Background(), q); o.Kind != flow.KindTryAgain {
		t.Fatalf("right code, throttled: %v", o.Kind)
	}
	for i := 0; i < 4; i++ {
		w := p
		w.Code = "WRONG-CODE" + string(rune('A'+i))
		e.cb.Confirm(context.Background(), w)
	}
	e.advance(flow.ReservationLease + time.Second)
	if o := e.cb.Confirm(context.Background(), q); o.Kind != flow.KindTooManyAttempts {
		t.Fatalf("right code after the limit: %v", o.Kind)
	}
	if s := e.store.sessions[p.SessionID]; s.Status != flow.StatusFailed {
		t.Fatalf("session %s", s.Status)
	}
	wantTask(t, e, false, contract.ErrBindingFailed)
	if n := e.id.count("CompleteResourceTokenAuth"); n != 1 {
		t.Fatalf("%d Complete calls", n)
	}
}

// A request with too little time left does not call Complete: the session
// is released (the attempt given back) and the user retries.
func TestNoTimeLeftDoesNotCallComplete(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, code := started(t, e)
	p.Code = code
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // < vault + settle + margin + minimum
	defer cancel()
	if o := e.cb.Confirm(ctx, p); o.Kind != flow.KindTryAgain {
		t.Fatalf("outcome %v", o.Kind)
	}
	if n := e.id.count("CompleteResourceTokenAuth"); n != 0 {
		t.Fatalf("%d Complete calls", n)
	}
	if s := e.store.sessions[p.SessionID]; s.Status != flow.StatusPending || s.Attempts != 0 {
		t.Fatalf("session %+v", s)
	}
}
