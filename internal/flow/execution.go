package flow

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The Step Functions execution that waits for a session: the state
// machine passes its ARN ($$.Execution.Id) to initiate beside the task
// token, in the envelope's executionArn, and every event of the session
// carries it. It is optional: direct invocations, agentauth and sessions
// started elsewhere have none.

// MaxExecutionARN bounds executionArn (bytes): the Step Functions API's
// limit on an execution ARN.
const MaxExecutionARN = 256

// Bounds of the names in an execution ARN (characters): state machine and
// execution names are 1-80 characters, a Distributed Map's label 1-40.
const (
	maxExecutionName = 80
	maxMapRunLabel   = 40
)

// ValidExecutionARN reports whether s has the shape of the ARN of a Step
// Functions (standard workflow) execution, at most MaxExecutionARN bytes:
//
//	arn:<partition>:states:<region>:<account>:execution:<stateMachine>:<name>
//
// with a partition of the aws family (aws, aws-cn, aws-us-gov, ...), a
// region such as eu-west-1, a 12-digit account, and state machine and
// execution names as Step Functions allows them (no whitespace, brackets,
// wildcards, control characters or any of "#%\^|~`$&,;:/). The state
// machine may carry a Distributed Map's label (<stateMachine>/<label>):
// the ARN of a child workflow execution.
func ValidExecutionARN(s string) bool {
	if len(s) > MaxExecutionARN || !utf8.ValidString(s) {
		return false
	}
	parts := strings.Split(s, ":")
	if len(parts) != 8 || parts[0] != "arn" || parts[2] != "states" || parts[5] != "execution" {
		return false
	}
	machine, label, child := strings.Cut(parts[6], "/")
	return isPartition(parts[1]) && isRegion(parts[3]) && isAccount(parts[4]) &&
		isExecutionName(machine, maxExecutionName) && (!child || isExecutionName(label, maxMapRunLabel)) &&
		isExecutionName(parts[7], maxExecutionName)
}

// checkExecutionARN is Request.Validate's check of the envelope's
// executionArn: absent (empty) or an execution ARN. The message names the
// shape, never the value.
func checkExecutionARN(s string) error {
	if s == "" || ValidExecutionARN(s) {
		return nil
	}
	return invalid("executionArn", "must be a Step Functions execution ARN (arn:<partition>:states:<region>:<account>:execution:<state machine>:<name>) of at most %d bytes", MaxExecutionARN)
}

// isPartition: aws, or aws- and lowercase letters and '-' (aws-cn,
// aws-us-gov, aws-iso-b, ...), at most 32 bytes.
func isPartition(s string) bool {
	if s == "aws" {
		return true
	}
	rest, ok := strings.CutPrefix(s, "aws-")
	return ok && len(s) <= 32 && allOf(rest, func(c byte) bool { return 'a' <= c && c <= 'z' || c == '-' })
}

// isRegion: lowercase letters, digits and '-', starting with a letter and
// ending with a digit (us-east-1, us-gov-west-1, cn-north-1), at most 32
// bytes.
func isRegion(s string) bool {
	return len(s) >= 3 && len(s) <= 32 && 'a' <= s[0] && s[0] <= 'z' && '0' <= s[len(s)-1] && s[len(s)-1] <= '9' &&
		allOf(s, func(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' })
}

// isAccount: 12 digits.
func isAccount(s string) bool {
	return len(s) == 12 && allOf(s, func(c byte) bool { return '0' <= c && c <= '9' })
}

// isExecutionName: 1-max characters, none of them whitespace, a control
// character (U+0000-001F, U+007F-009F) or one of <>{}[]?*"#%\^|~`$&,;:/
// (the Step Functions naming rules for state machines, executions and Map
// labels).
func isExecutionName(s string, max int) bool {
	if s == "" || utf8.RuneCountInString(s) > max {
		return false
	}
	for _, r := range s {
		if r < 0x20 || 0x7F <= r && r <= 0x9F || unicode.IsSpace(r) || strings.ContainsRune("<>{}[]?*\"#%\\^|~`$&,;:/", r) {
			return false
		}
	}
	return true
}
