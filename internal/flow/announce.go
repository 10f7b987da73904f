package flow

import (
	"context"
	"log/slog"
	"time"

	"github.com/consentflow/consentflow/events"
	"github.com/consentflow/consentflow/internal/contract"
)

// Completion events: every session that settles is announced once on the
// event bus, AuthorizationCompleted or AuthorizationFailed, whoever started
// it (a workflow task, a direct invocation, agentauth, an agent elsewhere).
// The resumer function announces them from the sessions table's stream:
// each settle is one conditional write from an open stored status to a
// terminal one (Settle, Transition, the RecordWrongCode that fails the
// session), so exactly one stream record per session has an open old image
// and a terminal new image (Settles). A publish that fails is retried by
// the stream, so an event may be published more than once (at least once);
// consumers deduplicate on the correlation id and the detail type.
//
// A session that runs out of time unvisited stays open in the table (its
// expiry is a view, Session.StatusAt): no write settles it, so no event
// announces it.

// Settles reports whether a write that turned the stored record old into
// new settled the session: old open (PENDING or COMPLETING as stored, not
// the expiry view) and new terminal.
func Settles(old, new *Session) bool {
	return old != nil && new != nil && old.Status.Open() && new.Status.Terminal()
}

// Announcer publishes the completion events of settled sessions.
type Announcer struct {
	Notifier CompletionNotifier
	Log      *slog.Logger
}

// Announce publishes AuthorizationCompleted for a COMPLETED session s and
// AuthorizationFailed (reason: s.FailureReason) for a FAILED or EXPIRED one
// (except one started elsewhere: see below), settled at at. It publishes nothing for an open session. The events carry
// the session's correlation id, context, execution ARN, user, provider,
// scopes and whether it was started elsewhere: never a token, its state,
// code, task token or sessionUri. An error means the event must be published again later.
func (a *Announcer) Announce(ctx context.Context, s *Session, at time.Time) error {
	log := a.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("correlationId", s.CorrelationID)
	scopes := append([]string{}, s.Scopes...) // always an array in the event
	at = at.UTC()
	var (
		kind string
		err  error
	)
	switch s.Status {
	case StatusCompleted:
		kind = events.DetailTypeAuthorizationCompleted
		err = a.Notifier.AuthorizationCompleted(ctx, events.AuthorizationCompleted{
			CorrelationID: s.CorrelationID, UserID: s.UserID, Provider: s.Provider, Scopes: scopes,
			External: s.External, At: at, Context: s.context(), ExecutionARN: s.ExecutionARN,
		})
	case StatusFailed, StatusExpired:
		if s.External {
			// A session started elsewhere is recorded by whoever signs in
			// with its link, even with a made-up one: its end without a
			// completion says nothing an application could act on.
			log.InfoContext(ctx, "a session started elsewhere ended without completion: not announced", "status", string(s.Status))
			return nil
		}
		kind = events.DetailTypeAuthorizationFailed
		err = a.Notifier.AuthorizationFailed(ctx, events.AuthorizationFailed{
			CorrelationID: s.CorrelationID, UserID: s.UserID, Provider: s.Provider, Scopes: scopes,
			External: s.External, At: at, Reason: failureReason(s), Context: s.context(), ExecutionARN: s.ExecutionARN,
		})
	default:
		return nil
	}
	if err != nil {
		log.WarnContext(ctx, "publishing "+kind+" failed; the stream retries it", "error", safeErr(err))
		return err
	}
	log.InfoContext(ctx, kind+" published", "status", string(s.Status))
	return nil
}

// failureReason is the error name a FAILED or EXPIRED session ended with;
// every settling write records one, the defaults only cover a record
// without it.
func failureReason(s *Session) string {
	switch {
	case s.FailureReason != "":
		return s.FailureReason
	case s.Status == StatusExpired:
		return contract.ErrExpired
	}
	return contract.ErrAuthorizationFailed
}
