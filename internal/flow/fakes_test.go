package flow_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// memStore is an in-memory SessionStore for fault-injection tests of the
// domain. It takes its rules from package flow, as the DynamoDB store in
// internal/state does; the conformance suite (internal/testenv/storetest)
// runs against both.
type memStore struct {
	mu       sync.Mutex
	now      func() time.Time
	sessions map[string]flow.Session
	tasks    map[string]string
	failNext error // returned once by the next call
	down     error // returned by every call while set
	// hangSettle makes Settle wait for its context to end (a table that
	// does not answer).
	hangSettle bool
}

func newMemStore(now func() time.Time) *memStore {
	return &memStore{now: now, sessions: map[string]flow.Session{}, tasks: map[string]string{}}
}

func (m *memStore) injected() error {
	if m.down != nil {
		return m.down
	}
	err := m.failNext
	m.failNext = nil
	return err
}

// view is the copy of a stored record a caller gets: as seen now.
func (m *memStore) view(s flow.Session) *flow.Session {
	s.Status = s.StatusAt(m.now())
	s.Scopes = slices.Clone(s.Scopes)
	return &s
}

func (m *memStore) Create(_ context.Context, s *flow.Session) (*flow.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.injected(); err != nil {
		return nil, err
	}
	if s == nil || s.SessionURI == "" {
		return nil, errors.New("memStore: create: empty sessionUri")
	}
	rec := *s
	rec.Scopes = slices.Clone(s.Scopes)
	switch rec.Status {
	case "":
		rec.Status = flow.StatusPending
	case flow.StatusPending:
	default:
		return nil, errors.New("memStore: create: status must be PENDING")
	}
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = m.now()
	}
	if rec.ExpiresAt.IsZero() {
		rec.ExpiresAt = rec.CreatedAt.Add(contract.SessionValidity)
	}
	if rec.TaskToken != "" {
		if uri, ok := m.tasks[rec.TaskToken]; ok {
			return m.view(m.sessions[uri]), flow.ErrTaskExists
		}
	}
	if old, ok := m.sessions[rec.SessionURI]; ok {
		return m.view(old), flow.ErrConflict
	}
	m.sessions[rec.SessionURI] = rec
	if rec.TaskToken != "" {
		m.tasks[rec.TaskToken] = rec.SessionURI
	}
	return m.view(rec), nil
}

func (m *memStore) Get(_ context.Context, uri string) (*flow.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.injected(); err != nil {
		return nil, err
	}
	s, ok := m.sessions[uri]
	if !ok {
		return nil, flow.ErrNotFound
	}
	return m.view(s), nil
}

func (m *memStore) GetByTaskToken(ctx context.Context, tt string) (*flow.Session, error) {
	m.mu.Lock()
	uri, ok := m.tasks[tt]
	m.mu.Unlock()
	if !ok {
		return nil, flow.ErrNotFound
	}
	return m.Get(ctx, uri)
}

// update applies f to the stored record atomically; f reports whether the
// change is allowed (else the record stays and ErrConflict is returned).
func (m *memStore) update(uri string, f func(s *flow.Session) bool) (*flow.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.injected(); err != nil {
		return nil, err
	}
	s, ok := m.sessions[uri]
	if !ok {
		return nil, flow.ErrNotFound
	}
	if !f(&s) {
		return m.view(m.sessions[uri]), flow.ErrConflict
	}
	m.sessions[uri] = s
	return m.view(s), nil
}

func (m *memStore) Claim(_ context.Context, uri string, now time.Time) (*flow.Session, error) {
	return m.update(uri, func(s *flow.Session) bool {
		if !s.ClaimableAt(now) {
			return false
		}
		s.Status, s.ClaimedAt = flow.StatusCompleting, now
		return true
	})
}

func (m *memStore) Transition(_ context.Context, uri string, from []flow.Status, to flow.Status, reason string) (*flow.Session, error) {
	if len(from) == 0 {
		return nil, flow.ErrIllegalTransition
	}
	for _, f := range from {
		if !f.CanBecome(to) {
			return nil, flow.ErrIllegalTransition
		}
	}
	return m.update(uri, func(s *flow.Session) bool {
		if !slices.Contains(from, s.Status) {
			return false
		}
		switch to {
		case flow.StatusCompleting:
			s.ClaimedAt = m.now()
		case flow.StatusPending:
			s.ClaimedAt = time.Time{}
		}
		s.Status, s.FailureReason = to, reason
		return true
	})
}

