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

// TestRangeCanRead: the invoke secret's check for workers on uids of their own without
// bubblewrap, across the layouts a deployment may mount the file in.
func TestRangeCanRead(t *testing.T) {
	if os.Geteuid() != 0 {
		prereq.Missing(t, "the ownership cases need root (CI runs them as root)")
	}
	const base, count = 64000, 100
	root, err := os.MkdirTemp("", "lambda-range-") // (t.TempDir's parent is 0700: closed to every worker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name             string
		dirMode          os.FileMode
		dirUID, dirGID   int
		fileMode         os.FileMode
		fileUID, fileGID int
		readable         bool
	}{
		{"0644 in an open folder (OpenFaaS's default mode)", 0o755, 0, 0, 0o644, 0, 0, true},
		{"0644 under a 0710 root:10001 folder (the runtime images)", 0o710, 0, 10001, 0o644, 0, 0, false},
		{"0400 of the host's uid", 0o755, 0, 0, 0o400, 10001, 10001, false},
		{"0440 of the host's group (fsGroup)", 0o755, 0, 0, 0o440, 0, 10001, false},
		{"0600 owned by a worker uid", 0o755, 0, 0, 0o600, base + 7, 0, true},
		{"0640 of a worker uid's group", 0o755, 0, 0, 0o640, 0, base + 3, true},
		{"0644 under a folder only a worker uid enters", 0o700, base + 1, 0, 0o644, 0, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir, err := os.MkdirTemp(root, "d")
			if err != nil {
				t.Fatal(err)
			}
			file := dir + "/secret"
			if err := os.WriteFile(file, []byte("s"), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, x := range []struct {
				path     string
				mode     os.FileMode
				uid, gid int
			}{{dir, c.dirMode, c.dirUID, c.dirGID}, {file, c.fileMode, c.fileUID, c.fileGID}} {
				if err := os.Chown(x.path, x.uid, x.gid); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(x.path, x.mode); err != nil {
					t.Fatal(err)
				}
			}
			got, why := rangeCanRead(file, base, count)
			if got != c.readable {
				t.Fatalf("rangeCanRead = %v (%s), want %v", got, why, c.readable)
			}
			if got && !strings.Contains(why, file) {
				t.Fatalf("the reason names no file: %s", why)
			}
		})
	}
}
