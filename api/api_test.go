package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/api"
	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/internal/testkit/db"
	"github.com/lambda-microservice/lambda/runtimes"
)

// scriptedRunner stands in for the OpenFaaS call: the script's source picks the outcome.
type scriptedRunner struct {
	calls  atomic.Int64
	builds sync.Map // sha256 → the version number it was built for
	// gate holds the calls of a script that says "block" (its builds: "slowbuild") until
	// it is closed (or the call's context ends, as the OpenFaaS call does).
	gate chan struct{}
	// The first call of a script that says "hang" never returns (until the test ends):
	// the api making it is as good as dead.
	hung atomic.Bool
	stop chan struct{}
	// The first call of a script that says "flaky" fails, the others succeed.
	flaky atomic.Int64
	// locks records the lock hash each build hash was last called with.
	locks sync.Map
}

func (r *scriptedRunner) Run(ctx context.Context, fn string, c faas.Call) (faas.Result, error) {
	r.calls.Add(1)
	if c.Lock != nil {
		r.locks.Store(c.SHA256, c.Lock.Hash)
	}
	if c.BuildOnly {
		r.builds.Store(c.SHA256, c.Version)
		if strings.Contains(c.Source, "slowbuild") {
			select {
			case <-r.gate:
			case <-ctx.Done():
				return faas.Result{}, ctx.Err()
			}
		}
		if strings.Contains(c.Source, "syntax error") {
			return faas.Result{}, fault.New(fault.Unprocessable, "SyntaxError: invalid syntax (handler.py, line 2)")
		}
		return faas.Result{Status: "succeeded"}, nil
	}
	var ev map[string]any
	_ = json.Unmarshal(c.Event, &ev)
	if strings.Contains(c.Source, "hang") && r.hung.CompareAndSwap(false, true) {
		<-r.stop
		return faas.Result{}, context.Canceled
	}
	if strings.Contains(c.Source, "nap") {
		time.Sleep(15 * time.Millisecond)
	}
	if strings.Contains(c.Source, "block") {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return faas.Result{}, ctx.Err()
		}
	}
	switch {
	case strings.Contains(c.Source, "bigresult"):
		return faas.Result{Status: "succeeded", Result: json.RawMessage(`"` + strings.Repeat("x", 7<<20) + `"`)}, nil
	case strings.Contains(c.Source, "flaky") && r.flaky.Add(1) == 1:
		return faas.Result{Status: "failed", Error: &faas.Error{Type: "ValueError", Message: "flaky"}}, nil
	case strings.Contains(c.Source, "raise"):
		return faas.Result{Status: "failed", Error: &faas.Error{Type: "ValueError", Message: "boom", Stack: "line 1"}}, nil
	case strings.Contains(c.Source, "sleep"):
		return faas.Result{Status: "timeout", Error: &faas.Error{Type: "Timeout", Message: "timed out"}}, nil
	case strings.Contains(c.Source, "down"):
		return faas.Result{}, fault.New(fault.Unavailable, "runtime %s unreachable", fn)
	case strings.Contains(c.Source, "atshare"):
		return faas.Result{}, fault.New(fault.TenantShare, "this tenant's calls hold its share of runtime %s's workers; retry later", fn)
	}
	a, _ := ev["a"].(float64)
	b, _ := ev["b"].(float64)
	return faas.Result{Status: "succeeded", Result: json.RawMessage(fmt.Sprintf(`{"sum":%v}`, a+b)), Stdout: "hello\n", DurationMS: 0.3}, nil
}

// engineResolver resolves with a local engine what a runtime host of the function's
// language resolves in a deployment (core.Resolver).
type engineResolver struct {
	e   *deps.Engine
	reg *runtimes.Registry
}

func (r engineResolver) ResolveDeps(ctx context.Context, fn string, requested map[string]string) (*deps.Lock, error) {
	for _, rt := range r.reg.All() {
		if rt.Function == fn && rt.Deps != nil {
			lock, err := r.e.Resolve(ctx, rt.Deps, requested)
			return lock, deps.Fault(err)
		}
	}
	return nil, fmt.Errorf("no runtime %s with dependencies", fn)
}

type fixture struct {
	h      http.Handler // the API, for a test that serves it itself
	srv    *httptest.Server
	runner *scriptedRunner
	dbURL  string
}

