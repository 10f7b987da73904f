// Package storetest is the conformance suite of the port flow.SessionStore:
// every implementation (the DynamoDB store in internal/state, the in-memory
// fake of the domain's tests) runs it, so they cannot disagree on a rule
// without one of them failing.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, clock func() time.Time) flow.SessionStore {
//			return newStore(t, clock) // empty, reading time from clock
//		})
//	}
//
// The suite checks the contract written on flow.SessionStore, with the
// rules of package flow (Status.CanBecome, Session.StatusAt,
// Session.ClaimableAt, AttemptsExhausted) and, as an independent statement
// of the status machine, its own table of legal moves.
//
// Times it stores are UTC and whole milliseconds (the DynamoDB store keeps
// millisecond precision), and near the wall clock (DynamoDB Local's TTL
// deletes items whose ttl has passed by the real time).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// NewStore returns an empty store whose clock is clock. It is called once
// per group of tests; clean up with t.Cleanup.
type NewStore func(t *testing.T, clock func() time.Time) flow.SessionStore

// Run runs the whole suite against the stores newStore makes.
func Run(t *testing.T, newStore NewStore) {
	for _, g := range []struct {
		name string
		run  func(t *testing.T, f *fixture)
	}{
		{"CreateGet", testCreateGet},
		{"CreateDefaultsAndValidation", testCreateDefaults},
		{"CreateDuplicateSessionURI", testCreateDuplicateSessionURI},
		{"CreateSameTaskTokenIsIdempotent", testCreateSameTaskToken},
		{"NotFound", testNotFound},
		{"ExpiryOnRead", testExpiryOnRead},
		{"TransitionEveryPair", testTransitionEveryPair},
		{"TransitionConflictWhenNotInFrom", testTransitionConflict},
		{"TransitionMultipleFromAndReason", testTransitionMultipleFrom},
		{"ClaimLease", testClaimLease},
		{"ClaimExpired", testClaimExpired},
		{"Attempts", testAttempts},
		{"MarkNotified", testMarkNotified},
		{"SingleUse", testSingleUse},
		{"RaceClaim", testRaceClaim},
		{"RaceTransition", testRaceTransition},
		{"Release", testRelease},
		{"RefundAttempt", testRefundAttempt},
		{"RecordWrongCode", testRecordWrongCode},
		{"LeaseBoundarySubMillisecond", testLeaseBoundarySubMillisecond},
		{"RaceRecordWrongCode", testRaceRecordWrongCode},
		{"RaceReserveAttempt", testRaceReserveAttempt},
		{"RaceReserveAttemptStaleClaim", testRaceReserveAttemptStaleClaim},
		{"RaceCreateSameTaskToken", testRaceCreateSameTaskToken},
		{"RaceMarkNotified", testRaceMarkNotified},
		{"SettleWritesOutbox", testSettle},
		{"RecordWrongCodeWritesOutbox", testRecordWrongCodeOutbox},
		{"DeliveryClaimAndResume", testDelivery},
		{"RaceClaimDelivery", testRaceClaimDelivery},
		{"DeliveryLeaseSubMillisecond", testDeliveryLeaseSubMillisecond},
	} {
		t.Run(g.name, func(t *testing.T) {
			f := &fixture{base: time.Now().UTC().Truncate(time.Second).Add(123 * time.Millisecond)}
			f.now = f.base
			f.st = newStore(t, f.Now)
			g.run(t, f)
		})
	}
}

// Statuses lists every status.
var Statuses = []flow.Status{flow.StatusPending, flow.StatusCompleting, flow.StatusCompleted, flow.StatusFailed, flow.StatusExpired}

// edges is the status machine as the suite states it: the only moves a
// Transition may make.
var edges = map[[2]flow.Status]bool{
	{flow.StatusPending, flow.StatusCompleting}:   true,
	{flow.StatusPending, flow.StatusFailed}:       true,
	{flow.StatusPending, flow.StatusExpired}:      true,
	{flow.StatusCompleting, flow.StatusCompleted}: true,
	{flow.StatusCompleting, flow.StatusPending}:   true,
	{flow.StatusCompleting, flow.StatusFailed}:    true,
	{flow.StatusCompleting, flow.StatusExpired}:   true,
}

type fixture struct {
	st   flow.SessionStore
	base time.Time
	mu   sync.Mutex
	now  time.Time
	seq  int
}

// Now is the store's clock.
func (f *fixture) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fixture) set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = t
}

func (f *fixture) uri() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	return fmt.Sprintf("urn:ietf:params:oauth:request_uri:conf-%d-%d", f.base.UnixNano(), f.seq)
}

// session is a fully populated new session.
func (f *fixture) session(taskToken string) *flow.Session {
	return &flow.Session{
		SessionURI:       f.uri(),
		CorrelationID:    "6f1c2a9e-0000-4000-8000-000000000001",
		Context:          `{"conversation":"c-42","turn":[1,2],"note":"\u003ctag\u003e"}`,
		ExecutionARN:     "arn:aws:states:us-east-1:123456789012:execution:AuthorizeUser:6f1c2a9e-0000-4000-8000-000000000001",
		ReturnTo:         "https://app.example.com/chat/c-42?turn=2&x=%3Ctag%3E",
		ContinueAgent:    "calendar_agent",
		StateHash:        flow.Hash("state-value"),
		UserID:           "google|alice",
		UserTokenHash:    flow.Hash("header.payload.signature"),
		Provider:         "google",
		Scopes:           []string{"openid", "email", "https://www.googleapis.com/auth/calendar"},
		TaskToken:        taskToken,
		AuthorizationURL: "https://bedrock-agentcore.us-east-1.amazonaws.com/identities/oauth2/authorize?request_uri=x",
		Binding:          flow.BindingCode,
		CodeHash:         flow.Hash("ABCDE-FGHJK"),
		CreatedAt:        f.base,
		ExpiresAt:        f.base.Add(contract.SessionValidity),
	}
}

