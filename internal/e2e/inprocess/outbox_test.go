package inprocess

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/sfnlocal"
	"github.com/consentflow/consentflow/internal/state"
)

// throttle makes the next n calls of op fail with ThrottlingException: 3
// is more than the SDK's standard retryer absorbs (3 attempts).
func (f *fixture) throttle(op string, n int) {
	for range n {
		f.s.SFN.InjectError(op, "ThrottlingException", 400, "Rate exceeded")
	}
}

// waitTaskFor is waitTask with a longer bound: the SDK's backoff between
// throttled attempts is random, up to seconds on a loaded machine.
func (f *fixture) waitTaskFor(tok string, d time.Duration) sfnlocal.Result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	r, err := f.s.SFN.Wait(ctx, tok)
	if err != nil {
		f.t.Fatalf("task not resumed: %v", err)
	}
	return r
}

// record reads the session of a as stored.
func (f *fixture) record(a authorization) *flow.Session {
	f.t.Helper()
	u, err := url.Parse(a.callback)
	if err != nil {
		f.t.Fatal(err)
	}
	st := state.New(f.s.Clients.DynamoDB, f.s.Table)
	s, err := st.Get(context.Background(), u.Query().Get("session_id"))
	if err != nil {
		f.t.Fatalf("get session: %v", err)
	}
	return s
}

// waitResumed waits until the record says the outbox was delivered.
func (f *fixture) waitResumed(a authorization) *flow.Session {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := f.record(a)
		if !s.ResumedAt.IsZero() {
			return s
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("record never marked resumed: %+v", s.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// oneResult checks that Step Functions accepted exactly one result for the
// task.
func (f *fixture) oneResult(tok string) {
	f.t.Helper()
	n := 0
	for _, r := range f.s.SFN.Results() {
		if r.Token == tok {
			n++
		}
	}
	if n != 1 {
		f.t.Fatalf("%d results for the task, want 1", n)
	}
}

// SendTaskSuccess throttled beyond the SDK's retries: the user sees
// Connected and the task still succeeds, through the table's stream and the
// resumer.
func TestOutboxThrottledSuccessIsResumedByTheResumer(t *testing.T) {
	f := start(t, "code")
	a := f.initiate(`{"userId":"user-20","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	f.throttle("SendTaskSuccess", 3)
	resp, body := f.do("POST", a.callback, url.Values{"code": {a.event.VerificationCode}}.Encode())
	if resp.StatusCode != 200 || outcomeOf(body) != "ok: Connected" {
		t.Fatalf("%d %s", resp.StatusCode, outcomeOf(body))
	}
	r := f.waitTaskFor(a.taskToken, 20*time.Second)
	if r.Status != sfnlocal.StatusSucceeded || !strings.Contains(string(r.Output), `"status":"AUTHORIZED"`) ||
		!strings.Contains(string(r.Output), `"provider":"github"`) {
		t.Fatalf("%+v", r)
	}
	f.waitResumed(a)
	f.oneResult(a.taskToken)
	if n := f.s.SFN.Calls()["SendTaskSuccess"]; n != 4 {
		t.Fatalf("SendTaskSuccess called %d times, want 3 throttled + 1", n)
	}
	f.assertNoSecrets(map[string]string{"task token": a.taskToken, "code": a.event.VerificationCode})
}

// The inline send works: the record says so and the resumer sends nothing.
func TestOutboxInlineResumeIsNotSentAgain(t *testing.T) {
	f := start(t, "code")
	a := f.initiate(`{"userId":"user-21","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	f.do("POST", a.callback, url.Values{"code": {a.event.VerificationCode}}.Encode())
	if r := f.waitTaskFor(a.taskToken, 20*time.Second); r.Status != sfnlocal.StatusSucceeded {
		t.Fatalf("%+v", r)
	}
	f.waitResumed(a)
	time.Sleep(300 * time.Millisecond) // let the stream's records reach the resumer
	if n := f.s.SFN.Calls()["SendTaskSuccess"]; n != 1 {
		t.Fatalf("SendTaskSuccess called %d times, want 1", n)
	}
}

// A denial, a lock-out and an expiry whose SendTaskFailure is throttled
// beyond the SDK's retries: the task is failed later by the resumer, with
// the decision's error.
func TestOutboxThrottledFailureIsDeliveredByTheResumer(t *testing.T) {
	for _, tc := range []struct {
		name, err string
		run       func(f *fixture, a *authorization)
	}{
		{"denial", contract.ErrConsentDenied, func(f *fixture, a *authorization) {
			f.consent(a, "deny")
			f.throttle("SendTaskFailure", 3)
			f.do("GET", a.callback, "")
		}},
		{"lockout", contract.ErrBindingFailed, func(f *fixture, a *authorization) {
			f.consent(a, "allow")
			for i := 1; i <= 5; i++ {
				if i == 5 {
					f.throttle("SendTaskFailure", 3)
				}
				f.do("POST", a.callback, url.Values{"code": {fmt.Sprintf("ZZZZZ-ZZZZ%d", i+1)}}.Encode())
			}
		}},
		{"expiry", contract.ErrExpired, func(f *fixture, a *authorization) {
			f.consent(a, "allow")
			f.s.Advance(contract.SessionValidity + time.Second)
			f.throttle("SendTaskFailure", 3)
			f.do("GET", a.callback, "")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := start(t, "code")
			a := f.initiate(`{"userId":"user-22","provider":"github","scopes":["repo"]}`)
			tc.run(f, &a)
			r := f.waitTaskFor(a.taskToken, 20*time.Second)
			if r.Status != sfnlocal.StatusFailed || r.Error != tc.err || r.Cause == "" {
				t.Fatalf("%+v", r)
			}
			f.waitResumed(a)
			f.oneResult(a.taskToken)
			if n := f.s.SFN.Calls()["SendTaskFailure"]; n != 4 {
				t.Fatalf("SendTaskFailure called %d times, want 3 throttled + 1", n)
			}
		})
	}
}
