//go:build linux

package binaries_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/cont"
	"github.com/consentflow/consentflow/internal/contract"
	"github.com/consentflow/consentflow/internal/local/emulator"
	"github.com/consentflow/consentflow/internal/local/runner"
)

const fnContinue = "continue"

// The continue bootstrap under the Runtime API: the events/continue-agent.json
// sample through the emulator's InvokeAgentRuntime to a local agent (its
// answer summarized), a throttled invocation (the named error on the error
// route), and an init failure without AGENT_RUNTIME_ARNS.
func TestContinueBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the bootstrap binaries")
	}
	var sampleEvent struct {
		ContinueWith struct {
			AgentRuntimeARN string `json:"agentRuntimeArn"`
		} `json:"continueWith"`
		Authorization struct {
			UserID string `json:"userId"`
		} `json:"authorization"`
	}
	event := sample(t, "continue-agent.json")
	if err := json.Unmarshal(event, &sampleEvent); err != nil {
		t.Fatal(err)
	}
	arn := sampleEvent.ContinueWith.AgentRuntimeARN

	var mu sync.Mutex
	var users []string
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		users = append(users, r.Header.Get(emulator.HeaderRuntimeUserID))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"meetings": 3}`)
	}))
	defer agent.Close()
	emu, err := emulator.New(emulator.Config{AgentRuntimes: []emulator.AgentRuntime{{ARN: arn, URL: agent.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	emuURL, stop, err := emu.Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop() }()
	env := map[string]string{
		"AWS_REGION": runner.Region, "AWS_ACCESS_KEY_ID": "AKIALOCALEXAMPLE", "AWS_SECRET_ACCESS_KEY": "local-secret-not-used",
		"AWS_ENDPOINT_URL_BEDROCK_AGENTCORE": emuURL, "AWS_LAMBDA_LOG_FORMAT": "JSON",
		contract.EnvAgentRuntimeARNs: arn,
	}
	for _, arch := range arches {
		t.Run(arch, func(t *testing.T) {
			wrapper(t, arch)
			f := startFunction(t, fnContinue, arch, envList(env, nil, nil))
			r := f.invoke(t, event)
			if r.Error != nil {
				t.Fatalf("error %+v\n%s", r.Error, f.proc.Output())
			}
			var s cont.Summary
			if err := json.Unmarshal(r.Payload, &s); err != nil || s.StatusCode != 200 || string(s.Body) != `{"meetings":3}` ||
				s.RuntimeSessionID != "chat-7f3a-2026-01-01-session-0000000001" {
				t.Fatalf("summary %s: %v", r.Payload, err)
			}
			mu.Lock()
			last := users[len(users)-1]
			mu.Unlock()
			if last != sampleEvent.Authorization.UserID {
				t.Fatalf("the agent ran for %q", last)
			}
			emu.InjectFault(emulator.OpInvokeAgentRuntime, 1, emulator.Throttle)
			r = f.invoke(t, event)
			if r.Error == nil || r.Error.Type != contract.ErrAgentRuntimeThrottled {
				t.Fatalf("throttled: %+v %s", r.Error, r.Payload)
			}
			out := f.proc.Output()
			if !strings.Contains(out, `"correlationId":"chat-7f3a:turn-12"`) || strings.Contains(out, "list today") {
				t.Errorf("logs: want the correlation id and no payload:\n%s", out)
			}
			f.alive(t)

			// Misconfigured: no runtimes. The process exits naming the variable.
			bad := startFunction(t, fnContinue, arch, envList(env, []string{contract.EnvAgentRuntimeARNs}, nil))
			select {
			case <-bad.proc.Exited():
			case <-time.After(60 * time.Second):
				t.Fatalf("still running without %s", contract.EnvAgentRuntimeARNs)
			}
			var ee interface{ ExitCode() int }
			if err := bad.proc.ExitErr(); !errors.As(err, &ee) || ee.ExitCode() <= 0 || !strings.Contains(bad.proc.Output(), contract.EnvAgentRuntimeARNs) {
				t.Errorf("exit %v, output %s", err, bad.proc.Output())
			}
		})
	}
}
