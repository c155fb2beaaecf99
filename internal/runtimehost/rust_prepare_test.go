package runtimehost_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// Replicas of the Rust runtime sharing one cache folder prepare one at a time (a soak found
// one failing with "cannot find value `handler`": another replica rewrote the shared prepare
// sources under its compiler). A prepare waits for the folder's lock before it writes
// anything, and several at once all succeed.
func TestRustPrepareSharesACacheFolder(t *testing.T) {
	for _, tool := range []string{"cargo", "flock"} {
		if _, err := exec.LookPath(tool); err != nil {
			prereq.Missing(t, "%s: %v", tool, err)
		}
	}
	rt, err := filepath.Abs("../../runtimes/rust")
	require.NoError(t, err)
	prepare := func(cache string) *exec.Cmd {
		return exec.Command("sh", filepath.Join(rt, "build.sh"), "--prepare", cache, rt)
	}

	t.Run("waits for the lock before writing", func(t *testing.T) {
		cache := t.TempDir()
		lock := filepath.Join(cache, "prepare.lock")
		holder := exec.Command("flock", lock, "sleep", "3")
		require.NoError(t, holder.Start())
		t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
		require.Eventually(t, func() bool { // held once a non-blocking flock fails
			return exec.Command("flock", "-n", lock, "true").Run() != nil
		}, 5*time.Second, 20*time.Millisecond)

		cmd := prepare(cache)
		out := make(chan error, 1)
		go func() {
			b, err := cmd.CombinedOutput()
			if err != nil {
				t.Logf("%s", b)
			}
			out <- err
		}()
		time.Sleep(time.Second)
		_, statErr := os.Stat(filepath.Join(cache, "prepare", "handler.rs"))
		require.True(t, os.IsNotExist(statErr), "the prepare wrote its sources while another held the lock")
		require.NoError(t, holder.Wait())
		require.NoError(t, <-out)
	})

	t.Run("three at once", func(t *testing.T) {
		cache := t.TempDir()
		var wg sync.WaitGroup
		outs, errs := make([][]byte, 3), make([]error, 3)
		for i := range outs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				outs[i], errs[i] = prepare(cache).CombinedOutput()
			}()
		}
		wg.Wait()
		for i := range outs {
			require.NoError(t, errs[i], "prepare %d: %s", i, outs[i])
		}
	})
}
