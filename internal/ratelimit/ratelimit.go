// Package ratelimit enforces request rates — per API key, per tenant (one budget shared by
// all of a tenant's keys, so minting keys buys no extra rate) and per tenant for
// registrations — as GCRA in Redis, shared by every api replica (redis_rate), and
// per-tenant limits on invocations and long-polls in flight (per api replica, in
// process). When Redis is unreachable the rates do not fail open: each replica falls back
// to an in-process token bucket with the same rate until Redis is back.
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
	Rate        int `env:"LAMBDA_RATE_LIMIT" envDefault:"5000"`         // requests per second per API key
	Burst       int `env:"LAMBDA_RATE_BURST" envDefault:"10000"`        // bucket size per API key
	TenantRate  int `env:"LAMBDA_TENANT_RATE_LIMIT" envDefault:"10000"` // requests per second per tenant, all its keys
	TenantBurst int `env:"LAMBDA_TENANT_RATE_BURST" envDefault:"20000"` // bucket size per tenant
	Concurrency int `env:"LAMBDA_TENANT_CONCURRENCY" envDefault:"512"`  // invocations and registrations in flight per tenant (per replica)
	LongPolls   int `env:"LAMBDA_TENANT_LONG_POLLS" envDefault:"1024"`  // long-polls in flight per tenant (per replica)
	// Registrations bounds a tenant's registrations and new versions per minute (each
	// builds its script on a runtime), with a burst of as many.
	Registrations int `env:"LAMBDA_TENANT_REGISTRATIONS_PER_MINUTE" envDefault:"120"`
}

// limit is one rate: rate per period, with burst.
type limit struct {
	rate, burst int
	period      time.Duration
}

func (l limit) off() bool { return l.rate <= 0 }

func (c Config) keyLimit() limit    { return limit{c.Rate, max(c.Burst, 1), time.Second} }
func (c Config) tenantLimit() limit { return limit{c.TenantRate, max(c.TenantBurst, 1), time.Second} }
func (c Config) registrationLimit() limit {
	return limit{c.Registrations, max(c.Registrations, 1), time.Minute}
}

// Limiter applies the rate and concurrency limits.
type Limiter struct {
	cfg   Config
	redis *redis_rate.Limiter
	log   *zap.Logger

	mu      sync.Mutex
	local   map[string]*rate.Limiter
	running map[string]int // "invoke:"/"poll:" + tenant → slots taken
	leases  map[string]*lease
	warned  time.Time
	// redisDownUntil skips Redis for a while after a failure, so an outage costs each
	// request nothing more than the local limiter.
	redisDownUntil time.Time
}

// redisRetry is how long the limiter stays local after a Redis failure.
const redisRetry = 2 * time.Second

// New returns a limiter using rdb for the shared rate limit.
func New(cfg Config, rdb *redis.Client, log *zap.Logger) *Limiter {
	l := &Limiter{cfg: cfg, log: log, local: map[string]*rate.Limiter{}, running: map[string]int{}, leases: map[string]*lease{}}
	if rdb != nil {
		l.redis = redis_rate.NewLimiter(rdb)
	}
	return l
}

// Allow takes one request from an API key's budget; when refused it says how long to
// wait.
func (l *Limiter) Allow(ctx context.Context, key string) (bool, time.Duration) {
	return l.allow(ctx, "lambda:rate:"+key, l.cfg.keyLimit())
}

// AllowTenant takes one request from a tenant's budget, which all its keys share.
func (l *Limiter) AllowTenant(ctx context.Context, tenant string) (bool, time.Duration) {
	return l.allow(ctx, "lambda:rate:tenant:"+tenant, l.cfg.tenantLimit())
}

// AllowRegistration takes one registration (or new version) from a tenant's budget.
func (l *Limiter) AllowRegistration(ctx context.Context, tenant string) (bool, time.Duration) {
	return l.allow(ctx, "lambda:rate:registrations:"+tenant, l.cfg.registrationLimit())
}

// allow takes one request from bucket's budget under lim.
//
// Redis is asked for a lease of several tokens at once (up to 1 % of the per-second rate,
// at most 32) and the replica spends them locally, so a busy key costs one Redis round trip
// per lease instead of one per request. A replica may thus run ahead of the shared budget by
// at most one lease; at low rates the lease is a single token and the limit is exact.
// One caller per bucket asks Redis at a time: callers that find the lease empty while it
// is being refilled wait for that answer (one round trip) instead of each taking a lease of
// their own and spending one token of it, which drained a budget many times faster than
// requests came whenever they arrived together (after any stall) and refused them well
// under the limit.
func (l *Limiter) allow(ctx context.Context, bucket string, lim limit) (bool, time.Duration) {
	if lim.off() {
		return true, 0
	}
	if l.redis != nil && l.redisUsable() {
		ok, wait, err := l.allowLeased(ctx, bucket, lim)
		if err == nil {
			return ok, wait
		}
		if ctx.Err() != nil {
			return false, 0 // the caller is gone
		}
		l.warn(err)
	}
	r := l.localLimiter(bucket, lim).Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return false, d
	}
	return true, 0
}