// fixtureOption changes the server's collaborators before it is built.
type fixtureOption = func(*api.Deps, *store.Store, *cache.Cache)

// coreOption changes the invocation core's configuration.
type coreOption func(*core.Config)

// collaboratorsOption changes the invocation core's collaborators (a real runtime client
// instead of the scripted runner, another registry).
type collaboratorsOption func(*core.Deps)

// newFixture serves the API over the real store and cache with a scripted runner; opts
// are fixtureOption and coreOption values.
func newFixture(t *testing.T, opts ...any) *fixture {
	t.Helper()
	return newFixtureOn(t, "redis://127.0.0.1:6379/0", opts...)
}

// newFixtureOn is newFixture with the result cache (and the limiter of withAuth) on the
// Redis at redisURL.
func newFixtureOn(t *testing.T, redisURL string, opts ...any) *fixture {
	t.Helper()
	dbURL := db.New(t)
	ctx := context.Background()
	st, err := store.Open(ctx, dbURL, 4)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	c, err := cache.Open(redisURL, cache.Config{}) // no local copies: tests see Redis itself
	require.NoError(t, err)
	require.NoError(t, c.Ping(ctx), "Redis at %s is required", redisURL)
	reg, err := runtimes.Load("testdata/runtimes.yaml")
	require.NoError(t, err)
	logs := st.NewLogWriter(store.LogWriterConfig{}, zap.NewNop(), nil)
	lctx, cancel := context.WithCancel(ctx)
	go logs.Run(lctx)
	t.Cleanup(cancel)
	r := &scriptedRunner{gate: make(chan struct{}), stop: make(chan struct{})}
	engine, err := deps.New(deps.Config{Dir: t.TempDir(), MaxDeps: 3})
	require.NoError(t, err)
	mreg := metrics.NewRegistry()
	cfg := core.Config{SyncTimeoutMax: time.Minute, IdempotencyTTL: 24 * time.Hour, VersionCacheTTL: time.Second,
		RuntimeCallSlack: time.Second, Functions: core.FunctionLimits{MaxSourceBytes: 1024, DefaultTimeoutMS: 1000,
			DefaultMemoryMB: 128, MaxTimeout: 15 * time.Minute}}
	for _, o := range opts {
		if o, ok := o.(coreOption); ok {
			o(&cfg)
		}
	}
	cdeps := core.Deps{Store: st, Cache: c, Runner: r, Logs: logs, Registry: reg, Deps: engineResolver{engine, reg},
		Metrics: metrics.NewInvoke(mreg), Log: zap.NewNop()}
	for _, o := range opts {
		if o, ok := o.(collaboratorsOption); ok {
			o(&cdeps)
		}
	}
	var runs *localRuns
	for _, o := range opts {
		switch o := o.(type) {
		case *localRuns:
			runs, cdeps.Runs, cdeps.Callbacks = o, o, o
		case runsOption:
			cdeps.Runs = o.runs
		}
	}
	svc := core.New(cfg, cdeps)
	if runs != nil {
		runs.svc = svc
	}
	deps := api.Deps{
		Config: api.Config{MaxEventBytes: 2048, MaxWait: 5 * time.Second},
		Log:    zap.NewNop(), Core: svc, Store: st, Tenants: st, Metrics: metrics.NewHTTP(mreg), Gatherer: mreg,
		Checks: []api.Check{{Name: "postgres", Required: true, Probe: st.Ping}},
	}
	for _, o := range opts {
		switch o := o.(type) {
		case fixtureOption:
			o(&deps, st, c)
		case coreOption, collaboratorsOption, *localRuns, runsOption:
		default:
			t.Fatalf("unknown fixture option %T", o)
		}
	}
	h := api.NewServer(deps)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(r.stop) }) // before the server's Close, which waits for every call
	return &fixture{h: h, srv: srv, runner: r, dbURL: dbURL}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (f *fixture) do(t *testing.T, method, path, body string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	require.NotEmpty(t, resp.Header.Get("X-Request-Id"), "every response carries X-Request-Id")
	return r
}

