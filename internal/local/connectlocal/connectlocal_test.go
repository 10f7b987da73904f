package connectlocal_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsconnect "github.com/aws/aws-sdk-go-v2/service/connect"
	"github.com/aws/aws-sdk-go-v2/service/connect/types"

	adapter "github.com/consentflow/consentflow/internal/adapters/connect"
	"github.com/consentflow/consentflow/internal/connectauth"
	"github.com/consentflow/consentflow/internal/local/connectlocal"
)

const instance = "00fbeee1-123e-111e-93e3-11111bfbfcc1"

func start(t *testing.T) (*connectlocal.Server, *awsconnect.Client) {
	t.Helper()
	s := connectlocal.New(connectlocal.Config{InstanceID: instance})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	c := awsconnect.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIALOCALEXAMPLE", "local-secret-not-used", ""),
	}, func(o *awsconnect.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.RetryMaxAttempts = 1
	})
	return s, c
}

func update(c *awsconnect.Client, in awsconnect.UpdateParticipantAuthenticationInput) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.UpdateParticipantAuthentication(ctx, &in)
	return err
}

func TestCodeThenConflict(t *testing.T) {
	s, c := start(t)
	state := s.StartAuthentication()
	if a, ok := s.Authentication(state); !ok || a.Status != connectlocal.Waiting || len(state) != 64 {
		t.Fatalf("started %+v (state length %d)", a, len(state))
	}
	in := awsconnect.UpdateParticipantAuthenticationInput{InstanceId: aws.String(instance), State: aws.String(state), Code: aws.String("code-1")}
	if err := update(c, in); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Authentication(state)
	if a.Status != connectlocal.CodeReceived || a.Code != "code-1" || a.Updates != 1 {
		t.Fatalf("after the update %+v", a)
	}
	var conflict *types.ConflictException
	if err := update(c, in); !errors.As(err, &conflict) {
		t.Fatalf("second update: %v", err)
	}
	calls := s.Calls()
	if len(calls) != 2 || calls[0].Result != "" || calls[1].Result != connectlocal.Conflict ||
		calls[0].InstanceID != instance || calls[0].State != state || calls[0].Code != "code-1" {
		t.Fatalf("calls %+v", calls)
	}
}

func TestErrorUpdate(t *testing.T) {
	s, c := start(t)
	state := s.StartAuthentication()
	err := update(c, awsconnect.UpdateParticipantAuthenticationInput{InstanceId: aws.String(instance), State: aws.String(state),
		Error: aws.String("access_denied"), ErrorDescription: aws.String("User cancelled the login")})
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := s.Authentication(state); a.Status != connectlocal.ErrorReceived || a.Error != "access_denied" || a.ErrorDescription != "User cancelled the login" {
		t.Fatalf("%+v", a)
	}
}

func TestRefusals(t *testing.T) {
	s, c := start(t)
	waiting := s.StartAuthentication()
	expired := s.StartAuthentication()
	if !s.Expire(expired) || s.Expire(expired) {
		t.Fatal("Expire")
	}
	str := aws.String
	for name, tc := range map[string]struct {
		in   awsconnect.UpdateParticipantAuthenticationInput
		want string
	}{
		"unknown state":      {awsconnect.UpdateParticipantAuthenticationInput{InstanceId: str(instance), State: str("nope"), Code: str("c")}, connectlocal.InvalidRequest},
		"expired":            {awsconnect.UpdateParticipantAuthenticationInput{InstanceId: str(instance), State: str(expired), Code: str("c")}, connectlocal.InvalidRequest},
		"another instance":   {awsconnect.UpdateParticipantAuthenticationInput{InstanceId: str("other"), State: str(waiting), Code: str("c")}, connectlocal.AccessDenied},
		"code and error":     {awsconnect.UpdateParticipantAuthenticationInput{InstanceId: str(instance), State: str(waiting), Code: str("c"), Error: str("e")}, connectlocal.InvalidRequest},
		"neither":            {awsconnect.UpdateParticipantAuthenticationInput{InstanceId: str(instance), State: str(waiting)}, connectlocal.InvalidRequest},
		"state too long":     {awsconnect.UpdateParticipantAuthenticationInput{InstanceId: str(instance), State: str(strings.Repeat("s", 1001)), Code: str("c")}, connectlocal.InvalidParameter},
		"empty code":         {awsconnect.UpdateParticipantAuthenticationInput{InstanceId: str(instance), State: str(waiting), Code: str("")}, connectlocal.InvalidParameter},
		"quote in the error": {awsconnect.UpdateParticipantAuthenticationInput{InstanceId: str(instance), State: str(waiting), Error: str(`a"b`)}, connectlocal.InvalidParameter},
	} {
		err := update(c, tc.in)
		var ae interface{ ErrorCode() string }
		if !errors.As(err, &ae) || ae.ErrorCode() != tc.want {
			t.Errorf("%s: %v, want %s", name, err, tc.want)
		}
	}
	if a, _ := s.Authentication(waiting); a.Status != connectlocal.Waiting {
		t.Fatalf("a refused update changed the authentication: %+v", a)
	}
}

