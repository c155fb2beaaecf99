package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/ratelimit"
)

// TestFunctionStats: the console's chart data from request_logs — one point per step,
// oldest first, empty buckets with null latencies, errors counted, tenant-scoped, bounded.
func TestFunctionStats(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withAuth(ratelimit.Config{}))
	keyA, keyB := f.tenant(t, "stats-a"), f.tenant(t, "stats-b")
	as := func(key string) []string { return append(bearer(key), "Language-Title", "python") }

	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", register("add", addSource), as(keyA)...).status)
	for range 3 {
		require.Equal(t, 200, f.do(t, "POST", "/v1/functions/add/invoke", `{"a":1,"b":2}`, as(keyA)...).status)
	}
	r := f.do(t, "PUT", "/v1/functions/add", `{"source":"def handler(e, c):\n    raise ValueError()\n"}`, as(keyA)...)
	require.Equal(t, 201, r.status, r.raw)
	require.Equal(t, 500, f.do(t, "POST", "/v1/functions/add/invoke", `{}`, as(keyA)...).status)

	before := time.Now().Unix()
	r = f.do(t, "GET", "/v1/stats/functions/add?window=1h&step=60s", "", as(keyA)...)
	require.Equal(t, 200, r.status, r.raw)
	require.Equal(t, "add", r.body["function"])
	require.EqualValues(t, 3600, r.body["window_s"])
	require.EqualValues(t, 60, r.body["step_s"])
	require.Equal(t, "request_logs", r.body["source"])
	series := r.body["series"].([]any)
	require.Len(t, series, 60)
	var calls, errors float64
	var withLatency int
	for i, p := range series {
		pt := p.(map[string]any)
		require.Len(t, pt, 5, "t, calls, errors, p50_ms, p99_ms: %v", pt)
		tt := pt["t"].(float64)
		require.Zero(t, int64(tt)%60, "aligned to the step")
		if i > 0 {
			require.Equal(t, series[i-1].(map[string]any)["t"].(float64)+60, tt, "oldest first, one per step")
		}
		calls += pt["calls"].(float64)
		errors += pt["errors"].(float64)
		if pt["calls"].(float64) == 0 {
			require.Nil(t, pt["p50_ms"], "an empty bucket has null latencies")
			require.Nil(t, pt["p99_ms"])
		} else {
			withLatency++
			require.GreaterOrEqual(t, pt["p99_ms"].(float64), pt["p50_ms"].(float64))
		}
	}
	last := int64(series[59].(map[string]any)["t"].(float64))
	require.LessOrEqual(t, last, before)
	require.Greater(t, last+60, before, "the last bucket holds now")
	require.Equal(t, 4.0, calls)
	require.Equal(t, 1.0, errors)
	require.GreaterOrEqual(t, withLatency, 1)
	require.Contains(t, r.raw, `"p50_ms":null`)

	// Whole seconds work for both; the defaults are 1h and 60s.
	r = f.do(t, "GET", "/v1/stats/functions/add?window=600&step=10", "", as(keyA)...)
	require.Equal(t, 200, r.status, r.raw)
	require.Len(t, r.body["series"], 60)
	r = f.do(t, "GET", "/v1/stats/functions/add", "", as(keyA)...)
	require.Equal(t, 200, r.status, r.raw)
	require.Len(t, r.body["series"], 60)

	// Tenant B does not see A's function; nobody sees an unknown one.
	for _, c := range []struct{ key, path string }{
		{keyB, "/v1/stats/functions/add"},
		{keyA, "/v1/stats/functions/nope"},
	} {
		r := f.do(t, "GET", c.path, "", as(c.key)...)
		require.Equal(t, 404, r.status, r.raw)
		require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	}

	for _, q := range []string{"window=25h", "step=5s", "step=90500ms", "window=1h&step=7s", "window=24h&step=10s",
		"window=30s&step=60s", "step=abc", "window=-1h"} {
		r := f.do(t, "GET", "/v1/stats/functions/add?"+q, "", as(keyA)...)
		require.Equal(t, 400, r.status, "%s: %s", q, r.raw)
		require.True(t, strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json"), q)
	}
	require.Equal(t, 400, f.do(t, "GET", "/v1/stats/functions/Bad_Name", "", as(keyA)...).status)
}
