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

// One tenant holds at most its share of the workers: its next call waits for one of its
// own, while another tenant's call still finds a worker at once.
func TestPoolTenantShare(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	gone := make(chan struct{})
	close(gone) // kill is a no-op for these stand-ins
	p := newPool(4, 16, 200*time.Millisecond, time.Second, false, func(*script) (*worker, error) {
		return &worker{exited: gone}, nil
	}, newHostMetrics("t", metrics.NewRuntime(reg), metrics.NewHTTP(reg)), zap.NewNop())
	p.share = 2
	t.Cleanup(p.close)
	a1, _, err := p.acquire(poolKey{sha: "a", tenant: "A"}, &script{})
	require.NoError(t, err)
	a2, _, err := p.acquire(poolKey{sha: "a2", tenant: "A"}, &script{})
	require.NoError(t, err)
	start := time.Now()
	_, _, err = p.acquire(poolKey{sha: "a3", tenant: "A"}, &script{})
	require.Error(t, err, "A holds its share: its third call waits and times out")
	require.True(t, fault.Is(err, fault.TenantShare), "A's own backlog, not an overload: %v", err)
	require.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond)
	b, _, err := p.acquire(poolKey{sha: "b", tenant: "B"}, &script{})
	require.NoError(t, err, "B still finds a worker")
	b2, _, err := p.acquire(poolKey{sha: "b2", tenant: "B"}, &script{})
	require.NoError(t, err)
	_, _, err = p.acquire(poolKey{sha: "c", tenant: "C"}, &script{})
	require.True(t, fault.Is(err, fault.Overloaded), "every worker busy, C below its share: an overload: %v", err)
	p.release(b2, true)

	// A's waiting call gets a worker as soon as one of A's is released.
	got := make(chan error, 1)
	go func() {
		w, _, err := p.acquire(poolKey{sha: "a4", tenant: "A"}, &script{})
		if err == nil {
			p.release(w, false)
		}
		got <- err
	}()
	time.Sleep(50 * time.Millisecond)
	p.release(a1, true)
	require.NoError(t, <-got)
	p.release(a2, true)
	p.release(b, true)
	p.mu.Lock()
	defer p.mu.Unlock()
	require.Empty(t, p.tenantBusy, "every hold ended")
	require.Zero(t, p.busy)
}
