package cache

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

func TestLocalStaysWithinItsBudget(t *testing.T) {
	t.Parallel()
	l := newLocal(Config{LocalTTL: time.Minute, LocalBytes: 64 * 1024})
	now := time.Now()
	e := Entry{Result: json.RawMessage(`"` + string(make([]byte, 500)) + `"`)}
	for i := range 1000 {
		l.put(fmt.Sprintf("k%04d", i), e, now.Add(time.Hour), now)
		require.LessOrEqual(t, l.bytes, l.maxBytes)
	}
	require.Greater(t, len(l.entries), 50, "the budget is used")
	_, ok := l.get("k0999", now)
	require.True(t, ok, "the newest entry is kept")

	big := Entry{Result: json.RawMessage(`"` + string(make([]byte, 2000)) + `"`)}
	l.put("big", big, now.Add(time.Hour), now)
	_, ok = l.get("big", now)
	require.False(t, ok, "an entry over a 64th of the budget is not kept")
}

func TestLocalEvictsExpiredEntriesFirst(t *testing.T) {
	t.Parallel()
	l := newLocal(Config{LocalTTL: time.Minute, LocalBytes: 9000}) // 64 entries fit, 64 + 10 do not
	now := time.Now()
	e := Entry{Result: json.RawMessage(`1`)}
	var live []string
	for i := range 64 {
		k := fmt.Sprintf("k%02d", i)
		expires := now.Add(time.Second) // half of them end in a second
		if i%2 == 0 {
			expires = now.Add(time.Hour)
			live = append(live, k)
		}
		l.put(k, e, expires, now)
	}
	later := now.Add(2 * time.Second)
	for i := range 10 {
		l.put(fmt.Sprintf("new%d", i), e, later.Add(time.Hour), later)
	}
	require.Len(t, l.entries, 32+10, "the expired half went, nothing else")
	for _, k := range live {
		_, ok := l.get(k, later)
		require.True(t, ok, "%s is still live and there was room once the expired ones went", k)
	}
}

func TestLocalOffAndBounds(t *testing.T) {
	t.Parallel()
	require.Nil(t, newLocal(Config{LocalTTL: 0, LocalBytes: 1 << 20}))
	require.Nil(t, newLocal(Config{LocalTTL: time.Second, LocalBytes: 0}))
	var off *local
	off.put("k", Entry{}, time.Now().Add(time.Hour), time.Now())
	_, ok := off.get("k", time.Now())
	require.False(t, ok)

	l := newLocal(Config{LocalTTL: time.Second, LocalBytes: 1 << 20})
	now := time.Now()
	l.put("past", Entry{}, now.Add(-time.Millisecond), now)
	_, ok = l.get("past", now)
	require.False(t, ok, "an entry already ended is not kept")
	l.put("k", Entry{}, now.Add(time.Hour), now)
	_, ok = l.get("k", now.Add(999*time.Millisecond))
	require.True(t, ok)
	_, ok = l.get("k", now.Add(time.Second))
	require.False(t, ok, "LocalTTL caps a long Redis TTL")
	require.Zero(t, l.bytes, "an expired entry found by get is removed")
}

func TestLocalCopyServesWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	c := &Cache{rdb: redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1}), local: newLocal(Config{LocalTTL: time.Minute, LocalBytes: 1 << 20})}
	defer c.Close()
	now := time.Now()
	c.local.put("hot", Entry{Result: json.RawMessage(`5`)}, now.Add(time.Hour), now)
	e, hit, err := c.Get(context.Background(), "hot")
	require.NoError(t, err)
	require.True(t, hit && e.Local)
	_, hit, err = c.Get(context.Background(), "cold")
	require.Error(t, err, "a key without a copy still needs Redis")
	require.False(t, hit)
}
