package soak

import (
	"context"
	"encoding/json"

	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lambda-microservice/lambda/internal/devstack"
	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/freeport"
)

// Config is one soak.
type Config struct {
	Duration time.Duration // of the load (default 10 minutes)
	Seed     uint64
	Faults   []string // default AllFaults
	Rates    Rates    // default DefaultRates
	// MinGap/MaxGap bound the quiet time between faults; Pause is a SIGSTOP's and a full
	// /tmp's length.
	MinGap, MaxGap, Pause time.Duration
	// Drain bounds the wait, after the load, for accepted async work to become final.
	Drain time.Duration
	// HistoryPath receives the history as JSON lines ("" : in DataDir).
	HistoryPath string
	// Environ is the environment the stack's options come from (LAMBDA_BIN_DIR, ...).
	Environ map[string]string
	// DataDir holds the stack's data ("" : a temporary folder, removed after).
	DataDir string
	Log     io.Writer
}

func (c *Config) defaults() {
	if c.Duration <= 0 {
		c.Duration = 10 * time.Minute
	}
	if c.Faults == nil {
		c.Faults = AllFaults
	}
	if c.Rates == nil {
		c.Rates = DefaultRates()
	}
	if c.MinGap <= 0 {
		c.MinGap = 10 * time.Second
	}
	if c.MaxGap < c.MinGap {
		c.MaxGap = 2 * c.MinGap
	}
	if c.Pause <= 0 {
		c.Pause = 10 * time.Second
	}
	if c.Drain <= 0 {
		c.Drain = 3 * time.Minute
	}
	if c.Environ == nil {
		c.Environ = devstack.OSEnviron()
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
}

// Result is a finished soak.
type Result struct {
	Config                Config
	Started               time.Time // the load's start
	Finished              time.Time // the load's end
	Records               []Record
	Faults                []Fault
	Checked               Checked
	Pending               int    // accepted async work still not final after the drain
	StackErr              string // the platform failed during the soak
	LoadBefore, LoadAfter string
}

// The stack's shape: as the issue asks, two of each.
const (
	apis, workers, replicasPerRuntime = 2, 2, 2
)

// Run starts the platform, loads it while the nemesis works, checks the history.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	logf := func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "soak %s: "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	dir := cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "lambda-soak-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	opts, err := devstack.LoadOptions(cfg.Environ)
	if err != nil {
		return nil, err
	}
	opts.Isolate(filepath.Join(dir, "data"))
	// A PostgreSQL and a Redis of the soak's own (nothing answers on a fresh free port, so
	// devstack starts private instances): the nemesis restarts them, and other tests of
	// this machine use the shared ones.
	pgPort, err := freeport.Get()
	if err != nil {
		return nil, err
	}
	redisPort, err := freeport.Get()
	if err != nil {
		return nil, err
	}
	opts.DatabaseURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/lambda_soak?sslmode=disable", pgPort)
	opts.RedisURL = fmt.Sprintf("redis://127.0.0.1:%d/0", redisPort)
	opts.APIs, opts.Workers, opts.RuntimeReplicas = apis, workers, replicasPerRuntime
	opts.Worker = "on"
	opts.Out = cfg.Log
	if opts.TemporalBin == "" {
		opts.TemporalBin = devstack.DefaultTemporalBin(cfg.Environ)
	}
	logf("starting the platform (%d apis, %d workers, %d replicas per runtime, private PostgreSQL and Redis) in %s", apis, workers, replicasPerRuntime, dir)
	stack, err := devstack.Start(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("starting the platform: %w", err)
	}
	defer stack.Stop()

	target, shapes, err := setup(ctx, stack, logf)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	histPath := cfg.HistoryPath
	if histPath == "" {
		histPath = filepath.Join(dir, "history.jsonl")
	}
	h, err := NewHistory(histPath)
	if err != nil {
		return nil, err
	}
	defer h.Close()

	res := &Result{Config: cfg, LoadBefore: loadAvg()}
	load := &Load{T: target, Rates: cfg.Rates, H: h}
	var apiNames, workerNames []string
	for i := range apis {
		apiNames = append(apiNames, numbered("api", i))
	}
	for i := range workers {
		workerNames = append(workerNames, numbered("worker", i))
	}
	nem := &Nemesis{Stack: stack, Faults: cfg.Faults, Seed: cfg.Seed, MinGap: cfg.MinGap, MaxGap: cfg.MaxGap,
		Pause: cfg.Pause, APIs: apiNames, Workers: workerNames, H: h, Log: logf,
		WantReplicas: replicasPerRuntime * len(stack.Functions),
		ReplicasReady: func(ctx context.Context) (int, error) {
			n := 0
			for _, fn := range stack.Functions {
				eps, err := faas.FetchEndpoints(ctx, http.DefaultClient, stack.ProviderURL, fn)
				if err != nil {
					return n, err
				}
				n += len(eps)
			}
			return n, nil
		}}

	logf("load for %s (seed %d, faults %s)", cfg.Duration, cfg.Seed, strings.Join(cfg.Faults, ", "))
	lctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	res.Started = time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		nem.Run(lctx)
	}()
	var snap *Snapshot
	go func() {
		sleep(lctx, cfg.Duration/2)
		if lctx.Err() != nil {
			return
		}
		s, err := TakeSnapshot(context.WithoutCancel(lctx), stack.DatabaseURL)
		if err != nil {
			logf("mid-soak snapshot: %v", err)
			return
		}
		logf("mid-soak snapshot: %d final executions, %d final runs", len(s.Execs), len(s.Runs))
		snap = s
	}()
	go func() {
		select {
		case <-stack.Done():
			logf("the platform failed: %v", stack.Err())
			cancel()
		case <-lctx.Done():
		}
	}()
	load.Run(lctx)
	res.Finished = time.Now()
	<-done // the fault in progress ends
	if err := stack.Err(); err != nil {
		res.StackErr = err.Error()
	}
	res.Records = h.Records()
	res.Faults = h.Faults()
	logf("load over: %d requests, %d faults; waiting up to %s for accepted work to be final", len(res.Records), len(res.Faults), cfg.Drain)

	var db DB
	deadline := time.Now().Add(cfg.Drain)
	for {
		db, err = ReadDB(ctx, stack.DatabaseURL)
		if err == nil {
			res.Pending = pending(res.Records, db)
		}
		if err == nil && res.Pending == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleep(ctx, 2*time.Second)
	}
	if err != nil {
		return res, fmt.Errorf("reading the database: %w", err)
	}
	res.Checked = Check(res.Records, db, snap, shapes)
	res.LoadAfter = loadAvg()
	logf("checked: %d violations, %d async accepted, %d final", len(res.Checked.Violations), res.Checked.AsyncAccepted, res.Checked.AsyncFinal)
	return res, nil
}

