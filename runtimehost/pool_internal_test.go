package runtimehost

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/fault"
	"github.com/lambda-microservice/lambda/metrics"
)

// A request that queued behind a background start that fails is not left waiting for its
// queue time: it tries a start itself and gets the error at once.
func TestPoolFailedBackgroundStartReachesTheWaiter(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	var starts atomic.Int32
	p := newPool(4, 8, time.Minute, true, func(*script) (*worker, error) {
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