// lease is a replica's unspent share of a bucket's budget; it expires so idle leases do
// not hoard tokens beyond the next second. filling is set while one caller asks Redis for
// the next lease (closed when it has the answer); refusedUntil remembers Redis' last
// refusal, so the callers that waited for it are refused without a round trip each.
type lease struct {
	tokens       int
	expires      time.Time
	filling      chan struct{}
	refusedUntil time.Time
}

// allowLeased takes a token of bucket's lease, refilling it from Redis when it is empty.
func (l *Limiter) allowLeased(ctx context.Context, bucket string, lim limit) (bool, time.Duration, error) {
	for {
		l.mu.Lock()
		ls := l.leases[bucket]
		if ls == nil {
			if len(l.leases) > 100000 {
				clear(l.leases)
			}
			ls = &lease{}
			l.leases[bucket] = ls
		}
		now := time.Now()
		if ls.tokens > 0 && now.Before(ls.expires) {
			ls.tokens--
			l.mu.Unlock()
			return true, 0, nil
		}
		if now.Before(ls.refusedUntil) {
			l.mu.Unlock()
			return false, ls.refusedUntil.Sub(now), nil
		}
		if ch := ls.filling; ch != nil {
			l.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return false, 0, ctx.Err()
			}
		}
		ch := make(chan struct{})
		ls.filling = ch
		l.mu.Unlock()

		// The answer serves the callers waiting for it too: it does not end with this
		// caller's request (go-redis' timeouts bound it).
		allowed, retry, err := l.fetchLease(context.WithoutCancel(ctx), bucket, lim)

		l.mu.Lock()
		ls.filling = nil
		close(ch)
		switch {
		case err != nil:
		case allowed == 0:
			ls.refusedUntil = now.Add(retry)
		default:
			ls.tokens, ls.expires = allowed-1, now.Add(time.Second)
		}
		l.mu.Unlock()
		return allowed > 0, retry, err
	}
}

// fetchLease takes a lease of tokens from bucket's shared budget in Redis, or a single
// token when not a whole lease is left; it returns how many it got (0: refused, retry
// after the duration).
func (l *Limiter) fetchLease(ctx context.Context, bucket string, lim limit) (int, time.Duration, error) {
	rl := redis_rate.Limit{Rate: lim.rate, Burst: lim.burst, Period: lim.period}
	n := leaseSize(lim)
	res, err := l.redis.AllowN(ctx, bucket, rl, n)
	if err == nil && res.Allowed < n && n > 1 {
		res, err = l.redis.AllowN(ctx, bucket, rl, 1)
	}
	if err != nil {
		return 0, 0, err
	}
	return res.Allowed, res.RetryAfter, nil
}

// leaseSize is how many tokens one Redis call takes: 1 % of a per-second rate, at most 32
// and a quarter of the burst; a single token for slower rates.
func leaseSize(lim limit) int {
	if lim.period != time.Second {
		return 1
	}
	return max(1, min(32, lim.rate/100, lim.burst/4))
}

func (l *Limiter) localLimiter(bucket string, lim limit) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	rl, ok := l.local[bucket]
	if !ok {
		if len(l.local) > 100000 {
			clear(l.local)
		}
		rl = rate.NewLimiter(rate.Limit(float64(lim.rate)/lim.period.Seconds()), lim.burst)
		l.local[bucket] = rl
	}
	return rl
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

// Acquire takes one of the tenant's slots for invocations and registrations in flight;
// release must be called when done.
func (l *Limiter) Acquire(tenant string) (release func(), ok bool) {
	return l.acquire("invoke:"+tenant, l.cfg.Concurrency)
}

// AcquireLongPoll takes one of the tenant's long-poll slots; release must be called.
func (l *Limiter) AcquireLongPoll(tenant string) (release func(), ok bool) {
	return l.acquire("poll:"+tenant, l.cfg.LongPolls)
}

func (l *Limiter) acquire(slot string, limit int) (release func(), ok bool) {
	if limit <= 0 {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running[slot] >= limit {
		return nil, false
	}
	l.running[slot]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.running[slot]--
			if l.running[slot] == 0 {
				delete(l.running, slot)
			}
			l.mu.Unlock()
		})
	}, true
}
