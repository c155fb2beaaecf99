package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/freeport"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/internal/testkit/db"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
	devtemporal "github.com/lambda-microservice/lambda/internal/testkit/temporal"
	"github.com/lambda-microservice/lambda/runtimes"
	"github.com/lambda-microservice/lambda/worker"
	"github.com/lambda-microservice/lambda/workflows"
)

// Namespaces of the shared dev server: each test group has its own, so its worker only
// ever sees its own executions (and its own database).
var namespaces = []string{"inproc", "kill", "runtime", "bench", "pgrestart", "eager", "apikill",
	"harden-result", "harden-crash", "harden-sweep", "harden-cap", "harden-uncertain", "pipeline", "pipekill", "callback", "sched",
	"share", "share-wf", "share-waiters"}

// freeAddr is a free loopback address for a process the test starts.
func freeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	require.NoError(t, err)
	return addr
}

// temporalServer is the dev server the package's tests share, with every test group's
// namespace, the search attributes and the dynamic config the platform runs with.
func temporalServer(t testing.TB) string {
	t.Helper()
	return devtemporal.Shared(t, devtemporal.Options{Namespaces: namespaces,
		SearchAttributes: workflows.SearchAttributeNames, Args: serverDynamicConfig()})
}

// serverDynamicConfig is the dev server's tuning (notes/measured-floors.md): the
// transfer queue's poll rate, and eager activity dispatch.
func serverDynamicConfig() []string {
	return []string{
		"--dynamic-config-value", "history.transferProcessorMaxPollRPS=10000",
		"--dynamic-config-value", "system.enableActivityEagerExecution=true",
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	devtemporal.StopShared()
	os.Exit(code)
}

// fakeRuntime stands in for the OpenFaaS gateway and a runtime function: it answers
// the runtime host's contract, with behaviour chosen by the event.
type fakeRuntime struct {
	srv       *httptest.Server
	mu        sync.Mutex
	calls     map[string]int
	started   chan string
	abandoned atomic.Int32
	inflight  atomic.Int32
}

type fakeEvent struct {
	A, B      float64
	Op        string `json:"op"`
	SleepMS   int    `json:"sleep_ms"`
	DieOnce   bool   `json:"die_once"`   // the runtime dies mid-call on the first attempt
	Gateway5x bool   `json:"gateway_5x"` // the gateway answers 502 on the first attempt
	Pad       string `json:"pad"`
	Size      int    `json:"size"` // op "big": a string result of this many bytes
	// ShareRefusals: the first calls are refused 429 TenantShare (the tenant's share is taken).
	ShareRefusals int `json:"share_refusals"`
}

func newFakeRuntime(t testing.TB) *fakeRuntime {
	f := &fakeRuntime{calls: map[string]int{}, started: make(chan string, 1024)}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeRuntime) callsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func (f *fakeRuntime) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/function/") {
		http.NotFound(w, r)
		return
	}
	var call faas.Call
	if err := json.NewDecoder(r.Body).Decode(&call); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.calls[call.ExecutionID]++
	n := f.calls[call.ExecutionID]
	f.mu.Unlock()
	f.inflight.Add(1)
	defer f.inflight.Add(-1)
	select {
	case f.started <- call.ExecutionID:
	default:
	}
	var ev fakeEvent
	_ = json.Unmarshal(call.Event, &ev)
	if ev.SleepMS > 0 {
		select {
		case <-time.After(time.Duration(ev.SleepMS) * time.Millisecond):
		case <-r.Context().Done():
			f.abandoned.Add(1)
			return
		}
	}
	if ev.DieOnce && n == 1 {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	if n <= ev.ShareRefusals {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"type":"TenantShare","message":"this tenant holds its share of the 8 workers"}}`))
		return
	}
	if ev.Gateway5x && n == 1 {
		http.Error(w, "upstream runtime-python exited", http.StatusBadGateway)
		return
	}
	res := faas.Result{Status: store.StatusSucceeded, DurationMS: float64(ev.SleepMS)}
	switch ev.Op {
	case "fail":
		res = faas.Result{Status: store.StatusFailed, Error: &faas.Error{Type: "ValueError", Message: "boom", Stack: "line 1"}}
	case "timeout":
		res = faas.Result{Status: store.StatusTimeout, Error: &faas.Error{Type: "Timeout", Message: "handler exceeded its timeout"}}
	case "len":
		res.Result = json.RawMessage(strconv.Itoa(len(ev.Pad)))
	case "big":
		res.Result = json.RawMessage(`"` + strings.Repeat("x", ev.Size) + `"`)
	default:
		res.Result = json.RawMessage(strconv.FormatFloat(ev.A+ev.B, 'f', -1, 64))
		res.Stdout = "adding\n"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(res)
}

// platform is one test group's PostgreSQL + Redis + invocation core + Temporal client.
type platform struct {
	t        testing.TB
	dbURL    string
	redis    string
	ns       string
	fake     *fakeRuntime
	store    *store.Store
	core     *core.Service
	logs     *store.LogWriter
	fx       *faas.Client
	runtimes *runtimes.Registry
	cache    *cache.Cache
	client   client.Client
	log      *zap.Logger
	im       *metrics.Invoke
	reg      *prometheus.Registry
	tenant   string
	cleanup  []func()
}

func redisURL() string {
	if u := os.Getenv("LAMBDA_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

func newPlatform(t testing.TB, ns string) *platform {
	t.Helper()
	return newPlatformWith(t, ns, "")
}

// newPlatformWith calls the runtime functions at gatewayURL (an OpenFaaS gateway or
// provider); empty means the fake runtime.
// testRuntimeSecret is the runtime hosts' invoke secret in these tests.
const testRuntimeSecret = "worker-test-runtime-secret"

func newPlatformWith(t testing.TB, ns, gatewayURL string) *platform {
	t.Helper()
	return newPlatformOn(t, ns, gatewayURL, db.New(t))
}

// newPlatformOn is newPlatformWith on the migrated database at dbURL.
func newPlatformOn(t testing.TB, ns, gatewayURL, dbURL string) *platform {
	t.Helper()
	addr := temporalServer(t)
	ctx := context.Background()
	p := &platform{t: t, dbURL: dbURL, redis: redisURL(), ns: ns, fake: newFakeRuntime(t),
		tenant: "default"}
	var err error
	p.log, err = logging.New(logging.Config{Level: "warn", Format: "console"}, "test-"+ns, os.Stderr)
	require.NoError(t, err)
	p.store, err = store.Open(ctx, p.dbURL, 16)
	require.NoError(t, err)
	p.cache, err = cache.Open(p.redis, cache.Config{})
	require.NoError(t, err)
	if err := p.cache.Ping(ctx); err != nil {
		prereq.Missing(t, "Redis at %s: %v", p.redis, err)
	}
	if gatewayURL == "" {
		gatewayURL = p.fake.srv.URL
	}
	fx, err := faas.New(faas.Config{GatewayURL: gatewayURL, Namespace: "openfaas-fn", RuntimeSecret: testRuntimeSecret})
	require.NoError(t, err)
	reg, err := runtimes.Load("")
	require.NoError(t, err)
	p.reg = prometheus.NewRegistry()
	p.im = metrics.NewInvoke(p.reg)
	logs := p.store.NewLogWriter(store.LogWriterConfig{}, p.log, nil)
	lctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); logs.Run(lctx) }()
	p.logs = logs
	p.fx = fx
	p.runtimes = reg
	p.core = p.newCore(nil)
	p.client, err = worker.Dial(ctx, worker.TemporalConfig{Addr: addr, Namespace: ns}, p.log, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		for i := len(p.cleanup) - 1; i >= 0; i-- {
			p.cleanup[i]()
		}
		p.client.Close()
		stop()
		<-done
		p.store.Close()
		_ = p.cache.Close()
	})
	return p
}

// register creates a python function whose source is unique to the test.
func (p *platform) register(name string, timeoutMS, cacheTTL int) store.Version {
	p.t.Helper()
	return p.registerSource(name, fmt.Sprintf("def handler(event, context):\n    return event # %s %d\n", p.t.Name(), time.Now().UnixNano()),
		timeoutMS, cacheTTL)
}

func (p *platform) registerSource(name, src string, timeoutMS, cacheTTL int) store.Version {
	p.t.Helper()
	sum := sha256.Sum256([]byte(src))
	f, err := p.store.CreateFunction(context.Background(), store.Version{Tenant: p.tenant, Name: name, Language: "python",
		Source: src, SHA256: hex.EncodeToString(sum[:]), Settings: store.Settings{TimeoutMS: timeoutMS, MemoryMB: 128, CacheTTLS: cacheTTL}})
	require.NoError(p.t, err)
	return f.Version
}

// startWorker runs an in-process worker for the platform's namespace.
func (p *platform) startWorker() sdkworker.Worker {
	return p.startWorkerOf(worker.New)
}

// startLocalWorker runs an in-process worker of workflow tasks and local activities only
// (the api's eager-start worker).
func (p *platform) startLocalWorker() sdkworker.Worker {
	return p.startWorkerOf(worker.NewLocal)
}

func (p *platform) startWorkerOf(build func(client.Client, worker.Config, *activities.Activities) sdkworker.Worker) sdkworker.Worker {
	p.t.Helper()
	acts := activities.WithRuns(activities.New(activities.Config{HeartbeatEvery: 200 * time.Millisecond}, p.core,
		metrics.NewWorkflow(prometheus.NewRegistry()), p.log), activities.RunsOf(p.core))
	w := build(p.client, worker.Config{MaxActivities: 256, MaxWorkflowTasks: 64, HeartbeatThrottle: 500 * time.Millisecond,
		StopTimeout: time.Second}, acts)
	require.NoError(p.t, w.Start())
	p.cleanup = append(p.cleanup, w.Stop)
	return w
}

// newCore returns the platform's invocation core; durable starts its async executions.
func (p *platform) newCore(durable core.Durable) *core.Service {
	return core.New(core.Config{SyncTimeoutMax: time.Minute, IdempotencyTTL: 24 * time.Hour,
		VersionCacheTTL: time.Second, RuntimeCallSlack: 5 * time.Second, Functions: core.FunctionLimits{
			MaxSourceBytes: 1 << 18, DefaultTimeoutMS: 3000, DefaultMemoryMB: 128, MaxTimeout: 15 * time.Minute}},
		core.Deps{Store: p.store, Cache: p.cache, Runner: p.fx, Logs: p.logs, Registry: p.runtimes, Durable: durable,
			Metrics: p.im, Log: p.log})
}

// dispatcher starts and cancels async executions as the api does: the core over the
// workflows' Starter.
type dispatcher struct{ core *core.Service }

func (d *dispatcher) Start(ctx context.Context, req core.Request) (store.Execution, bool, error) {
	return d.core.StartExecution(ctx, req)
}

func (d *dispatcher) Cancel(ctx context.Context, tenant, id string) error {
	return d.core.CancelExecution(ctx, tenant, id)
}

func (p *platform) dispatcher(hb time.Duration) *dispatcher {
	return p.dispatcherWith(hb, false)
}

// dispatcherWith starts workflows eagerly (on this process's worker) when eager is set.
func (p *platform) dispatcherWith(hb time.Duration, eager bool) *dispatcher {
	return &dispatcher{core: p.newCore(workflows.NewStarter(workflows.StarterConfig{HeartbeatTimeout: hb, MaxAttempts: 5,
		StartTimeout: 5 * time.Second, Eager: eager,
		LocalInvokeMax: 10 * time.Second, // the default: handlers with timeouts up to 10 s run as local activities
	}, p.client, p.ns))}
}

func (p *platform) start(d *dispatcher, fn string, event any, key string) store.Execution {
	p.t.Helper()
	raw, err := json.Marshal(event)
	require.NoError(p.t, err)
	e, _, err := d.Start(context.Background(), core.Request{Tenant: p.tenant, Function: fn, LanguageTitle: "python",
		Event: raw, IdempotencyKey: key})
	require.NoError(p.t, err)
	return e
}

// wait polls the execution until it is final.
func (p *platform) wait(id string, within time.Duration) store.Execution {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		e, err := p.store.GetExecution(context.Background(), p.tenant, id, false)
		require.NoError(p.t, err)
		if store.Finished(e.Status) {
			return e
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("execution %s still %s after %s", id, e.Status, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// requireRanAgain checks executions whose first attempt died with its process (event
// {A: i, B: 1} for ids[i]): each succeeded with i+1 on attempt 2, the handler called twice,
// one row.
func (p *platform) requireRanAgain(ids []string) {
	p.t.Helper()
	for i, id := range ids {
		e := p.wait(id, 60*time.Second)
		require.Equal(p.t, store.StatusSucceeded, e.Status, "%+v", e.Error)
		require.JSONEq(p.t, fmt.Sprint(i+1), string(e.Result))
		require.Equal(p.t, 2, e.Attempts, "the attempt in the surviving process produced the result")
		require.Equal(p.t, 2, p.fake.callsOf(id))
		require.Equal(p.t, 1, p.rows(id), "recorded exactly once")
	}
}

// rows counts the request_logs rows of an execution id.
func (p *platform) rows(id string) int {
	p.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.dbURL)
	require.NoError(p.t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(p.t, conn.QueryRow(ctx, `SELECT count(*) FROM request_logs WHERE id = $1`, id).Scan(&n))
	return n
}

// lambdaBin finds bin/lambda (LAMBDA_BIN_DIR, set by make test) or builds it.
func lambdaBin(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("LAMBDA_BIN_DIR"); dir != "" {
		bin := filepath.Join(dir, "lambda")
		out, err := exec.Command(bin, "worker", "--help").CombinedOutput()
		if err != nil {
			prereq.Missing(t, "%s with the worker subcommand (make build): %v: %s", bin, err, out)
		}
		return bin
	}
	bin := filepath.Join(t.TempDir(), "lambda")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/lambda-microservice/lambda/cmd/lambda").CombinedOutput()
	require.NoError(t, err, "go build ./cmd/lambda: %s", out)
	return bin
}

// workerProcess is `lambda worker` (or `lambda api`) as a separate process.
type workerProcess struct {
	metrics string // a worker's /metrics address
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
}

func (p *platform) startWorkerProcess(bin string) *workerProcess {
	p.t.Helper()
	metricsAddr := freeAddr(p.t)
	w := p.startProcess(bin, "worker", "LAMBDA_METRICS_ADDR="+metricsAddr)
	w.metrics = metricsAddr
	return w
}

// startAPIProcess runs `lambda api` (with its eager-start worker) on a free port and
// returns its base URL; the admin token is adminToken.
func (p *platform) startAPIProcess(bin string, env ...string) (string, *workerProcess) {
	p.t.Helper()
	addr := freeAddr(p.t)
	w := p.startProcess(bin, "api", append([]string{"LAMBDA_HTTP_ADDR=" + addr, "LAMBDA_ADMIN_TOKEN=" + adminToken,
		"LAMBDA_ASYNC_EAGER=true"}, env...)...)
	base := "http://" + addr
	require.Eventually(p.t, func() bool {
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var r struct {
			Checks map[string]string `json:"checks"`
		}
		return json.NewDecoder(resp.Body).Decode(&r) == nil && r.Checks["temporal"] == "ok"
	}, 30*time.Second, 100*time.Millisecond, "the api and its worker are up")
	return base, w
}

const adminToken = "test-admin-token-0123456789"

// startProcess runs `lambda <sub>` against the platform's PostgreSQL, Redis, fake
// runtime and Temporal namespace; it is killed at cleanup and its log shown on failure.
func (p *platform) startProcess(bin, sub string, env ...string) *workerProcess {
	p.t.Helper()
	cmd := exec.Command(bin, sub)
	cmd.Env = append(os.Environ(),
		"LAMBDA_DATABASE_URL="+p.dbURL, "LAMBDA_REDIS_URL="+p.redis, "LAMBDA_GATEWAY_URL="+p.fake.srv.URL,
		"LAMBDA_TEMPORAL_ADDR="+temporalServer(p.t), "LAMBDA_TEMPORAL_NAMESPACE="+p.ns,
		"LAMBDA_MIGRATE_ON_START=false",
		"LAMBDA_LOG_LEVEL=warn", "LAMBDA_LOG_FORMAT=console", "LAMBDA_HEARTBEAT_INTERVAL=200ms", "LAMBDA_HEARTBEAT_THROTTLE=500ms")
	cmd.Env = append(cmd.Env, env...)
	logPath := filepath.Join(p.t.TempDir(), sub+".log")
	f, err := os.Create(logPath)
	require.NoError(p.t, err)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(p.t, cmd.Start())
	w := &workerProcess{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(w.done) }()
	p.cleanup = append(p.cleanup, func() {
		_ = cmd.Process.Kill()
		<-w.done
		_ = f.Close()
		if p.t.Failed() {
			out, _ := os.ReadFile(logPath)
			p.t.Logf("%s %d log:\n%s", sub, cmd.Process.Pid, out)
		}
	})
	return w
}

func (w *workerProcess) kill9() {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.done
}

type countRequest struct{ ns, query string }

func (c countRequest) proto() *workflowservice.CountWorkflowExecutionsRequest {
	return &workflowservice.CountWorkflowExecutionsRequest{Namespace: c.ns, Query: c.query}
}

func req(p *platform, fn string, event json.RawMessage, key string) core.Request {
	return core.Request{Tenant: p.tenant, Function: fn, LanguageTitle: "python", Event: event, IdempotencyKey: key}
}

func pgCount(p *platform, n *int) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, `SELECT count(*) FROM request_logs`).Scan(n)
}

func testLogger(t testing.TB) *zap.Logger {
	l, err := logging.New(logging.Config{Level: "warn", Format: "console"}, "test", os.Stderr)
	require.NoError(t, err)
	return l
}