func (f *fixture) create(t *testing.T, s *flow.Session) *flow.Session {
	t.Helper()
	got, err := f.st.Create(context.Background(), s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return got
}

func (f *fixture) get(t *testing.T, uri string) *flow.Session {
	t.Helper()
	got, err := f.st.Get(context.Background(), uri)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return got
}

func (f *fixture) transition(t *testing.T, uri string, from, to flow.Status, reason string) *flow.Session {
	t.Helper()
	s, err := f.st.Transition(context.Background(), uri, []flow.Status{from}, to, reason)
	if err != nil {
		t.Fatalf("Transition %s -> %s: %v", from, to, err)
	}
	return s
}

// in creates a session stored with status st, through the port.
func (f *fixture) in(t *testing.T, st flow.Status) *flow.Session {
	t.Helper()
	ctx := context.Background()
	s := f.create(t, f.session(""))
	switch st {
	case flow.StatusPending:
		return s
	case flow.StatusCompleting:
		s, err := f.st.Claim(ctx, s.SessionURI, f.Now())
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		return s
	case flow.StatusCompleted:
		if _, err := f.st.Claim(ctx, s.SessionURI, f.Now()); err != nil {
			t.Fatalf("Claim: %v", err)
		}
		return f.transition(t, s.SessionURI, flow.StatusCompleting, st, "")
	default:
		return f.transition(t, s.SessionURI, flow.StatusPending, st, "setup")
	}
}

// diff names the fields in which a and b differ (times compared as
// instants, a nil and an empty Scopes as equal).
func diff(a, b *flow.Session) string {
	if a == nil || b == nil {
		if a == b {
			return ""
		}
		return fmt.Sprintf("one is nil: %+v vs %+v", a, b)
	}
	va, vb := reflect.ValueOf(*a), reflect.ValueOf(*b)
	var out []string
	for i := 0; i < va.NumField(); i++ {
		fa, fb := va.Field(i).Interface(), vb.Field(i).Interface()
		same := false
		switch x := fa.(type) {
		case time.Time:
			same = x.Equal(fb.(time.Time))
		case []string:
			same = slices.Equal(x, fb.([]string))
		default:
			same = reflect.DeepEqual(fa, fb)
		}
		if !same {
			out = append(out, fmt.Sprintf("%s: %v != %v", va.Type().Field(i).Name, fa, fb))
		}
	}
	return strings.Join(out, "; ")
}

func wantSame(t *testing.T, what string, got, want *flow.Session) {
	t.Helper()
	if d := diff(got, want); d != "" {
		t.Fatalf("%s differs: %s", what, d)
	}
}

func wantStatus(t *testing.T, s *flow.Session, want flow.Status) {
	t.Helper()
	if s == nil {
		t.Fatalf("no session, want one with status %s", want)
	}
	if s.Status != want {
		t.Fatalf("status = %s, want %s", s.Status, want)
	}
}

// wantConflict checks for (current, ErrConflict) with current in status st.
func wantConflict(t *testing.T, what string, cur *flow.Session, err error, st flow.Status) {
	t.Helper()
	if !errors.Is(err, flow.ErrConflict) {
		t.Fatalf("%s: err = %v, want ErrConflict", what, err)
	}
	if cur == nil || cur.Status != st {
		t.Fatalf("%s: conflict returned %+v, want the current record (status %s)", what, cur, st)
	}
}

func testCreateGet(t *testing.T, f *fixture) {
	ctx := context.Background()
	in := f.session("task-token-secret-1")
	created := f.create(t, in)
	want := *in
	want.Status, want.Scopes = flow.StatusPending, slices.Clone(in.Scopes)
	wantSame(t, "Create's answer", created, &want)
	wantSame(t, "Get", f.get(t, in.SessionURI), &want)
	byTask, err := f.st.GetByTaskToken(ctx, in.TaskToken)
	if err != nil {
		t.Fatalf("GetByTaskToken: %v", err)
	}
	wantSame(t, "GetByTaskToken", byTask, &want)
	if in.Status != "" || in.Scopes[0] != "openid" {
		t.Fatal("Create modified its argument")
	}
	// Records handed out are copies.
	created.Scopes[0], created.Status, created.Attempts = "changed", flow.StatusFailed, 9
	in.Scopes[1] = "changed"
	wantSame(t, "Get after changing returned and passed records", f.get(t, in.SessionURI), &want)
}

func testCreateDefaults(t *testing.T, f *fixture) {
	ctx := context.Background()
	f.set(f.base.Add(time.Second))
	got := f.create(t, &flow.Session{SessionURI: f.uri()})
	wantStatus(t, got, flow.StatusPending)
	if !got.CreatedAt.Equal(f.Now()) || !got.ExpiresAt.Equal(f.Now().Add(contract.SessionValidity)) {
		t.Fatalf("defaults: created %v expires %v, want %v and +%v", got.CreatedAt, got.ExpiresAt, f.Now(), contract.SessionValidity)
	}
	explicit := f.create(t, &flow.Session{SessionURI: f.uri(), Status: flow.StatusPending})
	wantStatus(t, explicit, flow.StatusPending)

	for _, st := range Statuses[1:] {
		bad := f.session("task-" + string(st))
		bad.Status = st
		if _, err := f.st.Create(ctx, bad); err == nil || errors.Is(err, flow.ErrConflict) || errors.Is(err, flow.ErrTaskExists) {
			t.Fatalf("Create with status %s: err = %v, want a refusal", st, err)
		}
		if _, err := f.st.Get(ctx, bad.SessionURI); !errors.Is(err, flow.ErrNotFound) {
			t.Fatalf("refused Create (status %s) stored the session: %v", st, err)
		}
		if _, err := f.st.GetByTaskToken(ctx, bad.TaskToken); !errors.Is(err, flow.ErrNotFound) {
			t.Fatalf("refused Create (status %s) stored the task token: %v", st, err)
		}
	}
	if _, err := f.st.Create(ctx, &flow.Session{}); err == nil {
		t.Fatal("Create without sessionUri succeeded")
	}
}

func testCreateDuplicateSessionURI(t *testing.T, f *fixture) {
	ctx := context.Background()
	for _, withTask := range []bool{false, true} {
		first := f.session("")
		if withTask {
			first.TaskToken = "task-A"
		}
		f.create(t, first)
		if _, err := f.st.Claim(ctx, first.SessionURI, f.Now()); err != nil {
			t.Fatal(err)
		}
		dup := f.session("")
		dup.SessionURI, dup.Provider = first.SessionURI, "github"
		if withTask {
			dup.TaskToken = "task-B"
		}
		cur, err := f.st.Create(ctx, dup)
		wantConflict(t, fmt.Sprintf("duplicate sessionUri (task token %v)", withTask), cur, err, flow.StatusCompleting)
		if cur.Provider != "google" {
			t.Fatalf("conflict returned %+v, want the first session", cur)
		}
		if _, err := f.st.GetByTaskToken(ctx, "task-B"); !errors.Is(err, flow.ErrNotFound) {
			t.Fatalf("task token of a refused Create recorded: %v", err)
		}
	}
}

func testCreateSameTaskToken(t *testing.T, f *fixture) {
	ctx := context.Background()
	const token = "task-token-retry-secret"
	first := f.create(t, f.session(token))
	retry := f.session(token) // a retried invocation: a new AgentCore session
	got, err := f.st.Create(ctx, retry)
	if !errors.Is(err, flow.ErrTaskExists) {
		t.Fatalf("second Create for the task token: err = %v, want ErrTaskExists", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatal("error text holds the task token")
	}
	wantSame(t, "ErrTaskExists's session", got, first)
	if _, err := f.st.Get(ctx, retry.SessionURI); !errors.Is(err, flow.ErrNotFound) {
		t.Fatalf("second session was stored: %v", err)
	}
	// A pure replay (same sessionUri, same task token): still the first.
	replay := *first
	replay.Status = ""
	got, err = f.st.Create(ctx, &replay)
	if !errors.Is(err, flow.ErrTaskExists) || got == nil || got.SessionURI != first.SessionURI {
		t.Fatalf("replayed Create: %+v, %v", got, err)
	}
	// The first session's state is what the retry sees.
	if _, err := f.st.Claim(ctx, first.SessionURI, f.Now()); err != nil {
		t.Fatal(err)
	}
	got, err = f.st.Create(ctx, f.session(token))
	if !errors.Is(err, flow.ErrTaskExists) {
		t.Fatalf("Create after claim: %v", err)
	}
	wantStatus(t, got, flow.StatusCompleting)
}

func testNotFound(t *testing.T, f *fixture) {
	ctx := context.Background()
	f.create(t, f.session("some-task"))
	missing := f.uri()
	if _, err := f.st.Get(ctx, missing); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("Get: %v", err)
	}
	if _, err := f.st.Get(ctx, ""); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("Get(\"\"): %v", err)
	}
	if _, err := f.st.GetByTaskToken(ctx, "other-task"); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("GetByTaskToken: %v", err)
	}
	if _, err := f.st.GetByTaskToken(ctx, ""); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("GetByTaskToken(\"\"): %v", err)
	}
	if _, err := f.st.Claim(ctx, missing, f.Now()); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("Claim: %v", err)
	}
	if _, err := f.st.Transition(ctx, missing, []flow.Status{flow.StatusPending}, flow.StatusFailed, ""); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("Transition: %v", err)
	}
	if _, err := f.st.ReserveAttempt(ctx, missing, 5, f.Now()); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("ReserveAttempt: %v", err)
	}
	if _, err := f.st.Release(ctx, missing); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("Release: %v", err)
	}
	if _, err := f.st.RecordWrongCode(ctx, missing, 5, "r", flow.Outbox{}, f.Now()); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("RecordWrongCode: %v", err)
	}
	if _, err := f.st.MarkNotified(ctx, missing, "", f.Now()); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("MarkNotified: %v", err)
	}
	if _, err := f.st.Get(ctx, missing); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("a miss created the session: %v", err)
	}
}

