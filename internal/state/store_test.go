package state_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/testenv/dynamotest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/state"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

// base is the injected clock's start. It must be near the real time:
// DynamoDB Local runs TTL and deletes items whose ttl (ExpiresAt + retention)
// has passed by the wall clock, which would make records vanish mid-test.
var base = time.Now().UTC().Truncate(time.Second).Add(123 * time.Millisecond)

// clock is an injectable, adjustable flow.Clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

type fixture struct {
	st     *state.Store
	clk    *clock
	client *dynamodb.Client
	table  string
}

func setup(t testing.TB, opts ...state.Option) *fixture {
	t.Helper()
	db := dynamotest.Shared(t)
	table := dynamotest.TableName(t)
	ctx := context.Background()
	if err := state.EnsureTable(ctx, db.Client(), table); err != nil {
		t.Fatalf("EnsureTable: %v", err)
	}
	t.Cleanup(func() {
		_, _ = db.Client().DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	clk := &clock{t: base}
	// DynamoDB Local on a loaded machine can be slower than the
	// production bound; the hang test in internal/app/callback checks it.
	opts = append([]state.Option{state.WithClock(clk.Now), state.WithCallTimeout(15 * time.Second)}, opts...)
	return &fixture{st: state.New(db.Client(), table, opts...), clk: clk, client: db.Client(), table: table}
}

var uriSeq sync.Mutex
var uriN int

func newURI() string {
	uriSeq.Lock()
	defer uriSeq.Unlock()
	uriN++
	return fmt.Sprintf("urn:ietf:params:oauth:request_uri:test-%d-%d", time.Now().UnixNano(), uriN)
}

func newSession(taskToken string) *flow.Session {
	return &flow.Session{
		SessionURI:       newURI(),
		CorrelationID:    "6f1c2a9e-0000-4000-8000-000000000001",
		ExecutionARN:     "arn:aws:states:us-east-1:123456789012:execution:AuthorizeUser:6f1c2a9e-0000-4000-8000-000000000001",
		ReturnTo:         "https://app.example.com/chat?c=7f3a&t=12",
		ContinueAgent:    "calendar_agent",
		StateHash:        flow.Hash("state-value"),
		UserID:           "google|alice",
		Provider:         "google",
		Scopes:           []string{"openid", "email", "https://www.googleapis.com/auth/calendar"},
		TaskToken:        taskToken,
		AuthorizationURL: "https://bedrock-agentcore.us-east-1.amazonaws.com/identities/oauth2/authorize?request_uri=x",
		Binding:          flow.BindingCode,
		CodeHash:         flow.Hash("ABCD-EFGH"),
		CreatedAt:        base,
		ExpiresAt:        base.Add(contract.SessionValidity),
	}
}

func (f *fixture) create(t testing.TB, s *flow.Session) *flow.Session {
	t.Helper()
	got, err := f.st.Create(context.Background(), s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return got
}

func (f *fixture) get(t testing.TB, uri string) *flow.Session {
	t.Helper()
	got, err := f.st.Get(context.Background(), uri)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return got
}

// raw reads an item as stored, bypassing the store.
func (f *fixture) raw(t testing.TB, pk string) map[string]types.AttributeValue {
	t.Helper()
	out, err := f.client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(f.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{contract.AttrPK: &types.AttributeValueMemberS{Value: pk}},
	})
	if err != nil {
		t.Fatalf("raw GetItem: %v", err)
	}
	return out.Item
}

func rawS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func rawN(item map[string]types.AttributeValue, name string) int64 {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return -1
}

func wantStatus(t testing.TB, s *flow.Session, want flow.Status) {
	t.Helper()
	if s == nil {
		t.Fatalf("session is nil, want status %s", want)
	}
	if s.Status != want {
		t.Fatalf("status = %s, want %s", s.Status, want)
	}
}

func TestCreateGetRoundTrip(t *testing.T) {
	f := setup(t)
	in := newSession("task-token-secret-1")
	in.CreatedAt = base.Add(123456 * time.Nanosecond) // sub-millisecond part is dropped
	created := f.create(t, in)

	want := *in
	want.Status = flow.StatusPending
	want.CreatedAt = base
	if !reflect.DeepEqual(created, &want) {
		t.Fatalf("Create returned\n%+v\nwant\n%+v", created, &want)
	}
	got := f.get(t, in.SessionURI)
	if !reflect.DeepEqual(got, &want) {
		t.Fatalf("Get returned\n%+v\nwant\n%+v", got, &want)
	}
	byTask, err := f.st.GetByTaskToken(context.Background(), in.TaskToken)
	if err != nil || !reflect.DeepEqual(byTask, &want) {
		t.Fatalf("GetByTaskToken = %+v, %v", byTask, err)
	}

	// Item layout.
	item := f.raw(t, state.SessionKey(in.SessionURI))
	if rawS(item, "pk") != "session#"+in.SessionURI || rawS(item, "status") != "PENDING" || rawN(item, "attempts") != 0 {
		t.Fatalf("unexpected session item %v", item)
	}
	wantTTL := base.Add(contract.SessionValidity+state.DefaultRetention).Unix() + 1 // rounded up (base has ms)
	if got := rawN(item, "ttl"); got != wantTTL {
		t.Fatalf("ttl = %d, want %d", got, wantTTL)
	}
	if _, ok := item["claimedAt"]; ok {
		t.Fatal("claimedAt stored before any claim")
	}
	if got := rawS(item, "executionArn"); got != in.ExecutionARN {
		t.Fatalf("executionArn = %q, want %q", got, in.ExecutionARN)
	}
	if rawS(item, "returnTo") != in.ReturnTo {
		t.Fatalf("returnTo attribute = %q, want %q", rawS(item, "returnTo"), in.ReturnTo)
	}
	if got := rawS(item, "continueAgent"); got != in.ContinueAgent {
		t.Fatalf("continueAgent = %q, want %q", got, in.ContinueAgent)
	}
	taskKey := state.TaskKey(in.TaskToken)
	if !strings.HasPrefix(taskKey, "task#") || strings.Contains(taskKey, in.TaskToken) || len(taskKey) != len("task#")+64 {
		t.Fatalf("task key %q", taskKey)
	}
	task := f.raw(t, taskKey)
	if rawS(task, "sessionUri") != in.SessionURI || rawN(task, "ttl") != wantTTL || rawS(task, "kind") != "task" {
		t.Fatalf("unexpected task item %v", task)
	}
	for name, v := range task {
		if s, ok := v.(*types.AttributeValueMemberS); ok && strings.Contains(s.Value, in.TaskToken) {
			t.Fatalf("task item attribute %s holds the task token", name)
		}
	}
}

func TestCreateDefaultsAndValidation(t *testing.T) {
	f := setup(t)
	s := &flow.Session{SessionURI: newURI()}
	got := f.create(t, s)
	wantStatus(t, got, flow.StatusPending)
	if !got.CreatedAt.Equal(base) || !got.ExpiresAt.Equal(base.Add(contract.SessionValidity)) {
		t.Fatalf("defaults: created %v expires %v", got.CreatedAt, got.ExpiresAt)
	}
	if s.Status != "" {
		t.Fatal("Create modified its argument")
	}
	// Optional strings are not stored when empty (a session without an
	// execution, e.g. a direct invocation).
	for _, name := range []string{"executionArn", "context", "correlationId", "returnTo", "continueAgent"} {
		if v, ok := f.raw(t, state.SessionKey(s.SessionURI))[name]; ok {
			t.Fatalf("%s stored for a session without one: %v", name, v)
		}
	}
	// No task token: no task item.
	out, err := f.client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(f.table)})
	if err != nil || out.Count != 1 {
		t.Fatalf("scan: %d items, %v", out.Count, err)
	}

	bad := newSession("")
	bad.Status = flow.StatusCompleted
	if _, err := f.st.Create(context.Background(), bad); err == nil || errors.Is(err, flow.ErrConflict) {
		t.Fatalf("Create with status COMPLETED: %v", err)
	}
	if _, err := f.st.Create(context.Background(), &flow.Session{}); err == nil {
		t.Fatal("Create without sessionUri succeeded")
	}
	if _, err := f.st.Create(context.Background(), nil); err == nil {
		t.Fatal("Create(nil) succeeded")
	}
}

