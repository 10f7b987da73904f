package agentruntime

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
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

type closeCount struct {
	*strings.Reader // a WriterTo, as smithy-go's body is
	n               int
}

func (c *closeCount) Close() error { c.n++; return errors.New("closed twice") }

type doer struct{ req *http.Request }

func (d *doer) Do(r *http.Request) (*http.Response, error) { d.req = r; return &http.Response{}, nil }

// The body net/http gets is a Reader and a Closer only: smithy-go's WriteTo
// answers io.EOF once it is closed, which net/http takes for a write error.
// Closing it twice reaches the body once.
func TestRequestBodyClosedOnce(t *testing.T) {
	body := &closeCount{Reader: strings.NewReader("{}")}
	var _ io.WriterTo = body
	d := &doer{}
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/", body)
	if _, err := (closeOnce{d}).Do(req); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.req.Body.(io.WriterTo); ok {
		t.Fatal("the body net/http gets implements io.WriterTo")
	}
	a, b := d.req.Body.Close(), d.req.Body.Close()
	if body.n != 1 || a == nil || b != a {
		t.Fatalf("closed %d times: %v %v", body.n, a, b)
	}
}
