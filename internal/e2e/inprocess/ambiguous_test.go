package inprocess

import (
	"net/url"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/emulator"
	"github.com/consentflow/consentflow/internal/local/runner"
	"github.com/consentflow/consentflow/internal/local/sfnlocal"
)

// AgentCore completes the session but the answer is lost with the
// connection: the callback asks the vault, finds the token, and the user
// and the workflow see a success. One Complete call, never two.
func TestCompletionAnswerLost(t *testing.T) {
	f := start(t, "code")
	a := f.initiate(`{"userId":"user-lost","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	f.s.Emulator.InjectFault(emulator.OpCompleteResourceTokenAuth, 1, emulator.DropResponse)
	resp, body := f.do("POST", a.callback, url.Values{"code": {a.event.VerificationCode}}.Encode())
	if resp.StatusCode != 200 || outcomeOf(body) != "ok: Connected" {
		t.Fatalf("POST: %d %s", resp.StatusCode, outcomeOf(body))
	}
	if r := f.waitTask(a.taskToken); r.Status != sfnlocal.StatusSucceeded {
		t.Fatalf("task %+v", r)
	}
	if n := len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != 1 {
		t.Fatalf("CompleteResourceTokenAuth called %d times", n)
	}
}

// The scenario that used to fail the workflow while the token sat in the
// vault: Complete outlives the callback's budget and takes effect late.
// The callback keeps its claim (the call may still land), so the user's
// immediate retry calls nothing; after the claim's lease the retry is
// refused as "already completed" and the vault decides: AUTHORIZED, not
// consentflow.AccessDenied. Complete calls never overlap.
func TestLateCompletionThenRetry(t *testing.T) {
	const budget = 300 * time.Millisecond
	f := start(t, "code", func(o *runner.Options) { o.CompleteTimeout = budget })
	a := f.initiate(`{"userId":"user-late","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	f.s.Emulator.InjectFault(emulator.OpCompleteResourceTokenAuth, 1, emulator.Slow(3*budget))
	form := url.Values{"code": {a.event.VerificationCode}}.Encode()
	resp, body := f.do("POST", a.callback, form)
	if resp.StatusCode != 409 || outcomeOf(body) != "wait: Still completing" {
		t.Fatalf("first POST (Complete still running at AgentCore): %d %s", resp.StatusCode, outcomeOf(body))
	}
	resp, body = f.do("POST", a.callback, form) // the user retries at once
	if outcomeOf(body) != "wait: Still completing" {
		t.Fatalf("immediate retry: %d %s", resp.StatusCode, outcomeOf(body))
	}
	if n := len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)); n != 1 {
		t.Fatalf("a second Complete while the first may be in flight (%d calls)", n)
	}
	if n := f.s.SFN.Calls(); n["SendTaskSuccess"]+n["SendTaskFailure"] != 0 {
		t.Fatalf("task settled while the outcome was unknown: %v", n)
	}
	time.Sleep(4 * budget) // the first call takes effect meanwhile
	f.s.Advance(flow.ClaimLease + time.Second)
	resp, body = f.do("POST", a.callback, form)
	if resp.StatusCode != 200 || outcomeOf(body) != "ok: Connected" {
		t.Fatalf("retry after the lease: %d %s", resp.StatusCode, outcomeOf(body))
	}
	r := f.waitTask(a.taskToken)
	if r.Status != sfnlocal.StatusSucceeded {
		t.Fatalf("task %+v (the token is in the vault)", r)
	}
	calls := f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth)
	if len(calls) != 2 || calls[1].ErrorType != "AccessDeniedException" {
		t.Fatalf("Complete calls %+v", calls)
	}
	if n := f.s.SFN.Calls()["SendTaskFailure"]; n != 0 {
		t.Fatalf("SendTaskFailure %d", n)
	}
}

// The same start, but the user never retries: the late completion is
// found when the session is next seen after its expiry, and the workflow
// resumes AUTHORIZED instead of failing as expired. (Found by review.)
func TestLateCompletionWithoutRetryIsNotAFalseFailure(t *testing.T) {
	const budget = 300 * time.Millisecond
	f := start(t, "code", func(o *runner.Options) { o.CompleteTimeout = budget })
	a := f.initiate(`{"userId":"user-giveup","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	f.s.Emulator.InjectFault(emulator.OpCompleteResourceTokenAuth, 1, emulator.Slow(3*budget))
	f.do("POST", a.callback, url.Values{"code": {a.event.VerificationCode}}.Encode())
	time.Sleep(4 * budget) // the first Complete takes effect
	f.s.Advance(contract.SessionValidity + flow.ClaimLease)
	resp, body := f.do("GET", a.callback, "")
	if outcomeOf(body) != "ok: Already connected" {
		t.Fatalf("later GET: %d %s", resp.StatusCode, outcomeOf(body))
	}
	if r := f.waitTask(a.taskToken); r.Status != sfnlocal.StatusSucceeded {
		t.Fatalf("task %+v", r)
	}
}
