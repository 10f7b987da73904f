//go:build linux

package lambdaruntime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// ProcessConfig describes a bootstrap process to run against a Server.
type ProcessConfig struct {
	// Path is the bootstrap binary.
	Path string
	// Wrapper, if set, runs the binary through a command, e.g.
	// []string{"/usr/bin/qemu-aarch64-static"} for a linux/arm64 binary.
	Wrapper []string
	// Env is extra "KEY=value" entries, appended after (and so overriding)
	// the Lambda-like environment.
	Env []string
	// Dir is the working directory (default: the binary's directory is not
	// assumed; the current one is used).
	Dir string
	// Output, if set, also receives the process's stdout and stderr.
	Output io.Writer
}

// Process is a running bootstrap.
type Process struct {
	cmd     *exec.Cmd
	server  *Server
	started time.Time
	out     *syncBuffer
	done    chan struct{}
	waitErr error
	stop    sync.Once
}

// StartProcess starts cfg.Path (through cfg.Wrapper, if any) in its own
// process group with a Lambda-like environment that does not inherit this
// process's: AWS_LAMBDA_RUNTIME_API=<s.Addr()>, AWS_LAMBDA_FUNCTION_NAME,
// AWS_LAMBDA_FUNCTION_VERSION, AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
// AWS_LAMBDA_LOG_GROUP_NAME, AWS_LAMBDA_LOG_STREAM_NAME, AWS_REGION,
// AWS_DEFAULT_REGION, dummy AWS credentials, _HANDLER, LAMBDA_TASK_ROOT,
// TZ, PATH, then cfg.Env. Call Stop (or use MustStartProcess) to end it.
func (s *Server) StartProcess(cfg ProcessConfig) (*Process, error) {
	if cfg.Path == "" {
		return nil, errors.New("lambdaruntime: ProcessConfig.Path is empty")
	}
	argv := append(append([]string(nil), cfg.Wrapper...), cfg.Path)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = cfg.Dir
	c := s.cfg
	cmd.Env = append([]string{
		"AWS_LAMBDA_RUNTIME_API=" + s.Addr(),
		"AWS_LAMBDA_FUNCTION_NAME=" + c.FunctionName,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + c.FunctionName,
		"AWS_LAMBDA_LOG_STREAM_NAME=local/[$LATEST]" + uuid.NewString()[:8],
		"AWS_REGION=" + c.Region,
		"AWS_DEFAULT_REGION=" + c.Region,
		"AWS_ACCESS_KEY_ID=AKIDLOCALTESTONLY",
		"AWS_SECRET_ACCESS_KEY=local-test-secret-not-real",
		"AWS_SESSION_TOKEN=local-test-session-not-real",
		"_HANDLER=bootstrap",
		"LAMBDA_TASK_ROOT=/var/task",
		"TZ=:UTC",
		"LANG=en_US.UTF-8",
		"PATH=/usr/local/bin:/usr/bin:/bin",
	}, cfg.Env...)
	p := &Process{cmd: cmd, server: s, out: &syncBuffer{}, done: make(chan struct{})}
	var w io.Writer = p.out
	if cfg.Output != nil {
		w = io.MultiWriter(p.out, cfg.Output)
	}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A descendant that left the group must not keep Wait blocked on the
	// output pipes.
	cmd.WaitDelay = 2 * time.Second
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// MustStartProcess is StartProcess for tests: it fails t on error and stops
// the process when the test ends.
func (s *Server) MustStartProcess(t testing.TB, cfg ProcessConfig) *Process {
	t.Helper()
	p, err := s.StartProcess(cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Path, err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	return p
}

// Pid is the process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Started is when the process was started.
func (p *Process) Started() time.Time { return p.started }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// ExitErr is the process's exit status (nil for exit 0); valid after Exited.
func (p *Process) ExitErr() error {
	<-p.done
	return p.waitErr
}

// Output is what the process wrote to stdout and stderr so far.
func (p *Process) Output() string { return p.out.String() }

// StartToReady is the time from process start to its first GET next.
func (p *Process) StartToReady() (time.Duration, bool) {
	p.server.mu.Lock()
	defer p.server.mu.Unlock()
	t, ok := firstAfter(p.server.nexts, p.started)
	return t.Sub(p.started), ok
}

// StartToFirstResponse is the time from process start to the first answer
// (response or error) the server received after it.
func (p *Process) StartToFirstResponse() (time.Duration, bool) {
	p.server.mu.Lock()
	defer p.server.mu.Unlock()
	t, ok := firstAfter(p.server.answers, p.started)
	return t.Sub(p.started), ok
}

// Stop kills the whole process group (SIGKILL) and waits for the process.
// It is safe to call more than once and after the process exited.
func (p *Process) Stop() error {
	var err error
	p.stop.Do(func() {
		select {
		case <-p.done:
		default:
			if e := syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL); e != nil && !errors.Is(e, syscall.ESRCH) {
				err = fmt.Errorf("kill process group %d: %w", p.cmd.Process.Pid, e)
			}
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				err = fmt.Errorf("process %d did not exit after SIGKILL", p.cmd.Process.Pid)
			}
		}
		// Anything else left in the group (a wrapper's children) goes too.
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	})
	return err
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
