package connectauth_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/connectauth"
)

const instance = "00fbeee1-123e-111e-93e3-11111bfbfcc1"

// memStore is the Store's contract in memory (the DynamoDB store in
// internal/state is checked against the same rules on DynamoDB Local).
type memStore struct {
	mu      sync.Mutex
	recs    map[string]connectauth.Record
	fail    error // every call fails with it when set
	claims  int
	release int
}

func newStore() *memStore { return &memStore{recs: map[string]connectauth.Record{}} }

func (m *memStore) ClaimRedirect(_ context.Context, key string, now time.Time) (*connectauth.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	now = now.Truncate(time.Millisecond)
	cur, ok := m.recs[key]
	if ok && cur.Status != connectauth.StatusReleased &&
		!(cur.Status == connectauth.StatusPending && cur.ClaimedAt.Before(now.Add(-connectauth.ClaimLease))) {
		return &cur, connectauth.ErrClaimed
	}
	m.claims++
	r := connectauth.Record{Status: connectauth.StatusPending, ClaimedAt: now}
	m.recs[key] = r
	return &r, nil
}

func (m *memStore) FinishRedirect(_ context.Context, key string, claimedAt time.Time, s connectauth.Status, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	cur, ok := m.recs[key]
	if !ok || cur.Status != connectauth.StatusPending || !cur.ClaimedAt.Equal(claimedAt) {
		return connectauth.ErrClaimed
	}
	m.recs[key] = connectauth.Record{Status: s, ClaimedAt: claimedAt, FinishedAt: now}
	return nil
}

func (m *memStore) ReleaseRedirect(_ context.Context, key string, claimedAt time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.release++
	cur, ok := m.recs[key]
	if !ok || cur.Status != connectauth.StatusPending || !cur.ClaimedAt.Equal(claimedAt) {
		return connectauth.ErrClaimed
	}
	cur.Status = connectauth.StatusReleased
	m.recs[key] = cur
	return nil
}

func (m *memStore) status(state string) connectauth.Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.recs[connectauth.Key(state)].Status
}

// fakeConnect records calls and answers from a queue (nil: success).
type fakeConnect struct {
	mu      sync.Mutex
	calls   []connectauth.Update
	answers []error
	block   chan struct{} // when set, calls wait for it
}

func (f *fakeConnect) UpdateParticipantAuthentication(ctx context.Context, u connectauth.Update) error {
	f.mu.Lock()
	f.calls = append(f.calls, u)
	var err error
	if len(f.answers) > 0 {
		err, f.answers = f.answers[0], f.answers[1:]
	}
	block := f.block
	f.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return &connectauth.CallError{Class: connectauth.ErrTransient, Code: "timeout"}
		}
	}
	return err
}

