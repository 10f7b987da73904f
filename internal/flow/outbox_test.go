package flow_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// deliverer is the resumer function's logic on the env's fakes.
func (e *env) deliverer() *flow.Deliverer {
	return &flow.Deliverer{Store: e.store, Resumer: e.resumer, Clock: func() time.Time {
		e.clockMu.Lock()
		defer e.clockMu.Unlock()
		return e.now
	}, Log: slog.New(slog.NewJSONHandler(e.logs, nil))}
}

func (e *env) deliver(t *testing.T, uri string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := e.deliverer().Deliver(ctx, uri); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
}

func (e *env) session(uri string) flow.Session {
	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	return e.store.sessions[uri]
}

// SendTaskSuccess throttled beyond the SDK's retries: the user sees
// Connected, the record keeps the result in its outbox (claim released),
// and the resumer resumes the task: exactly one success.
func TestOutboxSuccessDeliveredByResumer(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	e.resumer.failN = 1
	if o := confirm(); o.Kind != flow.KindConnected || o.WorkflowResumed {
		t.Fatalf("outcome %+v", o)
	}
	s := e.session(p.SessionID)
	if s.Status != flow.StatusCompleted || !s.DeliveryDue() || !s.DeliveryClaimedAt.IsZero() {
		t.Fatalf("record %+v", s)
	}
	var res flow.Result
	if err := json.Unmarshal([]byte(s.Outbox.Output), &res); err != nil || res.Status != flow.StatusAuthorized || res.Provider != "google" || res.UserID != "user-1" {
		t.Fatalf("outbox %q: %v", s.Outbox.Output, err)
	}
	if strings.Contains(s.Outbox.Output, taskToken) {
		t.Fatal("task token in the outbox output")
	}
	e.deliver(t, p.SessionID)
	wantTask(t, e, true, "")
	if got := e.resumer.all()[0].Output; string(got) != s.Outbox.Output {
		t.Fatalf("sent %s, outbox %s", got, s.Outbox.Output)
	}
	if s := e.session(p.SessionID); s.ResumedAt.IsZero() {
		t.Fatal("not marked resumed")
	}
	// Delivered: the stream's later records change nothing.
	e.deliver(t, p.SessionID)
	wantTask(t, e, true, "")
	if e.resumer.gone != 0 {
		t.Fatalf("%d sends after the delivery", e.resumer.gone)
	}
}

// The inline send worked: the record says so and the resumer sends
// nothing.
func TestOutboxInlineResumeIsRecorded(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	if o := confirm(); o.Kind != flow.KindConnected || !o.WorkflowResumed {
		t.Fatalf("outcome %+v", o)
	}
	if s := e.session(p.SessionID); s.ResumedAt.IsZero() {
		t.Fatalf("record %+v", s)
	}
	e.deliver(t, p.SessionID)
	wantTask(t, e, true, "")
	if e.resumer.gone != 0 {
		t.Fatal("the resumer sent again")
	}
}

// Lock-out, denial, expiry with SendTaskFailure failing: failed later by
// the resumer, with the decision's error name and cause.
func TestOutboxFailuresDeliveredByResumer(t *testing.T) {
	for _, tc := range []struct {
		name, err string
		run       func(t *testing.T, e *env, p flow.CallbackParams, code string)
	}{
		{"lockout", contract.ErrBindingFailed, func(t *testing.T, e *env, p flow.CallbackParams, code string) {
			p.Code = "WRONG-CODE2"
			for range flow.MaxCodeAttempts {
				e.cb.Confirm(context.Background(), p)
			}
		}},
		{"denial", contract.ErrConsentDenied, func(t *testing.T, e *env, p flow.CallbackParams, _ string) {
			p.Error = "access_denied"
			e.cb.View(context.Background(), p)
		}},
		{"expiry", contract.ErrExpired, func(t *testing.T, e *env, p flow.CallbackParams, _ string) {
			e.advance(contract.SessionValidity)
			e.cb.View(context.Background(), p)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, flow.BindingCode)
			p, code := started(t, e)
			e.resumer.failN = 1
			tc.run(t, e, p, code)
			if len(e.resumer.all()) != 0 {
				t.Fatal("the failing send was recorded as a result")
			}
			s := e.session(p.SessionID)
			if !s.DeliveryDue() || s.Outbox.Error != tc.err || s.Outbox.Cause == "" || s.FailureReason != tc.err {
				t.Fatalf("record %+v", s)
			}
			e.deliver(t, p.SessionID)
			wantTask(t, e, false, tc.err)
			if rs := e.resumer.all(); rs[0].Cause != s.Outbox.Cause {
				t.Fatalf("cause %q, outbox %q", rs[0].Cause, s.Outbox.Cause)
			}
			e.deliver(t, p.SessionID)
			wantTask(t, e, false, tc.err)
		})
	}
}

