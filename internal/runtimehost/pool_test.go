package runtimehost_test

import (
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const pySleep = `import time
def handler(event, context):
    time.sleep(event.get("ms", 0) / 1000)
    return context.function
`

func TestPoolOverloaded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bundledRegistry, "python", "", map[string]string{
		"LAMBDA_RUNTIME_WORKERS": "1", "LAMBDA_RUNTIME_QUEUE": "0",
	})
	h.ok(t, "warmup", pySleep, map[string]int{}, "succeeded", nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		h.ok(t, "slow", pySleep, map[string]int{"ms": 600}, "succeeded", nil)
	})
	time.Sleep(200 * time.Millisecond)
	code, r := h.call(t, "other", pySleep, map[string]int{}, nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "Overloaded", r.Error.Type)
	wg.Wait()
	h.ok(t, "other", pySleep, map[string]int{}, "succeeded", nil)
}

func TestPoolQueuesAndEvicts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bundledRegistry, "python", "", map[string]string{
		"LAMBDA_RUNTIME_WORKERS": "2", "LAMBDA_RUNTIME_QUEUE": "8", "LAMBDA_RUNTIME_QUEUE_WAIT": "5s",
	})
	// More functions than workers: each new one evicts the least recently used.
	for _, fn := range []string{"f1", "f2", "f3", "f1"} {
		r := h.ok(t, fn, pySleep, map[string]int{}, "succeeded", nil)
		require.JSONEq(t, `"`+fn+`"`, string(r.Result))
	}
	r := h.ok(t, "f1", pySleep, map[string]int{}, "succeeded", nil)
	require.False(t, r.Cold)
	// Four concurrent calls on two workers: two wait in the queue, none is refused.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			h.ok(t, "f1", pySleep, map[string]int{"ms": 200}, "succeeded", nil)
		})
	}
	wg.Wait()
}

// slowStartRegistry is a registry with one runtime, "slowpy": the bundled Python bootstrap
// behind a one-second start, so a request that waited for a new process would show it.
// Its folder is under the test's temporary directory, which a sandboxed worker does not
// see (it gets a private /tmp): run it with LAMBDA_SANDBOX=off.
func slowStartRegistry(t *testing.T) string {
	t.Helper()
	bootstrap, err := os.ReadFile("../../runtimes/python/bootstrap.py")
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "slowpy"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "slowpy", "bootstrap.py"), bootstrap, 0o644))
	path := filepath.Join(dir, "runtimes.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`runtimes:
  - title: slowpy
    function: runtime-slowpy
    image: example/slowpy
    source_file: handler.py
    command: ["/usr/bin/python3", "-I", "-u", "-c", "import runpy, time; time.sleep(1); runpy.run_path('{runtime_dir}/bootstrap.py', run_name='__main__')"]
`), 0o644))
	return path
}

// A burst on a warm function is served by the warm worker as it frees up, not by
// requests each waiting for an interpreter to start; the pool still grows behind it.
func TestPoolBurstIsServedByReleasedWorkers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, slowStartRegistry(t), "slowpy", "", map[string]string{
		"LAMBDA_RUNTIME_WORKERS": "4", "LAMBDA_RUNTIME_QUEUE": "8", "LAMBDA_RUNTIME_QUEUE_WAIT": "10s",
		"LAMBDA_SANDBOX": "off",
	})
	h.ok(t, "f", pySleep, map[string]int{}, "succeeded", nil) // binds the spare; the next spare takes 1 s
	// burst runs n concurrent calls of f sleeping ms and counts those that bound a new worker.
	burst := func(n, ms int) (bound int) {
		var wg sync.WaitGroup
		cold := make(chan bool, n)
		for range n {
			wg.Go(func() {
				cold <- h.ok(t, "f", pySleep, map[string]int{"ms": ms}, "succeeded", nil).Cold
			})
		}
		wg.Wait()
		close(cold)
		for c := range cold {
			if c {
				bound++
			}
		}
		return bound
	}
	start := time.Now()
	require.Zero(t, burst(3, 100), "every call of the burst ran on the warm worker")
	require.Less(t, time.Since(start), 900*time.Millisecond, "no call waited for a process start")
	// The processes started behind the burst (and the regular spare) stay as spares: the
	// next burst binds them instead of queueing on the one warm worker, so the function
	// gains workers; a call that finds a spare never waits for a process start.
	time.Sleep(1500 * time.Millisecond)
	start = time.Now()
	bound := burst(4, 300)
	require.Equal(t, 3, bound, "one call on the warm worker, three on the spares the first burst left")
	require.Less(t, time.Since(start), 900*time.Millisecond, "no call waited for a process start")
}
