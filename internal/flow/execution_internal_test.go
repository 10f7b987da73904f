package flow

import (
	"strings"
	"testing"
)

const testExecutionARN = "arn:aws:states:eu-west-1:123456789012:execution:AuthorizeUser:7b1e2c4d-0f3a-4b5c-8d9e-1a2b3c4d5e6f"

func TestValidExecutionARN(t *testing.T) {
	arn := func(partition, region, account, kind, machine, name string) string {
		return strings.Join([]string{"arn", partition, "states", region, account, kind, machine, name}, ":")
	}
	n80 := strings.Repeat("n", 80)
	for _, c := range []struct {
		s    string
		want bool
	}{
		{testExecutionARN, true},
		{arn("aws", "us-east-1", "123456789012", "execution", "AuthorizeUser", "a"), true},
		{arn("aws-cn", "cn-north-1", "123456789012", "execution", "m", "n"), true},
		{arn("aws-us-gov", "us-gov-west-1", "123456789012", "execution", "m", "n"), true},
		{arn("aws-iso-b", "us-isob-east-1", "123456789012", "execution", "m", "n"), true},
		{arn("aws", "us-east-1", "123456789012", "execution", "my_machine-1", "run.2026-01-01"), true},
		{arn("aws", "us-east-1", "123456789012", "execution", "m/MapLabel", "0f3a4b5c"), true}, // a Distributed Map's child
		{arn("aws", "us-east-1", "123456789012", "execution", n80, n80), true},
		{arn("aws", "us-east-1", "123456789012", "execution", "m", "überprüfung-é"), true}, // names may be Unicode
		{arn("aws", "us-east-1", "123456789012", "execution", n80+"n", "n"), false},
		{arn("aws", "us-east-1", "123456789012", "execution", "m", n80+"n"), false},
		{arn("aws", "us-east-1", "123456789012", "execution", "m/"+strings.Repeat("l", 41), "n"), false},
		{arn("aws", "us-east-1", "123456789012", "execution", "m/", "n"), false},
		{arn("aws", "us-east-1", "123456789012", "execution", "/l", "n"), false},
		{arn("aws", "us-east-1", "123456789012", "execution", "m/l/x", "n"), false},
		{arn("aws", "us-east-1", "123456789012", "express", "m", "n"), false}, // no task tokens in Express workflows
		{arn("aws", "us-east-1", "123456789012", "stateMachine", "m", "n"), false},
		{arn("aws", "us-east-1", "123456789012", "execution", "m", ""), false},
		{arn("aws", "us-east-1", "123456789012", "execution", "", "n"), false},
		{arn("aws", "us-east-1", "12345678901", "execution", "m", "n"), false},
		{arn("aws", "us-east-1", "1234567890123", "execution", "m", "n"), false},
		{arn("aws", "us-east-1", "12345678901x", "execution", "m", "n"), false},
		{arn("aws", "", "123456789012", "execution", "m", "n"), false},
		{arn("aws", "US-EAST-1", "123456789012", "execution", "m", "n"), false},
		{arn("aws", "us-east", "123456789012", "execution", "m", "n"), false},
		{arn("aws", "1us-east-1", "123456789012", "execution", "m", "n"), false},
		{arn("", "us-east-1", "123456789012", "execution", "m", "n"), false},
		{arn("aws-", "us-east-1", "123456789012", "execution", "m", "n"), false},
		{arn("gcp", "us-east-1", "123456789012", "execution", "m", "n"), false},
		{arn("AWS", "us-east-1", "123456789012", "execution", "m", "n"), false},
		{strings.Replace(testExecutionARN, ":states:", ":lambda:", 1), false},
		{strings.Replace(testExecutionARN, "arn:", "ARN:", 1), false},
		{testExecutionARN + ":extra", false},
		{strings.TrimSuffix(testExecutionARN, ":7b1e2c4d-0f3a-4b5c-8d9e-1a2b3c4d5e6f"), false},
		{"", false},
		{"arn:aws:states", false},
		{"not an arn", false},
		{" " + testExecutionARN, false},
		{testExecutionARN + "\n", false},
		{testExecutionARN + "\x00", false},
		{testExecutionARN + "\u0085", false},
		{testExecutionARN + "\u00a0", false},
		{testExecutionARN + "\xff", false},
	} {
		if got := ValidExecutionARN(c.s); got != c.want {
			t.Errorf("ValidExecutionARN(%q) = %v, want %v", c.s, got, c.want)
		}
	}
	for _, r := range "<>{}[]?*\"#%\\^|~`$&,; \t" {
		if s := testExecutionARN + string(r); ValidExecutionARN(s) {
			t.Errorf("ValidExecutionARN(%q) = true", s)
		}
	}
	// The bound is on bytes: 256 of them pass, 257 do not.
	prefix := "arn:aws:states:us-east-1:123456789012:execution:"
	machine := strings.Repeat("m", 80)
	name := strings.Repeat("é", 80) // 160 bytes
	long := prefix + machine[:MaxExecutionARN-len(prefix)-1-len(name)] + ":" + name
	if len(long) != MaxExecutionARN || !ValidExecutionARN(long) {
		t.Errorf("%d bytes refused", len(long))
	}
	if longer := prefix + machine[:MaxExecutionARN-len(prefix)-len(name)] + ":" + name; ValidExecutionARN(longer) {
		t.Errorf("%d bytes accepted", len(longer))
	}
}
