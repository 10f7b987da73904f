package state_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/consentflow/consentflow/internal/connectauth"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/state"
)

func (f *fixture) rawConnect(t *testing.T, key string) map[string]types.AttributeValue {
	t.Helper()
	out, err := f.client.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName: aws.String(f.table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{contract.AttrPK: &types.AttributeValueMemberS{Value: state.ConnectKeyPrefix + key}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func TestConnectRedirectLifecycle(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	key := connectauth.Key("connect-state-1")
	r, err := f.st.ClaimRedirect(ctx, key, base)
	if err != nil || r.Status != connectauth.StatusPending || !r.ClaimedAt.Equal(base.Truncate(time.Millisecond)) {
		t.Fatalf("claim: %+v %v", r, err)
	}
	// The item: kind connect, the key a hash, the TTL a day after the claim.
	item := f.rawConnect(t, key)
	if k := item["kind"].(*types.AttributeValueMemberS).Value; k != "connect" {
		t.Errorf("kind %q", k)
	}
	// Epoch seconds (not milliseconds: DynamoDB would never expire it), a
	// day after the claim.
	if ttl, err := strconv.ParseInt(item[contract.AttrTTL].(*types.AttributeValueMemberN).Value, 10, 64); err != nil ||
		ttl < base.Add(24*time.Hour).Unix() || ttl > base.Add(24*time.Hour).Unix()+2 {
		t.Errorf("ttl %d (%v), want %d", ttl, err, base.Add(24*time.Hour).Unix())
	}
	for name, v := range item {
		if s, ok := v.(*types.AttributeValueMemberS); ok && strings.Contains(s.Value, "connect-state-1") {
			t.Errorf("attribute %s holds the state", name)
		}
	}
	// Claimed: another request gets the pending record.
	cur, err := f.st.ClaimRedirect(ctx, key, base.Add(time.Second))
	if !errors.Is(err, connectauth.ErrClaimed) || cur.Status != connectauth.StatusPending {
		t.Fatalf("second claim: %+v %v", cur, err)
	}
	done := base.Add(2 * time.Second)
	if err := f.st.FinishRedirect(ctx, key, r.ClaimedAt, connectauth.StatusDone, done); err != nil {
		t.Fatalf("finish: %v", err)
	}
	if err := f.st.FinishRedirect(ctx, key, r.ClaimedAt, connectauth.StatusFailed, done); !errors.Is(err, connectauth.ErrClaimed) {
		t.Fatalf("second finish: %v", err)
	}
	if err := f.st.ReleaseRedirect(ctx, key, r.ClaimedAt); !errors.Is(err, connectauth.ErrClaimed) {
		t.Fatalf("release of a finished claim: %v", err)
	}
	// Finished: answered from the record, long after any lease.
	cur, err = f.st.ClaimRedirect(ctx, key, base.Add(time.Hour))
	if !errors.Is(err, connectauth.ErrClaimed) || cur.Status != connectauth.StatusDone || !cur.FinishedAt.Equal(done.Truncate(time.Millisecond)) {
		t.Fatalf("claim after finish: %+v %v", cur, err)
	}
	if err := f.st.FinishRedirect(ctx, key, r.ClaimedAt, connectauth.StatusPending, done); err == nil {
		t.Fatal("pending accepted as a final status")
	}
}

func TestConnectRedirectReleaseAndLease(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	key := connectauth.Key("connect-state-2")
	r, err := f.st.ClaimRedirect(ctx, key, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.ReleaseRedirect(ctx, key, base.Add(time.Millisecond)); !errors.Is(err, connectauth.ErrClaimed) {
		t.Fatalf("release of another claim: %v", err)
	}
	if err := f.st.ReleaseRedirect(ctx, key, r.ClaimedAt); err != nil {
		t.Fatalf("release: %v", err)
	}
	// Released: the next request claims it at once.
	r2, err := f.st.ClaimRedirect(ctx, key, base.Add(time.Second))
	if err != nil || r2.Status != connectauth.StatusPending {
		t.Fatalf("claim after release: %+v %v", r2, err)
	}
	// A claim whose holder died: kept for ClaimLease, then taken over.
	at := r2.ClaimedAt.Add(connectauth.ClaimLease)
	if _, err := f.st.ClaimRedirect(ctx, key, at); !errors.Is(err, connectauth.ErrClaimed) {
		t.Fatalf("claim at the lease's end: %v", err)
	}
	r3, err := f.st.ClaimRedirect(ctx, key, at.Add(time.Millisecond))
	if err != nil || !r3.ClaimedAt.Equal(at.Add(time.Millisecond)) {
		t.Fatalf("takeover: %+v %v", r3, err)
	}
	// The dead holder's late answer cannot overwrite the new claim.
	if err := f.st.FinishRedirect(ctx, key, r2.ClaimedAt, connectauth.StatusDone, at); !errors.Is(err, connectauth.ErrClaimed) {
		t.Fatalf("stale finish: %v", err)
	}
}

func TestConnectRedirectOneWinner(t *testing.T) {
	f := setup(t)
	key := connectauth.Key("connect-state-3")
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, claimed := 0, 0
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.st.ClaimRedirect(context.Background(), key, base.Add(time.Duration(i)*time.Millisecond))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, connectauth.ErrClaimed):
				claimed++
			default:
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || claimed != n-1 {
		t.Fatalf("%d claims won, %d refused; want exactly one winner", wins, claimed)
	}
}
