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

	"github.com/lambda-microservice/lambda/api"
	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/ratelimit"
	"github.com/lambda-microservice/lambda/internal/store"
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

// TestTenantBudgetIsSharedByItsKeys: a tenant that mints more keys gets no more rate:
// its keys draw on one tenant budget besides their own.
func TestTenantBudgetIsSharedByItsKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withAuth(ratelimit.Config{Rate: 5, Burst: 5, TenantRate: 8, TenantBurst: 8}))
	first := f.tenant(t, fmt.Sprintf("minter-%d", time.Now().UnixNano()%100000))
	keys := []string{first}
	for range 3 {
		r := f.do(t, "POST", "/v1/keys", "", bearer(first)...)
		require.Equal(t, 201, r.status, r.raw)
		keys = append(keys, r.body["api_key"].(string))
	}
	ok, limited := 0, 0
	var last reply
	for i := range 20 {
		r := f.do(t, "GET", "/v1/functions", "", bearer(keys[i%len(keys)])...)
		switch r.status {
		case 200:
			ok++
		case 429:
			limited++
			last = r
		default:
			t.Fatalf("unexpected status %d: %s", r.status, r.raw)
		}
	}
	// Four keys of 5 each would allow 17 more; the tenant's 8 (3 spent minting) allow 5,
	// and a little refill.
	require.LessOrEqual(t, ok, 7, "the tenant's keys share one budget")
	require.GreaterOrEqual(t, limited, 13)
	require.Contains(t, last.body["detail"], "tenant")
	require.NotEmpty(t, last.header.Get("Retry-After"))
}

// TestKeyMintingIsBounded: a tenant holds at most LAMBDA_TENANT_MAX_KEYS active keys; a
// revoked one makes room.
func TestKeyMintingIsBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withAuth(ratelimit.Config{}), fixtureOption(func(d *api.Deps, _ *store.Store, _ *cache.Cache) {
		d.Config.MaxKeys = 3
	}))
	key := f.tenant(t, "keyring") // the first of three
	var second string
	for i := range 2 {
		r := f.do(t, "POST", "/v1/keys", "", bearer(key)...)
		require.Equal(t, 201, r.status, r.raw)
		if i == 0 {
			second = r.body["api_key"].(string)
		}
	}
	r := f.do(t, "POST", "/v1/keys", "", bearer(key)...)
	require.Equal(t, http.StatusConflict, r.status, r.raw)
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	require.Contains(t, r.body["detail"], "LAMBDA_TENANT_MAX_KEYS")
	require.Len(t, f.do(t, "GET", "/v1/keys", "", bearer(key)...).body["keys"], 3, "nothing was stored")

	require.Equal(t, 204, f.do(t, "DELETE", "/v1/keys/"+second[len("lmk_"):len("lmk_")+12], "", bearer(key)...).status)
	require.Equal(t, 201, f.do(t, "POST", "/v1/keys", "", bearer(key)...).status, "a revoked key makes room")
}

// TestRegistrationsAreLimited: registrations and new versions count against the tenant's
// registrations per minute (429 beyond, nothing stored) and, while they build, against
// its in-flight limit.
func TestRegistrationsAreLimited(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withAuth(ratelimit.Config{Registrations: 3}))
	key := f.tenant(t, fmt.Sprintf("builder-%d", time.Now().UnixNano()%100000))
	for i := range 2 {
		r := f.do(t, "POST", "/v1/functions", register(fmt.Sprintf("f%d", i), addSource), bearer(key)...)
		require.Equal(t, 201, r.status, r.raw)
	}
	r := f.do(t, "PUT", "/v1/functions/f0", `{"source":`+quote(addSource+"# v2\n")+`}`, bearer(key)...)
	require.Equal(t, 201, r.status, r.raw)
	functions := f.count(t, "function_versions")
	r = f.do(t, "POST", "/v1/functions", register("f9", addSource), bearer(key)...)
	require.Equal(t, http.StatusTooManyRequests, r.status, r.raw)
	require.Contains(t, r.body["detail"], "LAMBDA_TENANT_REGISTRATIONS_PER_MINUTE")
	require.NotEmpty(t, r.header.Get("Retry-After"))
	require.Equal(t, functions, f.count(t, "function_versions"), "a refused registration stores nothing")
	require.Equal(t, 200, f.do(t, "GET", "/v1/functions", "", bearer(key)...).status, "other requests go on")

	// A registration whose build takes long holds one of the tenant's in-flight slots.
	g := newFixture(t, withAuth(ratelimit.Config{Concurrency: 1}))
	key = g.tenant(t, "slowbuild")
	src := fmt.Sprintf("# slowbuild %d\n%s", time.Now().UnixNano(), addSource)
	building := make(chan reply, 1)
	go func() { building <- g.do(t, "POST", "/v1/functions", register("slow", src), bearer(key)...) }()
	require.Eventually(t, func() bool { return g.runner.calls.Load() == 1 }, 2*time.Second, 5*time.Millisecond)
	r = g.do(t, "POST", "/v1/functions", register("other", addSource), bearer(key)...)
	require.Equal(t, http.StatusTooManyRequests, r.status, r.raw)
	close(g.runner.gate)
	require.Equal(t, 201, (<-building).status)
}

