package cache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/cache"
	"github.com/lambda-microservice/lambda/fault"
)

func TestKeyIsCanonical(t *testing.T) {
	t.Parallel()
	a, err := cache.Key("t", "sha", json.RawMessage(`{"b": [1, 2.50], "a": "x"}`))
	require.NoError(t, err)
	b, err := cache.Key("t", "sha", json.RawMessage(`{"a":"x","b":[1,2.50]}`))
	require.NoError(t, err)
	require.Equal(t, a, b, "key order and whitespace do not matter")
	c, err := cache.Key("t", "sha", json.RawMessage(`{"a":"x","b":[1,2.5]}`))
	require.NoError(t, err)
	require.NotEqual(t, a, c, "numbers keep their exact text")
	d, err := cache.Key("other", "sha", json.RawMessage(`{"a":"x","b":[1,2.50]}`))
	require.NoError(t, err)
	require.NotEqual(t, a, d, "tenants never share entries")
	_, err = cache.Key("t", "sha", json.RawMessage(`{`))
	require.True(t, fault.Is(err, fault.Invalid))
}

func TestRoundTripOnRedis(t *testing.T) {
	t.Parallel()
	c, err := cache.Open("redis://127.0.0.1:6379/0")
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	require.NoError(t, c.Ping(ctx), "Redis on 127.0.0.1:6379 is required")
	key := fmt.Sprintf("lambda:test:%d", time.Now().UnixNano())
	_, hit, err := c.Get(ctx, key)
	require.NoError(t, err)
	require.False(t, hit)
	require.NoError(t, c.Set(ctx, key, cache.Entry{Result: json.RawMessage(`42`), Stdout: "hi"}, time.Minute))
	e, hit, err := c.Get(ctx, key)
	require.NoError(t, err)
	require.True(t, hit)
	require.JSONEq(t, `42`, string(e.Result))
	require.Equal(t, "hi", e.Stdout)
}

func TestRedisDownCostsNothingAfterTheFirstError(t *testing.T) {
	t.Parallel()
	c, err := cache.Open("redis://127.0.0.1:1/0")
	require.NoError(t, err)
	defer c.Close()
	ctx := context.Background()
	_, _, err = c.Get(ctx, "k")
	require.True(t, fault.Is(err, fault.Unavailable))
	for i := 0; i < 100; i++ {
		_, hit, err := c.Get(ctx, "k")
		require.False(t, hit)
		require.True(t, fault.Is(err, fault.Unavailable))
		require.Contains(t, err.Error(), "bypassed", "lookups skip Redis for a while after an error")
	}
	require.Contains(t, c.Set(ctx, "k", cache.Entry{}, time.Second).Error(), "bypassed")
}