func (m *memStore) Settle(ctx context.Context, uri string, from []flow.Status, to flow.Status, reason string, out flow.Outbox, claim time.Time) (*flow.Session, error) {
	m.mu.Lock()
	hang := m.hangSettle
	m.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if !to.Terminal() {
		return nil, flow.ErrIllegalTransition
	}
	if len(from) == 0 {
		return nil, flow.ErrIllegalTransition
	}
	for _, f := range from {
		if !f.CanBecome(to) {
			return nil, flow.ErrIllegalTransition
		}
	}
	return m.update(uri, func(s *flow.Session) bool {
		if !slices.Contains(from, s.Status) {
			return false
		}
		s.Status, s.FailureReason, s.Outbox = to, reason, out
		if !claim.IsZero() {
			s.DeliveryClaimedAt = claim.Truncate(time.Millisecond)
		}
		return true
	})
}

func (m *memStore) ClaimDelivery(_ context.Context, uri string, now time.Time) (*flow.Session, error) {
	return m.update(uri, func(s *flow.Session) bool {
		if !s.DeliveryClaimableAt(now) {
			return false
		}
		s.DeliveryClaimedAt = now.Truncate(time.Millisecond)
		return true
	})
}

func (m *memStore) ReleaseDelivery(ctx context.Context, uri string, claimedAt time.Time) (*flow.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // as the SDK does with a spent context
	}
	return m.update(uri, func(s *flow.Session) bool {
		if !s.ResumedAt.IsZero() || s.DeliveryClaimedAt.IsZero() || !s.DeliveryClaimedAt.Equal(claimedAt.Truncate(time.Millisecond)) {
			return false
		}
		s.DeliveryClaimedAt = time.Time{}
		return true
	})
}

func (m *memStore) MarkResumed(_ context.Context, uri string, now time.Time) (*flow.Session, error) {
	if now.IsZero() {
		now = m.now()
	}
	return m.update(uri, func(s *flow.Session) bool {
		if !s.ResumedAt.IsZero() || !s.Status.Terminal() {
			return false
		}
		s.ResumedAt = now.Truncate(time.Millisecond)
		return true
	})
}

func (m *memStore) ReserveAttempt(_ context.Context, uri string, max int, now time.Time) (*flow.Session, error) {
	return m.update(uri, func(s *flow.Session) bool {
		if !s.ClaimableAt(now) || flow.AttemptsExhausted(s.Attempts, max) {
			return false
		}
		s.Attempts++
		s.ReservedAt = now.Truncate(time.Millisecond)
		return true
	})
}

func (m *memStore) RecordWrongCode(_ context.Context, uri string, max int, reason string, out flow.Outbox, now time.Time) (*flow.Session, error) {
	return m.update(uri, func(s *flow.Session) bool {
		if !s.ClaimableAt(now) || s.WrongCodes >= s.Attempts {
			return false
		}
		s.WrongCodes++
		if flow.AttemptsExhausted(s.WrongCodes, max) {
			s.Status, s.FailureReason, s.Outbox = flow.StatusFailed, reason, out
			s.DeliveryClaimedAt = now.Truncate(time.Millisecond)
		}
		return true
	})
}

func (m *memStore) Release(_ context.Context, uri string) (*flow.Session, error) {
	return m.update(uri, func(s *flow.Session) bool {
		if s.Status != flow.StatusCompleting {
			return false
		}
		s.Status, s.ClaimedAt = flow.StatusPending, time.Time{}
		if s.Attempts > s.WrongCodes {
			s.Attempts--
		}
		return true
	})
}

func (m *memStore) RefundAttempt(_ context.Context, uri string) (*flow.Session, error) {
	return m.update(uri, func(s *flow.Session) bool {
		if s.Status != flow.StatusPending || s.Attempts <= s.WrongCodes {
			return false
		}
		s.Attempts--
		return true
	})
}

