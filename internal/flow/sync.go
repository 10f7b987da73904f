package flow

import (
	"context"
	"errors"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
)

// Synchronous use: an agent that waits for its user's consent in its own
// process (package agentauth) starts the session exactly as the initiate
// function does — the same validation, customState, record and
// verification code — but without a task token and without EventBridge:
// its own Notifier tells it the authorization URL and the code, and it
// watches the record (Await) until the callback settles the session.
// Nothing is sent to Step Functions: a session without a task token owes
// no outbox delivery.

// Started is what StartSync answers.
type Started struct {
	// Result is AUTHORIZED (the vault held a token: AccessToken is set)
	// or AUTHORIZATION_REQUIRED, with the authorization URL, the
	// verification code (BindingCode) and the expiry.
	Result *Result
	// SessionURI is the stored session's key (AUTHORIZATION_REQUIRED).
	SessionURI string
	// AccessToken is the vault's token when no consent was needed. It is
	// a secret: never log it or put it in an error.
	AccessToken string
}

// StartSync starts an authorization for a synchronous caller that already
// holds workloadToken, the workload access token for in's user (it minted
// it, or AgentCore Runtime passed it). When the vault has no token, the
// session is stored as Initiate stores it (no task token) and announced
// through n before StartSync returns; an error from n fails StartSync with
// a NotifyFailed Failure wrapping it, and the stored session is left to
// expire. Errors are *Failure values, as Initiate's.
func (x *Initiator) StartSync(ctx context.Context, in Input, workloadToken string, n Notifier) (*Started, error) {
	req := Request{Input: in}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if in.ContinueWith != nil {
		return nil, invalid("continueWith", "is carried out by the state machine only")
	}
	if err := x.acceptsReturnTo(req.Input); err != nil {
		return nil, err
	}
	in = req.Input
	log := x.d.Log.With("provider", in.Provider, "flow", in.Flow, "callbackPattern", false)
	if workloadToken == "" {
		return nil, Fail(contract.ErrInvalidInput, "workload access token is required")
	}
	state, res, err := x.askToken(ctx, log, workloadToken, in)
	if err != nil {
		return nil, err
	}
	if res.AccessToken != "" {
		log.InfoContext(ctx, "token already in the vault: no consent needed")
		return &Started{
			Result: &Result{Status: StatusAuthorized, Provider: in.Provider, Scopes: in.Scopes, UserID: in.UserID,
				CorrelationID: correlationID(in), Context: in.Context},
			AccessToken: res.AccessToken,
		}, nil
	}
	if err := verifyAuthorizationSession(ctx, log, res); err != nil {
		return nil, err
	}
	out, uri, err := x.startSession(ctx, log, n, req, state, res)
	if err != nil {
		return nil, err
	}
	return &Started{Result: out, SessionURI: uri}, nil
}

// Backoff of Await between reads of the record.
const (
	awaitFirstDelay = 100 * time.Millisecond
	awaitMaxDelay   = 2 * time.Second
)

// Await watches the session sessionURI until it is settled and returns its
// record: COMPLETED (the token is in the vault), FAILED with its
// FailureReason (contract.ErrConsentDenied, ErrBindingFailed,
// ErrAuthorizationFailed), or EXPIRED. It reads the record with the
// store's strongly consistent Get, first after 100 ms and then at
// doubling intervals up to 2 s; it calls nothing else. A session that
// expires while a completion that started in time is still running is
// awaited until that completion settles it or its claim's lease ends
// (then see Session.MayHaveCompleted). A store that cannot be read is
// retried until the session's time is up. ctx bounds the wait; its end
// returns ctx.Err().
func (x *Initiator) Await(ctx context.Context, sessionURI string) (*Session, error) {
	log := x.d.Log
	delay := awaitFirstDelay
	var last error
	// The session's end (ExpiresAt + ClaimLease) once read; until then
	// the longest a session can live.
	limit := x.d.Clock().Add(contract.SessionValidity + ClaimLease)
	for {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, awaitMaxDelay)
		s, err := x.d.Store.Get(ctx, sessionURI)
		switch {
		case ctx.Err() != nil:
			return nil, ctx.Err()
		case errors.Is(err, ErrNotFound):
			log.ErrorContext(ctx, "awaited session not found")
			return nil, Fail(contract.ErrAuthorizationFailed, "the authorization session is not stored")
		case err != nil:
			// A blip of the table does not end a wait of minutes.
			if last == nil {
				log.WarnContext(ctx, "session store unavailable while awaiting the session", "error", safeErr(err))
			}
			last = err
			if !x.d.Clock().Before(limit) {
				return nil, storeFailure(err)
			}
			continue
		}
		last = nil
		limit = s.ExpiresAt.Add(ClaimLease)
		if s.settledFor(x.d.Clock()) {
			log.InfoContext(ctx, "awaited session settled", "correlationId", s.CorrelationID,
				"status", string(s.Status), "reason", s.FailureReason)
			return s, nil
		}
	}
}

// settledFor reports whether a waiter may stop watching s at now: it is
// COMPLETED or FAILED, or EXPIRED with no completion running (an expiry
// recorded, or only seen by the clock without a live claim).
func (s *Session) settledFor(now time.Time) bool {
	switch s.Status {
	case StatusCompleted, StatusFailed:
		return true
	case StatusExpired:
		return s.FailureReason != "" || s.ClaimedAt.IsZero() || now.Sub(s.ClaimedAt) > ClaimLease
	}
	return false
}

// MayHaveCompleted reports whether a session seen as EXPIRED may
// nevertheless have been completed at AgentCore: a completion claimed it
// and never settled it (its answer was lost). Only AgentCore's vault knows
// then; the callback asks it before it records such an expiry.
func (s *Session) MayHaveCompleted() bool {
	return s.Status == StatusExpired && s.FailureReason == "" && !s.ClaimedAt.IsZero()
}
