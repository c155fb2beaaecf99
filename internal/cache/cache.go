// Package cache keeps function results in Redis (go-redis v9) for functions registered
// with cache_ttl_s > 0. A key is the function version (its sha256 covers everything that
// changes its answer) plus the canonical form of the event, so equal events in any key
// order hit the same entry. Each process also keeps a
// short-lived copy of the entries it read or wrote (Config), so a hot key costs no Redis
// round trip on most hits.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// Cache is the Redis result cache. After a Redis error it stays out of the way for a
// moment (every lookup a miss, every store skipped), so an outage or a restart costs the
// fast path nothing instead of a dial timeout per call.
type Cache struct {
	rdb       *redis.Client
	local     *local       // nil when turned off
	downUntil atomic.Int64 // unix nanos
}

// retryAfter is how long the cache is bypassed after a Redis error.
const retryAfter = 2 * time.Second

func (c *Cache) usable() bool { return time.Now().UnixNano() >= c.downUntil.Load() }

func (c *Cache) failed() { c.downUntil.Store(time.Now().Add(retryAfter).UnixNano()) }

// Open connects to the Redis at url (redis://host:port/db).
func Open(url string, cfg Config) (*Cache, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("open cache: %w", err)
	}
	opt.DialTimeout = 2 * time.Second
	opt.ReadTimeout = time.Second
	opt.WriteTimeout = time.Second
	opt.MaxRetries = 1
	return &Cache{rdb: redis.NewClient(opt), local: newLocal(cfg)}, nil
}

// Client exposes the Redis client for other Redis users of the process (rate limits).
func (c *Cache) Client() *redis.Client { return c.rdb }

// Close closes the client.
func (c *Cache) Close() error { return c.rdb.Close() }

// Ping checks Redis for readiness probes.
func (c *Cache) Ping(ctx context.Context) error {
	if err := c.rdb.Ping(ctx).Err(); err != nil {
		return fault.Wrap(fault.Unavailable, err, "redis unreachable")
	}
	return nil
}

// Entry is a cached successful result with the output it printed.
type Entry struct {
	Result json.RawMessage `json:"result"`
	Stdout string          `json:"stdout,omitempty"`
	Stderr string          `json:"stderr,omitempty"`
	// ExpiresAt is when the Redis entry ends (unix ms, set by Set): a process's local copy
	// ends then too. Entries without it are never copied locally.
	ExpiresAt int64 `json:"exp,omitempty"`
	// Local says the hit came from the process's own copy, not from Redis.
	Local bool `json:"-"`
}

// Key derives the cache key of (tenant, version, event): version names what answers —
// the core passes the function's name, version number and sha256, which covers the
// version's source, settings and env — and the event counts in its canonical form.
func Key(tenant, version string, event json.RawMessage) (string, error) {
	canon, err := Canonical(event)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(canon)
	return "lambda:result:" + tenant + ":" + version + ":" + hex.EncodeToString(h[:]), nil
}

// Get returns the entry under key, if any: from the process's copy while it lasts (even
// when Redis is unreachable), otherwise from Redis.
func (c *Cache) Get(ctx context.Context, key string) (Entry, bool, error) {
	now := time.Now()
	if e, ok := c.local.get(key, now); ok {
		e.Local = true
		return e, true, nil
	}
	if !c.usable() {
		return Entry{}, false, fault.New(fault.Unavailable, "redis get: bypassed after a recent error")
	}
	raw, err := c.rdb.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return Entry{}, false, nil
	}
	if err != nil {
		c.failed()
		return Entry{}, false, fault.Wrap(fault.Unavailable, err, "redis get")
	}
	var e Entry
	if err := json.Unmarshal(raw, &e); err != nil {
		return Entry{}, false, nil // a corrupt entry is a miss
	}
	if e.ExpiresAt > 0 {
		c.local.put(key, e, time.UnixMilli(e.ExpiresAt), now)
	}
	return e, true, nil
}

// Set stores an entry for ttl (and keeps a local copy once Redis has it).
func (c *Cache) Set(ctx context.Context, key string, e Entry, ttl time.Duration) error {
	now := time.Now()
	e.ExpiresAt = now.Add(ttl).UnixMilli()
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if !c.usable() {
		return fault.New(fault.Unavailable, "redis set: bypassed after a recent error")
	}
	if err := c.rdb.Set(ctx, key, raw, ttl).Err(); err != nil {
		c.failed()
		return fault.Wrap(fault.Unavailable, err, "redis set")
	}
	c.local.put(key, e, time.UnixMilli(e.ExpiresAt), now)
	return nil
}
