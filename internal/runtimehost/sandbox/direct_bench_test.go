package sandbox

import (
	"os"
	"testing"
	"time"

	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// BenchmarkDirectSpawn starts and reaps /bin/true as a direct worker (own uid, no
// bubblewrap), with the seccomp filter loaded by the confining thread and without it: the
// cost of starting every direct worker from that one thread.
func BenchmarkDirectSpawn(b *testing.B) {
	if os.Geteuid() != 0 {
		prereq.Missing(b, "direct workers need root or the capabilities (CI runs as root)")
	}
	sb, err := New(Config{Mode: Auto, Bwrap: "/nonexistent/bwrap", UIDBase: 62000, UIDCount: 100, TmpMB: 8, Pids: 64, MemoryMB: 64, MaxTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sb.Close)
	if !sb.Direct() || sb.filter == nil {
		b.Fatalf("want a direct sandbox with seccomp: %v", sb.Missing())
	}
	filter := sb.filter
	for _, c := range []struct {
		name    string
		seccomp bool
	}{{"seccomp", true}, {"no-seccomp", false}} {
		b.Run(c.name, func(b *testing.B) {
			sb.filter = nil
			if c.seccomp {
				sb.filter = filter
			}
			for b.Loop() {
				dir, err := os.MkdirTemp("", "lambda-bench-") // (b.TempDir's parent is closed to the worker)
				if err != nil {
					b.Fatal(err)
				}
				p, err := sb.Spawn(Spec{Role: RoleWorker, Argv: []string{"/bin/true"}, Dir: dir, Env: []string{"PATH=" + WorkerPath}})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := p.Wait(); err != nil {
					b.Fatal(err)
				}
				os.RemoveAll(dir)
			}
		})
	}
	sb.filter = filter
}
