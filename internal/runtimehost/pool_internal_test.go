package runtimehost

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/runtimehost/sandbox"
)

// A request that queued behind a background start that fails is not left waiting for its
// queue time: it tries a start itself and gets the error at once.
func TestPoolFailedBackgroundStartReachesTheWaiter(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	var starts atomic.Int32
	p := newPool(4, 8, time.Minute, time.Minute, true, func(*script) (*worker, error) {
		starts.Add(1)
		time.Sleep(20 * time.Millisecond)
		return nil, errors.New("exec: no such file")
	}, newHostMetrics("t", metrics.NewRuntime(reg), metrics.NewHTTP(reg)), zap.NewNop())
	t.Cleanup(p.close)
	begin := time.Now()
	_, _, err := p.acquire(poolKey{sha: "a"}, &script{})
	require.True(t, fault.Is(err, fault.Unavailable), "%v", err)
	require.Contains(t, err.Error(), "no such file")
	require.Less(t, time.Since(begin), 10*time.Second, "the waiter did not sit out its queue time")
	require.GreaterOrEqual(t, starts.Load(), int32(2), "the background start, then the waiter's own")
	p.mu.Lock()
	defer p.mu.Unlock()
	starting := 0
	if p.spareStarting { // the pool keeps trying to start a spare, with backoff
		starting = 1
	}
	require.Equal(t, starting, p.live, "no slot leaked")
	require.Zero(t, p.busy)
	require.Zero(t, p.waiters.Len())
}

// Spares left by a burst stop after the idle timeout; the pool keeps one.
func TestPoolReapsExtraSpares(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	gone := make(chan struct{})
	close(gone)
	p := newPool(8, 8, time.Minute, time.Minute, true, func(*script) (*worker, error) {
		return nil, errors.New("not used")
	}, newHostMetrics("t", metrics.NewRuntime(reg), metrics.NewHTTP(reg)), zap.NewNop())
	t.Cleanup(p.close)
	now := time.Now()
	spare := func(age time.Duration) *worker { return &worker{exited: gone, lastUsed: now.Add(-age)} }
	fresh := spare(0)
	p.mu.Lock()
	p.spares = []*worker{spare(time.Hour), spare(time.Hour), fresh}
	p.live = 3
	p.mu.Unlock()

	p.reap(time.Minute)
	p.mu.Lock()
	require.Equal(t, []*worker{fresh}, p.spares, "the stale extra spares stopped")
	require.Equal(t, 1, p.live)
	p.spares = []*worker{spare(time.Hour), spare(time.Hour)}
	p.live = 2
	p.mu.Unlock()

	p.reap(time.Minute)
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Len(t, p.spares, 1, "one spare stays however old")
	require.Equal(t, 1, p.live)
}

// A request queued behind the process started for it waits for that start (its own bound,
// StartTimeout), not only for the queue time: a slow start is not an "overloaded" 503.
func TestPoolWaiterOutlastsQueueWaitForItsStart(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	gone := make(chan struct{})
	close(gone)
	p := newPool(4, 8, 50*time.Millisecond, 10*time.Second, true, func(*script) (*worker, error) {
		time.Sleep(300 * time.Millisecond)
		return &worker{exited: gone}, nil
	}, newHostMetrics("t", metrics.NewRuntime(reg), metrics.NewHTTP(reg)), zap.NewNop())
	t.Cleanup(p.close)
	w, fresh, err := p.acquire(poolKey{sha: "a"}, &script{})
	require.NoError(t, err)
	require.NotNil(t, w)
	require.True(t, fresh, "the new process comes unassigned")
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Equal(t, 1, p.live)
	require.Equal(t, 1, p.busy)
	require.Zero(t, p.growing)
}

// A worker that dies before its hello says why: the start error carries its stderr.
func TestStartErrorCarriesTheWorkersStderr(t *testing.T) {
	t.Parallel()
	_, err := startWorker(&startSpec{
		argv:        []string{"/usr/bin/python3", "-c", "import sys; sys.stderr.write('no bootstrap here\\n'); sys.exit(3)"},
		tmpBase:     t.TempDir(),
		outputLimit: 1 << 16,
		limits:      sandbox.Limits{OpenFiles: 64, Processes: 4096},
		timeout:     10 * time.Second,
		spawner:     sandbox.Plain{},
	})
	require.Error(t, err)
	require.Contains(t, err.Error(), "exit status 3")
	require.Contains(t, err.Error(), "no bootstrap here")
}