func TestCreateDuplicateSessionURI(t *testing.T) {
	for _, withTask := range []bool{false, true} {
		t.Run(fmt.Sprintf("taskToken=%v", withTask), func(t *testing.T) {
			f := setup(t)
			first := newSession("")
			if withTask {
				first.TaskToken = "task-A"
			}
			f.create(t, first)
			if _, err := f.st.Claim(context.Background(), first.SessionURI, base); err != nil {
				t.Fatal(err)
			}
			dup := newSession("")
			dup.SessionURI = first.SessionURI
			dup.Provider = "github"
			if withTask {
				dup.TaskToken = "task-B"
			}
			cur, err := f.st.Create(context.Background(), dup)
			if !errors.Is(err, flow.ErrConflict) {
				t.Fatalf("duplicate sessionUri: err = %v, want ErrConflict", err)
			}
			if cur == nil || cur.Provider != "google" || cur.Status != flow.StatusCompleting {
				t.Fatalf("conflict returned %+v, want the first (claimed) session", cur)
			}
			if withTask { // the transaction wrote nothing
				if _, err := f.st.GetByTaskToken(context.Background(), "task-B"); !errors.Is(err, flow.ErrNotFound) {
					t.Fatalf("task-B recorded despite conflict: %v", err)
				}
			}
		})
	}
}

