package flow_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// The vault shows a late completion landed, but recording it hits a
// transient store error: the session is not expired (the token is in the
// vault); the next visit records the completion. (Found by review.)
func TestLateCompletionStoreBlipIsNotExpired(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	landed := false
	e.id.completeFn = func(int) error { return noAnswer() }
	blipped := false
	e.id.vaultFn = func(flow.TokenRequest) (flow.VaultState, error) {
		if landed {
			if !blipped {
				blipped = true
				e.store.mu.Lock()
				e.store.failNext = errBoom // the next store call: completedLate's Settle
				e.store.mu.Unlock()
			}
			return flow.VaultStored, nil
		}
		return flow.VaultPending, nil
	}
	if o := confirm(); o.Kind != flow.KindInProgress {
		t.Fatalf("first try: %v", o.Kind)
	}
	landed = true
	e.advance(contract.SessionValidity + flow.ClaimLease)
	o := e.cb.View(context.Background(), p)
	s := e.session(p.SessionID)
	if o.Kind != flow.KindTryAgain || s.Status == flow.StatusExpired || len(e.resumer.all()) != 0 {
		t.Fatalf("outcome %v, status %s, task results %+v: token in the vault, nothing may fail", o.Kind, s.Status, e.resumer.all())
	}
	if o := e.cb.View(context.Background(), p); o.Kind != flow.KindAlreadyConnected {
		t.Fatalf("next visit: %v", o.Kind)
	}
	wantTask(t, e, true, "")
}

// landingStore: Settle applies the write, then reports a transport error
// once (a write whose answer was lost).
type landingStore struct {
	*memStore
	lost bool
}

func (l *landingStore) Settle(ctx context.Context, uri string, from []flow.Status, to flow.Status, reason string, out flow.Outbox, claim time.Time) (*flow.Session, error) {
	s, err := l.memStore.Settle(ctx, uri, from, to, reason, out, claim)
	if err == nil && !l.lost {
		l.lost = true
		return nil, errors.New("UpdateItem: context deadline exceeded")
	}
	return s, err
}

// The COMPLETED write lands but its answer is lost: the retry conflicts
// with the request's own write, which the callback recognises, so it still
// sends inline instead of leaving the resumer to wait out its own lease.
// (Found by review.)
func TestOwnSettleWithLostAnswerStillSendsInline(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	ls := &landingStore{memStore: e.store}
	d := flow.Deps{Identity: e.id, Store: ls, Resumer: e.resumer, Notifier: e.notifier,
		Clock:  func() time.Time { e.clockMu.Lock(); defer e.clockMu.Unlock(); return e.now },
		Random: func(b []byte) error { _, err := cryptoRead(b); return err }, Log: discardLog()}
	cb, err := flow.NewCallback(flow.CallbackConfig{Binding: flow.BindingCode, ClaimWait: 2 * time.Second,
		WorkloadName: "consentflow-test", ReturnURL: "https://cb.example/oauth2/callback"}, d)
	if err != nil {
		t.Fatal(err)
	}
	p, code := started(t, e)
	p.Code = code
	o := cb.Confirm(context.Background(), p)
	if o.Kind != flow.KindConnected || !o.WorkflowResumed {
		t.Fatalf("outcome %v, resumed %v", o.Kind, o.WorkflowResumed)
	}
	wantTask(t, e, true, "")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := e.deliverer().Deliver(ctx, p.SessionID); err != nil {
		t.Errorf("resumer right after the callback: %v", err)
	}
	if n := len(e.resumer.all()); n != 1 {
		t.Fatalf("%d sends", n)
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