func (m *memStore) MarkNotified(_ context.Context, uri, codeHash string, now time.Time) (*flow.Session, error) {
	if now.IsZero() {
		now = m.now()
	}
	return m.update(uri, func(s *flow.Session) bool {
		if !s.NotifiedAt.IsZero() {
			return false
		}
		s.NotifiedAt = now
		if codeHash != "" {
			s.CodeHash = codeHash
		}
		return true
	})
}

// fakeIdentity scripts AgentCore answers and records calls.
type fakeIdentity struct {
	mu         sync.Mutex
	calls      []string
	users      []flow.UserRef
	reqs       []flow.TokenRequest
	completes  []flow.UserRef
	watErr     error
	tokenErr   error
	token      flow.TokenResult
	completeFn func(n int) error // n = 1-based call number
	uris       int
	// stored: sessions whose Complete returned nil. vaultFn, if set,
	// answers SessionVaultState instead.
	stored  map[string]bool
	vaultFn func(r flow.TokenRequest) (flow.VaultState, error)
	vaultRq []flow.TokenRequest
}

func (f *fakeIdentity) record(op string) {
	f.calls = append(f.calls, op)
}

func (f *fakeIdentity) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == op {
			n++
		}
	}
	return n
}

func (f *fakeIdentity) WorkloadAccessToken(_ context.Context, workload string, u flow.UserRef) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("GetWorkloadAccessToken")
	f.users = append(f.users, u)
	if f.watErr != nil {
		return "", f.watErr
	}
	return "wat-" + workload, nil
}

func (f *fakeIdentity) ResourceOAuth2Token(_ context.Context, wat string, r flow.TokenRequest) (flow.TokenResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("GetResourceOauth2Token")
	f.reqs = append(f.reqs, r)
	if f.tokenErr != nil {
		return flow.TokenResult{}, f.tokenErr
	}
	if f.token.AccessToken != "" || f.token.SessionStatus == "FAILED" {
		return f.token, nil
	}
	f.uris++
	uri := "urn:ietf:params:oauth:request_uri:sess-" + string(rune('a'+f.uris))
	return flow.TokenResult{AuthorizationURL: "https://agentcore.example/authorize?request_uri=x", SessionURI: uri, SessionStatus: "IN_PROGRESS"}, nil
}

func (f *fakeIdentity) CompleteResourceTokenAuth(_ context.Context, uri string, u flow.UserRef) error {
	f.mu.Lock()
	f.record("CompleteResourceTokenAuth")
	f.completes = append(f.completes, u)
	n := len(f.completes)
	fn := f.completeFn
	f.mu.Unlock()
	// Outside the lock, so concurrent callers really overlap.
	time.Sleep(5 * time.Millisecond)
	var err error
	if fn != nil {
		err = fn(n)
	}
	if err == nil {
		f.mu.Lock()
		if f.stored == nil {
			f.stored = map[string]bool{}
		}
		f.stored[uri] = true
		f.mu.Unlock()
	}
	return err
}

func (f *fakeIdentity) SessionVaultState(_ context.Context, wat string, r flow.TokenRequest) (flow.VaultState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("SessionVaultState")
	f.vaultRq = append(f.vaultRq, r)
	if f.vaultFn != nil {
		return f.vaultFn(r)
	}
	if f.stored[r.SessionURI] {
		return flow.VaultStored, nil
	}
	return flow.VaultPending, nil
}

type taskResult struct {
	Token  string
	OK     bool
	Output json.RawMessage
	Error  string
	Cause  string
}

// fakeResumer records task results and can fail: err fails every call,
// failN the next failN calls. Like Step Functions, it accepts one result
// per task token; later calls get ErrTaskGone (recorded in gone).
type fakeResumer struct {
	mu      sync.Mutex
	results []taskResult
	err     error
	failN   int
	closed  map[string]bool
	gone    int
	// hang makes every call wait for its context to end (Step Functions
	// throttling until the SDK's retries run out of time).
	hang bool
}

func (r *fakeResumer) send(res taskResult) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if r.failN > 0 {
		r.failN--
		return errors.New("SendTask: ThrottlingException")
	}
	if r.closed[res.Token] {
		r.gone++
		return flow.ErrTaskGone
	}
	if r.closed == nil {
		r.closed = map[string]bool{}
	}
	r.closed[res.Token] = true
	r.results = append(r.results, res)
	return nil
}

