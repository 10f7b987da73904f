// Package flow owns the consent flow: starting a 3-legged OAuth authorization
// at AgentCore Identity, binding the browser that comes back to the user who
// started it, completing the session and resuming the waiting workflow.
//
// It depends only on the small interfaces (ports) declared in ports.go; the
// AWS adapters live in their own packages.
package flow

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
)

// Status is the lifecycle state of a stored session. The legal moves
// (Status.CanBecome):
//
//	PENDING -> COMPLETING -> COMPLETED
//	PENDING -> FAILED | EXPIRED
//	COMPLETING -> PENDING (transient AgentCore failure: the user may retry)
//	COMPLETING -> FAILED | EXPIRED
//
// COMPLETED, FAILED and EXPIRED are terminal. An open session past its
// ExpiresAt reads as EXPIRED before anyone records it (Session.StatusAt).
type Status string

const (
	StatusPending    Status = "PENDING"
	StatusCompleting Status = "COMPLETING"
	StatusCompleted  Status = "COMPLETED"
	StatusFailed     Status = "FAILED"
	StatusExpired    Status = "EXPIRED"
)

// Terminal reports whether no further transition is allowed.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusExpired
}

// Open reports whether a session in status s still waits for the user or
// for its completion: only open sessions run out of time (see StatusAt).
func (s Status) Open() bool {
	return s == StatusPending || s == StatusCompleting
}

// CanBecome reports whether a stored session may move from status s to
// next: the edges drawn on Status. No status can become itself, and
// nothing leaves a terminal status.
func (s Status) CanBecome(next Status) bool {
	switch s {
	case StatusPending:
		return next == StatusCompleting || next == StatusFailed || next == StatusExpired
	case StatusCompleting:
		return next == StatusCompleted || next == StatusPending || next == StatusFailed || next == StatusExpired
	}
	return false
}

// BindingMode says how the callback proves that the browser belongs to the
// user who started the flow.
type BindingMode string

const (
	// BindingCode: a one-time verification code shown to the user in the
	// application's own channel must be typed on the confirmation page.
	BindingCode BindingMode = contract.BindingCode
	// BindingNone: explicit opt-in for single-user setups; one button.
	BindingNone BindingMode = contract.BindingNone
	// BindingOIDC: the browser signs in at the application's OpenID Connect
	// provider; the verified user must be the user the flow was started for.
	BindingOIDC BindingMode = contract.BindingOIDC
	// BindingOIDCCode: sign-in and the verification code.
	BindingOIDCCode BindingMode = contract.BindingOIDCCode
)

// ParseBindingMode returns the mode named s (one of contract.BindingModes).
func ParseBindingMode(s string) (BindingMode, error) {
	for _, m := range contract.BindingModes() {
		if s == m {
			return BindingMode(s), nil
		}
	}
	return "", errors.New("binding mode must be one of code, oidc, oidc+code, none")
}

// NeedsCode reports whether the mode asks for the verification code.
func (m BindingMode) NeedsCode() bool { return m == BindingCode || m == BindingOIDCCode }

// NeedsSignIn reports whether the mode signs the browser in.
func (m BindingMode) NeedsSignIn() bool { return m == BindingOIDC || m == BindingOIDCCode }

// Valid reports whether m is a known mode.
func (m BindingMode) Valid() bool { _, err := ParseBindingMode(string(m)); return err == nil }

// union is the mode that asks for every proof a or b asks for: a session
// started under one mode and confirmed under a deployment switched to
// another must give both.
func union(a, b BindingMode) BindingMode {
	code, signIn := a.NeedsCode() || b.NeedsCode(), a.NeedsSignIn() || b.NeedsSignIn()
	switch {
	case code && signIn:
		return BindingOIDCCode
	case signIn:
		return BindingOIDC
	case code:
		return BindingCode
	}
	return BindingNone
}

// Session is one pending or finished authorization, as stored.
// Secrets are never stored in clear except where the flow must replay them
// (the task token, which Step Functions needs back, and the AgentCore
// sessionUri, which is the lookup key).
type Session struct {
	// SessionURI is AgentCore's session identifier
	// (urn:ietf:params:oauth:request_uri:...). Primary key.
	SessionURI string
	// CorrelationID names the session in logs, events and results: the
	// caller's correlationId, or a random UUID.
	CorrelationID string
	// Context is the caller's opaque JSON object (compact JSON, at most
	// MaxContext bytes), carried into the events and the task output; empty
	// when none was given.
	Context string
	// ExecutionARN is the Step Functions execution waiting for the session
	// (the request's executionArn), carried into the events; empty when
	// none was given.
	ExecutionARN string
	// ReturnTo is the input's returnTo: the application page the success
	// page links back to, if the callback still lists it; empty for none.
	ReturnTo string
	// ContinueAgent is the name of the agent runtime the input's
	// continueWith continues with (its id without the 10-character
	// suffix; never its ARN or account), which the confirmation and
	// success pages name; empty when the workflow continues with none.
	ContinueAgent string
	// StateHash is Hash(customState); the state itself is never stored.
	StateHash string
	// UserID is set when the flow was started for a user id.
	UserID string
	// UserTokenHash is Hash(userToken) when the flow was started with a JWT.
	UserTokenHash string
	Provider      string
	Scopes        []string
	// TaskToken is the Step Functions task token, empty for synchronous use.
	TaskToken string
	// AuthorizationURL is where the user consents (kept to answer retries).
	AuthorizationURL string
	Binding          BindingMode
	// External marks a session consentflow did not start (an agent in
	// AgentCore Runtime or a Gateway target started it with the callback
	// URL): it has no state, task or provider, and is recorded when a
	// signed-in browser first completes it, so it is completed only once.
	// UserID is then the signed-in user who claimed it last.
	External bool
	// CodeHash is Hash(verification code) in the code binding modes.
	CodeHash string
	Status   Status
	// Attempts counts the verification-code comparisons reserved so far
	// (ReserveAttempt), WrongCodes those of them that found a wrong code.
	// Attempts - WrongCodes comparisons are open or found the right code.
	Attempts   int
	WrongCodes int
	// ReservedAt is when the last attempt was reserved. A comparison left
	// open longer than ReservationLease belongs to a request that ended
	// without recording it (it lost a claim race, or its function died).
	ReservedAt time.Time
	// FailureReason is the named error a FAILED/EXPIRED session ended with.
	FailureReason string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	// ClaimedAt is when the session entered COMPLETING (a lease: a claim
	// older than ClaimLease may be taken over).
	ClaimedAt time.Time
	// NotifiedAt is when the AuthorizationRequired event was published
	// (zero until then).
	NotifiedAt time.Time
	// Outbox is what the waiting task is owed once the session is settled,
	// written in the same conditional write as the terminal status (zero
	// for open sessions and for sessions settled before the outbox existed).
	Outbox Outbox
	// DeliveryClaimedAt is when a sender (the callback inline, or the
	// resumer) claimed the delivery of the Outbox: a lease of DeliveryLease,
	// so that nobody sends on purpose while another sender is at it.
	DeliveryClaimedAt time.Time
	// ResumedAt is when the Outbox was delivered to Step Functions (or Step
	// Functions answered that the task no longer waits): zero until then.
	ResumedAt time.Time
}

