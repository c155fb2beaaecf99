package runtimehost

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/lambda-microservice/lambda/internal/runtimehost/sandbox"
)

// BenchmarkSandboxSpawn measures starting a Python worker until its hello frame (what a
// spare costs in the background, and a Rust worker on a first call) with the plain
// spawner and in the sandbox.
func BenchmarkSandboxSpawn(b *testing.B) {
	sb, err := sandbox.New(sandbox.Config{Mode: sandbox.Auto, UIDBase: 61000, UIDCount: 1000, TmpMB: 64, Pids: 256, MemoryMB: 256, MaxTimeout: 15 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sb.Close)
	bootstrap, err := filepath.Abs("../../runtimes/python/bootstrap.py")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		sp   sandbox.Spawner
	}{{"plain", sandbox.Plain{}}, {"sandbox", sb}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				w, err := startWorker(&startSpec{
					argv: []string{"/usr/bin/python3", "-I", "-u", bootstrap}, tmpBase: b.TempDir(),
					outputLimit: 1024, limits: sandbox.Limits{FileSize: 1 << 27, OpenFiles: 1024, Processes: 4096},
					readOnly: []string{b.TempDir()}, timeout: 10 * time.Second, spawner: c.sp,
				})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				w.kill()
				<-w.exited
				b.StartTimer()
			}
		})
	}
}

// BenchmarkSandboxConfine measures what the sandbox adds to a new version's first call:
// confining the spare (cgroups joined, memory limit) before its init frame.
func BenchmarkSandboxConfine(b *testing.B) {
	sb, err := sandbox.New(sandbox.Config{Mode: sandbox.Auto, UIDBase: 61000, UIDCount: 1000, TmpMB: 64, Pids: 256, MemoryMB: 256, MaxTimeout: 15 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(sb.Close)
	bootstrap, err := filepath.Abs("../../runtimes/python/bootstrap.py")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		b.StopTimer()
		w, err := startWorker(&startSpec{
			argv: []string{"/usr/bin/python3", "-I", "-u", bootstrap}, tmpBase: b.TempDir(), outputLimit: 1024,
			limits: sandbox.Limits{FileSize: 1 << 27, OpenFiles: 1024}, readOnly: []string{b.TempDir()}, timeout: 10 * time.Second, spawner: sb,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := w.proc.(sandbox.Confiner).Confine(128); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		w.kill()
		<-w.exited
		b.StartTimer()
	}
}
