// Package awsconf loads the one AWS configuration every client shares.
// Endpoint overrides come from the SDK's own settings
// (AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_<SERVICE>), retries are the SDK's
// standard retryer, request bodies reach net/http as plain readers
// (PlainRequestBodies), and the SDK's own log lines (warnings, by default
// nothing else) go through the functions' slog JSON handler.
package awsconf

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"
)

// Load returns the shared configuration.
func Load(ctx context.Context) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx,
		config.WithRetryer(func() aws.Retryer { return retry.NewStandard() }),
		config.WithLogger(Logger(slog.Default)),
		config.WithHTTPClient(PlainRequestBodies(awshttp.NewBuildableClient())),
	)
}

// HTTPClient is the SDK's HTTP client interface.
type HTTPClient interface {
	Do(*http.Request) (*http.Response, error)
}

// PlainRequestBodies hands net/http each request's body as a Reader and a
// Closer only. smithy-go's body implements io.WriterTo, and once smithy-go
// has closed it (as soon as the response headers are back) WriteTo answers
// io.EOF; net/http, which may still be checking the body for extra bytes
// after sending it, takes that for a write error and closes the
// connection while the response is being read ("use of closed network
// connection"; with a sub-millisecond answer and a busy CPU, about one
// streamed InvokeAgentRuntime answer in 40 here, and a non-idempotent call
// whose answer breaks off may be retried). Without WriteTo net/http reads,
// and a closed body reads as its end. Closing stays idempotent.
func PlainRequestBodies(next HTTPClient) HTTPClient { return plainBodies{next} }

type plainBodies struct{ next HTTPClient }

func (c plainBodies) Do(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &plainBody{r: req.Body}
	}
	return c.next.Do(req)
}

// plainBody is deliberately Read and Close only (no WriteTo).
type plainBody struct {
	r    io.ReadCloser
	once sync.Once
	err  error
}

func (b *plainBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *plainBody) Close() error {
	b.once.Do(func() { b.err = b.r.Close() })
	return b.err
}

// Logger adapts the SDK's logger to slog: each line becomes one record at
// the matching level, marked source=aws-sdk, with the context of the SDK
// call that logged it (so the Lambda request id is on it). log is called
// per line, so the record goes to whatever slog.Default is then (the
// functions install their JSON handler at start-up). The SDK logs request
// and response contents only when asked to (ClientLogMode), which
// consentflow never does.
func Logger(log func() *slog.Logger) logging.Logger {
	return sdkLogger{log: log, ctx: context.Background()}
}

type sdkLogger struct {
	log func() *slog.Logger
	ctx context.Context
}

// WithContext implements logging.ContextLogger: the SDK hands each
// operation's context over before it logs.
func (l sdkLogger) WithContext(ctx context.Context) logging.Logger {
	return sdkLogger{log: l.log, ctx: ctx}
}

// Logf implements logging.Logger.
func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelInfo
	switch c {
	case logging.Warn:
		level = slog.LevelWarn
	case logging.Debug:
		level = slog.LevelDebug
	}
	l.log().Log(l.ctx, level, fmt.Sprintf(format, v...), "source", "aws-sdk")
}
