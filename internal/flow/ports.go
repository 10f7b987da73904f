package flow

import (
	"context"
	"errors"
	"time"

	"github.com/consentflow/consentflow/events"
)

// Store errors. Adapters wrap or return these so the domain can use errors.Is.
var (
	// ErrNotFound: no session (or no task-token record) under that key.
	ErrNotFound = errors.New("session not found")
	// ErrConflict: a conditional write failed because the record is not in
	// the expected state. Store methods that return it also return the
	// current record when it exists.
	ErrConflict = errors.New("session state conflict")
	// ErrTaskExists: Create found a session already stored for the same task
	// token (a retried invocation). The existing session is returned with it.
	ErrTaskExists = errors.New("session already exists for task token")
	// ErrIllegalTransition: Transition was asked for a move that is not an
	// edge of the status machine (Status.CanBecome). Nothing is written.
	ErrIllegalTransition = errors.New("illegal session status transition")
)

// SessionStore persists sessions. It is safe for concurrent use, and every
// change is one atomic conditional write: of concurrent callers racing for
// the same change (Claim, Transition, the attempt that reaches the limit,
// MarkNotified, Create for one task token) exactly one succeeds and the
// others get ErrConflict (ErrTaskExists for Create) with the current record.
//
// Every record a store returns is a copy, with Status as seen at the
// store's clock (Session.StatusAt): a record stored as PENDING or
// COMPLETING whose ExpiresAt has passed is returned with Status EXPIRED,
// whatever DynamoDB TTL has done. Conditions are on the stored status,
// except where a method says otherwise. Reads and changes of a sessionUri
// that is not stored return ErrNotFound and write nothing.
type SessionStore interface {
	// Create stores s if no session with s.SessionURI exists, and returns
	// the record as stored. s.Status must be empty or PENDING (stored as
	// PENDING; anything else is an error and nothing is written); a zero
	// CreatedAt defaults to the store's clock, a zero ExpiresAt to CreatedAt
	// + contract.SessionValidity. A session with the same sessionUri gets
	// (current, ErrConflict). When s.TaskToken is set it also records the
	// task token so a retried invocation finds the first session: if one is
	// already recorded, Create writes nothing and returns (existing,
	// ErrTaskExists).
	Create(ctx context.Context, s *Session) (*Session, error)
	// Get returns the session with that sessionUri, or ErrNotFound.
	Get(ctx context.Context, sessionURI string) (*Session, error)
	// GetByTaskToken returns the session created for that task token, or
	// ErrNotFound.
	GetByTaskToken(ctx context.Context, taskToken string) (*Session, error)
	// Claim moves the session to COMPLETING with ClaimedAt=now if
	// Session.ClaimableAt(now) (PENDING and not expired at now, or a stale
	// claim). Otherwise (current, ErrConflict).
	Claim(ctx context.Context, sessionURI string, now time.Time) (*Session, error)
	// Transition moves the session from any of the from statuses (as
	// stored, not as seen: to record an expiry pass PENDING and COMPLETING)
	// to to. Each from must CanBecome(to) and from must not be empty, else
	// ErrIllegalTransition. FailureReason becomes reason (cleared when
	// reason is empty); entering COMPLETING sets ClaimedAt to the store's
	// clock, returning to PENDING clears it. If the stored status is not
	// in from: (current, ErrConflict).
	Transition(ctx context.Context, sessionURI string, from []Status, to Status, reason string) (*Session, error)
	// Settle is Transition to a terminal status (COMPLETED, FAILED,
	// EXPIRED) that also writes, in the same conditional write, the Outbox
	// the waiting task is owed (as given) and FailureReason = reason (removed
	// when empty). When claim is not zero the writer also claims the delivery
	// (DeliveryClaimedAt = claim): it sends inline and records the result
	// with MarkResumed or ReleaseDelivery. Errors as Transition's.
	Settle(ctx context.Context, sessionURI string, from []Status, to Status, reason string, out Outbox, claim time.Time) (*Session, error)
	// ClaimDelivery sets DeliveryClaimedAt=now if Session.DeliveryClaimableAt(now).
	// Otherwise (current, ErrConflict).
	ClaimDelivery(ctx context.Context, sessionURI string, now time.Time) (*Session, error)
	// ReleaseDelivery removes a delivery claim made at claimedAt (only that
	// one) of a session not resumed yet, so another sender may deliver at
	// once. Otherwise (current, ErrConflict).
	ReleaseDelivery(ctx context.Context, sessionURI string, claimedAt time.Time) (*Session, error)
	// MarkResumed sets ResumedAt=now (the store's clock when now is zero)
	// if it is not set yet and the session is settled. Otherwise (current,
	// ErrConflict).
	MarkResumed(ctx context.Context, sessionURI string, now time.Time) (*Session, error)
	// ReserveAttempt counts one verification-code comparison before it is
	// made: if the session is ClaimableAt(now) and its Attempts do not yet
	// exhaust max (AttemptsExhausted), it adds one to Attempts and returns
	// the updated session. Otherwise (current, ErrConflict), counting
	// nothing. However many requests race, at most max comparisons are
	// ever reserved for one session.
	ReserveAttempt(ctx context.Context, sessionURI string, max int, now time.Time) (*Session, error)
	// RecordWrongCode records that a reserved comparison found a wrong
	// code: WrongCodes + 1, for a session ClaimableAt(now) with a
	// comparison open (WrongCodes < Attempts). When that makes every one of
	// max attempts wrong, the same write sets FAILED with FailureReason
	// reason and the Outbox out, and claims the delivery at now (the caller
	// sends inline, as after Settle); while another reserved comparison is
	// open (it may hold the right code), the status stays. Otherwise
	// (current, ErrConflict).
	RecordWrongCode(ctx context.Context, sessionURI string, max int, reason string, out Outbox, now time.Time) (*Session, error)
	// Release gives a claimed session back after a transient failure:
	// COMPLETING -> PENDING, ClaimedAt cleared, and the attempt the
	// claimant reserved returned (Attempts - 1 when a comparison is open,
	// never below WrongCodes), so a right code does not use up the limit
	// when AgentCore was unavailable and no wrong code is ever given back. If the
	// stored status is not COMPLETING: (current, ErrConflict).
	Release(ctx context.Context, sessionURI string) (*Session, error)
	// RefundAttempt gives back the attempt a right verification code
	// reserved, when its request does not go on to claim the session (a
	// sign-in follows; oidc+code): Attempts - 1, for a session stored
	// PENDING with a comparison open (WrongCodes < Attempts). Wrong codes
	// are never given back. Otherwise (current, ErrConflict).
	RefundAttempt(ctx context.Context, sessionURI string) (*Session, error)
	// MarkNotified sets NotifiedAt=now (the store's clock when now is zero)
	// and, when codeHash is not empty, replaces CodeHash, only if the
	// session was not notified before, whatever its status. Otherwise
	// (current, ErrConflict).
	MarkNotified(ctx context.Context, sessionURI string, codeHash string, now time.Time) (*Session, error)
}

