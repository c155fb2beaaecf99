package ratelimit_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/ratelimit"
)

func count(l *ratelimit.Limiter, key string, n int) (allowed int) {
	for i := 0; i < n; i++ {
		if ok, _ := l.Allow(context.Background(), key); ok {
			allowed++
		}
	}
	return allowed
}

func TestRedisGCRA(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	require.NoError(t, rdb.Ping(context.Background()).Err(), "Redis on 127.0.0.1:6379 is required")
	l := ratelimit.New(ratelimit.Config{Rate: 10, Burst: 10}, rdb, zap.NewNop())
	key := fmt.Sprintf("test-%d", time.Now().UnixNano())
	require.InDelta(t, 10, count(l, key, 30), 1)
	ok, wait := l.Allow(context.Background(), key)
	require.False(t, ok)
	require.Greater(t, wait, time.Duration(0))
}

func TestRedisDownKeepsALocalLimit(t *testing.T) {
	t.Parallel()
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	defer dead.Close()
	l := ratelimit.New(ratelimit.Config{Rate: 10, Burst: 10}, dead, zap.NewNop())
	require.InDelta(t, 10, count(l, "k", 30), 1, "without Redis the same rate holds per replica")
	require.InDelta(t, 10, count(l, "other", 30), 1, "keys are limited separately")
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	l := ratelimit.New(ratelimit.Config{Concurrency: 2}, nil, zap.NewNop())
	r1, ok := l.Acquire("t")
	require.True(t, ok)
	r2, ok := l.Acquire("t")
	require.True(t, ok)
	_, ok = l.Acquire("t")
	require.False(t, ok)
	_, ok = l.Acquire("other")
	require.True(t, ok, "tenants do not share slots")
	r1()
	r1() // releasing twice frees one slot only
	_, ok = l.Acquire("t")
	require.True(t, ok)
	_, ok = l.Acquire("t")
	require.False(t, ok)
	r2()
}

// TestLeasesKeepTheSharedLimit: two replicas sharing a key through Redis together stay
// within rate + burst + one lease each, while each replica asks Redis only once per lease.
func TestLeasesKeepTheSharedLimit(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	require.NoError(t, rdb.Ping(context.Background()).Err(), "Redis on 127.0.0.1:6379 is required")
	cfg := ratelimit.Config{Rate: 3200, Burst: 400}
	a := ratelimit.New(cfg, rdb, zap.NewNop())
	b := ratelimit.New(cfg, rdb, zap.NewNop())
	key := fmt.Sprintf("lease-%d", time.Now().UnixNano())
	start := time.Now()
	allowed := count(a, key, 600) + count(b, key, 600)
	elapsed := time.Since(start)
	refill := int(elapsed.Seconds()*float64(cfg.Rate)) + 1
	require.GreaterOrEqual(t, allowed, cfg.Burst, "the burst is available")
	require.LessOrEqual(t, allowed, cfg.Burst+refill+2*32, "replicas run ahead by one lease at most")
}

// TestTenantRegistrationAndLongPollLimits: the tenant budget, the registrations per
// minute and the long-poll slots are limits of their own, per tenant.
func TestTenantRegistrationAndLongPollLimits(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	require.NoError(t, rdb.Ping(context.Background()).Err(), "Redis on 127.0.0.1:6379 is required")
	l := ratelimit.New(ratelimit.Config{TenantRate: 10, TenantBurst: 10, Registrations: 3, LongPolls: 1}, rdb, zap.NewNop())
	ctx := context.Background()
	tenant := fmt.Sprintf("tenant-%d", time.Now().UnixNano())
	allowed := 0
	for range 30 {
		if ok, _ := l.AllowTenant(ctx, tenant); ok {
			allowed++
		}
	}
	require.InDelta(t, 10, allowed, 1)
	allowed = 0
	for range 5 {
		if ok, _ := l.AllowRegistration(ctx, tenant); ok {
			allowed++
		}
	}
	require.Equal(t, 3, allowed)
	ok, wait := l.AllowRegistration(ctx, tenant)
	require.False(t, ok)
	require.Greater(t, wait, 10*time.Second, "the next registration is a third of a minute away")
	ok, _ = l.AllowRegistration(ctx, tenant+"-other")
	require.True(t, ok, "another tenant's registrations are counted apart")

	release, ok := l.AcquireLongPoll(tenant)
	require.True(t, ok)
	_, ok = l.AcquireLongPoll(tenant)
	require.False(t, ok)
	inv, ok := l.Acquire(tenant)
	require.True(t, ok, "long-polls do not take invocation slots")
	inv()
	release()
	_, ok = l.AcquireLongPoll(tenant)
	require.True(t, ok)
}

// TestConcurrentCallersShareOneLease: callers of one key arriving together (a stall's
// backlog, a client's burst) wait for one lease instead of each taking a lease of its own
// and spending one token of it — which drained the budget many times faster than the
// requests came and refused requests well under the limit.
func TestConcurrentCallersShareOneLease(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", PoolSize: 256})
	defer rdb.Close()
	require.NoError(t, rdb.Ping(context.Background()).Err(), "Redis on 127.0.0.1:6379 is required")
	cfg := ratelimit.Config{Rate: 3200, Burst: 400, TenantRate: 3200, TenantBurst: 400}
	l := ratelimit.New(cfg, rdb, zap.NewNop())
	key := fmt.Sprintf("together-%d", time.Now().UnixNano())
	const callers, each = 64, 5 // 320 requests, within the burst of 400
	var refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			for range each {
				if ok, _ := l.Allow(context.Background(), key); !ok {
					refused.Add(1)
				}
				if ok, _ := l.AllowTenant(context.Background(), key); !ok {
					refused.Add(1)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	require.Zero(t, refused.Load(), "%d requests within the burst refused", callers*each)
}