func TestCreateDuplicateTaskToken(t *testing.T) {
	f := setup(t)
	first := f.create(t, newSession("task-token-retry"))
	retry := newSession("task-token-retry") // retried invocation: new AgentCore session
	got, err := f.st.Create(context.Background(), retry)
	if !errors.Is(err, flow.ErrTaskExists) {
		t.Fatalf("err = %v, want ErrTaskExists", err)
	}
	if !reflect.DeepEqual(got, first) {
		t.Fatalf("returned %+v, want the first session %+v", got, first)
	}
	if _, err := f.st.Get(context.Background(), retry.SessionURI); !errors.Is(err, flow.ErrNotFound) {
		t.Fatalf("second session was stored: %v", err)
	}
	// Same sessionUri and same task token (a pure replay): still the first.
	got, err = f.st.Create(context.Background(), newSessionLike(first))
	if !errors.Is(err, flow.ErrTaskExists) || got.SessionURI != first.SessionURI {
		t.Fatalf("replay: %+v, %v", got, err)
	}
}

func newSessionLike(s *flow.Session) *flow.Session {
	c := *s
	c.Status = ""
	return &c
}

func TestNotFound(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	f.create(t, newSession("some-task"))
	missing := newURI()
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
	if _, err := f.st.Claim(ctx, missing, base); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("Claim: %v", err)
	}
	if _, err := f.st.Transition(ctx, missing, []flow.Status{flow.StatusPending}, flow.StatusFailed, ""); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("Transition: %v", err)
	}
	if _, err := f.st.ReserveAttempt(ctx, missing, 5, time.Now()); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("ReserveAttempt: %v", err)
	}
	if _, err := f.st.MarkNotified(ctx, missing, "", base); !errors.Is(err, flow.ErrNotFound) {
		t.Errorf("MarkNotified: %v", err)
	}
	// None of the misses created an item.
	out, err := f.client.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(f.table)})
	if err != nil || out.Count != 2 {
		t.Fatalf("scan: %d items, %v (want the session and its task item)", out.Count, err)
	}
}

var allStatuses = []flow.Status{flow.StatusPending, flow.StatusCompleting, flow.StatusCompleted, flow.StatusFailed, flow.StatusExpired}

var edges = map[[2]flow.Status]bool{
	{flow.StatusPending, flow.StatusCompleting}:   true,
	{flow.StatusPending, flow.StatusFailed}:       true,
	{flow.StatusPending, flow.StatusExpired}:      true,
	{flow.StatusCompleting, flow.StatusCompleted}: true,
	{flow.StatusCompleting, flow.StatusPending}:   true,
	{flow.StatusCompleting, flow.StatusFailed}:    true,
	{flow.StatusCompleting, flow.StatusExpired}:   true,
}