// UserRef is whom a workload access token is minted for: exactly one of
// UserID / UserToken, or neither for machine-to-machine.
type UserRef struct {
	UserID    string
	UserToken string
}

// TokenRequest is GetResourceOauth2Token's input, minus the workload token.
type TokenRequest struct {
	Provider            string
	Scopes              []string
	Flow                string // USER_FEDERATION | M2M
	ReturnURL           string
	CustomState         string
	CustomParameters    map[string]string
	ForceAuthentication bool
	SessionURI          string
}

// TokenResult is GetResourceOauth2Token's answer: either AccessToken, or an
// authorization URL and a session.
type TokenResult struct {
	AccessToken      string
	AuthorizationURL string
	SessionURI       string
	SessionStatus    string
}

// VaultState is what AgentCore's vault says about an authorization session.
type VaultState int

const (
	// VaultPending: the session is still waiting to be completed.
	VaultPending VaultState = iota + 1
	// VaultStored: the session was completed; its token is in the vault.
	VaultStored
	// VaultFailed: AgentCore gave the session up (sessionStatus FAILED).
	VaultFailed
)

// ErrOutcomeUnknown marks a failed call that may nevertheless have taken
// effect: its answer never arrived (timeout, connection lost) or was a
// server error. Identity adapters wrap it into such failures of
// CompleteResourceTokenAuth.
var ErrOutcomeUnknown = errors.New("outcome unknown")

// ErrNoAnswer marks, besides ErrOutcomeUnknown, a call whose answer never
// arrived (timeout, connection lost): it may still be running at AgentCore.
var ErrNoAnswer = errors.New("no answer")

// Identity is the slice of AgentCore Identity the flow uses.
type Identity interface {
	WorkloadAccessToken(ctx context.Context, workload string, user UserRef) (string, error)
	ResourceOAuth2Token(ctx context.Context, workloadToken string, req TokenRequest) (TokenResult, error)
	// CompleteResourceTokenAuth completes a session once: adapters do not
	// retry it (a retry of a call that took effect is refused, and two
	// calls must never be in flight for one session). A failure whose
	// outcome is unknown wraps ErrOutcomeUnknown.
	CompleteResourceTokenAuth(ctx context.Context, sessionURI string, user UserRef) error
	// SessionVaultState asks GetResourceOauth2Token about req.SessionURI
	// with workloadToken, and reports whether the session's token is
	// stored, without returning the token.
	SessionVaultState(ctx context.Context, workloadToken string, req TokenRequest) (VaultState, error)
}

