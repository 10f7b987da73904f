package agentauth_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/consentflow/consentflow/agentauth"
	"github.com/consentflow/consentflow/agentcoretest"
)

// BenchmarkConsentToToken measures, for one consent, how long after the session's
// completion at AgentCore (CompleteResourceTokenAuth, called by consentflow's callback
// for push, by the test's stand-in for your callback for polling) AccessToken returns
// the token, and how many GetResourceOauth2Token calls it made in all:
//
//   - push: consentflow's sessions table, watched with backoff 100 ms doubling to 2 s;
//   - poll: no table, GetResourceOauth2Token every 5 s (the official SDKs' default).
//
// The user takes 3 s or 8 s to consent (from OnAuthURL to the completion). How long a
// waiter takes to notice depends on where the completion falls between two of its
// reads: at most 2 s (push) or 5 s (poll) plus one call. Run with
//
//	go test -run '^$' -bench ConsentToToken ./agentauth
func BenchmarkConsentToToken(b *testing.B) {
	s := newStack(b)
	for _, userTakes := range []time.Duration{3 * time.Second, 8 * time.Second} {
		for _, push := range []bool{true, false} {
			name := map[bool]string{true: "push", false: "poll"}[push]
			b.Run(fmt.Sprintf("%s/user=%v", name, userTakes), func(b *testing.B) {
				c := s.client(push) // default polling: 5 s, 600 s
				var after time.Duration
				calls := 0
				for i := range b.N {
					s.srv.ResetCalls()
					req := githubRequest(fmt.Sprintf("bench-%s-%v-%d", name, userTakes, i))
					done := make(chan struct{})
					req.OnAuthURL = func(ctx context.Context, u agentauth.AuthURL) error {
						go func() {
							defer close(done)
							time.Sleep(userTakes - 200*time.Millisecond)
							if push {
								s.consent(u, u.VerificationCode)
							} else if err := s.srv.AllowAndComplete(context.WithoutCancel(ctx), u.URL); err != nil {
								b.Error(err)
							}
						}()
						return nil
					}
					tok, err := c.AccessToken(context.Background(), req)
					returned := time.Now()
					<-done
					if err != nil || tok == "" {
						b.Fatalf("AccessToken: %v", err)
					}
					completes := s.srv.CallsTo(agentcoretest.OpCompleteResourceTokenAuth)
					if len(completes) != 1 {
						b.Fatalf("%d completions", len(completes))
					}
					after += returned.Sub(completes[0].Time)
					calls += len(s.srv.CallsTo(agentcoretest.OpGetResourceOauth2Token))
				}
				b.ReportMetric(float64(after.Milliseconds())/float64(b.N), "ms-after-completion/op")
				b.ReportMetric(float64(calls)/float64(b.N), "GetResourceOauth2Token/op")
			})
		}
	}
}
