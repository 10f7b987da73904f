//go:build linux

package lambdaruntime_test

import (
	"context"
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/consentflow/consentflow/internal/testenv/lambdaruntime"
)

// qemuPath is where Debian's qemu-user-static installs the arm64 emulator;
// CONSENTFLOW_QEMU overrides it.
func qemuPath() string {
	if p := os.Getenv("CONSENTFLOW_QEMU"); p != "" {
		return p
	}
	return "/usr/bin/qemu-aarch64-static"
}

// TestBootstrap builds testdata/echo exactly as the stack builds its
// functions, for linux/amd64 and linux/arm64 (run under qemu-user), and
// drives it through the Runtime API: success, a returned error, a panic.
func TestBootstrap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs binaries")
	}
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			var wrapper []string
			if arch == "arm64" {
				qemu := qemuPath()
				if _, err := os.Stat(qemu); err != nil {
					if os.Getenv("CONSENTFLOW_SKIP_QEMU") == "1" {
						t.Skipf("%s not installed and CONSENTFLOW_SKIP_QEMU=1", qemu)
					}
					t.Fatalf("%s is required to run the arm64 bootstrap (Debian package qemu-user-static); "+
						"set CONSENTFLOW_SKIP_QEMU=1 to skip: %v", qemu, err)
				}
				wrapper = []string{qemu}
			}
			runEcho(t, arch, wrapper)
		})
	}
}

func runEcho(t *testing.T, arch string, wrapper []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := lambdaruntime.Build(ctx, ".", "./testdata/echo", arch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	checkELF(t, bin, arch)

	s := start(t, lambdaruntime.Config{FunctionName: "echo-" + arch, Region: "eu-west-1", Timeout: 20 * time.Second})
	p := s.MustStartProcess(t, lambdaruntime.ProcessConfig{Path: bin, Wrapper: wrapper, Env: []string{"ECHO_EXTRA=extra-" + arch}})

	// 1. Success: queued at once, so start-to-first-response is the cold start.
	r, err := s.Invoke(ctx, []byte(`{"mode":"echo","value":{"n":1,"s":"héllo"}}`))
	if err != nil {
		t.Fatalf("invoke: %v\noutput:\n%s", err, p.Output())
	}
	if r.Error != nil {
		t.Fatalf("echo failed: %+v", r.Error)
	}
	var out struct {
		Echo         json.RawMessage `json:"echo"`
		RequestID    string          `json:"requestId"`
		FunctionName string          `json:"functionName"`
		ARN          string          `json:"arn"`
		DeadlineInMs int64           `json:"deadlineInMs"`
		Env          string          `json:"env"`
		TraceID      string          `json:"traceId"`
	}
	if err := json.Unmarshal(r.Payload, &out); err != nil {
		t.Fatalf("response %q: %v", r.Payload, err)
	}
	if string(out.Echo) != `{"n":1,"s":"héllo"}` || out.RequestID != r.RequestID || out.FunctionName != "echo-"+arch ||
		out.ARN != s.FunctionARN() || out.Env != "extra-"+arch || out.DeadlineInMs <= 0 || out.DeadlineInMs > 20000 ||
		!strings.HasPrefix(out.TraceID, "Root=1-") {
		t.Fatalf("echo output = %+v (request id %s)", out, r.RequestID)
	}
	ready, _ := p.StartToReady()
	first, ok := p.StartToFirstResponse()
	if !ok {
		t.Fatal("no first response recorded")
	}

	// 2. Warm invocation.
	warmStart := time.Now()
	if r, err := s.Invoke(ctx, []byte(`{"mode":"echo","value":2}`)); err != nil || r.Error != nil {
		t.Fatalf("warm invoke: %v %+v", err, r.Error)
	}
	warm := time.Since(warmStart)

	// 3. A returned error goes through the error route with its type.
	r, err = s.Invoke(ctx, []byte(`{"mode":"error","value":"nope"}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Error == nil || r.Error.Type != "EchoError" || r.Error.Message != "nope" || r.Payload != nil {
		t.Fatalf("error invocation = %+v / %+v", r, r.Error)
	}
	// The function keeps serving after a returned error.
	if r, err := s.Invoke(ctx, []byte(`{"mode":"echo","value":3}`)); err != nil || r.Error != nil {
		t.Fatalf("invoke after error: %v %+v", err, r.Error)
	}

	// 4. A panic is reported through the error route, then the runtime exits.
	r, err = s.Invoke(ctx, []byte(`{"mode":"panic"}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Error == nil || !strings.Contains(r.Error.Message, "asked to panic") || len(r.Error.StackTrace) == 0 {
		t.Fatalf("panic invocation = %+v", r.Error)
	}
	select {
	case <-p.Exited():
		if p.ExitErr() == nil {
			t.Error("bootstrap exited 0 after a panic")
		}
	case <-time.After(20 * time.Second):
		t.Error("bootstrap did not exit after a panic")
	}

	t.Logf("linux/%s bootstrap: %d bytes (%.1f MiB); start->ready %v, start->first response %v, warm invoke %v, panic errorType %q",
		arch, fi.Size(), float64(fi.Size())/(1<<20), ready.Round(time.Millisecond), first.Round(time.Millisecond),
		warm.Round(time.Microsecond), r.Error.Type)
}

// TestStopKillsProcessGroup checks that Stop leaves nothing running.
func TestStopKillsProcessGroup(t *testing.T) {
	s := start(t, lambdaruntime.Config{})
	// A shell that starts a child in its group: both must die.
	p, err := s.StartProcess(lambdaruntime.ProcessConfig{Path: "/bin/sh", Wrapper: nil, Env: nil})
	if err != nil {
		t.Fatal(err)
	}
	_ = p.Stop()
	p2, err := s.StartProcess(lambdaruntime.ProcessConfig{Path: "/bin/sh", Wrapper: []string{"/bin/sh", "-c", "sleep 60 & sleep 60; :"}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	pgid := p2.Pid()
	if err := p2.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := p2.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	// No live member of the group is left (zombies waiting for a reaper
	// that is not us do not run).
	deadline := time.Now().Add(5 * time.Second)
	for {
		live := liveGroupMembers(t, pgid)
		if len(live) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process group %d still has running members: %v", pgid, live)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if p2.ExitErr() == nil {
		t.Fatal("killed process reported exit 0")
	}
}

// liveGroupMembers lists the pids in process group pgid that are not zombies.
func liveGroupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var live []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...; comm may contain spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(s[i+1:])
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(fields[2]); g == pgid {
			pid, _ := strconv.Atoi(strings.Fields(s)[0])
			live = append(live, pid)
		}
	}
	return live
}

// checkELF asserts the binary is a static, stripped linux executable for arch.
func checkELF(t *testing.T, path, arch string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != want {
		t.Errorf("%s: machine %v, want %v", path, f.Machine, want)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s: dynamically linked (PT_INTERP): CGO_ENABLED=0 was not honoured", path)
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("%s: has a symbol table: -ldflags \"-s -w\" was not honoured", path)
	}
}