func (f *fixture) count(t *testing.T, table string) int {
	conn, err := pgx.Connect(context.Background(), f.dbURL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}

func register(name, source string) string {
	b, _ := json.Marshal(map[string]any{"name": name, "language": "python", "source": source})
	return string(b)
}

const addSource = "def handler(event, context):\n    return {'sum': event['a'] + event['b']}\n"

func TestBadInputIsAProblemAndChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", register("add", addSource)).status)
	functions, versions, logs := f.count(t, "functions"), f.count(t, "function_versions"), f.count(t, "request_logs")

	big := strings.Repeat("x", 1500)
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		detail                   string
	}{
		{"malformed json", "POST", "/v1/functions", `{"name":`, nil, 400, "malformed JSON"},
		{"unknown field", "POST", "/v1/functions", `{"name":"x","language":"python","source":"s","colour":1}`, nil, 400, "unknown field"},
		{"invalid name", "POST", "/v1/functions", register("Bad_Name", addSource), nil, 400, "invalid function name"},
		{"empty source", "POST", "/v1/functions", register("empty", "  "), nil, 400, "source"},
		{"oversized source", "POST", "/v1/functions", register("huge", big), nil, 413, "limit"},
		{"unknown language", "POST", "/v1/functions", `{"name":"x","language":"cobol","source":"s"}`, nil, 400, "python"},
		{"bad timeout", "POST", "/v1/functions", `{"name":"x","language":"python","source":"s","timeout_ms":0}`, nil, 400, "timeout_ms"},
		{"bad memory", "POST", "/v1/functions", `{"name":"x","language":"python","source":"s","memory_mb":4096}`, nil, 400, "memory_mb"},
		{"platform env", "POST", "/v1/functions", `{"name":"x","language":"python","source":"s","env":{"LAMBDA_X":"1"}}`, nil, 400, "env"},
		{"multipart body", "POST", "/v1/functions", register("form", addSource), []string{"Content-Type", "multipart/form-data; boundary=x"}, 400, "multipart"},
		{"syntax error", "POST", "/v1/functions", register("broken", "def handler(:\n syntax error"), nil, 422, "line 2"},
		{"duplicate", "POST", "/v1/functions", register("add", addSource), nil, 409, "already exists"},
		{"missing title", "POST", "/v1/functions/add/invoke", `{"a":1,"b":2}`, nil, 400, "python, python3"},
		{"unknown title", "POST", "/v1/functions/add/invoke", `{"a":1,"b":2}`, []string{"Language-Title", "cobol"}, 400, "supported titles"},
		{"mismatched title", "POST", "/v1/functions/add/invoke", `{"a":1,"b":2}`, []string{"Language-Title", "node"}, 400, "written in python"},
		{"malformed event", "POST", "/v1/functions/add/invoke", `{"a":`, []string{"Language-Title", "python"}, 400, "not valid JSON"},
		{"oversized event", "POST", "/v1/functions/add/invoke", `{"pad":"` + strings.Repeat("y", 3000) + `"}`, []string{"Language-Title", "python"}, 413, "larger than"},
		{"unknown function", "POST", "/v1/functions/nope/invoke", `{}`, []string{"Language-Title", "python"}, 404, "not found"},
		{"unknown version", "POST", "/v1/functions/add/invoke?version=7", `{}`, []string{"Language-Title", "py"}, 404, "no version 7"},
		{"bad version", "POST", "/v1/functions/add/invoke?version=x", `{}`, []string{"Language-Title", "py"}, 400, "version"},
		{"get unknown version", "GET", "/v1/functions/add/versions/9", "", nil, 404, "no version 9"},
		{"unknown execution", "GET", "/v1/executions/0190c5a0-0000-7000-8000-000000000000", "", nil, 404, "not found"},
		{"bad status filter", "GET", "/v1/executions?status=weird", "", nil, 400, "unknown status"},
		{"bad limit", "GET", "/v1/executions?limit=0", "", nil, 400, "limit"},
		{"no route", "GET", "/v1/nothing", "", nil, 404, "no route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, tc.method, tc.path, tc.body, tc.headers...)
			require.Equal(t, tc.status, r.status, r.raw)
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
			require.EqualValues(t, tc.status, r.body["status"])
			require.NotEmpty(t, r.body["type"])
			require.NotEmpty(t, r.body["title"])
			require.Contains(t, r.body["detail"], tc.detail)
		})
	}
	require.Equal(t, functions, f.count(t, "functions"))
	require.Equal(t, versions, f.count(t, "function_versions"))
	require.Equal(t, logs, f.count(t, "request_logs"))
}