func (r *fakeResumer) Succeed(ctx context.Context, tt string, out any) error {
	r.mu.Lock()
	hang := r.hang
	r.mu.Unlock()
	if hang {
		<-ctx.Done()
	}
	if err := ctx.Err(); err != nil {
		return err // as the SDK does with a spent context
	}
	b, _ := json.Marshal(out)
	return r.send(taskResult{Token: tt, OK: true, Output: b})
}

func (r *fakeResumer) Fail(_ context.Context, tt, name, cause string) error {
	return r.send(taskResult{Token: tt, Error: name, Cause: cause})
}

func (r *fakeResumer) all() []taskResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.results)
}

type fakeNotifier struct {
	mu     sync.Mutex
	events []flow.AuthorizationRequired
	err    error
}

func (n *fakeNotifier) AuthorizationRequired(_ context.Context, ev flow.AuthorizationRequired) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		err := n.err
		n.err = nil
		return err
	}
	n.events = append(n.events, ev)
	return nil
}

func (n *fakeNotifier) last(t *testing.T) flow.AuthorizationRequired {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.events) == 0 {
		t.Fatal("no AuthorizationRequired event published")
	}
	return n.events[len(n.events)-1]
}

// env bundles a domain under test with its fakes.
type env struct {
	t        *testing.T
	clockMu  sync.Mutex
	now      time.Time
	store    *memStore
	id       *fakeIdentity
	resumer  *fakeResumer
	notifier *fakeNotifier
	logs     *bytes.Buffer
	ini      *flow.Initiator
	cb       *flow.Callback
	signIn   *fakeSignIn
	logins   *memLogins
	deps     flow.Deps
}

func newEnv(t *testing.T, mode flow.BindingMode) *env {
	t.Helper()
	e := &env{t: t, now: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}}
	clock := func() time.Time {
		e.clockMu.Lock()
		defer e.clockMu.Unlock()
		return e.now
	}
	e.store = newMemStore(clock)
	e.id = &fakeIdentity{}
	e.resumer = &fakeResumer{}
	e.notifier = &fakeNotifier{}
	var mu sync.Mutex
	log := slog.New(slog.NewJSONHandler(lockedWriter{&mu, e.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := flow.Deps{Identity: e.id, Store: e.store, Resumer: e.resumer, Notifier: e.notifier, Clock: clock,
		Random: func(b []byte) error { _, err := cryptoRead(b); return err }, Log: log,
		UserTokens: fakeVerifier{}}
	e.signIn = &fakeSignIn{codes: map[string]fakeCode{}}
	e.logins = &memLogins{m: map[string]flow.Login{}}
	d.SignIn, d.Logins = e.signIn, e.logins
	e.deps = d
	var err error
	e.ini, err = flow.NewInitiator(flow.Config{WorkloadName: "consentflow-test", ReturnURL: "https://cb.example/oauth2/callback", Binding: mode, UserTokens: true,
		AgentRuntimes: mustTargets(testRuntimeARN), Region: "us-east-1"}, d)
	if err != nil {
		t.Fatal(err)
	}
	e.cb, err = flow.NewCallback(flow.CallbackConfig{Binding: mode, ClaimWait: 2 * time.Second,
		WorkloadName: "consentflow-test", ReturnURL: "https://cb.example/oauth2/callback"}, d)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// advance moves the clock while other goroutines may read it.
func (e *env) advance(d time.Duration) {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	e.now = e.now.Add(d)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var errBoom = errors.New("boom")

// fakeVerifier accepts every JWT except those whose signature part is
// "forged" (the flow tests check the order of checks; the real verifier is
// tested in internal/adapters/oidc against the emulator's provider).
type fakeVerifier struct{}

func (fakeVerifier) VerifyUserToken(_ context.Context, raw string) error {
	if strings.HasSuffix(raw, ".forged") {
		return fmt.Errorf("%w: bad signature", flow.ErrSignInRejected)
	}
	return nil
}

// mustTargets parses runtime (endpoint) ARNs as AGENT_RUNTIME_ARNS is.
func mustTargets(arns ...string) []contract.AgentRuntimeTarget {
	t, err := flow.ParseAgentRuntimeARNs(strings.Join(arns, ","))
	if err != nil {
		panic(err)
	}
	return t
}