// TestLongPollsAreCapped: a tenant's long-polls in flight are bounded (429 beyond); a
// plain read is not a long-poll.
func TestLongPollsAreCapped(t *testing.T) {
	t.Parallel()
	var st *store.Store
	f := newFixture(t, withAuth(ratelimit.Config{LongPolls: 2}), fixtureOption(func(_ *api.Deps, s *store.Store, _ *cache.Cache) {
		st = s
	}))
	key := f.tenant(t, "poller")
	now := time.Now().UTC()
	e := store.Execution{ID: core.NewExecutionID(), Tenant: "poller", Function: "add", Version: 1, Language: "python",
		LanguageTitle: "python", Mode: "async", Status: store.StatusQueued, Payload: json.RawMessage(`{}`), CreatedAt: now}
	require.NoError(t, st.SaveExecution(context.Background(), &e))

	held := make(chan int, 2)
	for range 2 {
		go func() { held <- f.do(t, "GET", "/v1/executions/"+e.ID+"?wait=2s", "", bearer(key)...).status }()
	}
	time.Sleep(300 * time.Millisecond) // both are waiting now
	r := f.do(t, "GET", "/v1/executions/"+e.ID+"?wait=2s", "", bearer(key)...)
	require.Equal(t, http.StatusTooManyRequests, r.status, r.raw)
	require.Contains(t, r.body["detail"], "LAMBDA_TENANT_LONG_POLLS")
	require.Equal(t, 200, f.do(t, "GET", "/v1/executions/"+e.ID, "", bearer(key)...).status, "a read without wait")
	require.Equal(t, 200, <-held)
	require.Equal(t, 200, <-held)
	require.Equal(t, 200, f.do(t, "GET", "/v1/executions/"+e.ID+"?wait=10ms", "", bearer(key)...).status, "slots come back")
}

// TestMetricLabelsAreBounded: request metrics are labelled only with known methods and
// route patterns — an unknown method is "other", a path no route matches is the one
// route "unmatched" — so no request can make a new series.
func TestMetricLabelsAreBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tag := fmt.Sprintf("zz%d", time.Now().UnixNano())
	for _, c := range []struct{ method, path string }{
		{"GET", "/" + tag},
		{"GET", "/v1/" + tag},
		{"POST", "/v1/" + tag + "/x/y"},
		{"GET", "/v1/functions/" + tag + "/nothing/here"},
		{tag, "/v1/functions"},
		{tag, "/" + tag},
		{"PATCH", "/v1/executions/" + tag},
		{"GET", "/v1/executions/" + tag},
	} {
		f.do(t, c.method, c.path, "")
	}
	m := f.do(t, "GET", "/metrics", "").raw
	require.NotContains(t, m, tag, "no label holds a value from the request")
	routes := map[string]bool{}
	for _, line := range strings.Split(m, "\n") {
		if !strings.HasPrefix(line, "lambda_http_requests_total{") {
			continue
		}
		_, rest, _ := strings.Cut(line, `route="`)
		route, _, _ := strings.Cut(rest, `"`)
		routes[route] = true
	}
	require.True(t, routes["unmatched"], "%v", routes)
	require.True(t, routes["/v1/executions/{id}"], "%v", routes)
	for r := range routes {
		require.True(t, r == "unmatched" || strings.HasPrefix(r, "/"), "route label %q", r)
		require.NotContains(t, r, "*", "a catch-all is no route: %q", r)
	}
	require.Contains(t, m, `method="other"`)
}