func TestRegisterInvokeAndReadBack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// curl -d sends application/x-www-form-urlencoded: the JSON body is still read.
	r := f.do(t, "POST", "/v1/functions", register("add", addSource), "Content-Type", "application/x-www-form-urlencoded")
	require.Equal(t, 201, r.status, r.raw)
	require.EqualValues(t, 1, r.body["version"])
	require.Equal(t, "python", r.body["language"])
	require.Len(t, r.body["sha256"], 64)
	require.NotContains(t, r.body, "source", "registration answers metadata, not the source back")

	r = f.do(t, "POST", "/v1/functions/add/invoke", `{"a":2,"b":3}`, "Language-Title", "PYTHON")
	require.Equal(t, 200, r.status, r.raw)
	require.Equal(t, "succeeded", r.body["status"])
	require.Equal(t, map[string]any{"sum": 5.0}, r.body["result"])
	require.Equal(t, "hello\n", r.body["stdout"])
	require.Equal(t, "sync", r.body["mode"])
	require.Nil(t, r.body["error"])
	id := r.body["id"].(string)

	got := f.do(t, "GET", "/v1/executions/"+id, "")
	require.Equal(t, 200, got.status)
	require.Equal(t, r.body["result"], got.body["result"])
	require.Equal(t, "succeeded", got.body["status"])

	list := f.do(t, "GET", "/v1/executions?function=add&status=succeeded", "")
	require.Equal(t, 200, list.status)
	require.Len(t, list.body["executions"], 1)

	// Same source: no new version. New source: version 2, and invoke runs it.
	r = f.do(t, "PUT", "/v1/functions/add", `{"source":`+quote(addSource)+`}`)
	require.Equal(t, 200, r.status, r.raw)
	require.EqualValues(t, 1, r.body["version"])
	r = f.do(t, "PUT", "/v1/functions/add", `{"source":`+quote(addSource+"# v2\n")+`}`)
	require.Equal(t, 201, r.status, r.raw)
	require.EqualValues(t, 2, r.body["version"])
	r = f.do(t, "POST", "/v1/functions/add/invoke", `{"a":1,"b":1}`, "Language-Title", "python")
	require.EqualValues(t, 2, r.body["version"])
	r = f.do(t, "POST", "/v1/functions/add/invoke?version=1", `{"a":1,"b":1}`, "Language-Title", "python")
	require.EqualValues(t, 1, r.body["version"])
	v1 := f.do(t, "GET", "/v1/functions/add/versions/1", "")
	require.Equal(t, addSource, v1.body["source"])

	require.Equal(t, 204, f.do(t, "DELETE", "/v1/functions/add", "").status)
	require.Equal(t, 404, f.do(t, "GET", "/v1/functions/add", "").status)
	require.Equal(t, 404, f.do(t, "POST", "/v1/functions/add/invoke", `{}`, "Language-Title", "python").status)
	require.Equal(t, 200, f.do(t, "GET", "/v1/executions/"+id, "").status, "executions outlive their function")
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func TestHandlerOutcomesMapToStatusCodes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", register("fails", "def handler(e, c):\n    raise ValueError('boom')\n")).status)
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", register("slow", "import time\ndef handler(e, c):\n    time.sleep(9)\n")).status)
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", register("gone", "# down\ndef handler(e, c):\n    return 1\n")).status)

	r := f.do(t, "POST", "/v1/functions/fails/invoke", `{}`, "Language-Title", "python")
	require.Equal(t, 500, r.status)
	require.Equal(t, "failed", r.body["status"])
	require.Equal(t, "ValueError", r.body["error"].(map[string]any)["type"])

	r = f.do(t, "POST", "/v1/functions/slow/invoke", `{}`, "Language-Title", "python")
	require.Equal(t, 504, r.status)
	require.Equal(t, "timeout", r.body["status"])

	logs := f.count(t, "request_logs")
	r = f.do(t, "POST", "/v1/functions/gone/invoke", `{}`, "Language-Title", "python")
	require.Equal(t, 503, r.status)
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	require.Equal(t, logs, f.count(t, "request_logs"), "an execution that never ran is not logged")

	// The tenant's own calls hold its share of the runtime's workers: its concurrency limit,
	// as AWS Lambda answers one (429 TooManyRequests), not a platform overload.
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", register("busy", "# atshare\ndef handler(e, c):\n    return 1\n")).status)
	r = f.do(t, "POST", "/v1/functions/busy/invoke", `{}`, "Language-Title", "python")
	require.Equal(t, 429, r.status)
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	require.Equal(t, "urn:lambda:problem:tenant_share", r.body["type"])
	require.Equal(t, "1", r.header.Get("Retry-After"))
	require.Equal(t, logs, f.count(t, "request_logs"), "an execution that never ran is not logged")
}