// The resumer does not send while the callback's delivery claim is live;
// it waits for the callback's result or the end of the claim's lease (a
// callback that died after its settling write).
func TestOutboxResumerWaitsForLiveClaim(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	e.resumer.failN = 1
	confirm()
	// As if the callback had died holding its claim.
	e.store.mu.Lock()
	s := e.store.sessions[p.SessionID]
	s.DeliveryClaimedAt = e.now
	e.store.sessions[p.SessionID] = s
	e.store.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	err := e.deliverer().Deliver(ctx, p.SessionID)
	cancel()
	if !errors.Is(err, flow.ErrDeliveryBusy) || len(e.resumer.all()) != 0 {
		t.Fatalf("Deliver under a live claim: %v, %d sends", err, len(e.resumer.all()))
	}
	e.advance(flow.DeliveryLease + time.Second)
	e.deliver(t, p.SessionID)
	wantTask(t, e, true, "")
}

// The COMPLETED write fails (DynamoDB unreachable): no outbox exists, so
// the callback sends inline, unclaimed; the task is resumed once.
func TestOutboxCompletedWriteFailsInlineSendResumes(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	e.id.completeFn = func(int) error {
		e.store.mu.Lock()
		e.store.down = errBoom
		e.store.mu.Unlock()
		return nil
	}
	if o := confirm(); o.Kind != flow.KindConnected || !o.WorkflowResumed {
		t.Fatalf("outcome %+v", o)
	}
	wantTask(t, e, true, "")
	e.store.mu.Lock()
	e.store.down = nil
	e.store.mu.Unlock()
	if s := e.session(p.SessionID); s.Status != flow.StatusCompleting {
		t.Fatalf("status %s", s.Status)
	}
}

// The COMPLETED write hangs until the settle budget would end: its tries
// leave the inline send time of its own, so the task is still resumed.
// (Found by the e2e fault matrix: the send used to start with the spent
// context and fail, leaving the task waiting although the user saw
// "Connected" and the token was in the vault.)
func TestOutboxCompletedWriteHangsInlineSendResumes(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	e.id.completeFn = func(int) error {
		e.store.mu.Lock()
		e.store.hangSettle = true
		e.store.mu.Unlock()
		return nil
	}
	if o := confirm(); o.Kind != flow.KindConnected || !o.WorkflowResumed {
		t.Fatalf("outcome %+v", o)
	}
	wantTask(t, e, true, "")
	e.store.mu.Lock()
	e.store.hangSettle = false
	e.store.mu.Unlock()
	if s := e.session(p.SessionID); s.Status != flow.StatusCompleting {
		t.Fatalf("status %s", s.Status)
	}
}

// The COMPLETED write and the inline send both fail: the session stays
// COMPLETING under its claim. It is resumed when it is next settled: a
// retry after the claim's lease (or the expiry check) finds the token in
// the vault, writes COMPLETED with its outbox, and the task is resumed
// exactly once.
func TestOutboxCompletedWriteAndSendFailResumedWhenSettled(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	completed := false
	e.id.completeFn = func(n int) error {
		if n == 1 {
			completed = true
			e.store.mu.Lock()
			e.store.down = errBoom
			e.store.mu.Unlock()
			return nil
		}
		return refused()
	}
	e.id.vaultFn = func(flow.TokenRequest) (flow.VaultState, error) {
		if completed {
			return flow.VaultStored, nil
		}
		return flow.VaultPending, nil
	}
	e.resumer.failN = 1
	if o := confirm(); o.Kind != flow.KindConnected || o.WorkflowResumed {
		t.Fatalf("outcome %+v", o)
	}
	e.store.mu.Lock()
	e.store.down = nil
	e.store.mu.Unlock()
	e.advance(flow.ClaimLease + time.Second)
	o := confirm()
	if o.Kind != flow.KindConnected && o.Kind != flow.KindAlreadyConnected {
		t.Fatalf("retry outcome %+v", o)
	}
	e.deliver(t, p.SessionID)
	wantTask(t, e, true, "")
}

// The inline send takes all the time its context allows (Step Functions
// throttles until the SDK's retries run out of time): the callback still
// releases its delivery claim, so the resumer delivers at once instead of
// waiting out the lease. (Found by the e2e fault matrix: the release used
// to run with the spent context and fail.)
func TestOutboxInlineSendOutOfTimeReleasesTheClaim(t *testing.T) {
	e := newEnv(t, flow.BindingCode)
	p, confirm := confirmWithCode(t, e)
	e.resumer.mu.Lock()
	e.resumer.hang = true
	e.resumer.mu.Unlock()
	if o := confirm(); o.Kind != flow.KindConnected || o.WorkflowResumed {
		t.Fatalf("outcome %+v", o)
	}
	if s := e.session(p.SessionID); s.Status != flow.StatusCompleted || !s.DeliveryClaimedAt.IsZero() {
		t.Fatalf("status %s, delivery claimed at %v: the claim was not released", s.Status, s.DeliveryClaimedAt)
	}
	e.resumer.mu.Lock()
	e.resumer.hang = false
	e.resumer.mu.Unlock()
	e.deliver(t, p.SessionID)
	wantTask(t, e, true, "")
}
