package cache

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// IdleClock keeps notebook sessions' last use in one Redis sorted set (member: the
// session id, score: the last cell's time in unix milliseconds), shared by every api
// replica: the expiry sweeper lists the stale members and each one is claimed by the
// replica whose ZREM removed it.
type IdleClock struct {
	rdb *redis.Client
	key string
}

// NewIdleClock returns the sessions' idle clock on rdb.
func NewIdleClock(rdb *redis.Client) *IdleClock {
	return &IdleClock{rdb: rdb, key: "lambda:sessions:last-used"}
}

// Touch stamps id as used at at.
func (c *IdleClock) Touch(ctx context.Context, id string, at time.Time) error {
	return c.rdb.ZAdd(ctx, c.key, redis.Z{Score: float64(at.UnixMilli()), Member: id}).Err()
}

// Due lists up to n sessions last used before before.
func (c *IdleClock) Due(ctx context.Context, before time.Time, n int) ([]string, error) {
	return c.rdb.ZRangeByScore(ctx, c.key, &redis.ZRangeBy{Min: "-inf",
		Max: "(" + strconv.FormatInt(before.UnixMilli(), 10), Count: int64(n)}).Result()
}

// Claim removes id; true for the caller that removed it.
func (c *IdleClock) Claim(ctx context.Context, id string) (bool, error) {
	n, err := c.rdb.ZRem(ctx, c.key, id).Result()
	return n == 1, err
}
