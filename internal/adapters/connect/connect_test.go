package connect

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsconnect "github.com/aws/aws-sdk-go-v2/service/connect"
	"github.com/aws/aws-sdk-go-v2/service/connect/types"
	"github.com/aws/smithy-go"

	"github.com/consentflow/consentflow/internal/connectauth"
)

type fakeAPI struct {
	in   *awsconnect.UpdateParticipantAuthenticationInput
	opts awsconnect.Options
	err  error
}

func (f *fakeAPI) UpdateParticipantAuthentication(_ context.Context, in *awsconnect.UpdateParticipantAuthenticationInput, optFns ...func(*awsconnect.Options)) (*awsconnect.UpdateParticipantAuthenticationOutput, error) {
	f.in = in
	for _, o := range optFns {
		o(&f.opts)
	}
	return &awsconnect.UpdateParticipantAuthenticationOutput{}, f.err
}

func TestInputCarriesExactlyTheRedirect(t *testing.T) {
	f := &fakeAPI{}
	p := Participants{API: f, Region: "eu-west-2"}
	if err := p.UpdateParticipantAuthentication(context.Background(), connectauth.Update{InstanceID: "i-1", State: "s", Code: "c"}); err != nil {
		t.Fatal(err)
	}
	if aws.ToString(f.in.InstanceId) != "i-1" || aws.ToString(f.in.State) != "s" || aws.ToString(f.in.Code) != "c" ||
		f.in.Error != nil || f.in.ErrorDescription != nil {
		t.Fatalf("input %+v", f.in)
	}
	if f.opts.Region != "eu-west-2" || f.opts.Retryer == nil || f.opts.Retryer.MaxAttempts() != maxAttempts {
		t.Fatalf("options: region %q, retryer %v", f.opts.Region, f.opts.Retryer)
	}
	if err := p.UpdateParticipantAuthentication(context.Background(), connectauth.Update{InstanceID: "i-1", State: "s", Error: "access_denied", ErrorDescription: "d"}); err != nil {
		t.Fatal(err)
	}
	if f.in.Code != nil || aws.ToString(f.in.Error) != "access_denied" || aws.ToString(f.in.ErrorDescription) != "d" {
		t.Fatalf("error input %+v", f.in)
	}
}

type statusErr struct {
	smithy.GenericAPIError
	status int
}

func (e *statusErr) HTTPStatusCode() int { return e.status }

func TestClassify(t *testing.T) {
	secret := "quoted-input-value"
	for _, c := range []struct {
		err   error
		class error
		code  string
	}{
		{&types.ConflictException{Message: aws.String(secret)}, connectauth.ErrConflict, "ConflictException"},
		{&types.ThrottlingException{Message: aws.String(secret)}, connectauth.ErrTransient, "ThrottlingException"},
		{&types.InternalServiceException{Message: aws.String(secret)}, connectauth.ErrTransient, "InternalServiceException"},
		{&types.InvalidRequestException{Message: aws.String(secret)}, connectauth.ErrRefused, "InvalidRequestException"},
		{&types.InvalidParameterException{Message: aws.String(secret)}, connectauth.ErrRefused, "InvalidParameterException"},
		{&types.AccessDeniedException{Message: aws.String(secret)}, connectauth.ErrDenied, "AccessDeniedException"},
		{&smithy.GenericAPIError{Code: "UnrecognizedClientException", Message: secret}, connectauth.ErrDenied, "UnrecognizedClientException"},
		{&smithy.GenericAPIError{Code: "ServiceUnavailable", Message: secret, Fault: smithy.FaultServer}, connectauth.ErrTransient, "ServiceUnavailable"},
		{&statusErr{smithy.GenericAPIError{Code: "BadGateway", Message: secret}, 502}, connectauth.ErrTransient, "BadGateway"},
		{fmt.Errorf("op: %w", context.DeadlineExceeded), connectauth.ErrTransient, "timeout"},
		{&smithy.InvalidParamsError{Context: "UpdateParticipantAuthenticationInput"}, connectauth.ErrDenied, "InvalidParams"},
		{errors.New("dial tcp: connection refused"), connectauth.ErrTransient, "unreachable (*errors.errorString)"},
	} {
		err := Classify(fmt.Errorf("operation error Connect: UpdateParticipantAuthentication: %w", c.err))
		var ce *connectauth.CallError
		if !errors.As(err, &ce) || !errors.Is(err, c.class) || ce.Code != c.code {
			t.Errorf("%T: got %v (%#v), want %v / %s", c.err, err, ce, c.class, c.code)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%T: the message leaks into %q", c.err, err)
		}
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}

// The real client against a server answering 429 then 200: the SDK
// retries throttling with a short backoff.
func TestRealClientRetriesThrottling(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/contact/update-participant-authentication" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		if n.Add(1) == 1 {
			w.Header().Set("X-Amzn-ErrorType", "ThrottlingException")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"Message":"Rate exceeded"}`))
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	client := awsconnect.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIAEXAMPLE", "secret", ""),
	}, func(o *awsconnect.Options) { o.BaseEndpoint = aws.String(srv.URL) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := Participants{API: client}.UpdateParticipantAuthentication(ctx, connectauth.Update{InstanceID: "i", State: "s", Code: "c"})
	if err != nil || n.Load() != 2 {
		t.Fatalf("err %v after %d requests", err, n.Load())
	}
}
