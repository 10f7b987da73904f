// Package dynamotest holds the test-only helpers around DynamoDB Local
// (internal/local/dynamolocal). Starting the emulator costs about 2 s and
// 210 MB, so share one instance per test binary:
//
//	func TestMain(m *testing.M) { dynamotest.Main(m) }
//
//	func TestX(t *testing.T) {
//		db := dynamotest.Shared(t)            // started on first use
//		table := dynamotest.TableName(t)      // unique per test
//		...
//	}
//
// ForTest starts a private instance instead (stopped by t.Cleanup).
//
// Missing java/npm or a failed start FAILS the test with a clear message,
// unless CONSENTFLOW_SKIP_DYNAMODB_LOCAL=1, in which case Shared and ForTest
// skip the test without trying to start anything.
package dynamotest

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/consentflow/consentflow/internal/local/dynamolocal"
)

func skipOrNil(t testing.TB) {
	t.Helper()
	if dynamolocal.Skipped() {
		t.Skipf("DynamoDB Local disabled by %s=1", dynamolocal.EnvSkip)
	}
}

// ForTest starts a private instance for t, stopped by t.Cleanup (which also
// runs when the test panics). Prefer Shared: each start costs ~2 s.
func ForTest(t testing.TB) *dynamolocal.Instance {
	t.Helper()
	skipOrNil(t)
	inst, err := dynamolocal.Start(context.Background())
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(inst.Stop)
	return inst
}

var shared struct {
	mu   sync.Mutex
	inst *dynamolocal.Instance
	err  error
}

// Shared returns the test binary's shared instance, starting it on first
// use. Stop it with StopShared (Main does) when the tests are done; if the
// binary dies first, the parent-death signal kills it.
func Shared(t testing.TB) *dynamolocal.Instance {
	t.Helper()
	skipOrNil(t)
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.inst == nil && shared.err == nil {
		shared.inst, shared.err = dynamolocal.Start(context.Background())
	}
	if shared.err != nil {
		t.Fatalf("%v", shared.err)
	}
	return shared.inst
}

// StopShared stops the shared instance if one was started.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.inst != nil {
		shared.inst.Stop()
		shared.inst = nil
	}
}

// Main is a TestMain body: it runs the tests, stops the shared instance and
// exits with the tests' status.
//
//	func TestMain(m *testing.M) { dynamotest.Main(m) }
func Main(m *testing.M) {
	code := func() int {
		defer StopShared()
		return m.Run()
	}()
	os.Exit(code)
}

var tableSeq atomic.Int64

var unsafeTableChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// TableName returns a table name unique within the test binary, derived
// from the test's name (DynamoDB: 3-255 chars of [a-zA-Z0-9_.-]).
func TableName(t testing.TB) string {
	name := strings.Trim(unsafeTableChars.ReplaceAllString(t.Name(), "_"), "_")
	if len(name) > 200 {
		name = name[:200]
	}
	return fmt.Sprintf("t%d_%s", tableSeq.Add(1), name)
}