// sessionIn creates a session stored with status st.
func (f *fixture) sessionIn(t *testing.T, st flow.Status) *flow.Session {
	t.Helper()
	ctx := context.Background()
	s := f.create(t, newSession(""))
	switch st {
	case flow.StatusPending:
		return s
	case flow.StatusCompleting:
		s, err := f.st.Claim(ctx, s.SessionURI, f.clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		return s
	default:
		from := flow.StatusPending
		if st == flow.StatusCompleted {
			if _, err := f.st.Claim(ctx, s.SessionURI, f.clk.Now()); err != nil {
				t.Fatal(err)
			}
			from = flow.StatusCompleting
		}
		s, err := f.st.Transition(ctx, s.SessionURI, []flow.Status{from}, st, "setup")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func TestTransitionEveryEdge(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for _, from := range allStatuses {
		for _, to := range allStatuses {
			t.Run(string(from)+"->"+string(to), func(t *testing.T) {
				s := f.sessionIn(t, from)
				got, err := f.st.Transition(ctx, s.SessionURI, []flow.Status{from}, to, "consentflow.Test")
				if !edges[[2]flow.Status{from, to}] {
					if err == nil || errors.Is(err, flow.ErrConflict) || got != nil {
						t.Fatalf("invalid edge: got %+v, %v; want a plain error", got, err)
					}
					wantStatus(t, f.get(t, s.SessionURI), from) // nothing written
					return
				}
				if err != nil {
					t.Fatalf("Transition: %v", err)
				}
				wantStatus(t, got, to)
				if got.FailureReason != "consentflow.Test" {
					t.Fatalf("reason = %q", got.FailureReason)
				}
				switch to {
				case flow.StatusCompleting:
					if !got.ClaimedAt.Equal(f.clk.Now()) {
						t.Fatalf("ClaimedAt = %v", got.ClaimedAt)
					}
				case flow.StatusPending:
					if !got.ClaimedAt.IsZero() {
						t.Fatalf("ClaimedAt not cleared: %v", got.ClaimedAt)
					}
				}
				if stored := f.get(t, s.SessionURI); !reflect.DeepEqual(stored, got) {
					t.Fatalf("stored %+v != returned %+v", stored, got)
				}
			})
		}
	}
}

func TestTransitionRefusedWhenNotInFrom(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	for _, stored := range allStatuses {
		for edge := range edges {
			from, to := edge[0], edge[1]
			if from == stored {
				continue
			}
			t.Run(fmt.Sprintf("stored=%s/%s->%s", stored, from, to), func(t *testing.T) {
				s := f.sessionIn(t, stored)
				cur, err := f.st.Transition(ctx, s.SessionURI, []flow.Status{from}, to, "x")
				if !errors.Is(err, flow.ErrConflict) {
					t.Fatalf("err = %v, want ErrConflict", err)
				}
				wantStatus(t, cur, stored)
				if !reflect.DeepEqual(cur, f.get(t, s.SessionURI)) {
					t.Fatal("conflict did not return the current record")
				}
			})
		}
	}
}

func TestTransitionMultipleFromAndReason(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	s := f.sessionIn(t, flow.StatusCompleting)
	expire := []flow.Status{flow.StatusPending, flow.StatusCompleting}
	got, err := f.st.Transition(ctx, s.SessionURI, expire, flow.StatusExpired, contract.ErrExpired)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, got, flow.StatusExpired)
	if got.FailureReason != contract.ErrExpired || got.ClaimedAt.IsZero() {
		t.Fatalf("got %+v", got)
	}
	// Recording expiry twice: the second caller learns someone else did it.
	if cur, err := f.st.Transition(ctx, s.SessionURI, expire, flow.StatusExpired, contract.ErrExpired); !errors.Is(err, flow.ErrConflict) || cur.Status != flow.StatusExpired {
		t.Fatalf("second expiry: %+v %v", cur, err)
	}
	// Transient failure: COMPLETING -> PENDING with empty reason clears it.
	s2 := f.sessionIn(t, flow.StatusCompleting)
	if _, err := f.st.Transition(ctx, s2.SessionURI, []flow.Status{flow.StatusCompleting}, flow.StatusFailed, ""); err != nil {
		t.Fatal(err)
	}
	s3 := f.sessionIn(t, flow.StatusCompleting)
	f.mustTransition(t, s3.SessionURI, flow.StatusCompleting, flow.StatusPending, "")
	if got := f.get(t, s3.SessionURI); got.FailureReason != "" || !got.ClaimedAt.IsZero() {
		t.Fatalf("after release: %+v", got)
	}
	if _, err := f.st.Transition(ctx, s3.SessionURI, nil, flow.StatusFailed, ""); err == nil {
		t.Fatal("empty from accepted")
	}
}

func (f *fixture) mustTransition(t *testing.T, uri string, from, to flow.Status, reason string) *flow.Session {
	t.Helper()
	s, err := f.st.Transition(context.Background(), uri, []flow.Status{from}, to, reason)
	if err != nil {
		t.Fatalf("Transition %s->%s: %v", from, to, err)
	}
	return s
}

func TestClaimLease(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	s := f.create(t, newSession(""))

	t0 := base.Add(time.Minute)
	got, err := f.st.Claim(ctx, s.SessionURI, t0)
	if err != nil {
		t.Fatalf("first claim: %v", err)
	}
	wantStatus(t, got, flow.StatusCompleting)
	if !got.ClaimedAt.Equal(t0) {
		t.Fatalf("ClaimedAt = %v, want %v", got.ClaimedAt, t0)
	}

	// Fresh claim (within the lease, and exactly at it): refused.
	for _, at := range []time.Time{t0, t0.Add(time.Second), t0.Add(flow.ClaimLease)} {
		cur, err := f.st.Claim(ctx, s.SessionURI, at)
		if !errors.Is(err, flow.ErrConflict) {
			t.Fatalf("claim at +%v: err = %v, want ErrConflict", at.Sub(t0), err)
		}
		if cur.Status != flow.StatusCompleting || !cur.ClaimedAt.Equal(t0) {
			t.Fatalf("conflict returned %+v", cur)
		}
	}

	// Stale claim: retaken.
	t1 := t0.Add(flow.ClaimLease + time.Millisecond)
	got, err = f.st.Claim(ctx, s.SessionURI, t1)
	if err != nil {
		t.Fatalf("retake stale claim: %v", err)
	}
	if !got.ClaimedAt.Equal(t1) {
		t.Fatalf("ClaimedAt = %v, want %v", got.ClaimedAt, t1)
	}

	// Released to PENDING: claimable again at once.
	f.mustTransition(t, s.SessionURI, flow.StatusCompleting, flow.StatusPending, "")
	if _, err := f.st.Claim(ctx, s.SessionURI, t1.Add(time.Second)); err != nil {
		t.Fatalf("claim after release: %v", err)
	}

	// Terminal: refused.
	f.mustTransition(t, s.SessionURI, flow.StatusCompleting, flow.StatusCompleted, "")
	if cur, err := f.st.Claim(ctx, s.SessionURI, t1.Add(2*flow.ClaimLease)); !errors.Is(err, flow.ErrConflict) || cur.Status != flow.StatusCompleted {
		t.Fatalf("claim of COMPLETED: %+v %v", cur, err)
	}
}

func TestClaimExpiredRefused(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	pending := f.create(t, newSession(""))
	// At exactly ExpiresAt the session is expired (flow.Session.ExpiredAt).
	f.clk.Set(pending.ExpiresAt)
	cur, err := f.st.Claim(ctx, pending.SessionURI, pending.ExpiresAt)
	if !errors.Is(err, flow.ErrConflict) {
		t.Fatalf("claim at expiry: %v", err)
	}
	wantStatus(t, cur, flow.StatusExpired)

	// One millisecond before: still claimable.
	f.clk.Set(base)
	s := f.create(t, newSession(""))
	if _, err := f.st.Claim(ctx, s.SessionURI, s.ExpiresAt.Add(-time.Millisecond)); err != nil {
		t.Fatalf("claim just before expiry: %v", err)
	}
	// A stale claim on an expired session is not retaken.
	late := s.ExpiresAt.Add(flow.ClaimLease)
	f.clk.Set(late)
	if cur, err := f.st.Claim(ctx, s.SessionURI, late); !errors.Is(err, flow.ErrConflict) || cur.Status != flow.StatusExpired {
		t.Fatalf("retake on expired session: %+v %v", cur, err)
	}
}

func TestMarkNotified(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	s := f.create(t, newSession("tt"))
	at := base.Add(2 * time.Second)
	got, err := f.st.MarkNotified(ctx, s.SessionURI, flow.Hash("NEW-CODE"), at)
	if err != nil {
		t.Fatal(err)
	}
	if !got.NotifiedAt.Equal(at) || got.CodeHash != flow.Hash("NEW-CODE") {
		t.Fatalf("got %+v", got)
	}
	cur, err := f.st.MarkNotified(ctx, s.SessionURI, flow.Hash("OTHER"), at.Add(time.Second))
	if !errors.Is(err, flow.ErrConflict) {
		t.Fatalf("second MarkNotified: %v", err)
	}
	if !cur.NotifiedAt.Equal(at) || cur.CodeHash != flow.Hash("NEW-CODE") {
		t.Fatalf("second MarkNotified changed the record: %+v", cur)
	}
	// Empty codeHash keeps the stored one.
	s2 := f.create(t, newSession(""))
	got, err = f.st.MarkNotified(ctx, s2.SessionURI, "", at)
	if err != nil || got.CodeHash != s2.CodeHash || !got.NotifiedAt.Equal(at) {
		t.Fatalf("empty codeHash: %+v %v", got, err)
	}
}

func TestExpiryOnRead(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	pending := f.create(t, newSession("task-exp"))
	completing := f.sessionIn(t, flow.StatusCompleting)
	completed := f.sessionIn(t, flow.StatusCompleted)
	failed := f.sessionIn(t, flow.StatusFailed)

	f.clk.Set(base.Add(contract.SessionValidity - time.Millisecond))
	wantStatus(t, f.get(t, pending.SessionURI), flow.StatusPending)
	wantStatus(t, f.get(t, completing.SessionURI), flow.StatusCompleting)

	f.clk.Set(base.Add(contract.SessionValidity)) // exactly at ExpiresAt
	wantStatus(t, f.get(t, pending.SessionURI), flow.StatusExpired)
	wantStatus(t, f.get(t, completing.SessionURI), flow.StatusExpired)
	wantStatus(t, f.get(t, completed.SessionURI), flow.StatusCompleted)
	wantStatus(t, f.get(t, failed.SessionURI), flow.StatusFailed)
	byTask, err := f.st.GetByTaskToken(ctx, "task-exp")
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, byTask, flow.StatusExpired)
	// Stored status untouched: expiry is a view until someone records it.
	if got := rawS(f.raw(t, state.SessionKey(pending.SessionURI)), "status"); got != "PENDING" {
		t.Fatalf("stored status = %s", got)
	}
	// A write's answer is viewed the same way (MarkNotified on an expired session).
	got, err := f.st.MarkNotified(ctx, pending.SessionURI, "", f.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, got, flow.StatusExpired)
	// Recording the expiry.
	got = f.mustTransition(t, pending.SessionURI, flow.StatusPending, flow.StatusExpired, contract.ErrExpired)
	wantStatus(t, got, flow.StatusExpired)
	// Duplicate Create with the same task token still returns the expired view.
	if cur, err := f.st.Create(ctx, newSession("task-exp")); !errors.Is(err, flow.ErrTaskExists) || cur.Status != flow.StatusExpired {
		t.Fatalf("Create after expiry: %+v %v", cur, err)
	}
}

func TestRetentionOption(t *testing.T) {
	f := setup(t, state.WithRetention(time.Hour))
	s := newSession("t")
	s.ExpiresAt = base.Truncate(time.Second).Add(contract.SessionValidity)
	f.create(t, s)
	want := s.ExpiresAt.Add(time.Hour).Unix()
	if got := rawN(f.raw(t, state.SessionKey(s.SessionURI)), "ttl"); got != want {
		t.Fatalf("ttl = %d, want %d", got, want)
	}
	if got := rawN(f.raw(t, state.TaskKey("t")), "ttl"); got != want {
		t.Fatalf("task ttl = %d, want %d", got, want)
	}
}

func TestEnsureTable(t *testing.T) {
	f := setup(t) // already ensured once
	ctx := context.Background()
	if err := state.EnsureTable(ctx, f.client, f.table); err != nil {
		t.Fatalf("second EnsureTable: %v", err)
	}
	d, err := f.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(f.table)})
	if err != nil {
		t.Fatal(err)
	}
	tbl := d.Table
	if len(tbl.KeySchema) != 1 || aws.ToString(tbl.KeySchema[0].AttributeName) != "pk" || tbl.KeySchema[0].KeyType != types.KeyTypeHash {
		t.Fatalf("key schema %+v", tbl.KeySchema)
	}
	if tbl.BillingModeSummary == nil || tbl.BillingModeSummary.BillingMode != types.BillingModePayPerRequest {
		t.Fatalf("billing %+v", tbl.BillingModeSummary)
	}
	if sp := tbl.StreamSpecification; sp == nil || !aws.ToBool(sp.StreamEnabled) || sp.StreamViewType != types.StreamViewTypeNewAndOldImages {
		t.Fatalf("stream %+v, want NEW_AND_OLD_IMAGES", sp)
	}
	ttl, err := f.client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(f.table)})
	if err != nil {
		t.Fatal(err)
	}
	if ttl.TimeToLiveDescription == nil || aws.ToString(ttl.TimeToLiveDescription.AttributeName) != "ttl" ||
		ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled {
		t.Fatalf("TTL %+v", ttl.TimeToLiveDescription)
	}
}

