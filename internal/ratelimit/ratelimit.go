// Package ratelimit enforces per-API-key request rates (GCRA in Redis, shared by every
// api replica, via redis_rate) and a per-tenant limit on invocations in flight (per api
// replica, in process). When Redis is unreachable the rate limit does not fail open: each
// replica falls back to an in-process token bucket with the same rate until Redis is back.
package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

// Config sets the limits; zero disables a limit.
type Config struct {
	Rate        int `env:"LAMBDA_RATE_LIMIT" envDefault:"5000"`        // requests per second per API key
	Burst       int `env:"LAMBDA_RATE_BURST" envDefault:"10000"`       // bucket size per API key
	Concurrency int `env:"LAMBDA_TENANT_CONCURRENCY" envDefault:"512"` // invocations in flight per tenant (per replica)
}

// Limiter applies the rate and concurrency limits.
type Limiter struct {
	cfg   Config
	redis *redis_rate.Limiter
	log   *zap.Logger

	mu      sync.Mutex
	local   map[string]*rate.Limiter
	running map[string]int
	leases  map[string]lease
	warned  time.Time
	// redisDownUntil skips Redis for a while after a failure, so an outage costs each
	// request nothing more than the local limiter.
	redisDownUntil time.Time
}

// redisRetry is how long the limiter stays local after a Redis failure.
const redisRetry = 2 * time.Second

// New returns a limiter using rdb for the shared rate limit.
func New(cfg Config, rdb *redis.Client, log *zap.Logger) *Limiter {
	l := &Limiter{cfg: cfg, log: log, local: map[string]*rate.Limiter{}, running: map[string]int{}, leases: map[string]lease{}}
	if rdb != nil {
		l.redis = redis_rate.NewLimiter(rdb)
	}
	return l
}

// Allow takes one request from key's budget; when refused it says how long to wait.
//
// Redis is asked for a lease of several tokens at once (up to 1 % of the per-second rate,
// at most 32) and the replica spends them locally, so a busy key costs one Redis round trip
// per lease instead of one per request. A replica may thus run ahead of the shared budget by
// at most one lease; at low rates the lease is a single token and the limit is exact.
func (l *Limiter) Allow(ctx context.Context, key string) (bool, time.Duration) {
	if l.cfg.Rate <= 0 {
		return true, 0
	}
	if l.redis != nil && l.redisUsable() {
		if l.takeLeased(key) {
			return true, 0
		}
		limit := redis_rate.Limit{Rate: l.cfg.Rate, Burst: max(l.cfg.Burst, 1), Period: time.Second}
		n := l.leaseSize()
		res, err := l.redis.AllowN(ctx, "lambda:rate:"+key, limit, n)
		if err == nil && res.Allowed < n && n > 1 {
			// Not a whole lease left: fall back to one token.
			res, err = l.redis.AllowN(ctx, "lambda:rate:"+key, limit, 1)
		}
		if err == nil {
			if res.Allowed == 0 {
				return false, res.RetryAfter
			}
			l.addLeased(key, res.Allowed-1)
			return true, 0
		}
		l.warn(err)
	}
	lim := l.localLimiter(key)
	r := lim.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// leaseSize is how many tokens one Redis call takes.
func (l *Limiter) leaseSize() int {
	return max(1, min(32, l.cfg.Rate/100, max(l.cfg.Burst, 1)/4))
}

// lease is a replica's unspent share of a key's budget; it expires so idle leases do not
// hoard tokens beyond the next second.
type lease struct {
	tokens  int
	expires time.Time
}

func (l *Limiter) takeLeased(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ls, ok := l.leases[key]
	if !ok || ls.tokens == 0 || time.Now().After(ls.expires) {
		return false
	}
	ls.tokens--
	l.leases[key] = ls
	return true
}

func (l *Limiter) addLeased(key string, n int) {
	if n <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.leases) > 100000 {
		clear(l.leases)
	}
	l.leases[key] = lease{tokens: n, expires: time.Now().Add(time.Second)}
}

func (l *Limiter) localLimiter(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.local[key]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.cfg.Rate), max(l.cfg.Burst, 1))
		l.local[key] = lim
	}
	return lim
}

func (l *Limiter) redisUsable() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return time.Now().After(l.redisDownUntil)
}

func (l *Limiter) warn(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.redisDownUntil = time.Now().Add(redisRetry)
	if time.Since(l.warned) > 10*time.Second {
		l.warned = time.Now()
		l.log.Warn("rate limit falls back to the in-process limiter: redis unavailable", logging.Err(err))
	}
}

// Acquire takes one of the tenant's in-flight slots; release must be called when done.
func (l *Limiter) Acquire(tenant string) (release func(), ok bool) {
	if l.cfg.Concurrency <= 0 {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[tenant] >= l.cfg.Concurrency {
		return nil, false
	}
	l.running[tenant]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.running[tenant]--
			if l.running[tenant] == 0 {
				delete(l.running, tenant)
			}
			l.mu.Unlock()
		})
	}, true
}
