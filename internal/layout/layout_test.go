package layout_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/consentflow/consentflow"

// nonProduction lists what production code must never link: the emulator
// and the stand-ins (internal/local), the harnesses (internal/testenv), the
// end-to-end suites (internal/e2e) and package testing itself.
func nonProduction(pkg string) bool {
	return pkg == "testing" ||
		strings.HasPrefix(pkg, module+"/internal/local/") ||
		strings.HasPrefix(pkg, module+"/internal/testenv/") ||
		strings.HasPrefix(pkg, module+"/internal/e2e/")
}

func goList(t *testing.T, args ...string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, append([]string{"list"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.Fields(string(out))
}

// leaks returns the non-production packages among deps.
func leaks(deps []string) []string {
	var bad []string
	for _, d := range deps {
		if nonProduction(d) {
			bad = append(bad, d)
		}
	}
	return bad
}

func TestFunctionsLinkOnlyProductionCode(t *testing.T) {
	deps := goList(t, "-deps", module+"/functions/...")
	if !slices.Contains(deps, module+"/internal/flow") {
		t.Fatalf("go list -deps of the functions does not reach internal/flow: %v", deps)
	}
	if bad := leaks(deps); len(bad) > 0 {
		t.Errorf("the Lambda functions link non-production code: %v", bad)
	}
	// Each function on its own, so that a new one is not missed.
	for _, fn := range []string{"initiate", "callback", "resumer", "continue"} {
		deps := goList(t, "-deps", module+"/functions/"+fn)
		if bad := leaks(deps); len(bad) > 0 {
			t.Errorf("functions/%s links non-production code: %v", fn, bad)
		}
		if slices.Contains(deps, "testing") {
			t.Errorf("functions/%s links testing", fn)
		}
	}
	if fns := goList(t, module+"/functions/..."); len(fns) != 4 {
		t.Errorf("functions: %v; add a new one to the list above", fns)
	}
}

// The commands (the demo and the emulator's server) are not production, but
// they are binaries: they must not link package testing or the harnesses.
func TestCommandsDoNotLinkTesting(t *testing.T) {
	for _, d := range goList(t, "-deps", module+"/cmd/...") {
		if d == "testing" || strings.HasPrefix(d, module+"/internal/testenv/") {
			t.Errorf("a command links %s", d)
		}
	}
}

// The detector must be able to fail: a harness that imports testing is
// flagged.
func TestDetectorFlagsHarness(t *testing.T) {
	deps := goList(t, "-deps", module+"/internal/testenv/dynamotest")
	bad := leaks(deps)
	if !slices.Contains(bad, "testing") || !slices.Contains(bad, module+"/internal/testenv/dynamotest") {
		t.Fatalf("leaks(deps of dynamotest) = %v, want testing and dynamotest itself", bad)
	}
}

// Only tests (and other harnesses) import the harnesses in internal/testenv.
func TestHarnessesAreTestOnly(t *testing.T) {
	lines := goList(t, "-f", `{{.ImportPath}}|{{join .Imports ","}}`, module+"/...")
	for _, line := range lines {
		pkg, imports, _ := strings.Cut(line, "|")
		if strings.HasPrefix(pkg, module+"/internal/testenv/") {
			continue
		}
		for _, imp := range strings.Split(imports, ",") {
			if strings.HasPrefix(imp, module+"/internal/testenv/") {
				t.Errorf("%s (non-test code) imports the test harness %s", pkg, imp)
			}
		}
	}
}

// agentauth is production code that users link into their agents: like the
// functions, it must not link the emulator, a stand-in, a harness or
// testing.
func TestAgentauthLinksOnlyProductionCode(t *testing.T) {
	deps := goList(t, "-deps", module+"/agentauth")
	if !slices.Contains(deps, module+"/internal/flow") {
		t.Fatalf("go list -deps of agentauth does not reach internal/flow: %v", deps)
	}
	if bad := leaks(deps); len(bad) > 0 {
		t.Errorf("agentauth links non-production code: %v", bad)
	}
}

// agentcoretest is a test helper users import: it links the emulator (that
// is its job) but not package testing, a harness or an end-to-end suite.
func TestAgentcoretestDoesNotLinkTesting(t *testing.T) {
	deps := goList(t, "-deps", module+"/agentcoretest")
	if !slices.Contains(deps, module+"/internal/local/emulator") {
		t.Fatalf("go list -deps of agentcoretest does not reach the emulator: %v", deps)
	}
	for _, d := range deps {
		if d == "testing" || strings.HasPrefix(d, module+"/internal/testenv/") || strings.HasPrefix(d, module+"/internal/e2e/") {
			t.Errorf("agentcoretest links %s", d)
		}
	}
}

// events is the public schema of consentflow's EventBridge events that
// users import into their consumers: it links the standard library only.
func TestEventsLinksOnlyTheStandardLibrary(t *testing.T) {
	deps := goList(t, "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", module+"/events")
	if !slices.Equal(deps, []string{module + "/events"}) {
		t.Errorf("events links %v, want the standard library only", deps)
	}
}