// context is the session's context object for events and results, nil
// when it has none.
func (s *Session) context() json.RawMessage {
	if s.Context == "" {
		return nil
	}
	return json.RawMessage(s.Context)
}

// Outbox is the decision a settled session owes its waiting task: for a
// COMPLETED session the SendTaskSuccess output (flow.Result JSON; never a
// token), for a FAILED or EXPIRED one SendTaskFailure's error name and
// cause. Exactly one of Output / Error is set in a written outbox.
type Outbox struct {
	Output string
	Error  string
	Cause  string
}

// Empty reports whether there is nothing to send.
func (o Outbox) Empty() bool { return o.Output == "" && o.Error == "" }

// DeliveryLease bounds how long a delivery claim keeps other senders off:
// longer than any sender's send and its recording (the callback's settle
// budget is 3 s, the resumer bounds its send to 5 s).
const DeliveryLease = 15 * time.Second

// DeliveryDue reports whether s still owes its task the Outbox: settled,
// with a task token and an outbox, and not resumed yet.
func (s *Session) DeliveryDue() bool {
	return s.Status.Terminal() && s.TaskToken != "" && !s.Outbox.Empty() && s.ResumedAt.IsZero()
}

// DeliveryClaimableAt reports whether a sender may claim the delivery at
// now: it is due and nobody holds a claim younger than DeliveryLease.
func (s *Session) DeliveryClaimableAt(now time.Time) bool {
	return s.DeliveryDue() && (s.DeliveryClaimedAt.IsZero() || now.Sub(s.DeliveryClaimedAt) > DeliveryLease)
}

// ClaimLease bounds how long a COMPLETING claim blocks others: a callback
// that crashed between claim and completion does not wedge the session.
const ClaimLease = 60 * time.Second

// ExpiredAt reports whether the session's validity has run out at now
// (at ExpiresAt itself it has).
func (s *Session) ExpiredAt(now time.Time) bool {
	return !now.Before(s.ExpiresAt)
}

// StatusAt is the session's status as seen at now: an open session (PENDING
// or COMPLETING) whose validity has run out is EXPIRED, whatever is stored
// and whether or not anyone recorded the expiry yet. Every SessionStore
// read returns records with Status = StatusAt(store's clock).
func (s *Session) StatusAt(now time.Time) Status {
	if s.Status.Open() && s.ExpiredAt(now) {
		return StatusExpired
	}
	return s.Status
}

// ClaimableAt reports whether a Claim at now may take the session: it is
// PENDING at now (so not expired), or it is COMPLETING at now under a claim
// older than ClaimLease (a completion that crashed), or under no recorded
// claim at all.
func (s *Session) ClaimableAt(now time.Time) bool {
	switch s.StatusAt(now) {
	case StatusPending:
		return true
	case StatusCompleting:
		return s.ClaimedAt.IsZero() || now.Sub(s.ClaimedAt) > ClaimLease
	}
	return false
}

// ReservationLease bounds how long a reserved verification attempt counts
// as open: longer than any callback request lives (its function's timeout
// is 10 s).
const ReservationLease = 15 * time.Second

// OpenAttemptAt reports whether a reserved comparison may still be running
// at now: one is not recorded yet (WrongCodes < Attempts) and the last
// reservation is younger than ReservationLease.
func (s *Session) OpenAttemptAt(now time.Time) bool {
	return s.WrongCodes < s.Attempts && now.Sub(s.ReservedAt) <= ReservationLease
}

// AttemptsExhausted reports whether attempts wrong verification codes use
// up a limit of limit; a limit below 1 counts as 1.
func AttemptsExhausted(attempts, limit int) bool {
	return attempts >= max(limit, 1)
}

// Hash is the one-way digest used for every secret the store keeps a
// fingerprint of (customState, verification code, user token): hex SHA-256.
// The inputs are high-entropy random values (state, JWT) or short-lived
// codes with an attempt limit, so an unsalted digest is adequate.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