// Resumer resumes a waiting Step Functions task.
type Resumer interface {
	Succeed(ctx context.Context, taskToken string, output any) error
	Fail(ctx context.Context, taskToken string, errorName, cause string) error
}

// Notifier publishes the AuthorizationRequired event.
type Notifier interface {
	AuthorizationRequired(ctx context.Context, ev AuthorizationRequired) error
}

// AuthorizationRequired is what an application needs to show the user: the
// public event schema (package events).
type AuthorizationRequired = events.AuthorizationRequired

// CompletionNotifier publishes the events of settled sessions (the resumer
// function publishes them; see Announcer).
type CompletionNotifier interface {
	AuthorizationCompleted(ctx context.Context, ev events.AuthorizationCompleted) error
	AuthorizationFailed(ctx context.Context, ev events.AuthorizationFailed) error
}

// Clock and Random are injected so tests control time and randomness.
type Clock func() time.Time

// Random fills b with cryptographically secure random bytes.
type Random func(b []byte) error

// ErrTaskGone: Step Functions no longer waits for this task token (it timed
// out, was already resumed, or the token is invalid). Resumer adapters map
// TaskTimedOut / InvalidToken / TaskDoesNotExist to it.
var ErrTaskGone = errors.New("workflow task no longer waiting")

// SignIn is the application's OpenID Connect provider as the callback uses
// it for the sign-in binding modes: authorization code flow with PKCE (S256),
// state and nonce.
type SignIn interface {
	// AuthURL is the provider's authorization URL for one sign-in.
	AuthURL(ctx context.Context, r SignInRequest) (string, error)
	// Exchange redeems the code the provider returned, with the PKCE
	// verifier, verifies the ID token (signature through the provider's
	// keys, issuer, audience, expiry) and returns who signed in, with the
	// token's nonce for the caller to compare. An ID token that fails
	// verification, or lacks the user claim, wraps ErrSignInRejected; any
	// other error is the provider being unavailable.
	Exchange(ctx context.Context, code, verifier string) (SignedInUser, error)
}

// SignInRequest is one sign-in round's parameters.
type SignInRequest struct {
	// State, Nonce and Verifier are derived from the browser's login secret
	// (never stored).
	State, Nonce, Verifier string
	// Prompt is the OpenID Connect prompt ("" to let the provider decide).
	Prompt string
}

// SignedInUser is who signed in, from a verified ID token.
type SignedInUser struct {
	// UserID is the configured claim with the configured prefix: what the
	// flow must have been started with.
	UserID string
	// Display is what the page shows the person (email, name or UserID).
	Display string
	// Nonce is the ID token's nonce claim.
	Nonce string
}

// ErrSignInRejected: the provider's answer failed verification (bad
// signature, issuer, audience, expiry, nonce, or no usable user claim).
var ErrSignInRejected = errors.New("sign-in rejected")

// UserTokenVerifier verifies a user's JWT (signature through the issuer's
// keys, issuer, audience, expiry) before the callback compares it with the
// one the flow was started with. A token that fails wraps ErrSignInRejected.
type UserTokenVerifier interface {
	VerifyUserToken(ctx context.Context, raw string) error
}

// LoginStore keeps sign-in attempts: short-lived records, each bound to one
// browser by a cookie whose value only the browser has (the record's key is
// its Hash), and each usable once.
type LoginStore interface {
	// CreateLogin stores l unless a login with l.Key exists (ErrConflict).
	CreateLogin(ctx context.Context, l *Login) error
	// UseLogin sets UsedAt=now if it is not set yet and the login has not
	// expired at now, and returns the login. Otherwise (current,
	// ErrConflict), or ErrNotFound when no login is stored under key. Of
	// concurrent callers exactly one succeeds.
	UseLogin(ctx context.Context, key string, now time.Time) (*Login, error)
	// FollowLogin sets FollowedAt=now if the login was used, not followed
	// yet, and has not expired at now: a used sign-in may start one further
	// sign-in (another account). Otherwise (current, ErrConflict).
	FollowLogin(ctx context.Context, key string, now time.Time) (*Login, error)
}

// Login is one sign-in round, as stored. The browser's login secret (the
// cookie value) is not stored; the OpenID Connect state, nonce and PKCE
// verifier are derived from it.
type Login struct {
	// Key is Hash(login secret).
	Key string
	// SessionURI is the session this sign-in is for; the browser proved it
	// has the session's link (its state) before the sign-in started.
	SessionURI string
	// External: the session was not started by consentflow.
	External bool
	// CodeVerified: the verification code was checked before the sign-in
	// (oidc+code).
	CodeVerified bool
	// Round counts the sign-ins of one browser for the session (1, then one
	// more per switch of account), up to MaxSignInRounds.
	Round      int
	CreatedAt  time.Time
	ExpiresAt  time.Time
	UsedAt     time.Time
	FollowedAt time.Time
}