func TestUnsignedAndOtherRequests(t *testing.T) {
	s := connectlocal.New(connectlocal.Config{InstanceID: instance})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+connectlocal.Path, "application/json", strings.NewReader(`{"InstanceId":"x","State":"s","Code":"c"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Amzn-ErrorType") != "MissingAuthenticationTokenException" {
		t.Fatalf("unsigned: %d %s", resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"))
	}
	resp, err = http.Get(srv.URL + "/contact/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("other path: %d", resp.StatusCode)
	}
	if len(s.Calls()) != 0 {
		t.Fatal("rejected envelopes were recorded as calls")
	}
}

// The adapter over the real client against the stand-in: each fault
// arrives as the class the domain decides on.
func TestFaultsThroughTheAdapter(t *testing.T) {
	s, c := start(t)
	p := adapter.Participants{API: c}
	ctx := context.Background()
	for _, tc := range []struct {
		fault connectlocal.Fault
		class error
	}{
		{connectlocal.Fault{Type: connectlocal.Throttling}, connectauth.ErrTransient},
		{connectlocal.Fault{Type: connectlocal.InternalService}, connectauth.ErrTransient},
		{connectlocal.Fault{Type: connectlocal.AccessDenied}, connectauth.ErrDenied},
		{connectlocal.Fault{Type: connectlocal.InvalidParameter}, connectauth.ErrRefused},
		{connectlocal.Fault{Type: "ServiceUnavailableException", Status: 503}, connectauth.ErrTransient},
	} {
		state := s.StartAuthentication()
		// The adapter's retryer makes 3 attempts: fail them all.
		for range 3 {
			s.InjectFault(tc.fault)
		}
		err := p.UpdateParticipantAuthentication(ctx, connectauth.Update{InstanceID: instance, State: state, Code: "c"})
		if !errors.Is(err, tc.class) {
			t.Errorf("%s: %v, want %v", tc.fault.Type, err, tc.class)
		}
		s.ClearFaults() // the ones a refusal (not retried) left
	}
	// Throttled once: the SDK's retry succeeds.
	state := s.StartAuthentication()
	s.InjectError(connectlocal.Throttling)
	if err := p.UpdateParticipantAuthentication(ctx, connectauth.Update{InstanceID: instance, State: state, Code: "c"}); err != nil {
		t.Fatalf("throttled once: %v", err)
	}
	// An answer lost after the update applied: the retry finds the state
	// used (Conflict).
	state = s.StartAuthentication()
	s.InjectFault(connectlocal.Fault{Type: connectlocal.InternalService, AfterApply: true})
	err := p.UpdateParticipantAuthentication(ctx, connectauth.Update{InstanceID: instance, State: state, Code: "c"})
	if !errors.Is(err, connectauth.ErrConflict) {
		t.Fatalf("lost answer then retry: %v", err)
	}
	// A slow answer beyond the caller's budget.
	state = s.StartAuthentication()
	s.InjectFault(connectlocal.Fault{Delay: 2 * time.Second})
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = p.UpdateParticipantAuthentication(tctx, connectauth.Update{InstanceID: instance, State: state, Code: "c"})
	if !errors.Is(err, connectauth.ErrTransient) {
		t.Fatalf("slow: %v", err)
	}
}
