package invoke_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/flow"
	"github.com/consentflow/consentflow/internal/invoke"
)

// domain records the requests it gets and answers with res/err.
type domain struct {
	calls []flow.Request
	res   *flow.Result
	err   error
}

func (d *domain) Initiate(_ context.Context, req flow.Request) (*flow.Result, error) {
	d.calls = append(d.calls, req)
	return d.res, d.err
}

func handler(d *domain) (*invoke.Handler, *bytes.Buffer) {
	var logs bytes.Buffer
	return &invoke.Handler{Domain: d, Log: slog.New(slog.NewJSONHandler(&logs, nil))}, &logs
}

// lambdaError asserts err is the runtime's typed error and returns it.
func lambdaError(t *testing.T, err error) messages.InvokeResponse_Error {
	t.Helper()
	var e messages.InvokeResponse_Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v, want messages.InvokeResponse_Error", err, err)
	}
	return e
}

func TestHandleSuccess(t *testing.T) {
	want := &flow.Result{Status: flow.StatusAuthorizationRequired, Provider: "github", CorrelationID: "c-1"}
	for _, c := range []struct {
		name, event, token string
	}{
		{"synchronous", `{"userId":"u-1","provider":"github","scopes":["repo"]}`, ""},
		{"callback pattern", `{"taskToken":"tok-1","input":{"userId":"u-1","provider":"github","scopes":["repo"]}}`, "tok-1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := &domain{res: want}
			h, logs := handler(d)
			got, err := h.Handle(context.Background(), json.RawMessage(c.event))
			if err != nil || got != want {
				t.Fatalf("Handle = %+v, %v; want the domain's result", got, err)
			}
			if len(d.calls) != 1 {
				t.Fatalf("domain called %d times", len(d.calls))
			}
			r := d.calls[0]
			if r.TaskToken != c.token || r.Input.UserID != "u-1" || r.Input.Provider != "github" || strings.Join(r.Input.Scopes, ",") != "repo" {
				t.Errorf("domain got %+v", r)
			}
			if logs.Len() != 0 {
				t.Errorf("a success logged: %s", logs)
			}
		})
	}
}

func TestHandleInvalidEvents(t *testing.T) {
	for _, ev := range []string{
		`[1,2]`,
		`null`,
		`{"nope":1}`,
		`{"userId":"u","provider":"github","scopes":"repo"}`,
		`{"taskToken":"tok"}`,
		`{"input":{"userId":"u","provider":"github"}}`,
	} {
		d := &domain{}
		h, logs := handler(d)
		res, err := h.Handle(context.Background(), json.RawMessage(ev))
		var e messages.InvokeResponse_Error
		if !errors.As(err, &e) {
			t.Errorf("%s: error %v, want messages.InvokeResponse_Error", ev, err)
			continue
		}
		if res != nil || e.Type != contract.ErrInvalidInput || e.Message == "" {
			t.Errorf("%s: %+v, %+v; want %s with a message", ev, res, e, contract.ErrInvalidInput)
		}
		if len(d.calls) != 0 {
			t.Errorf("%s: the domain was called", ev)
		}
		if !strings.Contains(logs.String(), `"error":"`+contract.ErrInvalidInput+`"`) {
			t.Errorf("%s: the failure is not logged: %s", ev, logs)
		}
	}
}

func TestHandleDomainFailures(t *testing.T) {
	const secret = "tok-SECRET-in-upstream-text"
	for _, c := range []struct {
		name      string
		err       error
		wantType  string
		wantMsg   string
		retryable bool
		cause     bool
	}{
		{"named failure", flow.Fail(contract.ErrResourceNotFound, "provider %q is not registered", "x"),
			contract.ErrResourceNotFound, `provider "x" is not registered`, false, false},
		{"wrapped failure", fmt.Errorf("adapter: %w", flow.Fail(contract.ErrThrottled, "slow down")),
			contract.ErrThrottled, "slow down", true, false},
		{"unclassified error", errors.New("upstream said " + secret),
			contract.ErrAgentCoreUnavailable, "unexpected error", true, false},
		{"store failure", &flow.Failure{Name: contract.ErrStoreUnavailable, Message: "session store unavailable", Err: errors.New("PutItem: ProvisionedThroughputExceeded")},
			contract.ErrStoreUnavailable, "session store unavailable", true, true},
		{"other failure with a cause", &flow.Failure{Name: contract.ErrAccessDenied, Message: "denied", Err: errors.New("upstream said " + secret)},
			contract.ErrAccessDenied, "denied", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, logs := handler(&domain{err: c.err})
			res, err := h.Handle(context.Background(), json.RawMessage(`{"userId":"u-1","provider":"github"}`))
			e := lambdaError(t, err)
			if res != nil || e.Type != c.wantType || e.Message != c.wantMsg {
				t.Errorf("got %+v, %+v; want type %s message %q", res, e, c.wantType, c.wantMsg)
			}
			var line map[string]any
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
				t.Fatalf("log is not one JSON line: %v: %s", err, logs)
			}
			if line["level"] != "WARN" || line["msg"] != "initiate failed" || line["error"] != c.wantType ||
				line["detail"] != c.wantMsg || line["retryable"] != c.retryable {
				t.Errorf("log line %v", line)
			}
			if _, ok := line["cause"]; ok != c.cause {
				t.Errorf("cause logged: %v, want %v (%v)", ok, c.cause, line)
			}
			if strings.Contains(logs.String(), secret) || strings.Contains(e.Message, secret) {
				t.Errorf("an unclassified error's text escaped: %s / %s", logs, e.Message)
			}
		})
	}
}
