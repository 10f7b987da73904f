package chromium

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testPage = `<!doctype html><html><body>
<main data-outcome="confirm"><h1> Confirm the connection </h1>
<form method="post"><input name="code"><button type="submit">Connect</button></form></main></body></html>`

func TestStartDriveClose(t *testing.T) {
	requireChromium(t)
	var got string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.Method == http.MethodPost {
			_ = r.ParseForm()
			got = r.PostForm.Get("code")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<!doctype html><main data-outcome="ok"><h1>Connected</h1></main>`))
			return
		}
		_, _ = w.Write([]byte(testPage))
	}))
	defer ts.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pid, dir := b.PID(), b.UserDataDir()
	if pid == 0 {
		b.Close()
		t.Fatal("no browser pid")
	}
	func() {
		defer b.Close()
		p, err := b.NewPage()
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if st, err := p.Open(ctx, ts.URL); err != nil || st != 200 {
			t.Fatalf("open: %d %v", st, err)
		}
		if o, err := p.Outcome(ctx); err != nil || o != (Outcome{"confirm", "Confirm the connection"}) {
			t.Fatalf("outcome %v %v", o, err)
		}
		if ok, err := p.HasCodeInput(ctx); err != nil || !ok {
			t.Fatalf("code input: %v %v", ok, err)
		}
		st, err := p.EnterCode(ctx, "abcde-12345")
		if err != nil || st != http.StatusForbidden {
			t.Fatalf("enter code: %d %v", st, err)
		}
		if got != "abcde-12345" {
			t.Fatalf("server got code %q", got)
		}
		if o, _ := p.Outcome(ctx); o.String() != "ok: Connected" {
			t.Fatalf("after submit: %v", o)
		}
		a, err := p.SaveArtifacts(ctx, t.TempDir(), "x/y")
		if err != nil {
			t.Fatal(err)
		}
		png, _ := os.ReadFile(a.PNG)
		html, _ := os.ReadFile(a.HTML)
		if !bytes.HasPrefix(png, []byte("\x89PNG")) || !bytes.Contains(html, []byte("Connected")) {
			t.Fatal("bad artifacts")
		}
	}()

	// Nothing is left: no process of the group, none using the profile, no
	// profile directory.
	if left := groupMembers(pid); len(left) > 0 {
		t.Errorf("process group %d still has processes: %v", pid, left)
	}
	if n := countUsing(dir); n != 0 {
		t.Errorf("%d processes still use %s", n, dir)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("profile directory %s not removed", dir)
	}
}

func TestMissingChromium(t *testing.T) {
	_, err := Start(context.Background(), Options{ExecPath: "/nonexistent/chromium"})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("apt-get install chromium")) {
		t.Fatalf("err = %v", err)
	}
}

func countUsing(dir string) int {
	want := []byte("--user-data-dir=" + dir)
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				n++
			}
		}
	}
	return n
}

// groupMembers lists the live (not zombie) processes of process group pgid,
// waiting a little for killed ones to go.
func groupMembers(pgid int) []string {
	var left []string
	for try := 0; try < 50; try++ {
		left = nil
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ppid pgrp ...
			i := bytes.LastIndexByte(stat, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(string(stat[i+1:]))
			if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
				left = append(left, e.Name()+":"+f[0])
			}
		}
		if len(left) == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return left
}

// requireChromium is chromiumtest.Require for this package's own tests
// (which cannot import chromiumtest: it imports this package).
func requireChromium(t *testing.T) {
	t.Helper()
	if Skipped() {
		t.Skipf("browser tests disabled by %s=1", EnvSkip)
	}
	if err := CheckExecPath(ExecPath()); err != nil {
		t.Fatalf("%v; set %s=1 to skip the browser tests", err, EnvSkip)
	}
}