func (f *fakeConnect) n() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type fixture struct {
	svc   *connectauth.Service
	store *memStore
	conn  *fakeConnect
	logs  *bytes.Buffer
	now   time.Time
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{store: newStore(), conn: &fakeConnect{}, logs: &bytes.Buffer{}, now: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	var err error
	f.svc, err = connectauth.New(connectauth.Config{InstanceID: instance, CallTimeout: time.Second}, connectauth.Deps{
		Connect: f.conn, Store: f.store, Clock: func() time.Time { return f.now },
		Log: slog.New(slog.NewJSONHandler(f.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func callErr(class error, code string) error { return &connectauth.CallError{Class: class, Code: code} }

func TestNewRefusesBadConfiguration(t *testing.T) {
	d := connectauth.Deps{Connect: &fakeConnect{}, Store: newStore()}
	if _, err := connectauth.New(connectauth.Config{InstanceID: "bad id"}, d); err == nil {
		t.Error("an instance id with a space was accepted")
	}
	if _, err := connectauth.New(connectauth.Config{InstanceID: instance}, connectauth.Deps{Store: newStore()}); err == nil {
		t.Error("no Connect port was accepted")
	}
}

func TestCodeIsForwardedOnce(t *testing.T) {
	f := setup(t)
	p := connectauth.Params{State: "state-A", Code: "code-A"}
	if o := f.svc.Return(context.Background(), p); o.Kind != connectauth.KindDone || o.Replay {
		t.Fatalf("first: %+v", o)
	}
	want := connectauth.Update{InstanceID: instance, State: "state-A", Code: "code-A"}
	if f.conn.n() != 1 || f.conn.calls[0] != want {
		t.Fatalf("calls %+v, want one %+v", f.conn.calls, want)
	}
	if s := f.store.status("state-A"); s != connectauth.StatusDone {
		t.Fatalf("record %s", s)
	}
	// A reload, or the link replayed later or elsewhere: answered from the
	// record, Connect is not called again.
	for range 3 {
		f.now = f.now.Add(time.Hour)
		if o := f.svc.Return(context.Background(), p); o.Kind != connectauth.KindAlreadyDone || !o.Replay {
			t.Fatalf("replay: %+v", o)
		}
	}
	// Even with another code for the same state.
	if o := f.svc.Return(context.Background(), connectauth.Params{State: "state-A", Code: "other"}); o.Kind != connectauth.KindAlreadyDone {
		t.Fatalf("other code: %+v", o)
	}
	if f.conn.n() != 1 {
		t.Fatalf("Connect called %d times", f.conn.n())
	}
}

func TestErrorRedirectIsForwardedAsCancelled(t *testing.T) {
	f := setup(t)
	o := f.svc.Return(context.Background(), connectauth.Params{State: "state-E", Error: "access_denied", ErrorDescription: "User cancelled login"})
	if o.Kind != connectauth.KindCancelled {
		t.Fatalf("outcome %+v", o)
	}
	want := connectauth.Update{InstanceID: instance, State: "state-E", Error: "access_denied", ErrorDescription: "User cancelled login"}
	if f.conn.n() != 1 || f.conn.calls[0] != want {
		t.Fatalf("calls %+v, want %+v", f.conn.calls, want)
	}
	if s := f.store.status("state-E"); s != connectauth.StatusCancelled {
		t.Fatalf("record %s", s)
	}
	if o := f.svc.Return(context.Background(), connectauth.Params{State: "state-E", Error: "access_denied"}); o.Kind != connectauth.KindAlreadyDone {
		t.Fatalf("replay of the error redirect: %+v", o)
	}
}

func TestBadInputCallsNothing(t *testing.T) {
	f := setup(t)
	for _, p := range []connectauth.Params{
		{}, {Code: "c"}, {State: "s"}, {State: "s", Code: "c", Error: "e"}, {State: "s", Error: `"`},
		{State: "s\x00", Code: "c"}, {State: strings.Repeat("s", 1001), Code: "c"},
	} {
		o := f.svc.Return(context.Background(), p)
		if o.Kind != connectauth.KindBadRequest || o.Cause == "" {
			t.Errorf("%+v: %+v", p, o)
		}
	}
	if f.conn.n() != 0 || f.store.claims != 0 {
		t.Fatalf("bad input reached Connect (%d) or the store (%d)", f.conn.n(), f.store.claims)
	}
}

func TestConnectErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		err    error
		kind   connectauth.Kind
		status connectauth.Status // the record afterwards
	}{
		{"conflict", callErr(connectauth.ErrConflict, "ConflictException"), connectauth.KindAlreadyDone, connectauth.StatusConflict},
		{"throttled", callErr(connectauth.ErrTransient, "ThrottlingException"), connectauth.KindTryAgain, connectauth.StatusReleased},
		{"internal", callErr(connectauth.ErrTransient, "InternalServiceException"), connectauth.KindTryAgain, connectauth.StatusReleased},
		{"invalid request", callErr(connectauth.ErrRefused, "InvalidRequestException"), connectauth.KindRefused, connectauth.StatusRefused},
		{"invalid parameter", callErr(connectauth.ErrRefused, "InvalidParameterException"), connectauth.KindRefused, connectauth.StatusRefused},
		// A misconfiguration of ours: the claim is given back, so a reload
		// after the fix forwards the sign-in.
		{"access denied", callErr(connectauth.ErrDenied, "AccessDeniedException"), connectauth.KindFailed, connectauth.StatusReleased},
		{"outside the contract", errors.New("boom"), connectauth.KindFailed, connectauth.StatusReleased},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := setup(t)
			f.conn.answers = []error{c.err}
			p := connectauth.Params{State: "state-" + c.name, Code: "code"}
			o := f.svc.Return(context.Background(), p)
			if o.Kind != c.kind || o.Cause == "" {
				t.Fatalf("outcome %+v, want %s with a cause", o, c.kind)
			}
			if s := f.store.status(p.State); s != c.status {
				t.Fatalf("record %s, want %s", s, c.status)
			}
			// A reload: after a transient failure it calls again (and
			// succeeds); after anything else the record answers.
			o = f.svc.Return(context.Background(), p)
			if c.status == connectauth.StatusReleased {
				if o.Kind != connectauth.KindDone || f.conn.n() != 2 {
					t.Fatalf("retry after release: %+v, %d calls", o, f.conn.n())
				}
				return
			}
			if f.conn.n() != 1 || !o.Replay {
				t.Fatalf("reload: %+v, %d calls", o, f.conn.n())
			}
			if c.kind == connectauth.KindAlreadyDone && o.Kind != connectauth.KindAlreadyDone ||
				c.kind != connectauth.KindAlreadyDone && o.Kind != c.kind {
				t.Fatalf("reload answered %s", o.Kind)
			}
		})
	}
}

func TestStoreDownCallsNothing(t *testing.T) {
	f := setup(t)
	f.store.fail = errors.New("state: claim connect redirect: RequestTimeout")
	o := f.svc.Return(context.Background(), connectauth.Params{State: "s", Code: "c"})
	if o.Kind != connectauth.KindTryAgain || f.conn.n() != 0 {
		t.Fatalf("outcome %+v, %d calls", o, f.conn.n())
	}
}

func TestConcurrentRequestsCallOnce(t *testing.T) {
	f := setup(t)
	f.conn.block = make(chan struct{})
	p := connectauth.Params{State: "state-C", Code: "c"}
	first := make(chan connectauth.Outcome)
	go func() { first <- f.svc.Return(context.Background(), p) }()
	for f.conn.n() == 0 {
		time.Sleep(time.Millisecond)
	}
	// While the first is at Connect, a second request for the same redirect.
	if o := f.svc.Return(context.Background(), p); o.Kind != connectauth.KindInProgress {
		t.Fatalf("concurrent: %+v", o)
	}
	close(f.conn.block)
	if o := <-first; o.Kind != connectauth.KindDone {
		t.Fatalf("first: %+v", o)
	}
	if f.conn.n() != 1 {
		t.Fatalf("Connect called %d times", f.conn.n())
	}
}

func TestAbandonedClaimIsTakenOverAfterItsLease(t *testing.T) {
	f := setup(t)
	key := connectauth.Key("state-D")
	// A request claimed and died before it could record anything.
	if _, err := f.store.ClaimRedirect(context.Background(), key, f.now); err != nil {
		t.Fatal(err)
	}
	p := connectauth.Params{State: "state-D", Code: "c"}
	f.now = f.now.Add(connectauth.ClaimLease)
	if o := f.svc.Return(context.Background(), p); o.Kind != connectauth.KindInProgress || f.conn.n() != 0 {
		t.Fatalf("within the lease: %+v, %d calls", o, f.conn.n())
	}
	f.now = f.now.Add(time.Millisecond)
	if o := f.svc.Return(context.Background(), p); o.Kind != connectauth.KindDone || f.conn.n() != 1 {
		t.Fatalf("after the lease: %+v, %d calls", o, f.conn.n())
	}
}

func TestCallIsBoundedAndReleased(t *testing.T) {
	f := setup(t)
	f.conn.block = make(chan struct{}) // Connect never answers
	defer close(f.conn.block)
	start := time.Now()
	o := f.svc.Return(context.Background(), connectauth.Params{State: "state-T", Code: "c"})
	if o.Kind != connectauth.KindTryAgain || time.Since(start) > 5*time.Second {
		t.Fatalf("outcome %+v after %v", o, time.Since(start))
	}
	if s := f.store.status("state-T"); s != connectauth.StatusReleased {
		t.Fatalf("record %s", s)
	}
}

func TestNothingSecretIsLogged(t *testing.T) {
	f := setup(t)
	f.conn.answers = []error{callErr(connectauth.ErrDenied, "AccessDeniedException")}
	f.store.fail = nil
	state, code := "st-secret-7f3a", "cd-secret-91b2"
	f.svc.Return(context.Background(), connectauth.Params{State: state, Code: code})
	f.store.fail = errors.New("state: finish connect redirect: boom")
	f.svc.Return(context.Background(), connectauth.Params{State: state + "x", Code: code})
	logs := f.logs.String()
	if logs == "" {
		t.Fatal("the store failure was not logged")
	}
	for _, v := range []string{state, code, connectauth.Key(state)} {
		if strings.Contains(logs, v) {
			t.Errorf("the logs carry %q:\n%s", v, logs)
		}
	}
}

func TestKeyIsAHashOfTheState(t *testing.T) {
	k := connectauth.Key("state")
	if len(k) != 64 || k == connectauth.Key("state2") || strings.Contains(k, "state") {
		t.Fatalf("Key = %q", k)
	}
}
