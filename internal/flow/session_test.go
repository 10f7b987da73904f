package flow_test

import (
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/flow"
)

var allStatuses = []flow.Status{flow.StatusPending, flow.StatusCompleting, flow.StatusCompleted, flow.StatusFailed, flow.StatusExpired}

func TestStatusCanBecome(t *testing.T) {
	edges := map[[2]flow.Status]bool{
		{flow.StatusPending, flow.StatusCompleting}:   true,
		{flow.StatusPending, flow.StatusFailed}:       true,
		{flow.StatusPending, flow.StatusExpired}:      true,
		{flow.StatusCompleting, flow.StatusCompleted}: true,
		{flow.StatusCompleting, flow.StatusPending}:   true,
		{flow.StatusCompleting, flow.StatusFailed}:    true,
		{flow.StatusCompleting, flow.StatusExpired}:   true,
	}
	for _, from := range append(allStatuses, "") {
		for _, to := range append(allStatuses, "") {
			if got, want := from.CanBecome(to), edges[[2]flow.Status{from, to}]; got != want {
				t.Errorf("%q.CanBecome(%q) = %v, want %v", from, to, got, want)
			}
		}
		if from.Terminal() && from.Open() {
			t.Errorf("%s is both terminal and open", from)
		}
	}
}

func TestSessionStatusAt(t *testing.T) {
	exp := time.Date(2026, 1, 1, 10, 10, 0, 0, time.UTC)
	for _, st := range allStatuses {
		s := flow.Session{Status: st, ExpiresAt: exp}
		if got := s.StatusAt(exp.Add(-time.Nanosecond)); got != st {
			t.Errorf("%s before expiry reads %s", st, got)
		}
		want := st
		if st == flow.StatusPending || st == flow.StatusCompleting {
			want = flow.StatusExpired
		}
		for _, at := range []time.Time{exp, exp.Add(time.Hour)} {
			if got := s.StatusAt(at); got != want {
				t.Errorf("%s at +%v reads %s, want %s", st, at.Sub(exp), got, want)
			}
		}
		if s.Status != st {
			t.Fatal("StatusAt changed the session")
		}
	}
}

func TestSessionClaimableAt(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	exp := t0.Add(10 * time.Minute)
	cases := []struct {
		name   string
		s      flow.Session
		at     time.Time
		claims bool
	}{
		{"pending", flow.Session{Status: flow.StatusPending, ExpiresAt: exp}, t0, true},
		{"pending at expiry", flow.Session{Status: flow.StatusPending, ExpiresAt: exp}, exp, false},
		{"fresh claim", flow.Session{Status: flow.StatusCompleting, ExpiresAt: exp, ClaimedAt: t0}, t0.Add(flow.ClaimLease), false},
		{"stale claim", flow.Session{Status: flow.StatusCompleting, ExpiresAt: exp, ClaimedAt: t0}, t0.Add(flow.ClaimLease + time.Millisecond), true},
		{"no claim recorded", flow.Session{Status: flow.StatusCompleting, ExpiresAt: exp}, t0, true},
		{"stale claim, expired", flow.Session{Status: flow.StatusCompleting, ExpiresAt: exp, ClaimedAt: t0}, exp, false},
		{"completed", flow.Session{Status: flow.StatusCompleted, ExpiresAt: exp}, t0, false},
		{"failed", flow.Session{Status: flow.StatusFailed, ExpiresAt: exp}, t0, false},
		{"expired", flow.Session{Status: flow.StatusExpired, ExpiresAt: exp}, t0, false},
	}
	for _, tc := range cases {
		if got := tc.s.ClaimableAt(tc.at); got != tc.claims {
			t.Errorf("%s: ClaimableAt = %v, want %v", tc.name, got, tc.claims)
		}
	}
}

func TestAttemptsExhausted(t *testing.T) {
	for _, tc := range []struct {
		attempts, limit int
		want            bool
	}{
		{0, 5, false}, {4, 5, false}, {5, 5, true}, {6, 5, true},
		{0, 1, false}, {1, 1, true}, {1, 0, true}, {0, 0, false}, {1, -3, true},
	} {
		if got := flow.AttemptsExhausted(tc.attempts, tc.limit); got != tc.want {
			t.Errorf("AttemptsExhausted(%d, %d) = %v, want %v", tc.attempts, tc.limit, got, tc.want)
		}
	}
}
