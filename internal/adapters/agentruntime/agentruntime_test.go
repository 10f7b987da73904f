package agentruntime

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"

	"github.com/consentflow/consentflow/internal/cont"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
)

// options records the client options the adapter applies to one call.
type options struct{ got bedrockagentcore.Options }

func (o *options) InvokeAgentRuntime(_ context.Context, _ *bedrockagentcore.InvokeAgentRuntimeInput, fns ...func(*bedrockagentcore.Options)) (*bedrockagentcore.InvokeAgentRuntimeOutput, error) {
	o.got = bedrockagentcore.Options{Region: "us-east-1", RetryMaxAttempts: 3}
	for _, f := range fns {
		f(&o.got)
	}
	return nil, &types.ThrottlingException{Message: new(string)}
}

// The call goes to the runtime ARN's region, once; the id form stays in
// the client's region.
func TestInvokeRegionAndRetries(t *testing.T) {
	for in, want := range map[string]string{
		"arn:aws:bedrock-agentcore:eu-west-1:123456789012:runtime/agent_a-a1B2c3D4e5": "eu-west-1",
		"agent_a-a1B2c3D4e5": "us-east-1",
	} {
		api := &options{}
		_, err := Runtime{API: api}.Invoke(context.Background(), cont.Invocation{AgentRuntime: in, AccountID: "123456789012"})
		var f *flow.Failure
		if !errors.As(err, &f) || f.Name != contract.ErrAgentRuntimeThrottled {
			t.Fatalf("%s: %v", in, err)
		}
		if api.got.Region != want || api.got.RetryMaxAttempts != 1 {
			t.Errorf("%s: region %q, attempts %d", in, api.got.Region, api.got.RetryMaxAttempts)
		}
	}
}
