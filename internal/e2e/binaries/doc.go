// Package binaries tests the real Lambda bootstrap binaries of the four
// functions (functions/initiate, functions/callback, functions/resumer,
// functions/continue: continue_test.go, through the emulator's
// InvokeAgentRuntime),
// built exactly as the stack builds them (lambdaruntime.Build:
// CGO_ENABLED=0 GOOS=linux -trimpath -ldflags "-s -w" -tags lambda.norpc)
// for linux/amd64 and linux/arm64 (the latter run under
// qemu-aarch64-static), each run under the test's Lambda Runtime API server
// against the local stack (DynamoDB Local, the AgentCore Identity emulator,
// the Step Functions and EventBridge stand-ins), all on loopback. The
// events/ samples are fed to them with the live values a real flow produces
// (task token, session_id, state, verification code); the resumer gets the
// records of the table's real stream on DynamoDB Local (a session settled
// while Step Functions refused the inline send, the runner's stream poller
// off), as Lambda's event source mapping would.
//
// It checks the responses (for the resumer: the task resumed exactly once,
// resumedAt, batch item failures), the runtime API's error route, init
// failures on misconfiguration, and the JSON logs (request ids, correlation
// ids, no secret), and reports the binary sizes and the time from process
// start to the first response (BenchmarkColdStart measures the latter for
// amd64).
package binaries