func TestIdempotencyKeyAndCache(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", register("add", addSource)).status)
	key := fmt.Sprintf("key-%d", time.Now().UnixNano())

	first := f.do(t, "POST", "/v1/functions/add/invoke", `{"a":1,"b":2}`, "Language-Title", "python", "Idempotency-Key", key)
	require.Equal(t, 200, first.status)
	calls := f.runner.calls.Load()
	again := f.do(t, "POST", "/v1/functions/add/invoke", `{"a":1,"b":2}`, "Language-Title", "python", "Idempotency-Key", key)
	require.Equal(t, 200, again.status)
	require.Equal(t, first.body["id"], again.body["id"])
	require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	require.Equal(t, calls, f.runner.calls.Load(), "a replay never runs the script again")
	other := f.do(t, "POST", "/v1/functions/add/invoke", `{"a":5,"b":2}`, "Language-Title", "python", "Idempotency-Key", key)
	require.Equal(t, 422, other.status, "the same key with another event is refused")

	src := fmt.Sprintf("# cached %d\n%s", time.Now().UnixNano(), addSource)
	body, _ := json.Marshal(map[string]any{"name": "cached", "language": "python", "source": src, "cache_ttl_s": 60})
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", string(body)).status)
	r1 := f.do(t, "POST", "/v1/functions/cached/invoke", `{"a":1,"b":2}`, "Language-Title", "python")
	require.Equal(t, false, r1.body["cached"])
	calls = f.runner.calls.Load()
	var r2 reply
	require.Eventually(t, func() bool { // the cache is filled off the response path
		r2 = f.do(t, "POST", "/v1/functions/cached/invoke", `{"b":2, "a":1}`, "Language-Title", "python")
		return r2.body["cached"] == true
	}, 2*time.Second, 20*time.Millisecond)
	require.Equal(t, r1.body["result"], r2.body["result"])
	require.Equal(t, calls, f.runner.calls.Load(), "a cache hit never runs the script")
	require.NotEqual(t, r1.body["id"], r2.body["id"], "a cache hit is its own execution")
}

func TestConcurrentIdempotentRequestsRunOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", register("add", addSource)).status)
	before := f.runner.calls.Load()
	var wg sync.WaitGroup
	codes := make(chan int, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(f.srv.URL+"/v1/functions/add/invoke", "application/json", bytes.NewBufferString(`{"a":1,"b":1}`))
			if err == nil {
				resp.Body.Close()
			}
			req, _ := http.NewRequest("POST", f.srv.URL+"/v1/functions/add/invoke", bytes.NewBufferString(`{"a":1,"b":1}`))
			req.Header.Set("Language-Title", "python")
			req.Header.Set("Idempotency-Key", "same-key")
			resp, err = http.DefaultClient.Do(req)
			if err == nil {
				codes <- resp.StatusCode
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		require.Contains(t, []int{200, 409}, c)
	}
	require.Equal(t, before+1, f.runner.calls.Load(), "eight requests with one key run the script once")
}

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	require.Equal(t, 200, f.do(t, "GET", "/healthz", "").status)
	r := f.do(t, "GET", "/readyz", "")
	require.Equal(t, 200, r.status)
	require.Equal(t, "ready", r.body["status"])
	m := f.do(t, "GET", "/metrics", "")
	require.Contains(t, m.raw, "lambda_http_requests_total")
}

