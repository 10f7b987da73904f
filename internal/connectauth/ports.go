package connectauth

import (
	"context"
	"errors"
	"time"
)

// Connect is the Amazon Connect call the domain makes (a driven port;
// internal/adapters/connect implements it with aws-sdk-go-v2).
type Connect interface {
	// UpdateParticipantAuthentication forwards one redirect. A failure is
	// a *CallError whose Class is one of ErrConflict, ErrTransient,
	// ErrRefused, ErrDenied.
	UpdateParticipantAuthentication(ctx context.Context, u Update) error
}

// Update is UpdateParticipantAuthentication's input.
type Update struct {
	InstanceID       string
	State            string
	Code             string
	Error            string
	ErrorDescription string
}

// The classes of Connect failures (CallError.Class).
var (
	// ErrConflict: ConflictException. The redirect's state was already
	// used (the contact's authentication is no longer waiting for it).
	ErrConflict = errors.New("connectauth: Connect reports a conflict")
	// ErrTransient: nothing definite came back: ThrottlingException or
	// InternalServiceException (after the SDK's retries), another server
	// error, a timeout or a broken connection. Trying again may work.
	ErrTransient = errors.New("connectauth: Connect is unavailable")
	// ErrRefused: InvalidRequestException or InvalidParameterException.
	// Connect refused this redirect; the same one will not work later.
	ErrRefused = errors.New("connectauth: Connect refused the request")
	// ErrDenied: AccessDeniedException or any other client error
	// (credentials, permissions, configuration): our side is at fault.
	ErrDenied = errors.New("connectauth: Connect denied the call")
)

// CallError is a failed Connect call: Class decides what happens, Code
// (the AWS error code, e.g. "ThrottlingException", or a short description
// of a transport failure) is for the log. It never holds the service's
// message, which may quote input.
type CallError struct {
	Class error
	Code  string
}

func (e *CallError) Error() string {
	return "UpdateParticipantAuthentication failed: " + e.Code
}

// Unwrap returns the class, so errors.Is(err, ErrTransient) works.
func (e *CallError) Unwrap() error { return e.Class }

// Store keeps one record per redirect (keyed by a hash of its state) so
// that a redirect is forwarded at most once (a driven port; internal/state
// implements it on the sessions table). Times are stored to the
// millisecond.
type Store interface {
	// ClaimRedirect claims the redirect with key for a call starting at
	// now, in one conditional write: it succeeds when the key has no
	// record, a released one, or a pending claim older than ClaimLease.
	// It returns the new record (StatusPending, ClaimedAt = now to the
	// millisecond); otherwise the current record with ErrClaimed.
	ClaimRedirect(ctx context.Context, key string, now time.Time) (*Record, error)
	// FinishRedirect records status (not StatusPending) on the claim made
	// at claimedAt; ErrClaimed (with no record) when that claim is no
	// longer the current one.
	FinishRedirect(ctx context.Context, key string, claimedAt time.Time, status Status, now time.Time) error
	// ReleaseRedirect gives the claim made at claimedAt up, so the same
	// redirect can be tried again; ErrClaimed when that claim is no longer
	// the current one.
	ReleaseRedirect(ctx context.Context, key string, claimedAt time.Time) error
}

// ErrClaimed is the Store's answer when its condition fails.
var ErrClaimed = errors.New("connectauth: redirect already claimed")

// Record is a redirect's record.
type Record struct {
	Status     Status
	ClaimedAt  time.Time
	FinishedAt time.Time
}

// Status is a redirect's state in the store.
type Status string

// Statuses of a redirect record.
const (
	// StatusPending: claimed, the Connect call is under way (or its
	// caller died: after ClaimLease another request may take it over).
	StatusPending Status = "pending"
	// StatusReleased: the call failed transiently; the next request
	// claims it again.
	StatusReleased Status = "released"
	// StatusDone: Connect acknowledged the code.
	StatusDone Status = "done"
	// StatusCancelled: Connect acknowledged the error redirect.
	StatusCancelled Status = "cancelled"
	// StatusConflict: Connect answered ConflictException.
	StatusConflict Status = "conflict"
	// StatusRefused: Connect answered InvalidRequest or InvalidParameter.
	StatusRefused Status = "refused"
	// StatusFailed: Connect denied the call (AccessDenied, other client
	// errors).
	StatusFailed Status = "failed"
)

// Final reports whether s ends the redirect (every status but pending and
// released).
func (s Status) Final() bool {
	switch s {
	case StatusDone, StatusCancelled, StatusConflict, StatusRefused, StatusFailed:
		return true
	}
	return false
}

// ClaimLease is how long a pending claim keeps other requests for the same
// redirect out: longer than any callback request lives (the function's
// timeout is 10 s), so a claim older than this belongs to a request that
// died.
const ClaimLease = 30 * time.Second

// Retention is how long a redirect's record stays (DynamoDB TTL): replays
// within a day are answered from it without calling Connect.
const Retention = 24 * time.Hour