func testExpiryOnRead(t *testing.T, f *fixture) {
	ctx := context.Background()
	pending := f.create(t, f.session("task-exp"))
	stored := map[flow.Status]*flow.Session{}
	for _, st := range Statuses {
		stored[st] = f.in(t, st)
	}
	exp := f.base.Add(contract.SessionValidity)

	f.set(exp.Add(-time.Millisecond))
	for st, s := range stored {
		wantStatus(t, f.get(t, s.SessionURI), st)
	}
	f.set(exp) // expired from ExpiresAt on
	for st, s := range stored {
		want := st
		if st == flow.StatusPending || st == flow.StatusCompleting {
			want = flow.StatusExpired
		}
		if got := f.get(t, s.SessionURI); got.Status != want || got.Status != s.StatusAt(exp) {
			t.Fatalf("stored %s read at ExpiresAt as %s, want %s", st, got.Status, want)
		}
	}
	byTask, err := f.st.GetByTaskToken(ctx, "task-exp")
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, byTask, flow.StatusExpired)
	// Answers to writes are seen the same way.
	got, err := f.st.MarkNotified(ctx, pending.SessionURI, "", f.Now())
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, got, flow.StatusExpired)
	if cur, err := f.st.Create(ctx, f.session("task-exp")); !errors.Is(err, flow.ErrTaskExists) || cur == nil || cur.Status != flow.StatusExpired {
		t.Fatalf("Create for the task after expiry: %+v %v", cur, err)
	}
	// Expiry is a view: the stored status is untouched, so transitions are
	// decided on it (the only way to record the expiry).
	if cur, err := f.st.Transition(ctx, pending.SessionURI, []flow.Status{flow.StatusExpired}, flow.StatusFailed, ""); !errors.Is(err, flow.ErrIllegalTransition) || cur != nil {
		t.Fatalf("EXPIRED -> FAILED: %+v %v, want ErrIllegalTransition", cur, err)
	}
	got = f.transition(t, pending.SessionURI, flow.StatusPending, flow.StatusExpired, contract.ErrExpired)
	wantStatus(t, got, flow.StatusExpired)
	got = f.transition(t, stored[flow.StatusCompleting].SessionURI, flow.StatusCompleting, flow.StatusFailed, "x")
	wantStatus(t, got, flow.StatusFailed)
	// Once recorded it stays EXPIRED whatever the clock says.
	f.set(f.base)
	wantStatus(t, f.get(t, pending.SessionURI), flow.StatusExpired)
	wantStatus(t, f.get(t, stored[flow.StatusPending].SessionURI), flow.StatusPending)
}

func testTransitionEveryPair(t *testing.T, f *fixture) {
	ctx := context.Background()
	for _, from := range Statuses {
		for _, to := range Statuses {
			legal := edges[[2]flow.Status{from, to}]
			if legal != from.CanBecome(to) {
				t.Errorf("flow.Status.CanBecome(%s -> %s) = %v, the suite's table says %v", from, to, !legal, legal)
			}
			t.Run(string(from)+"->"+string(to), func(t *testing.T) {
				s := f.in(t, from)
				f.set(f.Now().Add(time.Second)) // ClaimedAt must be the store's clock at the move
				got, err := f.st.Transition(ctx, s.SessionURI, []flow.Status{from}, to, "consentflow.Test")
				if !legal {
					if !errors.Is(err, flow.ErrIllegalTransition) || got != nil {
						t.Fatalf("illegal move: %+v, %v; want (nil, ErrIllegalTransition)", got, err)
					}
					wantSame(t, "record after a refused move", f.get(t, s.SessionURI), s)
					return
				}
				if err != nil {
					t.Fatalf("Transition: %v", err)
				}
				want := *s
				want.Status, want.FailureReason = to, "consentflow.Test"
				switch to {
				case flow.StatusCompleting:
					want.ClaimedAt = f.Now()
				case flow.StatusPending:
					want.ClaimedAt = time.Time{}
				}
				wantSame(t, "Transition's answer", got, &want)
				wantSame(t, "stored record", f.get(t, s.SessionURI), &want)
			})
		}
	}
}

func testTransitionConflict(t *testing.T, f *fixture) {
	ctx := context.Background()
	for _, stored := range Statuses {
		for edge := range edges {
			from, to := edge[0], edge[1]
			if from == stored {
				continue
			}
			s := f.in(t, stored)
			cur, err := f.st.Transition(ctx, s.SessionURI, []flow.Status{from}, to, "x")
			wantConflict(t, fmt.Sprintf("stored %s, %s -> %s", stored, from, to), cur, err, stored)
			wantSame(t, "conflict's record", cur, f.get(t, s.SessionURI))
			wantSame(t, "record after a conflict", cur, s)
		}
	}
}

func testTransitionMultipleFrom(t *testing.T, f *fixture) {
	ctx := context.Background()
	expire := []flow.Status{flow.StatusPending, flow.StatusCompleting}
	for _, st := range expire {
		s := f.in(t, st)
		got, err := f.st.Transition(ctx, s.SessionURI, expire, flow.StatusExpired, contract.ErrExpired)
		if err != nil {
			t.Fatalf("expire from %s: %v", st, err)
		}
		wantStatus(t, got, flow.StatusExpired)
		if got.FailureReason != contract.ErrExpired || !got.ClaimedAt.Equal(s.ClaimedAt) {
			t.Fatalf("expire from %s: %+v", st, got)
		}
		// Recording it twice: the second caller learns someone else did.
		cur, err := f.st.Transition(ctx, s.SessionURI, expire, flow.StatusExpired, contract.ErrExpired)
		wantConflict(t, "second expiry", cur, err, flow.StatusExpired)
	}
	// One illegal move among the from statuses refuses the whole call.
	s := f.in(t, flow.StatusPending)
	if cur, err := f.st.Transition(ctx, s.SessionURI, []flow.Status{flow.StatusPending, flow.StatusFailed}, flow.StatusExpired, ""); !errors.Is(err, flow.ErrIllegalTransition) || cur != nil {
		t.Fatalf("from containing FAILED: %+v %v", cur, err)
	}
	if cur, err := f.st.Transition(ctx, s.SessionURI, nil, flow.StatusFailed, ""); !errors.Is(err, flow.ErrIllegalTransition) || cur != nil {
		t.Fatalf("empty from: %+v %v", cur, err)
	}
	wantStatus(t, f.get(t, s.SessionURI), flow.StatusPending)
	// Releasing a claim with an empty reason clears reason and claim.
	c := f.in(t, flow.StatusCompleting)
	f.transition(t, c.SessionURI, flow.StatusCompleting, flow.StatusPending, "")
	if got := f.get(t, c.SessionURI); got.FailureReason != "" || !got.ClaimedAt.IsZero() {
		t.Fatalf("after release: %+v", got)
	}
	// An empty reason on a terminal move leaves none.
	c = f.in(t, flow.StatusCompleting)
	if got := f.transition(t, c.SessionURI, flow.StatusCompleting, flow.StatusFailed, ""); got.FailureReason != "" {
		t.Fatalf("reason %q", got.FailureReason)
	}
}

