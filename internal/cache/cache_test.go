package cache_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
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
	c := openRedis(t, cache.Config{})
	ctx := context.Background()
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
	require.False(t, e.Local, "no local copies when they are turned off")
}

func openRedis(t *testing.T, cfg cache.Config) *cache.Cache {
	t.Helper()
	c, err := cache.Open("redis://127.0.0.1:6379/0", cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.Ping(context.Background()), "Redis on 127.0.0.1:6379 is required")
	return c
}

func testKey(t *testing.T) string {
	return fmt.Sprintf("lambda:test:%s:%d", t.Name(), time.Now().UnixNano())
}

func TestLocalCopyServesHotKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	writer := openRedis(t, cache.Config{LocalTTL: time.Minute, LocalBytes: 1 << 20})
	reader := openRedis(t, cache.Config{LocalTTL: 400 * time.Millisecond, LocalBytes: 1 << 20})
	key := testKey(t)
	require.NoError(t, writer.Set(ctx, key, cache.Entry{Result: json.RawMessage(`{"n":1}`), Stderr: "warn"}, time.Minute))

	e, hit, err := writer.Get(ctx, key)
	require.NoError(t, err)
	require.True(t, hit && e.Local, "the writer keeps what it stored")

	e, hit, err = reader.Get(ctx, key)
	require.NoError(t, err)
	require.True(t, hit)
	require.False(t, e.Local, "the first read of another process goes to Redis")
	e, hit, err = reader.Get(ctx, key)
	require.NoError(t, err)
	require.True(t, hit && e.Local, "the next one is served from its copy")
	require.JSONEq(t, `{"n":1}`, string(e.Result))
	require.Equal(t, "warn", e.Stderr)

	// Removed from Redis behind the cache's back: the copy is served for LocalTTL at most.
	require.NoError(t, reader.Client().Del(ctx, key).Err())
	_, hit, _ = reader.Get(ctx, key)
	require.True(t, hit)
	time.Sleep(450 * time.Millisecond)
	_, hit, err = reader.Get(ctx, key)
	require.NoError(t, err)
	require.False(t, hit, "a copy lasts LocalTTL at most")
}

func TestLocalCopyEndsWithItsRedisEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	writer := openRedis(t, cache.Config{})
	reader := openRedis(t, cache.Config{LocalTTL: time.Hour, LocalBytes: 1 << 20})
	key := testKey(t)
	require.NoError(t, writer.Set(ctx, key, cache.Entry{Result: json.RawMessage(`7`)}, 600*time.Millisecond))
	_, hit, err := reader.Get(ctx, key)
	require.NoError(t, err)
	require.True(t, hit)
	e, hit, _ := reader.Get(ctx, key)
	require.True(t, hit && e.Local)
	time.Sleep(700 * time.Millisecond)
	_, hit, err = reader.Get(ctx, key)
	require.NoError(t, err)
	require.False(t, hit, "the copy expires with the function's cache TTL, not LocalTTL")
}

func TestEntriesWithoutExpiryAreNotCopied(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := openRedis(t, cache.Config{LocalTTL: time.Hour, LocalBytes: 1 << 20})
	key := testKey(t)
	// An entry written before entries carried their expiry.
	require.NoError(t, c.Client().Set(ctx, key, `{"result":3}`, time.Minute).Err())
	for range 2 {
		e, hit, err := c.Get(ctx, key)
		require.NoError(t, err)
		require.True(t, hit)
		require.False(t, e.Local)
		require.JSONEq(t, `3`, string(e.Result))
	}
}

func TestRedisDownCostsNothingAfterTheFirstError(t *testing.T) {
	t.Parallel()
	c, err := cache.Open("redis://127.0.0.1:1/0", cache.Config{})
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

// BenchmarkGet is a hit on a hot key with and without the local copy.
func BenchmarkGet(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  cache.Config
	}{{"redis", cache.Config{}}, {"local", cache.Config{LocalTTL: time.Minute, LocalBytes: 1 << 20}}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := cache.Open("redis://127.0.0.1:6379/0", bc.cfg)
			require.NoError(b, err)
			defer c.Close()
			ctx := context.Background()
			key := fmt.Sprintf("lambda:bench:%d", time.Now().UnixNano())
			require.NoError(b, c.Set(ctx, key, cache.Entry{Result: json.RawMessage(`{"ok":true,"n":1}`)}, time.Minute))
			b.ReportAllocs()
			for b.Loop() {
				if _, hit, err := c.Get(ctx, key); err != nil || !hit {
					b.Fatal(hit, err)
				}
			}
		})
	}
}