// A table made with a stream of new images only (before completion events)
// gets a stream of new and old images.
func TestEnsureTableReplacesANewImageStream(t *testing.T) {
	db := dynamotest.Shared(t)
	table := dynamotest.TableName(t)
	ctx := context.Background()
	in := state.CreateTableInput(table)
	in.StreamSpecification = &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewImage}
	if _, err := db.Client().CreateTable(ctx, in); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Client().DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	if err := state.EnsureTable(ctx, db.Client(), table); err != nil {
		t.Fatalf("EnsureTable: %v", err)
	}
	d, err := db.Client().DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	if sp := d.Table.StreamSpecification; sp == nil || !aws.ToBool(sp.StreamEnabled) || sp.StreamViewType != types.StreamViewTypeNewAndOldImages {
		t.Fatalf("stream %+v, want NEW_AND_OLD_IMAGES", sp)
	}
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

func TestRaceCreateSameTaskToken(t *testing.T) {
	f := setup(t)
	const n = 20
	sessions := make([]*flow.Session, n)
	for i := range sessions {
		sessions[i] = newSession("task-token-race")
	}
	results := make([]*flow.Session, n)
	errs := make([]error, n)
	race(n, func(i int) {
		results[i], errs[i] = f.st.Create(context.Background(), sessions[i])
	})
	winner := -1
	for i, err := range errs {
		if err == nil {
			if winner >= 0 {
				t.Fatalf("two Creates succeeded: %d and %d", winner, i)
			}
			winner = i
		} else if !errors.Is(err, flow.ErrTaskExists) {
			t.Fatalf("Create %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no Create succeeded")
	}
	for i, err := range errs {
		if err != nil {
			if results[i] == nil || results[i].SessionURI != sessions[winner].SessionURI {
				t.Fatalf("Create %d returned %+v, want the winner's session", i, results[i])
			}
			if strings.Contains(err.Error(), "task-token-race") {
				t.Fatal("error text holds the task token")
			}
		}
	}
	out, err := f.client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(f.table)})
	if err != nil || out.Count != 2 {
		t.Fatalf("scan: %d items (want 2), %v", out.Count, err)
	}
}

