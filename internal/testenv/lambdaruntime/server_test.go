package lambdaruntime_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/testenv/lambdaruntime"
)

// The protocol tests play the runtime client by hand over net/http.

func start(t *testing.T, cfg lambdaruntime.Config) *lambdaruntime.Server {
	t.Helper()
	s, err := lambdaruntime.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") {
		t.Fatalf("Addr = %s, want loopback", s.Addr())
	}
	return s
}

func base(s *lambdaruntime.Server) string { return "http://" + s.Addr() + "/2018-06-01/runtime/" }

type nextInv struct {
	id, arn, trace string
	deadline       time.Time
	payload        []byte
}

func getNext(t *testing.T, s *lambdaruntime.Server) nextInv {
	t.Helper()
	resp, err := http.Get(base(s) + "invocation/next")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("next: %d %s", resp.StatusCode, b)
	}
	ms, err := strconv.ParseInt(resp.Header.Get("Lambda-Runtime-Deadline-Ms"), 10, 64)
	if err != nil {
		t.Fatalf("deadline header: %v", err)
	}
	return nextInv{
		id: resp.Header.Get("Lambda-Runtime-Aws-Request-Id"), arn: resp.Header.Get("Lambda-Runtime-Invoked-Function-Arn"),
		trace: resp.Header.Get("Lambda-Runtime-Trace-Id"), deadline: time.UnixMilli(ms), payload: b,
	}
}

func post(t *testing.T, url string, body []byte, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

type invokeResult struct {
	r   lambdaruntime.Response
	err error
}

func invokeAsync(s *lambdaruntime.Server, ctx context.Context, payload string) <-chan invokeResult {
	ch := make(chan invokeResult, 1)
	go func() {
		r, err := s.Invoke(ctx, []byte(payload))
		ch <- invokeResult{r, err}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan invokeResult) invokeResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Invoke did not return")
		return invokeResult{}
	}
}

func TestProtocolResponse(t *testing.T) {
	s := start(t, lambdaruntime.Config{FunctionName: "fn", Region: "eu-west-1", Timeout: 5 * time.Second})
	ch := invokeAsync(s, context.Background(), `{"hello":"world"}`)
	inv := getNext(t, s)
	if len(inv.id) != 36 || inv.arn != "arn:aws:lambda:eu-west-1:123456789012:function:fn" ||
		!strings.HasPrefix(inv.trace, "Root=1-") || string(inv.payload) != `{"hello":"world"}` {
		t.Fatalf("next = %+v", inv)
	}
	if d := time.Until(inv.deadline); d <= 4*time.Second || d > 5*time.Second {
		t.Fatalf("deadline in %v, want ~5s", d)
	}
	if code, body := post(t, base(s)+"invocation/"+inv.id+"/response", []byte(`{"ok":true}`), nil); code != 202 || body != `{"status":"OK"}` {
		t.Fatalf("response: %d %s", code, body)
	}
	r := wait(t, ch)
	if r.err != nil || r.r.Error != nil || string(r.r.Payload) != `{"ok":true}` || r.r.RequestID != inv.id {
		t.Fatalf("Invoke = %+v, %v", r.r, r.err)
	}
	// A second answer for the same id, and an unknown id: 400.
	if code, _ := post(t, base(s)+"invocation/"+inv.id+"/response", []byte(`{}`), nil); code != 400 {
		t.Fatalf("second answer: %d, want 400", code)
	}
	if code, body := post(t, base(s)+"invocation/nope/error", []byte(`{}`), nil); code != 400 || !strings.Contains(body, "InvalidRequestID") {
		t.Fatalf("unknown id: %d %s", code, body)
	}
}

