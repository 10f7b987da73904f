// Package layout has no code: its tests keep the repository's layout honest.
// What the Lambda functions link must be production code only (never the
// AgentCore emulator, the local stand-ins, the test harnesses, the
// end-to-end suites, nor package testing), and the test harnesses under
// internal/testenv are imported by tests only.
package layout