func testClaimLease(t *testing.T, f *fixture) {
	ctx := context.Background()
	s := f.create(t, f.session(""))
	t0 := f.base.Add(time.Minute) // Claim's now, not the store's clock
	got, err := f.st.Claim(ctx, s.SessionURI, t0)
	if err != nil {
		t.Fatalf("first claim: %v", err)
	}
	want := *s
	want.Status, want.ClaimedAt = flow.StatusCompleting, t0
	wantSame(t, "Claim's answer", got, &want)
	wantSame(t, "stored record", f.get(t, s.SessionURI), &want)

	// Within the lease, and exactly at it: refused.
	for _, at := range []time.Time{t0, t0.Add(time.Second), t0.Add(flow.ClaimLease)} {
		cur, err := f.st.Claim(ctx, s.SessionURI, at)
		wantConflict(t, fmt.Sprintf("claim at +%v", at.Sub(t0)), cur, err, flow.StatusCompleting)
		if !cur.ClaimedAt.Equal(t0) {
			t.Fatalf("a refused claim moved ClaimedAt to %v", cur.ClaimedAt)
		}
	}
	// Stale: retaken.
	t1 := t0.Add(flow.ClaimLease + time.Millisecond)
	got, err = f.st.Claim(ctx, s.SessionURI, t1)
	if err != nil {
		t.Fatalf("retake a stale claim: %v", err)
	}
	if got.Status != flow.StatusCompleting || !got.ClaimedAt.Equal(t1) {
		t.Fatalf("retaken: %+v", got)
	}
	// Released to PENDING: claimable again at once.
	f.transition(t, s.SessionURI, flow.StatusCompleting, flow.StatusPending, "")
	if _, err := f.st.Claim(ctx, s.SessionURI, t1.Add(time.Second)); err != nil {
		t.Fatalf("claim after release: %v", err)
	}
	// Terminal: refused, however old the claim.
	for _, to := range []flow.Status{flow.StatusCompleted} {
		f.transition(t, s.SessionURI, flow.StatusCompleting, to, "")
		cur, err := f.st.Claim(ctx, s.SessionURI, t1.Add(2*flow.ClaimLease))
		wantConflict(t, "claim of "+string(to), cur, err, to)
	}
	for _, st := range []flow.Status{flow.StatusFailed, flow.StatusExpired} {
		s := f.in(t, st)
		cur, err := f.st.Claim(ctx, s.SessionURI, f.Now())
		wantConflict(t, "claim of "+string(st), cur, err, st)
	}
}

func testClaimExpired(t *testing.T, f *fixture) {
	ctx := context.Background()
	s := f.create(t, f.session(""))
	// At exactly ExpiresAt the session is expired.
	f.set(s.ExpiresAt)
	cur, err := f.st.Claim(ctx, s.SessionURI, s.ExpiresAt)
	wantConflict(t, "claim at ExpiresAt", cur, err, flow.StatusExpired)

	f.set(f.base)
	s = f.create(t, f.session(""))
	if _, err := f.st.Claim(ctx, s.SessionURI, s.ExpiresAt.Add(-time.Millisecond)); err != nil {
		t.Fatalf("claim just before expiry: %v", err)
	}
	// A stale claim on an expired session is not retaken.
	late := s.ExpiresAt.Add(flow.ClaimLease)
	f.set(late)
	cur, err = f.st.Claim(ctx, s.SessionURI, late)
	wantConflict(t, "retake on an expired session", cur, err, flow.StatusExpired)
}