func TestProtocolErrorsAndInitError(t *testing.T) {
	s := start(t, lambdaruntime.Config{})
	ch := invokeAsync(s, context.Background(), `{}`)
	inv := getNext(t, s)
	code, _ := post(t, base(s)+"invocation/"+inv.id+"/error",
		[]byte(`{"errorMessage":"it broke","errorType":"BodyType","stackTrace":["a","b"]}`),
		map[string]string{"Lambda-Runtime-Function-Error-Type": "Custom.HeaderType", "Content-Type": "application/json"})
	if code != 202 {
		t.Fatalf("error route: %d", code)
	}
	r := wait(t, ch)
	if r.err != nil || r.r.Error == nil || r.r.Error.Type != "Custom.HeaderType" || r.r.Error.Message != "it broke" ||
		string(r.r.Error.StackTrace) != `["a","b"]` || r.r.Payload != nil {
		t.Fatalf("Invoke = %+v (%+v), %v", r.r, r.r.Error, r.err)
	}

	// Without the header, the body's errorType counts.
	ch = invokeAsync(s, context.Background(), `{}`)
	inv = getNext(t, s)
	post(t, base(s)+"invocation/"+inv.id+"/error", []byte(`{"errorMessage":"m","errorType":"BodyType"}`), nil)
	if r := wait(t, ch); r.r.Error == nil || r.r.Error.Type != "BodyType" {
		t.Fatalf("error type = %+v", r.r.Error)
	}

	if code, _ := post(t, base(s)+"init/error", []byte(`{"errorMessage":"missing CONFIG","errorType":"Runtime.InitError"}`),
		map[string]string{"Lambda-Runtime-Function-Error-Type": "Runtime.InitError"}); code != 202 {
		t.Fatalf("init/error: %d", code)
	}
	if ie := s.InitErrors(); len(ie) != 1 || ie[0].Message != "missing CONFIG" || ie[0].Type != "Runtime.InitError" {
		t.Fatalf("InitErrors = %+v", ie)
	}
}

func TestProtocolTimeoutCancelAndLimits(t *testing.T) {
	s := start(t, lambdaruntime.Config{Timeout: 300 * time.Millisecond})
	ch := invokeAsync(s, context.Background(), `{}`)
	inv := getNext(t, s)
	r := wait(t, ch)
	if !errors.Is(r.err, lambdaruntime.ErrTimeout) {
		t.Fatalf("unanswered invocation: err = %v, want ErrTimeout", r.err)
	}
	if code, _ := post(t, base(s)+"invocation/"+inv.id+"/response", []byte(`{}`), nil); code != 400 {
		t.Fatalf("late answer: %d, want 400", code)
	}

	// Nobody polls: Invoke ends with its context.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Invoke(ctx, []byte(`{}`)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no runtime: err = %v", err)
	}
	// The abandoned invocation is not handed out later.
	ch = invokeAsync(s, context.Background(), `{"n":2}`)
	if inv := getNext(t, s); string(inv.payload) != `{"n":2}` {
		t.Fatalf("next after abandoned = %s", inv.payload)
	} else {
		_, _ = post(t, base(s)+"invocation/"+inv.id+"/response", []byte(`{}`), nil) // or its 300 ms run out
	}
	wait(t, ch)
	// An oversized answer (on a server whose timeout a busy machine's 6 MB post cannot hit).
	roomy := start(t, lambdaruntime.Config{Timeout: time.Minute})
	ch = invokeAsync(roomy, context.Background(), `{"n":3}`)
	inv = getNext(t, roomy)
	big := bytes.Repeat([]byte("x"), lambdaruntime.MaxPayload+1)
	if code, _ := post(t, base(roomy)+"invocation/"+inv.id+"/response", big, nil); code != 413 {
		t.Fatalf("oversized response: %d, want 413", code)
	}
	if r := wait(t, ch); r.r.Error == nil || r.r.Error.Type != "Function.ResponseSizeTooLarge" {
		t.Fatalf("oversized: %+v %v", r.r.Error, r.err)
	}
	if _, err := s.Invoke(context.Background(), make([]byte, lambdaruntime.MaxPayload+1)); err == nil {
		t.Fatal("oversized request accepted")
	}
	// Close releases a waiting Invoke.
	ch = invokeAsync(s, context.Background(), `{}`)
	time.Sleep(50 * time.Millisecond)
	_ = s.Close()
	if r := wait(t, ch); !errors.Is(r.err, lambdaruntime.ErrClosed) {
		t.Fatalf("after Close: %v", r.err)
	}
}
