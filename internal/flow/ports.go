package flow

import (
	"context"
	"errors"
	"time"
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
)

// SessionStore persists sessions. Every read enforces expiry: a record
// stored as PENDING or COMPLETING whose ExpiresAt has passed (by the store's
// clock) is returned with Status EXPIRED, whatever DynamoDB TTL has done.
type SessionStore interface {
	// Create stores s (Status PENDING) if no session with s.SessionURI
	// exists. When s.TaskToken is set it also records the task token so a
	// retried invocation finds the first session: if one is already recorded,
	// Create writes nothing and returns (existing, ErrTaskExists).
	Create(ctx context.Context, s *Session) (*Session, error)
	// Get returns the session with that sessionUri, or ErrNotFound.
	Get(ctx context.Context, sessionURI string) (*Session, error)
	// GetByTaskToken returns the session created for that task token, or
	// ErrNotFound.
	GetByTaskToken(ctx context.Context, taskToken string) (*Session, error)
	// Claim moves PENDING -> COMPLETING (setting ClaimedAt=now) if the
	// session has not expired at now; a COMPLETING session whose claim is
	// older than ClaimLease may be re-claimed. Otherwise (current, ErrConflict).
	Claim(ctx context.Context, sessionURI string, now time.Time) (*Session, error)
	// Transition moves the session from any of the from statuses to to,
	// recording reason (may be empty) as FailureReason. Otherwise
	// (current, ErrConflict).
	Transition(ctx context.Context, sessionURI string, from []Status, to Status, reason string) (*Session, error)
	// RecordFailedAttempt adds one wrong-code attempt to a PENDING session;
	// when attempts reach max it sets FAILED with reason in the same write.
	// Returns the updated session, or (current, ErrConflict) if not PENDING.
	RecordFailedAttempt(ctx context.Context, sessionURI string, max int, reason string) (*Session, error)
	// MarkNotified sets NotifiedAt=now and, when codeHash is not empty,
	// replaces CodeHash, only if the session was not notified before.
	// Otherwise (current, ErrConflict).
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

// Identity is the slice of AgentCore Identity the flow uses.
type Identity interface {
	WorkloadAccessToken(ctx context.Context, workload string, user UserRef) (string, error)
	ResourceOAuth2Token(ctx context.Context, workloadToken string, req TokenRequest) (TokenResult, error)
	CompleteResourceTokenAuth(ctx context.Context, sessionURI string, user UserRef) error
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

// AuthorizationRequired is what an application needs to show the user.
type AuthorizationRequired struct {
	CorrelationID    string    `json:"correlationId"`
	UserID           string    `json:"userId,omitempty"`
	Provider         string    `json:"provider"`
	Scopes           []string  `json:"scopes"`
	AuthorizationURL string    `json:"authorizationUrl"`
	ExpiresAt        time.Time `json:"expiresAt"`
	VerificationCode string    `json:"verificationCode,omitempty"`
}

// Clock and Random are injected so tests control time and randomness.
type Clock func() time.Time

// Random fills b with cryptographically secure random bytes.
type Random func(b []byte) error

// ErrTaskGone: Step Functions no longer waits for this task token (it timed
// out, was already resumed, or the token is invalid). Resumer adapters map
// TaskTimedOut / InvalidToken / TaskDoesNotExist to it.
var ErrTaskGone = errors.New("workflow task no longer waiting")