func numbered(name string, i int) string {
	if i == 0 {
		return name
	}
	return fmt.Sprintf("%s-%d", name, i+1)
}

// Handlers answer their event's n and k (so that the checker knows whose answer it is).
var handlers = map[string]string{
	"python": "def handler(event, context):\n    return {\"ok\": True, \"n\": event.get(\"n\"), \"k\": event.get(\"k\")}\n",
	"node":   "exports.handler = async (event, context) => ({ ok: true, n: event.n ?? null, k: event.k ?? null });\n",
	"rust": "use serde_json::{json, Value};\n\n" +
		"fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {\n" +
		"    Ok(json!({\"ok\": true, \"n\": event[\"n\"], \"k\": event[\"k\"]}))\n}\n",
}

// setup registers the functions and pipelines, opens the sessions and warms everything
// (a cold Rust build is not the nemesis' doing).
func setup(ctx context.Context, stack *devstack.Stack, logf func(string, ...any)) (Target, map[Kind]PipelineShape, error) {
	t := Target{APIs: stack.APIURLs, Token: stack.AdminToken, Functions: map[Kind]string{}, Languages: map[Kind]string{}, Pipelines: map[Kind]string{}}
	c := &client{base: stack.APIURL, token: stack.AdminToken}
	fns := []struct {
		kind  Kind
		name  string
		lang  string
		extra map[string]any
	}{
		{SyncPython, "soak-python", "python", nil},
		{SyncNode, "soak-node", "node", nil},
		{SyncRust, "soak-rust", "rust", nil},
		{CacheHit, "soak-cached", "python", map[string]any{"cache_ttl_s": 3600}},
		{Async, "soak-python", "python", nil},
	}
	for _, f := range fns {
		t.Functions[f.kind] = f.name
		t.Languages[f.kind] = f.lang
		body := map[string]any{"name": f.name, "language": f.lang, "source": handlers[f.lang]}
		for k, v := range f.extra {
			body[k] = v
		}
		if st, b, err := c.post(ctx, "/v1/functions", body, nil); err != nil || (st != 201 && st != 409) {
			return t, nil, fmt.Errorf("register %s: %d %s %v", f.name, st, b, err)
		}
	}
	mapStep := map[string]any{"id": "double", "map": map[string]any{"items": "input.items", "max_concurrency": 3,
		"step": map[string]any{"function": "soak-python"}}}
	count := map[string]any{"n": "${size(steps.double.output)}", "k": "${input.k}"}
	pipes := []struct {
		kind  Kind
		name  string
		steps []map[string]any
		shape PipelineShape
	}{
		{RunSync, "soak-map", []map[string]any{mapStep, {"id": "last", "function": "soak-node", "input": count}},
			PipelineShape{Steps: []string{"double", "last"}, Calls: map[string]int{"double": 3, "last": 1}}},
		{RunAsync, "soak-map-sleep", []map[string]any{mapStep, {"id": "nap", "sleep_ms": 500},
			{"id": "last", "function": "soak-rust", "input": count}},
			PipelineShape{Steps: []string{"double", "nap", "last"}, Calls: map[string]int{"double": 3, "last": 1}}},
	}
	shapes := map[Kind]PipelineShape{}
	for _, p := range pipes {
		t.Pipelines[p.kind] = p.name
		shapes[p.kind] = p.shape
		if st, b, err := c.post(ctx, "/v1/pipelines", map[string]any{"name": p.name, "steps": p.steps}, nil); err != nil || (st != 201 && st != 409) {
			return t, nil, fmt.Errorf("register pipeline %s: %d %s %v", p.name, st, b, err)
		}
	}
	for _, lang := range []string{"python", "node"} {
		st, b, err := c.post(ctx, "/v1/sessions", map[string]any{"language": lang}, nil)
		var s struct {
			ID string `json:"id"`
		}
		if err != nil || st != 201 || json.Unmarshal(b, &s) != nil || s.ID == "" {
			return t, nil, fmt.Errorf("open a %s session: %d %s %v", lang, st, b, err)
		}
		t.Sessions = append(t.Sessions, s.ID)
	}
	// Warm up: every function answers once on each api (the Rust build takes minutes cold).
	logf("warming up the functions and pipelines")
	deadline := time.Now().Add(10 * time.Minute)
	warm := func(path string, body any, h http.Header, want int) error {
		for {
			st, b, err := c.post(ctx, path, body, h)
			if err == nil && st == want {
				return nil
			}
			if time.Now().After(deadline) || ctx.Err() != nil || st >= 400 && st < 500 {
				return fmt.Errorf("warm-up %s: %d %s %v", path, st, b, err)
			}
			logf("warm-up %s: %d %s %v (again in 1 s)", path, st, truncate(b, 200), err)
			sleep(ctx, time.Second)
		}
	}
	for _, f := range fns {
		h := http.Header{"Language-Title": []string{f.lang}}
		if err := warm("/v1/functions/"+url.PathEscape(f.name)+"/invoke", map[string]any{"n": 0}, h, 200); err != nil {
			return t, nil, err
		}
	}
	if err := warm("/v1/pipelines/soak-map/runs", map[string]any{"k": "warm-up", "items": []any{map[string]int{"n": 1}}}, nil, 200); err != nil {
		return t, nil, err
	}
	return t, shapes, nil
}

// client is the setup's plain HTTP client.
type client struct {
	base, token string
}

func (c *client) post(ctx context.Context, path string, body any, h http.Header) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	l := &Load{T: Target{Token: c.token}, Timeout: 5 * time.Minute}
	l.init()
	if h == nil {
		h = http.Header{}
	}
	return l.do(http.MethodPost, c.base+path, h, b)
}

// loadAvg is the machine's load average (1/5/15 min).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " / ")
}