func TestLongPollWakesWhenTheExecutionFinishes(t *testing.T) {
	t.Parallel()
	var st *store.Store
	var feed *store.FinishFeed
	f := newFixture(t, func(d *api.Deps, s *store.Store, _ *cache.Cache) {
		st = s
		feed = s.NewFinishFeed(zap.NewNop())
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go feed.Run(ctx)
		d.Finishes = feed
	})
	require.Eventually(t, feed.Listening, 10*time.Second, 10*time.Millisecond)
	ctx := context.Background()
	now := time.Now().UTC()
	e := store.Execution{ID: core.NewExecutionID(), Tenant: "default", Function: "add", Version: 1, Language: "python",
		LanguageTitle: "python", Mode: "async", Status: store.StatusQueued, Payload: json.RawMessage(`{}`), CreatedAt: now}
	require.NoError(t, st.SaveExecution(ctx, &e))

	// While the feed listens, a long-poll reads the row again only every 2 s; the finish
	// 300 ms in must wake it long before that.
	type answer struct {
		status  int
		body    map[string]any
		err     error
		elapsed time.Duration
	}
	got := make(chan answer, 1)
	start := time.Now()
	go func() { // the id in upper case: the same execution, the same wake-up
		resp, err := http.Get(f.srv.URL + "/v1/executions/" + strings.ToUpper(e.ID) + "?wait=5s")
		a := answer{err: err}
		if err == nil {
			a.status = resp.StatusCode
			a.err = json.NewDecoder(resp.Body).Decode(&a.body)
			resp.Body.Close()
		}
		a.elapsed = time.Since(start)
		got <- a
	}()
	time.Sleep(300 * time.Millisecond)
	done := time.Now().UTC()
	e.Status, e.Result, e.Attempts, e.FinishedAt = store.StatusSucceeded, json.RawMessage(`{"sum":3}`), 1, &done
	require.NoError(t, st.SaveExecution(ctx, &e))
	var a answer
	select {
	case a = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll did not answer")
	}
	require.NoError(t, a.err)
	require.Equal(t, 200, a.status, "%v", a.body)
	require.Equal(t, "succeeded", a.body["status"], "%v", a.body)
	require.Less(t, a.elapsed, 1500*time.Millisecond, "woken by the finish, not by the 2 s fallback read")

	// An execution that does not finish is answered as it is when the wait ends.
	q := e
	q.ID, q.Status, q.Result, q.FinishedAt = core.NewExecutionID(), store.StatusQueued, nil, nil
	require.NoError(t, st.SaveExecution(ctx, &q))
	r := f.do(t, "GET", "/v1/executions/"+q.ID+"?wait=1s", "")
	require.Equal(t, 200, r.status, r.raw)
	require.Equal(t, "queued", r.body["status"], r.raw)
}

func TestConcurrentUpdatesBuildForTheVersionTheyGet(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.do(t, "POST", "/v1/functions", `{"name":"busy","language":"python","source":`+quote(addSource)+`}`)
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := f.do(t, "PUT", "/v1/functions/busy", `{"source":`+quote(fmt.Sprintf("%s# edit %d\n", addSource, i))+`}`)
			require.Equal(t, http.StatusCreated, r.status, r.raw)
		}()
	}
	wg.Wait()
	r = f.do(t, "GET", "/v1/functions/busy/versions", "")
	require.Equal(t, http.StatusOK, r.status)
	versions, _ := r.body["versions"].([]any)
	require.Len(t, versions, n+1, "every update got its own version")
	for _, v := range versions {
		m := v.(map[string]any)
		// The runtime builds a version by its source's hash (its sha256 covers settings too).
		src := f.do(t, "GET", fmt.Sprintf("/v1/functions/busy/versions/%v", m["version"]), "").body["source"].(string)
		sum := sha256.Sum256([]byte(src))
		built, ok := f.runner.builds.Load(hex.EncodeToString(sum[:]))
		require.True(t, ok, "version %v was built", m["version"])
		require.EqualValues(t, m["version"], built, "version %v was built for its own number", m["version"])
	}
}

func TestMethodNotAllowedIsAProblemAndItsMethodNoLabel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, method := range []string{"PATCH", "BREW"} {
		r := f.do(t, method, "/v1/functions", "")
		require.Equal(t, http.StatusMethodNotAllowed, r.status, r.raw)
		require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
		require.Equal(t, "urn:lambda:problem:method_not_allowed", r.body["type"])
		require.EqualValues(t, 405, r.body["status"])
		require.Equal(t, r.header.Get("X-Request-Id"), r.body["request_id"])
	}
	m := f.do(t, "GET", "/metrics", "")
	require.Contains(t, m.raw, `method="PATCH"`)
	require.Contains(t, m.raw, `method="other"`, "a method the server does not know is no label value")
	require.NotContains(t, m.raw, `method="BREW"`)
}
