package emulator

import (
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"

	"github.com/consentflow/consentflow/internal/adapters/awsconf"
)

// NewClient returns a real aws-sdk-go-v2 bedrockagentcore client that talks to the
// emulator at baseURL: region us-east-1, static dummy credentials (requests are SigV4
// signed as usual), BaseEndpoint set. optFns are applied last (e.g. a custom Retryer).
func NewClient(baseURL string, optFns ...func(*bedrockagentcore.Options)) *bedrockagentcore.Client {
	opts := []func(*bedrockagentcore.Options){func(o *bedrockagentcore.Options) {
		o.Region = "us-east-1"
		o.Credentials = credentials.NewStaticCredentialsProvider("AKIDEMULATOR", "emulator-secret", "")
		o.BaseEndpoint = aws.String(baseURL)
		// As the functions' shared configuration (awsconf.Load) does.
		o.HTTPClient = awsconf.PlainRequestBodies(awshttp.NewBuildableClient())
	}}
	return bedrockagentcore.New(bedrockagentcore.Options{}, append(opts, optFns...)...)
}