func testAttempts(t *testing.T, f *fixture) {
	ctx := context.Background()
	s := f.create(t, f.session(""))
	for i := 1; i <= 3; i++ {
		got, err := f.st.ReserveAttempt(ctx, s.SessionURI, 3, f.Now())
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		wantStatus(t, got, flow.StatusPending)
		if got.Attempts != i || got.FailureReason != "" || !got.ReservedAt.Equal(f.Now().Truncate(time.Millisecond)) {
			t.Fatalf("attempt %d: %+v", i, got)
		}
	}
	// The limit is reached: nothing more is reserved, the status stays
	// (the caller that used the last attempt settles the session).
	cur, err := f.st.ReserveAttempt(ctx, s.SessionURI, 3, f.Now())
	wantConflict(t, "attempt 4", cur, err, flow.StatusPending)
	if cur.Attempts != 3 {
		t.Fatalf("attempt beyond the limit counted: %d", cur.Attempts)
	}

	// A limit of 1 or below allows one attempt.
	for _, limit := range []int{1, 0, -1} {
		s := f.create(t, f.session(""))
		if got, err := f.st.ReserveAttempt(ctx, s.SessionURI, limit, f.Now()); err != nil || got.Attempts != 1 {
			t.Fatalf("limit %d, first: %+v %v", limit, got, err)
		}
		cur, err := f.st.ReserveAttempt(ctx, s.SessionURI, limit, f.Now())
		wantConflict(t, fmt.Sprintf("limit %d, second", limit), cur, err, flow.StatusPending)
	}
	// Attempts survive a claim and a plain transition back.
	k := f.create(t, f.session(""))
	if _, err := f.st.ReserveAttempt(ctx, k.SessionURI, 5, f.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Claim(ctx, k.SessionURI, f.Now()); err != nil {
		t.Fatal(err)
	}
	if got := f.transition(t, k.SessionURI, flow.StatusCompleting, flow.StatusPending, ""); got.Attempts != 1 {
		t.Fatalf("attempts after claim and transition back: %d", got.Attempts)
	}
	// Not claimable (settled, or COMPLETING under a live claim): refused,
	// nothing counted.
	for _, st := range Statuses[1:] {
		s := f.in(t, st)
		cur, err := f.st.ReserveAttempt(ctx, s.SessionURI, 5, f.Now())
		wantConflict(t, "attempt on "+string(st), cur, err, st)
		if cur.Attempts != 0 {
			t.Fatalf("attempt on %s counted", st)
		}
	}
	// COMPLETING under a stale claim is claimable, so an attempt counts.
	c := f.in(t, flow.StatusCompleting)
	later := f.Now().Add(flow.ClaimLease + time.Second)
	if got, err := f.st.ReserveAttempt(ctx, c.SessionURI, 5, later); err != nil || got.Attempts != 1 || got.Status != flow.StatusCompleting {
		t.Fatalf("attempt under a stale claim: %+v %v", got, err)
	}
	// Expired at now: refused, seen as EXPIRED.
	x := f.create(t, f.session(""))
	f.set(x.ExpiresAt)
	cur, err = f.st.ReserveAttempt(ctx, x.SessionURI, 5, x.ExpiresAt)
	wantConflict(t, "attempt at ExpiresAt", cur, err, flow.StatusExpired)
	if cur.Attempts != 0 {
		t.Fatal("attempt on an expired session counted")
	}
}

// reserve takes n attempts on uri (limit 5 unless more are asked for).
func (f *fixture) reserve(t *testing.T, uri string, n, limit int, now time.Time) *flow.Session {
	t.Helper()
	var got *flow.Session
	for i := 0; i < n; i++ {
		var err error
		if got, err = f.st.ReserveAttempt(context.Background(), uri, limit, now); err != nil {
			t.Fatalf("reserve %d: %v", i+1, err)
		}
	}
	return got
}

// testRecordWrongCode: wrong codes are recorded against open reservations;
// the one that makes every attempt wrong fails the session in the same
// write; while a reservation is open the session stays.
func testRecordWrongCode(t *testing.T, f *fixture) {
	ctx := context.Background()
	const limit = 3
	s := f.create(t, f.session(""))
	// No open reservation: nothing to record.
	cur, err := f.st.RecordWrongCode(ctx, s.SessionURI, limit, contract.ErrBindingFailed, flow.Outbox{}, f.Now())
	wantConflict(t, "wrong code without a reservation", cur, err, flow.StatusPending)
	f.reserve(t, s.SessionURI, limit, limit, f.Now())
	for i := 1; i < limit; i++ {
		got, err := f.st.RecordWrongCode(ctx, s.SessionURI, limit, contract.ErrBindingFailed, flow.Outbox{}, f.Now())
		if err != nil || got.Status != flow.StatusPending || got.WrongCodes != i || got.Attempts != limit || got.FailureReason != "" {
			t.Fatalf("wrong code %d: %+v %v", i, got, err)
		}
	}
	got, err := f.st.RecordWrongCode(ctx, s.SessionURI, limit, contract.ErrBindingFailed, flow.Outbox{}, f.Now())
	if err != nil || got.Status != flow.StatusFailed || got.WrongCodes != limit || got.FailureReason != contract.ErrBindingFailed {
		t.Fatalf("last wrong code: %+v %v", got, err)
	}
	wantSame(t, "stored after the last wrong code", f.get(t, s.SessionURI), got)
	cur, err = f.st.RecordWrongCode(ctx, s.SessionURI, limit, contract.ErrBindingFailed, flow.Outbox{}, f.Now())
	wantConflict(t, "wrong code after FAILED", cur, err, flow.StatusFailed)

	// All attempts reserved, one still open (it may hold the right code):
	// the session stays PENDING and can still be claimed.
	o := f.create(t, f.session(""))
	f.reserve(t, o.SessionURI, limit, limit, f.Now())
	for i := 1; i < limit; i++ {
		if _, err := f.st.RecordWrongCode(ctx, o.SessionURI, limit, "r", flow.Outbox{}, f.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.get(t, o.SessionURI); got.Status != flow.StatusPending || got.WrongCodes != limit-1 || got.Attempts != limit {
		t.Fatalf("with one comparison open: %+v", got)
	}
	if _, err := f.st.Claim(ctx, o.SessionURI, f.Now()); err != nil {
		t.Fatalf("claim by the open comparison: %v", err)
	}
	// COMPLETING under a live claim: refused.
	cur, err = f.st.RecordWrongCode(ctx, o.SessionURI, limit, "r", flow.Outbox{}, f.Now())
	wantConflict(t, "wrong code under a live claim", cur, err, flow.StatusCompleting)

	// Under a stale claim the last wrong code fails the session too.
	c := f.in(t, flow.StatusCompleting)
	later := f.Now().Add(flow.ClaimLease + time.Second)
	f.reserve(t, c.SessionURI, limit, limit, later)
	for i := 1; i <= limit; i++ {
		got, err = f.st.RecordWrongCode(ctx, c.SessionURI, limit, "r", flow.Outbox{}, later)
		if err != nil {
			t.Fatalf("stale claim, wrong code %d: %v", i, err)
		}
	}
	if got.Status != flow.StatusFailed || got.FailureReason != "r" {
		t.Fatalf("stale claim, after %d wrong codes: %+v", limit, got)
	}
	// A limit of 1 or below: the first wrong code ends the session.
	for _, l := range []int{1, 0, -1} {
		s := f.create(t, f.session(""))
		f.reserve(t, s.SessionURI, 1, l, f.Now())
		if got, err := f.st.RecordWrongCode(ctx, s.SessionURI, l, "r", flow.Outbox{}, f.Now()); err != nil || got.Status != flow.StatusFailed {
			t.Fatalf("limit %d: %+v %v", l, got, err)
		}
	}
	// Expired at now: refused, seen as EXPIRED.
	x := f.create(t, f.session(""))
	f.reserve(t, x.SessionURI, 1, limit, f.Now())
	f.set(x.ExpiresAt)
	cur, err = f.st.RecordWrongCode(ctx, x.SessionURI, limit, "r", flow.Outbox{}, x.ExpiresAt)
	wantConflict(t, "wrong code at ExpiresAt", cur, err, flow.StatusExpired)
}

// testLeaseBoundarySubMillisecond: the store agrees with ClaimableAt at
// times that are not whole milliseconds, on both sides of the lease.
func testLeaseBoundarySubMillisecond(t *testing.T, f *fixture) {
	ctx := context.Background()
	for _, d := range []time.Duration{-time.Millisecond, -500 * time.Microsecond, 0, time.Nanosecond, 500 * time.Microsecond, 999 * time.Microsecond, time.Millisecond} {
		s := f.in(t, flow.StatusCompleting)
		now := s.ClaimedAt.Add(flow.ClaimLease + d)
		want := s.ClaimableAt(now)
		got, err := f.st.ReserveAttempt(ctx, s.SessionURI, 5, now)
		if (err == nil) != want {
			t.Errorf("lease %+v: ClaimableAt says %v, ReserveAttempt: %+v %v", d, want, got, err)
		}
		if _, err := f.st.Claim(ctx, s.SessionURI, now); (err == nil) != want {
			t.Errorf("lease %+v: ClaimableAt says %v, Claim: %v", d, want, err)
		}
	}
}

// testRaceRecordWrongCode: racing wrong codes on every reserved attempt
// record each once, and exactly one of them fails the session.
func testRaceRecordWrongCode(t *testing.T, f *fixture) {
	const limit = 5
	s := f.create(t, f.session(""))
	f.reserve(t, s.SessionURI, limit, limit, f.Now())
	var mu sync.Mutex
	ok, failedNow, conflicts := 0, 0, 0
	race(racers, func(int) {
		got, err := f.st.RecordWrongCode(context.Background(), s.SessionURI, limit, contract.ErrBindingFailed, flow.Outbox{}, f.Now())
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil && got.Status == flow.StatusFailed:
			failedNow++
		case err == nil:
			ok++
		case errors.Is(err, flow.ErrConflict) && got != nil:
			conflicts++
		default:
			t.Errorf("RecordWrongCode: %+v %v", got, err)
		}
	})
	if ok != limit-1 || failedNow != 1 || conflicts != racers-limit {
		t.Fatalf("recorded %d, failed %d, conflicts %d; want %d, 1, %d", ok, failedNow, conflicts, limit-1, racers-limit)
	}
	if got := f.get(t, s.SessionURI); got.Status != flow.StatusFailed || got.WrongCodes != limit {
		t.Fatalf("final %+v", got)
	}
}

// testRefundAttempt: a right code's open attempt is given back; a wrong
// one, or a session not stored PENDING, is refused.
func testRefundAttempt(t *testing.T, f *fixture) {
	ctx := context.Background()
	s := f.create(t, f.session(""))
	if cur, err := f.st.RefundAttempt(ctx, s.SessionURI); !errors.Is(err, flow.ErrConflict) || cur.Attempts != 0 {
		t.Fatalf("refund with no attempt: %+v %v", cur, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := f.st.ReserveAttempt(ctx, s.SessionURI, 5, f.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.st.RecordWrongCode(ctx, s.SessionURI, 5, contract.ErrBindingFailed, flow.Outbox{Error: contract.ErrBindingFailed}, f.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := f.st.RefundAttempt(ctx, s.SessionURI)
	if err != nil || got.Attempts != 1 || got.WrongCodes != 1 {
		t.Fatalf("refund: %+v %v", got, err)
	}
	// Attempts == WrongCodes: only wrong codes left, none given back.
	if cur, err := f.st.RefundAttempt(ctx, s.SessionURI); !errors.Is(err, flow.ErrConflict) || cur.Attempts != 1 {
		t.Fatalf("refund of a wrong code: %+v %v", cur, err)
	}
	if got := f.get(t, s.SessionURI); got.Attempts != 1 || got.WrongCodes != 1 {
		t.Fatalf("stored: %+v", got)
	}
	for _, st := range Statuses {
		if st == flow.StatusPending {
			continue
		}
		s := f.in(t, st)
		cur, err := f.st.RefundAttempt(ctx, s.SessionURI)
		wantConflict(t, "refund of "+string(st), cur, err, st)
	}
	if _, err := f.st.RefundAttempt(ctx, "urn:ietf:params:oauth:request_uri:missing"); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("refund of a missing session: %v", err)
	}
	// A right code refunded before its sign-in, then a claim released
	// after a transient failure: the release gives back nothing, so a
	// wrong code is never given back (Attempts >= WrongCodes).
	r := f.create(t, f.session(""))
	if _, err := f.st.ReserveAttempt(ctx, r.SessionURI, 5, f.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.RecordWrongCode(ctx, r.SessionURI, 5, contract.ErrBindingFailed, flow.Outbox{Error: contract.ErrBindingFailed}, f.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.ReserveAttempt(ctx, r.SessionURI, 5, f.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.RefundAttempt(ctx, r.SessionURI); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.Claim(ctx, r.SessionURI, f.Now()); err != nil {
		t.Fatal(err)
	}
	got, err = f.st.Release(ctx, r.SessionURI)
	if err != nil || got.Status != flow.StatusPending || got.Attempts != 1 || got.WrongCodes != 1 {
		t.Fatalf("release after a refund: %+v %v", got, err)
	}
}

// testRelease: a claimed session goes back to PENDING with its claimant's
// attempt returned; nothing else can be released.
func testRelease(t *testing.T, f *fixture) {
	ctx := context.Background()
	s := f.create(t, f.session(""))
	for i := 0; i < 2; i++ {
		if _, err := f.st.ReserveAttempt(ctx, s.SessionURI, 5, f.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.st.Claim(ctx, s.SessionURI, f.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := f.st.Release(ctx, s.SessionURI)
	if err != nil || got.Status != flow.StatusPending || got.Attempts != 1 || !got.ClaimedAt.IsZero() {
		t.Fatalf("release: %+v %v", got, err)
	}
	if got := f.get(t, s.SessionURI); got.Status != flow.StatusPending || got.Attempts != 1 || !got.ClaimedAt.IsZero() {
		t.Fatalf("stored after release: %+v", got)
	}
	// No attempt to give back (binding none): released, attempts stay 0.
	n := f.create(t, f.session(""))
	if _, err := f.st.Claim(ctx, n.SessionURI, f.Now()); err != nil {
		t.Fatal(err)
	}
	if got, err := f.st.Release(ctx, n.SessionURI); err != nil || got.Status != flow.StatusPending || got.Attempts != 0 {
		t.Fatalf("release without attempts: %+v %v", got, err)
	}
	// Anything but COMPLETING: refused, unchanged.
	for _, st := range Statuses {
		if st == flow.StatusCompleting {
			continue
		}
		s := f.in(t, st)
		cur, err := f.st.Release(ctx, s.SessionURI)
		wantConflict(t, "release of "+string(st), cur, err, st)
	}
}

func testMarkNotified(t *testing.T, f *fixture) {
	ctx := context.Background()
	s := f.create(t, f.session("tt"))
	at := f.base.Add(2 * time.Second)
	got, err := f.st.MarkNotified(ctx, s.SessionURI, flow.Hash("NEW-CODE"), at)
	if err != nil {
		t.Fatal(err)
	}
	want := *s
	want.NotifiedAt, want.CodeHash = at, flow.Hash("NEW-CODE")
	wantSame(t, "MarkNotified's answer", got, &want)
	wantSame(t, "stored record", f.get(t, s.SessionURI), &want)
	cur, err := f.st.MarkNotified(ctx, s.SessionURI, flow.Hash("OTHER"), at.Add(time.Second))
	wantConflict(t, "second MarkNotified", cur, err, flow.StatusPending)
	wantSame(t, "record after a refused MarkNotified", cur, &want)

	// An empty codeHash keeps the stored one; a zero time is the store's clock.
	s2 := f.create(t, f.session(""))
	f.set(f.base.Add(5 * time.Second))
	got, err = f.st.MarkNotified(ctx, s2.SessionURI, "", time.Time{})
	if err != nil || got.CodeHash != s2.CodeHash || !got.NotifiedAt.Equal(f.Now()) {
		t.Fatalf("empty codeHash, zero time: %+v %v", got, err)
	}
	// Whatever the status.
	for _, st := range Statuses[1:] {
		s := f.in(t, st)
		if got, err := f.st.MarkNotified(ctx, s.SessionURI, "", at); err != nil || got.Status != st {
			t.Fatalf("MarkNotified on %s: %+v %v", st, got, err)
		}
	}
}

// testSingleUse: a completed session can be neither completed again nor
// changed back by any caller.
func testSingleUse(t *testing.T, f *fixture) {
	ctx := context.Background()
	s := f.in(t, flow.StatusCompleted)
	later := f.Now().Add(2 * flow.ClaimLease)
	cur, err := f.st.Claim(ctx, s.SessionURI, later)
	wantConflict(t, "claim of a completed session", cur, err, flow.StatusCompleted)
	cur, err = f.st.Transition(ctx, s.SessionURI, []flow.Status{flow.StatusCompleting}, flow.StatusCompleted, "")
	wantConflict(t, "second completion", cur, err, flow.StatusCompleted)
	for _, from := range Statuses {
		for _, to := range Statuses {
			if cur, err := f.st.Transition(ctx, s.SessionURI, []flow.Status{from}, to, ""); err == nil {
				t.Fatalf("completed session moved by %s -> %s: %+v", from, to, cur)
			}
		}
	}
	cur, err = f.st.ReserveAttempt(ctx, s.SessionURI, 5, later)
	wantConflict(t, "attempt on a completed session", cur, err, flow.StatusCompleted)
	cur, err = f.st.Release(ctx, s.SessionURI)
	wantConflict(t, "release of a completed session", cur, err, flow.StatusCompleted)
	dup := f.session("")
	dup.SessionURI = s.SessionURI
	cur, err = f.st.Create(ctx, dup)
	wantConflict(t, "Create over a completed session", cur, err, flow.StatusCompleted)
	f.set(s.ExpiresAt.Add(time.Hour))
	wantSame(t, "completed session, much later", f.get(t, s.SessionURI), s)
}

// race runs fn in n goroutines released at once.
func race(n int, fn func(i int)) {
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			fn(i)
		}()
	}
	start.Done()
	done.Wait()
}

const racers = 20

func testRaceClaim(t *testing.T, f *fixture) {
	s := f.create(t, f.session(""))
	var mu sync.Mutex
	const claimers = 50 // the callback's hottest race: more racers than the others
	wins, conflicts := 0, 0
	race(claimers, func(int) {
		got, err := f.st.Claim(context.Background(), s.SessionURI, f.Now())
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			wins++
		case errors.Is(err, flow.ErrConflict) && got != nil && got.Status == flow.StatusCompleting:
			conflicts++
		default:
			t.Errorf("Claim: %+v %v", got, err)
		}
	})
	if wins != 1 || conflicts != claimers-1 {
		t.Fatalf("wins=%d conflicts=%d, want 1 and %d", wins, conflicts, claimers-1)
	}
}

func testRaceTransition(t *testing.T, f *fixture) {
	s := f.in(t, flow.StatusCompleting)
	var mu sync.Mutex
	wins, conflicts := 0, 0
	race(racers, func(i int) {
		to := flow.StatusCompleted
		if i%2 == 1 {
			to = flow.StatusPending
		}
		got, err := f.st.Transition(context.Background(), s.SessionURI, []flow.Status{flow.StatusCompleting}, to, "")
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			wins++
		case errors.Is(err, flow.ErrConflict) && got != nil && got.Status != flow.StatusCompleting:
			conflicts++
		default:
			t.Errorf("Transition: %+v %v", got, err)
		}
	})
	if wins != 1 || conflicts != racers-1 {
		t.Fatalf("wins=%d conflicts=%d, want 1 and %d", wins, conflicts, racers-1)
	}
}

// testRaceReserveAttempt: however many requests race, exactly limit
// attempts are reserved, each with its own count.
func testRaceReserveAttempt(t *testing.T, f *fixture) {
	s := f.create(t, f.session(""))
	const limit = 5
	var mu sync.Mutex
	counts := map[int]int{}
	conflicts := 0
	race(racers, func(int) {
		got, err := f.st.ReserveAttempt(context.Background(), s.SessionURI, limit, f.Now())
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil && got.Status == flow.StatusPending:
			counts[got.Attempts]++
		case errors.Is(err, flow.ErrConflict) && got != nil && got.Attempts == limit:
			conflicts++
		default:
			t.Errorf("ReserveAttempt: %+v %v", got, err)
		}
	})
	if len(counts) != limit || conflicts != racers-limit {
		t.Fatalf("reserved counts %v, conflicts %d; want 1..%d once each and %d conflicts", counts, conflicts, limit, racers-limit)
	}
	for i := 1; i <= limit; i++ {
		if counts[i] != 1 {
			t.Fatalf("count %d reserved %d times", i, counts[i])
		}
	}
	if got := f.get(t, s.SessionURI); got.Attempts != limit || got.Status != flow.StatusPending {
		t.Fatalf("final %+v", got)
	}
}

// testRaceReserveAttemptStaleClaim: a session stuck in COMPLETING under a
// stale claim still allows no more than limit attempts.
func testRaceReserveAttemptStaleClaim(t *testing.T, f *fixture) {
	s := f.in(t, flow.StatusCompleting)
	later := f.Now().Add(flow.ClaimLease + time.Second)
	const limit = 5
	var mu sync.Mutex
	won := 0
	race(racers, func(int) {
		got, err := f.st.ReserveAttempt(context.Background(), s.SessionURI, limit, later)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			won++
		} else if !errors.Is(err, flow.ErrConflict) || got == nil {
			t.Errorf("ReserveAttempt: %+v %v", got, err)
		}
	})
	if got := f.get(t, s.SessionURI); won != limit || got.Attempts != limit {
		t.Fatalf("won %d, attempts %d; want %d", won, got.Attempts, limit)
	}
}

func testRaceCreateSameTaskToken(t *testing.T, f *fixture) {
	const token = "task-token-race"
	sessions := make([]*flow.Session, racers)
	for i := range sessions {
		sessions[i] = f.session(token)
	}
	results := make([]*flow.Session, racers)
	errs := make([]error, racers)
	race(racers, func(i int) {
		results[i], errs[i] = f.st.Create(context.Background(), sessions[i])
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("two Creates succeeded: %d and %d", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, flow.ErrTaskExists):
			t.Fatalf("Create %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no Create succeeded")
	}
	for i, err := range errs {
		if err != nil && (results[i] == nil || results[i].SessionURI != sessions[winner].SessionURI) {
			t.Fatalf("Create %d returned %+v, want the winner's session", i, results[i])
		}
		if i != winner {
			if _, err := f.st.Get(context.Background(), sessions[i].SessionURI); !errors.Is(err, flow.ErrNotFound) {
				t.Fatalf("losing Create %d stored its session: %v", i, err)
			}
		}
	}
	byTask, err := f.st.GetByTaskToken(context.Background(), token)
	if err != nil || byTask.SessionURI != sessions[winner].SessionURI {
		t.Fatalf("GetByTaskToken: %+v %v", byTask, err)
	}
}

func testRaceMarkNotified(t *testing.T, f *fixture) {
	s := f.create(t, f.session(""))
	var mu sync.Mutex
	wins := 0
	var winner string
	race(racers, func(i int) {
		h := flow.Hash(fmt.Sprint(i))
		_, err := f.st.MarkNotified(context.Background(), s.SessionURI, h, f.Now())
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil:
			wins++
			winner = h
		case !errors.Is(err, flow.ErrConflict):
			t.Errorf("MarkNotified: %v", err)
		}
	})
	if wins != 1 {
		t.Fatalf("wins = %d, want 1", wins)
	}
	if got := f.get(t, s.SessionURI); got.CodeHash != winner {
		t.Fatal("stored code digest is not the winner's")
	}
}

// settled creates a session with a task token, claims it and settles it
// COMPLETED with an outbox and the delivery claim at claim.
func (f *fixture) settled(t *testing.T, claim time.Time) (*flow.Session, flow.Outbox) {
	t.Helper()
	ctx := context.Background()
	s := f.create(t, f.session("tt-"+f.uri()))
	if _, err := f.st.Claim(ctx, s.SessionURI, f.Now()); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	out := flow.Outbox{Output: `{"status":"AUTHORIZED","provider":"google"}`}
	got, err := f.st.Settle(ctx, s.SessionURI, []flow.Status{flow.StatusCompleting}, flow.StatusCompleted, "", out, claim)
	if err != nil {
		t.Fatalf("Settle: %v", err)
	}
	return got, out
}

func testSettle(t *testing.T, f *fixture) {
	ctx := context.Background()
	claim := f.base.Add(time.Second)
	got, out := f.settled(t, claim)
	if got.Status != flow.StatusCompleted || got.Outbox != out || !got.DeliveryClaimedAt.Equal(claim) || !got.ResumedAt.IsZero() || got.FailureReason != "" {
		t.Fatalf("Settle's answer: %+v", got)
	}
	wantSame(t, "stored record", f.get(t, got.SessionURI), got)
	if !got.DeliveryDue() {
		t.Fatal("a settled session with a task token and an outbox owes its delivery")
	}

	// A failure: reason and outbox in the same write; no claim.
	s := f.create(t, f.session("tt-fail"))
	fo := flow.Outbox{Error: contract.ErrConsentDenied, Cause: "the user did not grant access"}
	got, err := f.st.Settle(ctx, s.SessionURI, []flow.Status{flow.StatusPending}, flow.StatusFailed, contract.ErrConsentDenied, fo, time.Time{})
	if err != nil || got.Status != flow.StatusFailed || got.FailureReason != contract.ErrConsentDenied || got.Outbox != fo || !got.DeliveryClaimedAt.IsZero() {
		t.Fatalf("Settle FAILED: %+v %v", got, err)
	}
	wantSame(t, "stored record", f.get(t, s.SessionURI), got)
	// Expiry from either open status.
	x := f.create(t, f.session("tt-exp"))
	eo := flow.Outbox{Error: contract.ErrExpired, Cause: "expired"}
	if got, err := f.st.Settle(ctx, x.SessionURI, []flow.Status{flow.StatusPending, flow.StatusCompleting}, flow.StatusExpired, contract.ErrExpired, eo, time.Time{}); err != nil || got.Outbox != eo {
		t.Fatalf("Settle EXPIRED: %+v %v", got, err)
	}

	// Settled once: a second Settle conflicts and writes nothing.
	before := f.get(t, s.SessionURI)
	cur, err := f.st.Settle(ctx, s.SessionURI, []flow.Status{flow.StatusPending}, flow.StatusExpired, contract.ErrExpired, eo, claim)
	wantConflict(t, "second Settle", cur, err, flow.StatusFailed)
	wantSame(t, "record after a refused Settle", f.get(t, s.SessionURI), before)

	// Only terminal statuses, only legal moves.
	p := f.create(t, f.session(""))
	for _, to := range []flow.Status{flow.StatusPending, flow.StatusCompleting} {
		if _, err := f.st.Settle(ctx, p.SessionURI, []flow.Status{flow.StatusPending}, to, "", fo, time.Time{}); !errors.Is(err, flow.ErrIllegalTransition) {
			t.Errorf("Settle to %s: %v, want ErrIllegalTransition", to, err)
		}
	}
	if _, err := f.st.Settle(ctx, p.SessionURI, []flow.Status{flow.StatusPending}, flow.StatusCompleted, "", out, time.Time{}); !errors.Is(err, flow.ErrIllegalTransition) {
		t.Errorf("Settle PENDING -> COMPLETED: %v, want ErrIllegalTransition", err)
	}
	wantSame(t, "record after illegal Settles", f.get(t, p.SessionURI), p)
	if _, err := f.st.Settle(ctx, "urn:ietf:params:oauth:request_uri:missing-settle", []flow.Status{flow.StatusPending}, flow.StatusFailed, "r", fo, time.Time{}); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("Settle of a missing session: %v", err)
	}
}

func testRecordWrongCodeOutbox(t *testing.T, f *fixture) {
	ctx := context.Background()
	const limit = 2
	s := f.create(t, f.session("tt-wrong"))
	f.reserve(t, s.SessionURI, limit, limit, f.Now())
	fo := flow.Outbox{Error: contract.ErrBindingFailed, Cause: "too many wrong verification codes"}
	got, err := f.st.RecordWrongCode(ctx, s.SessionURI, limit, contract.ErrBindingFailed, fo, f.Now())
	if err != nil || got.Status != flow.StatusPending || !got.Outbox.Empty() || !got.DeliveryClaimedAt.IsZero() {
		t.Fatalf("first wrong code: %+v %v", got, err)
	}
	now := f.Now()
	got, err = f.st.RecordWrongCode(ctx, s.SessionURI, limit, contract.ErrBindingFailed, fo, now)
	if err != nil || got.Status != flow.StatusFailed || got.Outbox != fo || !got.DeliveryClaimedAt.Equal(now) {
		t.Fatalf("last wrong code: %+v %v", got, err)
	}
	wantSame(t, "stored record", f.get(t, s.SessionURI), got)
}

func testDelivery(t *testing.T, f *fixture) {
	ctx := context.Background()
	claim := f.base
	s, _ := f.settled(t, claim)

	// The settling writer's claim keeps others off until its lease ends.
	for _, at := range []time.Time{claim, claim.Add(flow.DeliveryLease)} {
		cur, err := f.st.ClaimDelivery(ctx, s.SessionURI, at)
		wantConflict(t, "ClaimDelivery under a live claim", cur, err, flow.StatusCompleted)
		if !cur.DeliveryClaimedAt.Equal(claim) {
			t.Fatalf("conflict answer: %+v", cur)
		}
	}
	// Only the claim's owner releases it.
	cur, err := f.st.ReleaseDelivery(ctx, s.SessionURI, claim.Add(time.Millisecond))
	wantConflict(t, "ReleaseDelivery of another's claim", cur, err, flow.StatusCompleted)
	got, err := f.st.ReleaseDelivery(ctx, s.SessionURI, claim)
	if err != nil || !got.DeliveryClaimedAt.IsZero() {
		t.Fatalf("ReleaseDelivery: %+v %v", got, err)
	}
	// Released: claimable at once.
	at := claim.Add(time.Second)
	got, err = f.st.ClaimDelivery(ctx, s.SessionURI, at)
	if err != nil || !got.DeliveryClaimedAt.Equal(at) {
		t.Fatalf("ClaimDelivery after release: %+v %v", got, err)
	}
	// A stale claim is taken over after the lease.
	later := at.Add(flow.DeliveryLease + time.Millisecond)
	got, err = f.st.ClaimDelivery(ctx, s.SessionURI, later)
	if err != nil || !got.DeliveryClaimedAt.Equal(later) {
		t.Fatalf("ClaimDelivery of a stale claim: %+v %v", got, err)
	}
	// Resumed once; then nobody claims, releases or resumes again.
	done := later.Add(time.Second)
	got, err = f.st.MarkResumed(ctx, s.SessionURI, done)
	if err != nil || !got.ResumedAt.Equal(done) || got.DeliveryDue() {
		t.Fatalf("MarkResumed: %+v %v", got, err)
	}
	wantSame(t, "stored record", f.get(t, s.SessionURI), got)
	cur, err = f.st.MarkResumed(ctx, s.SessionURI, done.Add(time.Second))
	wantConflict(t, "second MarkResumed", cur, err, flow.StatusCompleted)
	if !cur.ResumedAt.Equal(done) {
		t.Fatalf("second MarkResumed changed ResumedAt: %+v", cur)
	}
	cur, err = f.st.ClaimDelivery(ctx, s.SessionURI, done.Add(time.Hour))
	wantConflict(t, "ClaimDelivery of a resumed session", cur, err, flow.StatusCompleted)
	cur, err = f.st.ReleaseDelivery(ctx, s.SessionURI, later)
	wantConflict(t, "ReleaseDelivery of a resumed session", cur, err, flow.StatusCompleted)

	// Nothing to deliver: open, no task token, no outbox.
	open := f.create(t, f.session("tt-open"))
	cur, err = f.st.ClaimDelivery(ctx, open.SessionURI, f.Now())
	wantConflict(t, "ClaimDelivery of an open session", cur, err, flow.StatusPending)
	cur, err = f.st.MarkResumed(ctx, open.SessionURI, f.Now())
	wantConflict(t, "MarkResumed of an open session", cur, err, flow.StatusPending)
	noTask := f.create(t, f.session(""))
	if _, err := f.st.Settle(ctx, noTask.SessionURI, []flow.Status{flow.StatusPending}, flow.StatusFailed, "r", flow.Outbox{Error: "r", Cause: "c"}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	cur, err = f.st.ClaimDelivery(ctx, noTask.SessionURI, f.Now())
	wantConflict(t, "ClaimDelivery without a task token", cur, err, flow.StatusFailed)
	legacy := f.create(t, f.session("tt-legacy"))
	f.transition(t, legacy.SessionURI, flow.StatusPending, flow.StatusFailed, "r")
	cur, err = f.st.ClaimDelivery(ctx, legacy.SessionURI, f.Now())
	wantConflict(t, "ClaimDelivery without an outbox", cur, err, flow.StatusFailed)

	missing := "urn:ietf:params:oauth:request_uri:missing-delivery"
	if _, err := f.st.ClaimDelivery(ctx, missing, f.Now()); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("ClaimDelivery: %v", err)
	}
	if _, err := f.st.ReleaseDelivery(ctx, missing, f.Now()); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("ReleaseDelivery: %v", err)
	}
	if _, err := f.st.MarkResumed(ctx, missing, f.Now()); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("MarkResumed: %v", err)
	}
}

// testRaceClaimDelivery: of concurrent senders exactly one gets the claim.
func testRaceClaimDelivery(t *testing.T, f *fixture) {
	s, _ := f.settled(t, time.Time{})
	const n = 8
	var mu sync.Mutex
	wins := 0
	race(n, func(int) {
		_, err := f.st.ClaimDelivery(context.Background(), s.SessionURI, f.Now())
		if err == nil {
			mu.Lock()
			wins++
			mu.Unlock()
		} else if !errors.Is(err, flow.ErrConflict) {
			t.Errorf("ClaimDelivery: %v", err)
		}
	})
	if wins != 1 {
		t.Fatalf("%d senders claimed the delivery, want 1", wins)
	}
}

// testDeliveryLeaseSubMillisecond: the delivery lease agrees at sub-millisecond
// times, and the owner releases with its untruncated claim time.
func testDeliveryLeaseSubMillisecond(t *testing.T, f *fixture) {
	ctx := context.Background()
	claim := f.base.Add(700 * time.Microsecond) // a sub-millisecond claim, as a real clock gives
	s, _ := f.settled(t, claim)
	if !s.DeliveryClaimedAt.Equal(claim.Truncate(time.Millisecond)) {
		t.Fatalf("stored claim %v", s.DeliveryClaimedAt)
	}
	stored := claim.Truncate(time.Millisecond)
	// exactly the lease after the stored claim: live; 1ns / 0.5ms later: stale
	if cur, err := f.st.ClaimDelivery(ctx, s.SessionURI, stored.Add(flow.DeliveryLease)); !errors.Is(err, flow.ErrConflict) {
		t.Fatalf("at lease: %+v %v", cur, err)
	}
	now := stored.Add(flow.DeliveryLease + time.Nanosecond)
	got, err := f.st.ClaimDelivery(ctx, s.SessionURI, now)
	if err != nil || !got.DeliveryClaimedAt.Equal(now.Truncate(time.Millisecond)) {
		t.Fatalf("lease+1ns: %+v %v", got, err)
	}
	// the owner releases with its untruncated claim time
	if _, err := f.st.ReleaseDelivery(ctx, s.SessionURI, now); err != nil {
		t.Fatalf("release with the untruncated claim: %v", err)
	}
}
