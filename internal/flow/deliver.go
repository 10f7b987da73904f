package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// The outbox: a settled session's record carries what its waiting task is
// owed (Session.Outbox), written in the same conditional write as the
// terminal status. Delivering it is the Deliverer's job, run by two
// senders: the callback, inline, right after its settling write (for
// latency), and the resumer function, triggered by the table's stream
// for every write (for certainty). A delivery claim (DeliveryClaimedAt, a
// lease of DeliveryLease) keeps a sender off while another is at it, and
// ResumedAt, set with a conditional write, ends the delivery: nothing is
// sent twice on purpose. When a sender dies between its send and
// MarkResumed the next one sends again and Step Functions answers that
// the task is gone (ErrTaskGone), which counts as delivered; Step
// Functions itself accepts at most one SendTask* per task token.

// sendTimeout bounds one SendTask* call (the SDK's retries included), well
// inside DeliveryLease.
const sendTimeout = 5 * time.Second

// releaseTimeout bounds giving a delivery claim back after a failed send
// (under a fresh budget when the caller's ran out).
const releaseTimeout = time.Second

// recordReserve is kept free of a send's time, when the caller's context
// leaves enough, for recording its result: ReleaseDelivery (so the next
// sender need not wait out the lease) or MarkResumed.
const recordReserve = 500 * time.Millisecond

// ErrDeliveryBusy: another sender holds a live delivery claim and did not
// settle it before the caller's context ended; try again later.
var ErrDeliveryBusy = errors.New("delivery claimed by another sender")

// Deliverer sends settled sessions' outboxes to Step Functions.
type Deliverer struct {
	Store   SessionStore
	Resumer Resumer
	Clock   Clock
	Log     *slog.Logger
}

// Deliver makes sure the outbox of the session is delivered: it claims the
// delivery, sends, and records the result. It returns nil when the outbox
// is delivered (now or before), or when nothing is owed (the session is not
// settled, has no task token or no outbox, or does not exist), and an
// error when the delivery must be tried again later. While another sender
// holds a live claim it waits, with backoff, until that sender records its
// result or the claim's lease ends, at most until ctx ends.
func (d *Deliverer) Deliver(ctx context.Context, sessionURI string) error {
	log := d.Log
	delay := 50 * time.Millisecond
	for {
		now := d.Clock()
		s, err := d.Store.ClaimDelivery(ctx, sessionURI, now)
		switch {
		case err == nil:
			log = log.With("correlationId", s.CorrelationID)
			resumed, err := d.send(ctx, log, s, now)
			if err != nil {
				return err
			}
			if resumed {
				log.InfoContext(ctx, "workflow task resumed from the outbox", "status", string(s.Status))
			}
			return nil
		case errors.Is(err, ErrNotFound):
			return nil
		case !errors.Is(err, ErrConflict) || s == nil:
			return fmt.Errorf("claim delivery: %s", safeErr(err))
		case !s.DeliveryDue():
			// Resumed already, or nothing to deliver.
			return nil
		}
		// Another sender holds the claim: wait for its result, or for its
		// lease to end.
		wait := delay
		if end := s.DeliveryClaimedAt.Add(DeliveryLease + time.Millisecond).Sub(now); end < wait {
			wait = max(end, time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return ErrDeliveryBusy
		case <-time.After(wait):
		}
		delay = min(2*delay, time.Second)
	}
}

// send delivers s's outbox under the delivery claim made at claim and
// records the result: ResumedAt when Step Functions took it or answered
// that the task no longer waits, the claim released otherwise (so the
// next sender need not wait for the lease). It reports whether this send
// resumed the task; an error means the outbox is still owed.
func (d *Deliverer) send(ctx context.Context, log *slog.Logger, s *Session, claim time.Time) (bool, error) {
	end := time.Now().Add(sendTimeout)
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) > 2*recordReserve && dl.Add(-recordReserve).Before(end) {
		end = dl.Add(-recordReserve)
	}
	sctx, cancel := context.WithDeadline(ctx, end)
	var err error
	if s.Outbox.Output != "" {
		err = d.Resumer.Succeed(sctx, s.TaskToken, json.RawMessage(s.Outbox.Output))
	} else {
		err = d.Resumer.Fail(sctx, s.TaskToken, s.Outbox.Error, s.Outbox.Cause)
	}
	cancel()
	if err != nil && !errors.Is(err, ErrTaskGone) {
		log.WarnContext(ctx, "could not resume the workflow task; the outbox keeps it owed", "error", safeErr(err), "status", string(s.Status))
		// Released even if the caller's budget ran out during the send:
		// otherwise the claim blocks other senders for its whole lease.
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		_, rerr := d.Store.ReleaseDelivery(rctx, s.SessionURI, claim)
		rcancel()
		if rerr != nil && !errors.Is(rerr, ErrConflict) {
			log.WarnContext(ctx, "could not release the delivery claim; it ends with its lease", "error", safeErr(rerr))
		}
		return false, fmt.Errorf("resume task: %s", safeErr(err))
	}
	if errors.Is(err, ErrTaskGone) {
		log.WarnContext(ctx, "workflow task no longer waiting", "status", string(s.Status))
	}
	// Recorded with a few quick retries: a record left without ResumedAt
	// only costs a later sender a refused send.
	var merr error
	for i, delay := 0, 50*time.Millisecond; i < 4; i, delay = i+1, delay*2 {
		if _, merr = d.Store.MarkResumed(ctx, s.SessionURI, d.Clock()); merr == nil || errors.Is(merr, ErrConflict) {
			merr = nil
			break
		}
		select {
		case <-ctx.Done():
			i = 4
		case <-time.After(delay):
		}
	}
	if merr != nil {
		log.ErrorContext(ctx, "workflow task resumed but could not record it", "error", safeErr(merr))
	}
	return err == nil, nil
}
