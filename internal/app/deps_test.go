package app_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestFunctionsLinkOnlyWhatTheyUse lists each function's dependencies as
// the stack builds it (linux/arm64, -tags lambda.norpc) and refuses the
// packages it must not link: the other function's driving adapter and
// clients, and anything local or test-only.
func TestFunctionsLinkOnlyWhatTheyUse(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command on PATH")
	}
	const mod = "github.com/consentflow/consentflow/"
	everywhere := []string{mod + "internal/local/", mod + "internal/testenv/", mod + "internal/e2e/", mod + "infra/", "testing", "net/rpc"}
	cases := []struct {
		fn      string
		must    []string
		mustNot []string
	}{
		{
			fn:   "initiate",
			must: []string{mod + "internal/invoke", "github.com/aws/aws-sdk-go-v2/service/eventbridge"},
			mustNot: []string{mod + "internal/web", mod + "internal/app/callback", "html/template",
				mod + "internal/adapters/connect", "github.com/aws/aws-sdk-go-v2/service/connect"},
		},
		{
			fn:   "callback",
			must: []string{mod + "internal/web", mod + "internal/adapters/connect"},
			mustNot: []string{mod + "internal/invoke", mod + "internal/adapters/eventbus", mod + "internal/app/initiate",
				"github.com/aws/aws-sdk-go-v2/service/eventbridge"},
		},
		{
			// The stream's records: outbox deliveries and completion events.
			fn: "resumer",
			must: []string{mod + "internal/resume", mod + "internal/adapters/eventbus", mod + "events",
				"github.com/aws/aws-sdk-go-v2/service/eventbridge"},
			mustNot: []string{mod + "internal/web", mod + "internal/invoke", mod + "internal/app/initiate", mod + "internal/app/callback",
				mod + "internal/adapters/agentcore", "github.com/aws/aws-sdk-go-v2/service/bedrockagentcore", "html/template"},
		},
		{
			// The ContinueAgent step: InvokeAgentRuntime only.
			fn:   "continue",
			must: []string{mod + "internal/cont", mod + "internal/adapters/agentruntime", "github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"},
			mustNot: []string{mod + "internal/web", mod + "internal/invoke", mod + "internal/resume", mod + "internal/state",
				mod + "internal/adapters/agentcore", "github.com/aws/aws-sdk-go-v2/service/dynamodb", "github.com/aws/aws-sdk-go-v2/service/sfn",
				"github.com/aws/aws-sdk-go-v2/service/eventbridge", "html/template"},
		},
	}
	for _, c := range cases {
		t.Run(c.fn, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "-tags", "lambda.norpc", "../../functions/"+c.fn)
			cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list: %v", err)
			}
			deps := map[string]bool{}
			for _, p := range strings.Fields(string(out)) {
				deps[p] = true
			}
			for _, p := range c.must {
				if !deps[p] {
					t.Errorf("functions/%s does not link %s (is the test still looking at the right thing?)", c.fn, p)
				}
			}
			for p := range deps {
				for _, bad := range append(c.mustNot, everywhere...) {
					if p == bad || strings.HasSuffix(bad, "/") && strings.HasPrefix(p, bad) || strings.HasPrefix(p, bad+"/") {
						t.Errorf("functions/%s links %s", c.fn, p)
					}
				}
			}
		})
	}
}
