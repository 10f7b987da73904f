package inprocess

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/local/emulator"
)

// The promises of the verification code, on DynamoDB Local through the HTTP
// API: however many POSTs race with right and wrong codes, at most
// MaxCodeAttempts codes are compared, the authorization completes at most
// once (exactly once when a right code was among the compared ones), the
// workflow is resumed exactly once either way, and no request gets a 5xx.
func TestConcurrentMixedCodesKeepTheLimit(t *testing.T) {
	const rounds, posts = 5, 100
	for round := 0; round < rounds; round++ {
		t.Run(fmt.Sprint("round", round), func(t *testing.T) {
			f := start(t, "code")
			a := f.initiate(fmt.Sprintf(`{"userId":"user-mix-%d","provider":"github","scopes":["repo"]}`, round))
			f.consent(&a, "allow")
			var wg sync.WaitGroup
			type answer struct {
				status  int
				outcome string
				right   bool
			}
			answers := make([]answer, posts)
			for i := range answers {
				// One in four is the right code, at a different place each round.
				right := (i+round)%4 == 0
				code := fmt.Sprintf("ZZZZZ-ZZ%03d", i)
				if right {
					code = a.event.VerificationCode
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					req, _ := http.NewRequest("POST", a.callback, strings.NewReader(url.Values{"code": {code}}.Encode()))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					resp, err := f.http.Do(req)
					if err != nil {
						answers[i] = answer{outcome: err.Error(), right: right}
						return
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					answers[i] = answer{status: resp.StatusCode, outcome: outcomeOf(string(b)), right: right}
				}()
			}
			wg.Wait()
			count := map[string]int{}
			for _, an := range answers {
				count[an.outcome]++
				if an.status >= 500 || an.status == 0 {
					t.Errorf("a POST got %d %q", an.status, an.outcome)
				}
				if !an.right && an.outcome == "ok: Connected" {
					t.Errorf("a wrong code connected")
				}
			}
			completes := len(f.s.Emulator.CallsTo(emulator.OpCompleteResourceTokenAuth))
			sfn := f.s.SFN.Calls()
			t.Logf("outcomes %v; Complete %d; SendTaskSuccess %d, SendTaskFailure %d", count, completes, sfn["SendTaskSuccess"], sfn["SendTaskFailure"])
			if completes > 1 {
				t.Fatalf("CompleteResourceTokenAuth called %d times", completes)
			}
			if sfn["SendTaskSuccess"] != completes || sfn["SendTaskSuccess"]+sfn["SendTaskFailure"] != 1 {
				t.Fatalf("resumed %d/%d times for %d completions", sfn["SendTaskSuccess"], sfn["SendTaskFailure"], completes)
			}
			if count["ok: Connected"] != completes {
				t.Fatalf("%d Connected pages for %d completions", count["ok: Connected"], completes)
			}
			compared := count["retry: That code is not right"] + completes
			if compared > flow.MaxCodeAttempts {
				t.Fatalf("%d codes compared (wrong-code answers plus completions), limit %d", compared, flow.MaxCodeAttempts)
			}
		})
	}
}

// A POST without the code field is a bad request (400), not an attempt.
func TestPostWithoutCodeIsBadRequest(t *testing.T) {
	f := start(t, "code")
	a := f.initiate(`{"userId":"user-nocode","provider":"github","scopes":["repo"]}`)
	f.consent(&a, "allow")
	for i := 0; i < 2*flow.MaxCodeAttempts; i++ {
		resp, body := f.do("POST", a.callback, "submit=Connect")
		if resp.StatusCode != 400 {
			t.Fatalf("POST %d without code: %d %s", i, resp.StatusCode, outcomeOf(body))
		}
	}
	resp, body := f.do("POST", a.callback, url.Values{"code": {a.event.VerificationCode}}.Encode())
	if resp.StatusCode != 200 || outcomeOf(body) != "ok: Connected" {
		t.Fatalf("right code after codeless POSTs: %d %s", resp.StatusCode, outcomeOf(body))
	}
}
