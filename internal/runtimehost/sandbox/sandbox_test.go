package sandbox

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

func testSandbox(t *testing.T) *Sandbox {
	t.Helper()
	if os.Geteuid() != 0 {
		prereq.Missing(t, "the worker sandbox tests need root (CI runs them as root)")
	}
	sb, err := New(Config{Mode: Strict, UIDBase: 61000, UIDCount: 1000, TmpMB: 8, Pids: 64, MemoryMB: 128, MaxTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sb.Close)
	return sb
}

// run runs a shell script as a sandboxed worker and returns its output.
func runSandboxed(t *testing.T, sb *Sandbox, script string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir := t.TempDir()
	p, err := sb.Spawn(Spec{Role: RoleWorker, Argv: []string{"/bin/sh", "-c", script}, Dir: dir,
		Env: []string{"PATH=" + WorkerPath, "HOME=" + dir, "TMPDIR=" + dir}, Stdout: w, Stderr: w, Limits: Limits{OpenFiles: 64}})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, _ = out.ReadFrom(r)
	_, _ = p.Wait()
	return out.String()
}

// TestSandboxSeccompAndCaps checks that a worker can create no namespace (seccomp, no
// capabilities) and cannot mount, while an unprivileged uid could create a user
// namespace on this kernel without the filter.
func TestSandboxSeccompAndCaps(t *testing.T) {
	sb := testSandbox(t)
	out := runSandboxed(t, sb, `unshare -U true; echo "unshare=$?"; unshare -n true; echo "netns=$?"; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; ulimit -n; ulimit -c; id -u`)
	for _, want := range []string{"unshare=1", "netns=1", "CapEff:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2", "\n64\n", "\n0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %q in:\n%s", want, out)
		}
	}
}

// TestSandboxWithoutCgroups runs workers through a sandbox that has no cgroups (a host
// that cannot write them): starting, confining, checking and ending a worker work.
func TestSandboxWithoutCgroups(t *testing.T) {
	sb := testSandbox(t)
	sb.cg = nil
	for _, l := range []string{layerCgroupMemory, layerCgroupPids, layerCgroupKill} {
		sb.layers[l] = false
	}
	out := runSandboxed(t, sb, "echo hello")
	if strings.TrimSpace(out) != "hello" {
		t.Fatalf("output %q", out)
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	p, err := sb.Spawn(Spec{Role: RoleWorker, Argv: []string{"/bin/sleep", "30"}, Dir: t.TempDir(), Env: []string{"PATH=" + WorkerPath}, Stdout: w, Stderr: w})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if err := p.(Settler).Settle(); err != nil {
		t.Fatal(err)
	}
	if err := p.(Confiner).Confine(64); err != nil {
		t.Fatal(err)
	}
	if !p.(Cleaner).Clean() {
		t.Fatal("an untouched worker is not clean")
	}
	p.Kill()
	if _, err := p.Wait(); err == nil {
		t.Fatal("the killed worker exited cleanly")
	}
	sb.Close()
}
