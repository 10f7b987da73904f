// Package connectauth is the domain of Amazon Connect customer
// authentication: the redirect route that resumes a chat's "Authenticate
// Customer" block.
//
// In a Connect chat with that block, the customer signs in at Amazon
// Cognito, and Cognito redirects the browser to the application's redirect
// URI with code and state (or error and error_description). The
// application must then call UpdateParticipantAuthentication {State,
// InstanceId, Code | Error, ErrorDescription} so that the flow continues.
// Connect only acknowledges the call: it fetches the identity from Cognito
// and imports it into Customer Profiles asynchronously, and the customer
// sees the result in the chat, not on the redirect's page.
//
// Service.Return checks the redirect (Validate) before any call, claims
// it in the Store with a conditional write of a hash of its state (so a
// reload or a replayed link never reaches Connect twice), calls Connect
// through the Connect port, and records the answer, or releases the claim
// when the failure was transient so the customer can reload. It answers
// with an Outcome; the driving adapter (internal/web) decides the words.
// Neither the state nor the code is ever logged or returned.
package connectauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Kind is what happened to a redirect, for the page and the log.
type Kind string

// Outcome kinds.
const (
	// KindDone: Connect acknowledged the code; the chat shows the result.
	KindDone Kind = "done"
	// KindCancelled: the sign-in failed or was cancelled at Cognito and
	// Connect acknowledged the error (the block's error branch runs).
	KindCancelled Kind = "cancelled"
	// KindAlreadyDone: the redirect was forwarded before (a reload or a
	// replayed link, answered from the record without a call), or Connect
	// answered ConflictException.
	KindAlreadyDone Kind = "already-done"
	// KindInProgress: another request is forwarding the same redirect now.
	KindInProgress Kind = "in-progress"
	// KindTryAgain: Connect or the store did not answer; nothing is
	// recorded against the redirect, a reload tries again.
	KindTryAgain Kind = "try-again"
	// KindRefused: Connect refused the redirect (InvalidRequest,
	// InvalidParameter): expired, or not one of this instance's chats.
	KindRefused Kind = "refused"
	// KindFailed: Connect denied the call (AccessDenied and other client
	// errors): a problem on the application's side.
	KindFailed Kind = "failed"
	// KindBadRequest: the redirect failed Validate; nothing was called.
	KindBadRequest Kind = "bad-request"
)

// Outcome is Return's answer.
type Outcome struct {
	Kind Kind
	// Cause says what decided a failure, for the log only: a Validate
	// rule, a Connect error code, "store". Never a value of the request.
	Cause string
	// Replay is set when the answer came from an earlier request's record.
	Replay bool
}

// Clock tells the time (time.Now in production).
type Clock func() time.Time

// DefaultCallTimeout bounds the Connect call, the SDK's retries included,
// well inside the callback function's 10-second timeout (the store's
// calls have their own 2-second bounds).
const DefaultCallTimeout = 5 * time.Second

// Config is the Connect route's configuration.
type Config struct {
	// InstanceID is the Connect instance's id (ValidInstanceID).
	InstanceID string
	// CallTimeout replaces DefaultCallTimeout when positive.
	CallTimeout time.Duration
}

// Deps are the ports and helpers.
type Deps struct {
	Connect Connect
	Store   Store
	Clock   Clock
	Log     *slog.Logger
}

// Service forwards Cognito redirects to Connect. It is safe for concurrent
// use.
type Service struct {
	cfg Config
	d   Deps
}

