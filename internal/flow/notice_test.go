package flow_test

import (
	"context"
	"testing"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// startedContinuing is started for a workflow that continues with the
// agent runtime testRuntimeARN (calendar_agent) once the user consents.
func startedContinuing(t *testing.T, e *env) (flow.CallbackParams, string) {
	t.Helper()
	mustInitiate(t, e, `{"taskToken":"`+taskToken+`","input":{"userId":"user-1","provider":"google","scopes":["openid"],`+
		`"continueWith":{"agentRuntimeArn":"`+testRuntimeARN+`","payload":{"prompt":"plan my week"}}}}`)
	ev := e.notifier.last(t)
	state := e.id.reqs[len(e.id.reqs)-1].CustomState
	uri := "urn:ietf:params:oauth:request_uri:sess-" + string(rune('a'+e.id.uris))
	return flow.CallbackParams{SessionID: uri, State: state}, ev.VerificationCode
}

// The person consenting is told that an agent continues for them: the
// confirmation outcomes and the success outcome name the agent of the
// workflow's continueWith, and only when it has one; a replay and the
// failures name none.
func TestCallbackNamesTheContinuingAgent(t *testing.T) {
	ctx := context.Background()
	const agent = "calendar_agent"
	check := func(t *testing.T, what string, o *flow.Outcome, kind flow.Kind, want string) {
		t.Helper()
		if o.Kind != kind || o.ContinuesAgent != want {
			t.Fatalf("%s: kind %d, continuesAgent %q; want kind %d, %q", what, o.Kind, o.ContinuesAgent, kind, want)
		}
	}
	t.Run("code", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			start func(*testing.T, *env) (flow.CallbackParams, string)
			want  string
		}{
			{"continueWith", startedContinuing, agent},
			{"none", started, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				e := newEnv(t, flow.BindingCode)
				p, code := c.start(t, e)
				check(t, "confirmation page", e.cb.View(ctx, p), flow.KindConfirm, c.want)
				wrong := p
				wrong.Code = "ZZZZZ-ZZZZZ"
				check(t, "wrong code", e.cb.Confirm(ctx, wrong), flow.KindWrongCode, c.want)
				p.Code = code
				e.id.completeFn = func(n int) error {
					if n == 1 {
						return &flow.Failure{Name: contract.ErrThrottled}
					}
					return nil
				}
				check(t, "temporary problem", e.cb.Confirm(ctx, p), flow.KindTryAgain, c.want)
				check(t, "connected", e.cb.Confirm(ctx, p), flow.KindConnected, c.want)
				check(t, "replay", e.cb.View(ctx, p), flow.KindAlreadyConnected, "")
				check(t, "replayed POST", e.cb.Confirm(ctx, p), flow.KindAlreadyConnected, "")
			})
		}
	})
	t.Run("failures", func(t *testing.T) {
		e := newEnv(t, flow.BindingCode)
		p, _ := startedContinuing(t, e)
		wrong := p
		wrong.Code = "ZZZZZ-ZZZZZ"
		for i := 0; i < flow.MaxCodeAttempts; i++ {
			e.cb.Confirm(ctx, wrong)
		}
		check(t, "too many attempts", e.cb.View(ctx, p), flow.KindTooManyAttempts, "")

		e = newEnv(t, flow.BindingCode)
		p, _ = startedContinuing(t, e)
		denied := p
		denied.Error = "access_denied"
		check(t, "denied", e.cb.View(ctx, denied), flow.KindDenied, "")
		check(t, "denied, replayed", e.cb.View(ctx, p), flow.KindDenied, "")

		e = newEnv(t, flow.BindingCode)
		p, code := startedContinuing(t, e)
		e.advance(contract.SessionValidity + 1)
		p.Code = code
		check(t, "expired", e.cb.Confirm(ctx, p), flow.KindExpired, "")

		e = newEnv(t, flow.BindingCode)
		p, code = startedContinuing(t, e)
		p.Code = code
		e.id.completeFn = func(int) error { return &flow.Failure{Name: contract.ErrAccessDenied, Message: "refused"} }
		check(t, "refused completion", e.cb.Confirm(ctx, p), flow.KindFailed, "")
	})
	// Sign-in modes: the page before the sign-in names the agent, and so
	// does the success page the sign-in ends on; another account's does not.
	t.Run("sign-in", func(t *testing.T) {
		for _, mode := range []flow.BindingMode{flow.BindingOIDC, flow.BindingOIDCCode} {
			e := signInEnv(t, mode, false)
			p, code := startedContinuing(t, e)
			check(t, string(mode)+" confirmation page", e.cb.View(ctx, p), flow.KindConfirm, agent)
			p.Code = code
			check(t, string(mode)+" signed in", signIn(t, e, e.cb.Confirm(ctx, p), "user-1"), flow.KindConnected, agent)

			e = signInEnv(t, mode, false)
			p, code = startedContinuing(t, e)
			p.Code = code
			check(t, string(mode)+" another account", signIn(t, e, e.cb.Confirm(ctx, p), "user-2"), flow.KindWrongUser, "")
		}
		e := signInEnv(t, flow.BindingOIDC, false)
		p, _ := started(t, e)
		check(t, "no continueWith", signIn(t, e, e.cb.Confirm(ctx, p), "user-1"), flow.KindConnected, "")
	})
}
