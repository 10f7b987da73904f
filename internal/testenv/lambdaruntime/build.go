package lambdaruntime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/consentflow/consentflow/infra/gobuild"
)

// BuildFlags are the go build flags of a Lambda bootstrap: the CDK app's
// own (infra/gobuild), so tests run binaries built exactly as deployed.
var BuildFlags = gobuild.Flags

// Build compiles the main package pkg (an import path or a ./relative
// directory, resolved from dir) for linux/goarch into outDir/bootstrap and
// returns the binary's path.
func Build(ctx context.Context, dir, pkg, goarch, outDir string) (string, error) {
	out := filepath.Join(outDir, "bootstrap")
	args := append(append([]string{"build"}, BuildFlags...), "-o", out, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s (GOARCH=%s): %v\n%s", strings.Join(args, " "), goarch, err, b)
	}
	return out, nil
}
