package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/cache"
)

// TestResultOverTheCapFails: a 7 MiB result (over the 6 MiB default) fails the execution
// with ResultTooLarge; nothing of it is answered, stored or cached.
func TestResultOverTheCapFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := fmt.Sprintf("# bigresult %d\ndef handler(e, c):\n    return 'x' * (7 << 20)\n", time.Now().UnixNano())
	body, _ := json.Marshal(map[string]any{"name": "big", "language": "python", "source": src, "cache_ttl_s": 60})
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", string(body)).status)

	r := f.do(t, "POST", "/v1/functions/big/invoke", `{}`, "Language-Title", "python")
	require.Equal(t, http.StatusInternalServerError, r.status, "%.300s", r.raw)
	require.Less(t, len(r.raw), 4096, "the oversized result is not answered")
	require.Equal(t, "failed", r.body["status"])
	require.Nil(t, r.body["result"])
	errDoc := r.body["error"].(map[string]any)
	require.Equal(t, "ResultTooLarge", errDoc["type"])
	require.Contains(t, errDoc["message"], "LAMBDA_MAX_RESULT_BYTES")

	// Stored as failed, without the result; not in the cache: the next call runs again.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, f.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var status string
	var hasResult bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT status, result IS NOT NULL FROM request_logs WHERE id = $1`,
		r.body["id"]).Scan(&status, &hasResult))
	require.Equal(t, "failed", status)
	require.False(t, hasResult)
	time.Sleep(200 * time.Millisecond) // a cache store would be done by now
	calls := f.runner.calls.Load()
	again := f.do(t, "POST", "/v1/functions/big/invoke", `{}`, "Language-Title", "python")
	require.Equal(t, false, again.body["cached"])
	require.Equal(t, calls+1, f.runner.calls.Load(), "nothing was cached")
}

// TestEnvChangeIsANewVersionAndACacheMiss: a PUT that changes only env makes a version
// with another sha256, whose calls do not get the old version's cached results; the
// runtime still builds both by their source.
func TestEnvChangeIsANewVersionAndACacheMiss(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := fmt.Sprintf("# env %d\n%s", time.Now().UnixNano(), addSource)
	body, _ := json.Marshal(map[string]any{"name": "envy", "language": "python", "source": src, "cache_ttl_s": 60,
		"env": map[string]string{"GREETING": "hello"}})
	v1 := f.do(t, "POST", "/v1/functions", string(body))
	require.Equal(t, 201, v1.status, v1.raw)
	r := f.do(t, "POST", "/v1/functions/envy/invoke", `{"a":1,"b":2}`, "Language-Title", "python")
	require.Equal(t, false, r.body["cached"])
	require.Eventually(t, func() bool {
		return f.do(t, "POST", "/v1/functions/envy/invoke", `{"a":1,"b":2}`, "Language-Title", "python").body["cached"] == true
	}, 2*time.Second, 20*time.Millisecond, "the same version hits the cache")

	v2 := f.do(t, "PUT", "/v1/functions/envy", `{"source":`+quote(src)+`,"env":{"GREETING":"bonjour"}}`)
	require.Equal(t, 201, v2.status, v2.raw)
	require.EqualValues(t, 2, v2.body["version"])
	require.NotEqual(t, v1.body["sha256"], v2.body["sha256"], "the sha256 covers env")
	calls := f.runner.calls.Load()
	r = f.do(t, "POST", "/v1/functions/envy/invoke", `{"a":1,"b":2}`, "Language-Title", "python")
	require.Equal(t, 200, r.status, r.raw)
	require.EqualValues(t, 2, r.body["version"])
	require.Equal(t, false, r.body["cached"], "another env is another answer: a miss")
	require.Equal(t, calls+1, f.runner.calls.Load())

	// Same env again: no new version. Another timeout: a new version, a new sha256.
	r = f.do(t, "PUT", "/v1/functions/envy", `{"source":`+quote(src)+`,"env":{"GREETING":"bonjour"}}`)
	require.Equal(t, 200, r.status, r.raw)
	r = f.do(t, "PUT", "/v1/functions/envy", `{"source":`+quote(src)+`,"timeout_ms":2000}`)
	require.Equal(t, 201, r.status, r.raw)
	require.NotEqual(t, v2.body["sha256"], r.body["sha256"])

	// The runtime is asked to build the source by the source's own hash.
	sum := sha256.Sum256([]byte(src))
	_, built := f.runner.builds.Load(hex.EncodeToString(sum[:]))
	require.True(t, built)
}

// TestCacheKeyNamesTheVersion: the cache key holds the function version, so results of
// one function are never another's, even for the same source and settings.
func TestCacheKeyNamesTheVersion(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := fmt.Sprintf("# twins %d\n%s", time.Now().UnixNano(), addSource)
	for _, name := range []string{"twin-a", "twin-b"} {
		body, _ := json.Marshal(map[string]any{"name": name, "language": "python", "source": src, "cache_ttl_s": 60})
		require.Equal(t, 201, f.do(t, "POST", "/v1/functions", string(body)).status)
	}
	require.Eventually(t, func() bool {
		return f.do(t, "POST", "/v1/functions/twin-a/invoke", `{"a":1,"b":2}`, "Language-Title", "python").body["cached"] == true
	}, 2*time.Second, 20*time.Millisecond)
	r := f.do(t, "POST", "/v1/functions/twin-b/invoke", `{"a":1,"b":2}`, "Language-Title", "python")
	require.Equal(t, false, r.body["cached"], "context.function differs: another function's result is not this one's")

	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rdb.Close()
	keys, err := rdb.Keys(context.Background(), "lambda:result:default:twin-a:1:*").Result()
	require.NoError(t, err)
	require.NotEmpty(t, keys)
	k, err := cache.Key("default", "twin-a:1:x", json.RawMessage(`{"b":2,"a":1}`))
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(k, "lambda:result:default:twin-a:1:x:"))
}