// BenchmarkGetClaim measures a Get followed by a Claim of a fresh session
// (the callback's hot path) against DynamoDB Local; sessions are created
// outside the timer.
func BenchmarkGetClaim(b *testing.B) {
	f := setup(b)
	ctx := context.Background()
	uris := make([]string, b.N)
	for i := range uris {
		uris[i] = f.create(b, newSession("")).SessionURI
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.st.Get(ctx, uris[i]); err != nil {
			b.Fatal(err)
		}
		if _, err := f.st.Claim(ctx, uris[i], base); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "getclaims/s")
}

// BenchmarkCreate measures Create with a task token (one TransactWriteItems).
func BenchmarkCreate(b *testing.B) {
	f := setup(b)
	ctx := context.Background()
	sessions := make([]*flow.Session, b.N)
	for i := range sessions {
		sessions[i] = newSession(fmt.Sprintf("bench-task-%d", i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.st.Create(ctx, sessions[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// BenchmarkClaimContended: all goroutines claim the same session; one wins
// per round, the rest get ErrConflict with the current record.
func BenchmarkClaimContended(b *testing.B) {
	f := setup(b)
	s := f.create(b, newSession(""))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.st.Claim(context.Background(), s.SessionURI, base); err != nil && !errors.Is(err, flow.ErrConflict) {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
}
