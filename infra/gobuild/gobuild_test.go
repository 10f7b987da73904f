package gobuild

import (
	"debug/elf"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestEnvOverridesPlatform(t *testing.T) {
	env := Env([]string{"HOME=/h", "GOOS=darwin", "GOARCH=amd64", "CGO_ENABLED=1", "GOFLAGS=-mod=mod"})
	want := []string{"HOME=/h", "GOFLAGS=-mod=mod", "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"}
	if !slices.Equal(env, want) {
		t.Fatalf("Env = %q, want %q", env, want)
	}
}

func TestFlagsMatchTheContract(t *testing.T) {
	for _, f := range []string{"-trimpath", "-s -w", "lambda.norpc"} {
		if !slices.Contains(Flags, f) {
			t.Errorf("Flags %q lack %q", Flags, f)
		}
	}
}

// TestBuildsStaticArm64Bootstrap runs the real build (of a stand-in function in testdata, so the
// test does not depend on ./functions compiling at the moment) and checks the result is what
// provided.al2023 on arm64 runs: a static, stripped aarch64 ELF executable named bootstrap.
func TestBuildsStaticArm64Bootstrap(t *testing.T) {
	b, err := NewBuilder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Cleanup()
	dir, err := b.BuildPackage("./infra/gobuild/testdata/hello", "hello")
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(filepath.Join(dir, "bootstrap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || f.Type != elf.ET_EXEC {
		t.Errorf("machine %v type %v, want EM_AARCH64 ET_EXEC", f.Machine, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("has an ELF interpreter, so it is not statically linked (CGO_ENABLED=0?)")
		}
	}
	if s := f.Section(".symtab"); s != nil {
		t.Error("symbol table present: -ldflags \"-s -w\" not applied")
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("asset directory should hold only bootstrap, has %v (%v)", entries, err)
	}
}

func TestBuildFailureNamesThePackage(t *testing.T) {
	b, err := NewBuilder(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Cleanup()
	_, err = b.BuildPackage("./infra/gobuild/testdata/missing", "missing")
	if err == nil || !strings.Contains(err.Error(), "./infra/gobuild/testdata/missing") {
		t.Fatalf("err = %v, want a build error naming the package", err)
	}
}

func TestModuleRootFindsGoMod(t *testing.T) {
	root, err := ModuleRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "module github.com/consentflow/consentflow") {
		t.Fatalf("%s/go.mod is not the consentflow module", root)
	}
}
