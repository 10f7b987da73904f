package dynamolocal_test

import (
	"context"
	"fmt"
	"github.com/consentflow/consentflow/internal/testenv/dynamotest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/consentflow/consentflow/internal/local/dynamolocal"
)

func TestMain(m *testing.M) { dynamotest.Main(m) }

func TestSharedAnswers(t *testing.T) {
	db := dynamotest.Shared(t)
	if !strings.HasPrefix(db.Endpoint(), "http://127.0.0.1:") {
		t.Fatalf("endpoint %q is not loopback", db.Endpoint())
	}
	if _, err := db.Client().ListTables(context.Background(), &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("ListTables: %v", err)
	}
	if again := dynamotest.Shared(t); again != db {
		t.Fatal("Shared started a second instance")
	}
}

func TestStopKillsProcessGroup(t *testing.T) {
	db := dynamotest.ForTest(t)
	pid := pidOf(t, db)
	db.Stop()
	db.Stop() // idempotent
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("java pid %d still alive after Stop", pid)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := db.Client().ListTables(ctx, &dynamodb.ListTablesInput{}, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }); err == nil {
		t.Fatal("emulator still answers after Stop")
	}
}

func TestTableNameUnique(t *testing.T) {
	a, b := dynamotest.TableName(t), dynamotest.TableName(t)
	if a == b || len(a) < 3 || len(a) > 255 {
		t.Fatalf("bad table names %q %q", a, b)
	}
}

// pidOf finds the java process serving db's port.
func pidOf(t *testing.T, db *dynamolocal.Instance) int {
	t.Helper()
	port := db.Endpoint()[strings.LastIndex(db.Endpoint(), ":")+1:]
	pids := emulatorPIDs(port)
	if len(pids) != 1 {
		t.Fatalf("found %d DynamoDB Local processes on port %s, want 1", len(pids), port)
	}
	return pids[0]
}

// emulatorPIDs lists live DynamoDB Local processes started with -port port
// (read from /proc, so no pgrep is needed).
func emulatorPIDs(port string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if !slices.ContainsFunc(args, func(a string) bool { return strings.HasSuffix(a, "DynamoDBLocal.jar") }) {
			continue
		}
		if i := slices.Index(args, "-port"); i >= 0 && i+1 < len(args) && args[i+1] == port {
			if st, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil && isZombie(string(st)) {
				continue
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

// isZombie reads the state field of /proc/PID/stat ("pid (comm) S ...").
func isZombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// TestNoLeakWhenTestBinaryPanics runs this test binary again in a mode that
// starts the shared instance and panics (no cleanup runs); the emulator must
// die with it (parent-death signal).
func TestNoLeakWhenTestBinaryPanics(t *testing.T) {
	if os.Getenv("DYNAMOLOCAL_PANIC_CHILD") == "1" {
		db := dynamotest.Shared(t)
		fmt.Println("ENDPOINT", db.Endpoint())
		panic("deliberate panic with DynamoDB Local running")
	}
	if dynamolocal.Skipped() {
		t.Skip("DynamoDB Local disabled")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoLeakWhenTestBinaryPanics$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DYNAMOLOCAL_PANIC_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child did not fail:\n%s", out)
	}
	var port string
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "ENDPOINT "); ok {
			port = rest[strings.LastIndex(rest, ":")+1:]
		}
	}
	if port == "" {
		t.Fatalf("child never started DynamoDB Local:\n%s", out)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if len(emulatorPIDs(port)) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("DynamoDB Local on port %s survived its test binary's panic", port)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
