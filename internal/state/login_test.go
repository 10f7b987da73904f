package state_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/flow"
)

func TestLoginLifecycle(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	l := &flow.Login{Key: flow.Hash("secret-1"), SessionURI: "urn:ietf:params:oauth:request_uri:s1", CodeVerified: true,
		Round: 2, CreatedAt: base, ExpiresAt: base.Add(5 * time.Minute)}
	if err := f.st.CreateLogin(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateLogin(ctx, l); !errors.Is(err, flow.ErrConflict) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := f.st.FollowLogin(ctx, l.Key, base); !errors.Is(err, flow.ErrConflict) {
		t.Fatalf("follow before use: %v", err)
	}
	now := base.Add(time.Minute)
	u, err := f.st.UseLogin(ctx, l.Key, now)
	if err != nil || !u.UsedAt.Equal(now) || u.Key != l.Key || u.SessionURI != l.SessionURI || !u.CodeVerified || u.Round != 2 ||
		u.External || !u.ExpiresAt.Equal(l.ExpiresAt) || !u.CreatedAt.Equal(l.CreatedAt) {
		t.Fatalf("use: %+v %v", u, err)
	}
	if cur, err := f.st.UseLogin(ctx, l.Key, now); !errors.Is(err, flow.ErrConflict) || cur.UsedAt.IsZero() {
		t.Fatalf("second use: %+v %v", cur, err)
	}
	if _, err := f.st.FollowLogin(ctx, l.Key, now); err != nil {
		t.Fatalf("follow: %v", err)
	}
	if cur, err := f.st.FollowLogin(ctx, l.Key, now); !errors.Is(err, flow.ErrConflict) || cur.FollowedAt.IsZero() {
		t.Fatalf("second follow: %+v %v", cur, err)
	}
	if _, err := f.st.UseLogin(ctx, flow.Hash("other"), now); !errors.Is(err, flow.ErrNotFound) {
		t.Fatalf("use unknown: %v", err)
	}
}

func TestLoginExpiry(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	l := &flow.Login{Key: flow.Hash("secret-2"), SessionURI: "urn:ietf:params:oauth:request_uri:s2", External: true,
		Round: 1, CreatedAt: base, ExpiresAt: base.Add(5 * time.Minute)}
	if err := f.st.CreateLogin(ctx, l); err != nil {
		t.Fatal(err)
	}
	// At ExpiresAt it is expired (as every expiry in the flow).
	if cur, err := f.st.UseLogin(ctx, l.Key, l.ExpiresAt); !errors.Is(err, flow.ErrConflict) || !cur.UsedAt.IsZero() || !cur.External {
		t.Fatalf("use at expiry: %+v %v", cur, err)
	}
	if _, err := f.st.UseLogin(ctx, l.Key, l.ExpiresAt.Add(-time.Millisecond)); err != nil {
		t.Fatalf("use just before expiry: %v", err)
	}
	if _, err := f.st.FollowLogin(ctx, l.Key, l.ExpiresAt); !errors.Is(err, flow.ErrConflict) {
		t.Fatalf("follow at expiry: %v", err)
	}
}

// Of many browsers' requests racing with the same login secret, exactly one
// uses the sign-in.
func TestLoginUseRace(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	l := &flow.Login{Key: flow.Hash("secret-3"), SessionURI: "urn:ietf:params:oauth:request_uri:s3",
		Round: 1, CreatedAt: base, ExpiresAt: base.Add(5 * time.Minute)}
	if err := f.st.CreateLogin(ctx, l); err != nil {
		t.Fatal(err)
	}
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.st.UseLogin(ctx, l.Key, base.Add(time.Second))
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, flow.ErrConflict):
				conflicts.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != 29 {
		t.Fatalf("wins %d conflicts %d", wins.Load(), conflicts.Load())
	}
}
