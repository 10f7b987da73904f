// Package gobuild compiles the consentflow Lambda functions for the CDK app.
//
// The CDK app builds each function with the local Go toolchain (no Docker) before it defines the
// function, into a directory that holds exactly one file, bootstrap, which the app then hands to
// awslambda.Code_FromAsset. The build is reproducible (-trimpath, -buildvcs=false), so an
// unchanged function keeps its asset hash and a deploy does not replace it for nothing.
package gobuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Target platform of the functions: Lambda provided.al2023 on Graviton.
const (
	GOOS   = "linux"
	GOARCH = "arm64"
)

// Flags are the go build flags for a Lambda function, in order, without -o and the package.
//
// -tags lambda.norpc drops the legacy net/rpc runtime path (not used by provided.* runtimes);
// -buildvcs=false keeps the VCS revision out of the binary so the asset hash changes only when
// the code does.
var Flags = []string{"-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-tags", "lambda.norpc"}

// Env returns the environment for the cross-compilation: base (usually os.Environ()) with
// GOOS, GOARCH and CGO_ENABLED overridden.
func Env(base []string) []string {
	env := make([]string, 0, len(base)+3)
	for _, kv := range base {
		switch {
		case strings.HasPrefix(kv, "GOOS="), strings.HasPrefix(kv, "GOARCH="), strings.HasPrefix(kv, "CGO_ENABLED="):
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOOS="+GOOS, "GOARCH="+GOARCH, "CGO_ENABLED=0")
}

// ModuleRoot walks up from dir to the directory holding go.mod.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("gobuild: no go.mod found above the working directory; run the CDK app from the consentflow checkout")
		}
		dir = parent
	}
}

// Function builds the main package at pkg (relative to moduleRoot, e.g. "./functions/initiate")
// into outDir/bootstrap and returns outDir. outDir is created if missing; anything else in it is
// left alone, so give each function its own directory.
func Function(ctx context.Context, moduleRoot, pkg, outDir string) (string, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("gobuild: %w", err)
	}
	outDir, err := filepath.Abs(outDir)
	if err != nil {
		return "", fmt.Errorf("gobuild: %w", err)
	}
	args := append([]string{"build"}, Flags...)
	args = append(args, "-o", filepath.Join(outDir, "bootstrap"), pkg)
	cmd := exec.CommandContext(ctx, goTool(), args...)
	cmd.Dir = moduleRoot
	cmd.Env = Env(os.Environ())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("gobuild: go build %s failed: %w\n%s", pkg, err, out.String())
	}
	return outDir, nil
}

// Builder builds several functions under one temporary directory and removes it on Cleanup.
type Builder struct {
	ModuleRoot string
	Dir        string
	Timeout    time.Duration
}

// NewBuilder finds the module root from the working directory and makes a fresh temporary
// directory for the binaries (under tmpRoot, or the system temp directory when tmpRoot is "").
func NewBuilder(tmpRoot string) (*Builder, error) {
	wd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	root, err := ModuleRoot(wd)
	if err != nil {
		return nil, err
	}
	if tmpRoot != "" {
		if err := os.MkdirAll(tmpRoot, 0o755); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp(tmpRoot, "consentflow-lambda-")
	if err != nil {
		return nil, err
	}
	return &Builder{ModuleRoot: root, Dir: dir, Timeout: 10 * time.Minute}, nil
}

// Build compiles ./functions/<name> into <Dir>/<name>/bootstrap and returns that directory.
func (b *Builder) Build(name string) (string, error) {
	return b.BuildPackage("./functions/"+name, name)
}

// BuildPackage compiles the main package pkg (relative to the module root) into
// <Dir>/<name>/bootstrap and returns that directory.
func (b *Builder) BuildPackage(pkg, name string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), b.Timeout)
	defer cancel()
	return Function(ctx, b.ModuleRoot, pkg, filepath.Join(b.Dir, name))
}

// Cleanup removes the temporary directory. Call it after app.Synth: the assets are copied into
// the cloud assembly when the functions are defined.
func (b *Builder) Cleanup() error { return os.RemoveAll(b.Dir) }

func goTool() string {
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		p := filepath.Join(goroot, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "go"
}