// New returns a Service; it refuses an invalid instance id or a missing
// port.
func New(cfg Config, d Deps) (*Service, error) {
	if !ValidInstanceID(cfg.InstanceID) {
		return nil, errors.New("connectauth: the instance id must be 1-100 printable characters without spaces")
	}
	if d.Connect == nil || d.Store == nil {
		return nil, errors.New("connectauth: Connect and Store are required")
	}
	if d.Clock == nil {
		d.Clock = time.Now
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	return &Service{cfg: cfg, d: d}, nil
}

// Key is the store key of the redirect with state: hex SHA-256 of the
// state, which never appears in the table itself.
func Key(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// releaseTimeout bounds the release of a claim after a failed call, which
// runs even when the request's context has ended.
const releaseTimeout = 2 * time.Second

// Return handles one redirect: validate, claim, call Connect, record.
func (s *Service) Return(ctx context.Context, p Params) Outcome {
	r, err := Validate(p)
	if err != nil {
		var ie *InvalidError
		errors.As(err, &ie)
		return Outcome{Kind: KindBadRequest, Cause: string(ie.Rule)}
	}
	key := Key(r.State)
	now := s.d.Clock()
	cur, err := s.d.Store.ClaimRedirect(ctx, key, now)
	switch {
	case errors.Is(err, ErrClaimed) && cur != nil:
		return replay(cur)
	case err == nil && cur == nil:
		err = errors.New("the store returned no record for a claim")
		fallthrough
	case err != nil:
		s.d.Log.ErrorContext(ctx, "Connect redirect: the store is unavailable; nothing was forwarded", "error", safeErr(err))
		return Outcome{Kind: KindTryAgain, Cause: "store"}
	}
	claimedAt := cur.ClaimedAt

	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	err = s.d.Connect.UpdateParticipantAuthentication(cctx, Update{
		InstanceID: s.cfg.InstanceID, State: r.State, Code: r.Code,
		Error: r.Error, ErrorDescription: r.ErrorDescription,
	})
	cancel()
	var o Outcome
	var status Status
	switch {
	case err == nil && r.Cancelled():
		o, status = Outcome{Kind: KindCancelled}, StatusCancelled
	case err == nil:
		o, status = Outcome{Kind: KindDone}, StatusDone
	case errors.Is(err, ErrConflict):
		o, status = Outcome{Kind: KindAlreadyDone, Cause: code(err)}, StatusConflict
	case errors.Is(err, ErrTransient):
		s.release(ctx, key, claimedAt)
		return Outcome{Kind: KindTryAgain, Cause: code(err)}
	case errors.Is(err, ErrRefused):
		o, status = Outcome{Kind: KindRefused, Cause: code(err)}, StatusRefused
	default: // ErrDenied, or an error outside the port's contract
		// Our side is misconfigured (IAM, Region, instance): Connect did
		// not use the state, so the claim is given back and a reload after
		// the fix forwards the sign-in.
		s.d.Log.ErrorContext(ctx, "Connect redirect: Connect refused consentflow's call; check the callback role and the instance", "cause", code(err))
		s.release(ctx, key, claimedAt)
		return Outcome{Kind: KindFailed, Cause: code(err)}
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := s.d.Store.FinishRedirect(fctx, key, claimedAt, status, s.d.Clock()); err != nil {
		// The answer stands; the record stays pending until its lease
		// ends, and a replay after that calls Connect again (which then
		// answers ConflictException for a used state).
		s.d.Log.WarnContext(ctx, "Connect redirect: the outcome could not be recorded", "outcome", string(o.Kind), "error", safeErr(err))
	}
	return o
}

// release gives the claim back after a transient failure.
func (s *Service) release(ctx context.Context, key string, claimedAt time.Time) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := s.d.Store.ReleaseRedirect(rctx, key, claimedAt); err != nil {
		// The claim then ends with its lease.
		s.d.Log.WarnContext(ctx, "Connect redirect: the claim could not be released; it lapses after its lease",
			"lease", ClaimLease.String(), "error", safeErr(err))
	}
}

// replay answers a redirect whose record exists (its claim condition
// failed) from that record, without calling Connect.
func replay(cur *Record) Outcome {
	o := Outcome{Replay: true, Cause: "record " + string(cur.Status)}
	switch cur.Status {
	case StatusPending:
		o.Kind = KindInProgress
	case StatusDone, StatusCancelled, StatusConflict:
		o.Kind = KindAlreadyDone
	case StatusRefused:
		o.Kind = KindRefused
	case StatusReleased: // released between the claim's read and its write
		o.Kind = KindTryAgain
	default:
		o.Kind = KindFailed
	}
	return o
}

// code is a CallError's code, or the error's type for an error outside
// the port's contract.
func code(err error) string {
	var ce *CallError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return fmt.Sprintf("%T", err)
}

// safeErr describes a store error for the log: its text (the store's
// errors name the operation and the AWS error, never a key or a value).
func safeErr(err error) string { return err.Error() }
