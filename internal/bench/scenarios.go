package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"
)

// Settings are the scenarios' rates and durations. FullSettings is `make bench`,
// QuickSettings `make bench-quick` (the harness proving itself, numbers meaningless).
type Settings struct {
	Quick    bool
	Runtimes []string // runtime titles of the trivial handlers
	// Only, when not empty, limits the run to these scenario numbers (0–13).
	Only   map[int]bool
	Python string // interpreter for the fork-per-request baseline

	Warmup time.Duration // at the target rate before each measured sync load (not recorded)
	Pause  time.Duration // between loads, to let queues drain

	GeneratorRates []float64 // against an in-process no-op server
	GeneratorTime  time.Duration
	EchoCalls      int           // cross-process round trips back to back (a tenth of them paced): the machine's floor
	FlushCalls     int           // disk flushes back to back: the floor of a durable commit
	FlushRate      float64       // disk flushes paced at this rate ...
	FlushDuration  time.Duration // ... for this long

	SyncRate     float64 // scenario 1
	SyncDuration time.Duration

	CacheRate     float64 // scenario 2
	CacheDuration time.Duration

	SearchStart, SearchFactor, SearchMax float64 // scenario 3
	SearchStep                           time.Duration
	SearchRefine                         int
	SearchP99                            time.Duration
	SearchErrors                         float64

	AsyncRates                                          []float64 // scenario 4
	AsyncDuration                                       time.Duration
	AsyncTimeout                                        time.Duration
	AsyncSearchStart, AsyncSearchFactor, AsyncSearchMax float64
	AsyncSearchStep                                     time.Duration
	AsyncSearchRefine                                   int
	AsyncP99                                            time.Duration
	AsyncDrain                                          time.Duration // most time to wait for the backlog after a step

	ColdVersions, RustColdVersions int // scenario 5
	ColdWarmCalls                  int

	OverheadRate     float64 // scenario 6
	OverheadDuration time.Duration
	OverheadCalls    int // sequential calls of each, interleaved

	ForkRate     float64 // scenario 7
	ForkDuration time.Duration
	ForkCalls    int // sequential

	Pipelines        PipelineSettings      // scenario 8
	AsyncPipelines   AsyncPipelineSettings // scenario 9
	NewcomerRate     float64               // scenario 10
	NewcomerWarmup   time.Duration
	NewcomerDuration time.Duration
	SessionCells     int           // scenario 11: cells back to back in one session
	Noisy            NoisySettings // scenario 13
}

// FullSettings are `make bench`'s.
func FullSettings() Settings {
	return Settings{
		Runtimes: []string{"python", "node", "rust"}, Python: "/usr/bin/python3",
		Warmup: 5 * time.Second, Pause: 2 * time.Second,
		GeneratorRates: []float64{1000, 3000}, GeneratorTime: 5 * time.Second, EchoCalls: 5000,
		FlushCalls: 1000, FlushRate: 500, FlushDuration: 10 * time.Second,
		SyncRate: 1000, SyncDuration: 30 * time.Second,
		CacheRate: 3000, CacheDuration: 30 * time.Second,
		SearchStart: 1000, SearchFactor: 1.5, SearchMax: 20000, SearchStep: 10 * time.Second, SearchRefine: 2,
		SearchP99: 100 * time.Millisecond, SearchErrors: 0.001,
		AsyncRates: []float64{50, 100}, AsyncDuration: 20 * time.Second, AsyncTimeout: 30 * time.Second,
		AsyncSearchStart: 25, AsyncSearchFactor: 2, AsyncSearchMax: 800, AsyncSearchStep: 10 * time.Second,
		AsyncSearchRefine: 2, AsyncP99: time.Second, AsyncDrain: 2 * time.Minute,
		ColdVersions: 5, RustColdVersions: 2, ColdWarmCalls: 50,
		OverheadRate: 500, OverheadDuration: 15 * time.Second, OverheadCalls: 2000,
		ForkRate: 20, ForkDuration: 15 * time.Second, ForkCalls: 50,
		Pipelines: PipelineSettings{SyncRate: 200, SyncDuration: 20 * time.Second, SeqSteps: 40, SeqRuns: 50, StepCalls: 2000},
		AsyncPipelines: AsyncPipelineSettings{Rate: 20, Duration: 20 * time.Second,
			SearchStart: 25, SearchFactor: 2, SearchMax: 400, SearchStep: 10 * time.Second, SearchRefine: 2,
			MapItems: 1000, MapConcurrency: 50, MapRuns: 3},
		NewcomerRate: 1000, NewcomerWarmup: 5 * time.Second, NewcomerDuration: 20 * time.Second,
		SessionCells: 2000,
		Noisy: NoisySettings{Sleep: 2 * time.Second, FloodRate: 20, Rate: 50, Warmup: 15 * time.Second, Duration: 30 * time.Second,
			Alone: 10 * time.Second},
	}
}

// QuickSettings are `make bench-quick`'s: every scenario, short and gentle.
func QuickSettings() Settings {
	return Settings{
		Quick:    true,
		Runtimes: []string{"python", "node", "rust"}, Python: "/usr/bin/python3",
		Warmup: 200 * time.Millisecond, Pause: 200 * time.Millisecond,
		GeneratorRates: []float64{1000}, GeneratorTime: time.Second, EchoCalls: 200,
		FlushCalls: 50, FlushRate: 100, FlushDuration: time.Second,
		SyncRate: 200, SyncDuration: time.Second,
		CacheRate: 500, CacheDuration: time.Second,
		SearchStart: 200, SearchFactor: 2, SearchMax: 400, SearchStep: time.Second, SearchRefine: 0,
		SearchP99: 100 * time.Millisecond, SearchErrors: 0.001,
		AsyncRates: []float64{5, 10}, AsyncDuration: time.Second, AsyncTimeout: 20 * time.Second,
		AsyncSearchStart: 10, AsyncSearchFactor: 2, AsyncSearchMax: 10, AsyncSearchStep: time.Second,
		AsyncSearchRefine: 0, AsyncP99: time.Second, AsyncDrain: 20 * time.Second,
		ColdVersions: 1, RustColdVersions: 1, ColdWarmCalls: 5,
		OverheadRate: 100, OverheadDuration: time.Second, OverheadCalls: 50,
		ForkRate: 5, ForkDuration: time.Second, ForkCalls: 3,
		Pipelines: PipelineSettings{SyncRate: 20, SyncDuration: time.Second, SeqSteps: 40, SeqRuns: 3, StepCalls: 20},
		AsyncPipelines: AsyncPipelineSettings{Rate: 5, Duration: time.Second,
			SearchStart: 10, SearchFactor: 2, SearchMax: 10, SearchStep: time.Second, SearchRefine: 0,
			MapItems: 50, MapConcurrency: 10, MapRuns: 1},
		NewcomerRate: 200, NewcomerWarmup: 200 * time.Millisecond, NewcomerDuration: time.Second,
		SessionCells: 50,
		Noisy: NoisySettings{Sleep: 500 * time.Millisecond, FloodRate: 10, Rate: 20, Warmup: 500 * time.Millisecond, Duration: time.Second,
			Alone: 500 * time.Millisecond},
	}
}

// Handlers are the trivial handlers per runtime title: return a constant object and the
// event's "n".
var Handlers = map[string]string{
	"python": "def handler(event, context):\n    return {\"ok\": True, \"n\": event.get(\"n\")}\n",
	"node":   "exports.handler = async (event, context) => ({ ok: true, n: event.n });\n",
	"rust": "use serde_json::{json, Value};\n\n" +
		"fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {\n" +
		"    Ok(json!({\"ok\": true, \"n\": event[\"n\"]}))\n}\n",
}

// comment is a line comment in the runtime's language (for making a source unique).
func comment(title string) string {
	if title == "python" {
		return "# "
	}
	return "// "
}

// Event is the trivial handlers' event.
var Event = []byte(`{"n":1}`)

// Runner runs the scenarios against a platform.
type Runner struct {
	P *Platform
	S Settings
	// Log receives progress lines (nil: discard).
	Log io.Writer
	// During, when set, runs alongside scenario 1's first runtime for its measured
	// duration (profiling); what it returns goes to Report.Profile.
	During func(ctx context.Context, d time.Duration) string
	// RuntimeFunction maps a title to its OpenFaaS function (default runtime-<title>).
	RuntimeFunction func(title string) string
	// ScratchDir is a directory on the disk that holds PostgreSQL's data, for scenario 0's
	// disk-flush rows (empty: not measured).
	ScratchDir string
	// StackName describes the stack for scenario 8's row (e.g. "`make run`'s defaults").
	StackName string
	// MetricsURLs are the /metrics pages of the processes that run activities (the api and
	// the worker), for scenario 13's count of Invoke errors (empty: not counted).
	MetricsURLs []string
}

func (r *Runner) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, "bench: "+format+"\n", args...)
	}
}

func (r *Runner) runtimeFunction(title string) string {
	if r.RuntimeFunction != nil {
		return r.RuntimeFunction(title)
	}
	return "runtime-" + title
}

// Run runs every scenario (in an order that keeps one scenario's leftovers from skewing
// the next: the async backlog goes last) and returns the report. A scenario that cannot
// run is recorded as a failed row; Run returns an error only when ctx ends.
func (r *Runner) Run(ctx context.Context) (*Report, error) {
	rep := &Report{Settings: r.S, Started: time.Now()}
	fns := map[string]Function{}
	needFns := len(r.S.Only) == 0
	for n := range r.S.Only {
		needFns = needFns || (n != 0 && n != 10 && n != 11 && n != 13) // 0, 10, 11 and 13 bring their own
	}
	for _, title := range r.S.Runtimes {
		if !needFns {
			break
		}
		f, err := r.P.Register(ctx, "bench-"+title, title, Handlers[title], nil)
		if err != nil {
			return nil, err
		}
		r.logf("registered %s v%d; first call", f.Name, f.Version)
		t0 := time.Now()
		if err := r.P.Invoke(ctx, f, Event); err != nil {
			return nil, fmt.Errorf("first call of %s: %w", f.Name, err)
		}
		rep.notef("Setup: first call of %s (cold start of its worker%s): %s.", f.Name,
			map[bool]string{true: ", build from the shared cache", false: ""}[title == "rust"], ms(time.Since(t0)))
		fns[title] = f
	}

	for _, s := range []struct {
		n   int
		run func()
	}{
		{0, func() { r.generator(ctx, rep) }},
		{5, func() { r.cold(ctx, rep, fns) }},
		{5, func() { r.depsCached(ctx, rep) }},
		{6, func() { r.overhead(ctx, rep, fns) }},
		{7, func() { r.fork(ctx, rep, fns) }},
		{1, func() { r.syncWarm(ctx, rep, fns) }},
		{8, func() { r.pipelines(ctx, rep, fns) }},
		{10, func() { r.Newcomer(ctx, rep) }},
		{2, func() { r.cacheHit(ctx, rep) }},
		{3, func() { r.search(ctx, rep, fns) }},
		{9, func() { r.asyncPipelines(ctx, rep, fns) }},
		{11, func() { r.sessionCells(ctx, rep) }},
		{4, func() { r.async(ctx, rep, fns) }},
		{13, func() { r.noisy(ctx, rep) }},
	} {
		if len(r.S.Only) == 0 || r.S.Only[s.n] {
			s.run()
		}
	}
	rep.Finished = time.Now()
	return rep, ctx.Err()
}

// load runs one open-loop load with its own connection pool.
func (r *Runner) load(ctx context.Context, rate float64, d time.Duration, timeout time.Duration, mk func(c *Client) Op) Result {
	l := Load{Rate: rate, Duration: d, Timeout: timeout}.withDefaults()
	c := NewClient(l.Workers)
	defer c.CloseIdleConnections()
	return Run(ctx, l, mk(c))
}

func (r *Runner) pause(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-time.After(r.S.Pause):
	}
}

// echoRate paces the cross-process round trips of scenario 0: slow enough that both
// processes park between them.
const echoRate = 100

// 0: the generator against an in-process no-op server, and the machine's cross-process
// round trip.
func (r *Runner) generator(ctx context.Context, rep *Report) {
	if op, stop, err := PipeEcho(); err != nil {
		rep.notef("Cross-process round trip not measured: %v.", err)
	} else {
		seq := Sequential(ctx, r.S.EchoCalls, 5*time.Second, op)
		paced := r.load(ctx, echoRate, time.Duration(r.S.EchoCalls/10)*time.Second/echoRate, 5*time.Second,
			func(*Client) Op { return op })
		stop()
		const what = "machine floor: one byte to `cat` through a pipe and back (a cross-process round trip)"
		rep.add(Row{Section: "0 generator", Case: what + ", back to back", Result: &seq, Budget: "—"})
		rep.add(Row{Section: "0 generator", Case: what + ", paced (both processes parked in between)", Offered: echoRate,
			Result: &paced, Budget: "—"})
	}
	r.diskFlush(ctx, rep)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"succeeded"}`)
	}))
	defer srv.Close()
	for _, rate := range r.S.GeneratorRates {
		r.logf("generator self-check at %.0f/s", rate)
		res := r.load(ctx, rate, r.S.GeneratorTime, 5*time.Second, func(c *Client) Op {
			return HTTPOp(c, Request{Method: http.MethodPost, URL: srv.URL, Body: Event, Check: checkEnvelope})
		})
		rep.add(Row{Section: "0 generator", Case: "in-process no-op HTTP server (generator + loopback floor)",
			Offered: rate, Result: &res, Budget: "—"})
		r.pause(ctx)
	}
}

// diskFlush measures the disk's fdatasync back to back and paced: every sync invocation
// waits for one through its request log's commit, so its tail bounds theirs.
func (r *Runner) diskFlush(ctx context.Context, rep *Report) {
	if r.ScratchDir == "" {
		return
	}
	op, stop, err := DiskFlush(r.ScratchDir)
	if err != nil {
		rep.notef("Disk flush not measured: %v.", err)
		return
	}
	defer stop()
	r.logf("0 disk flush: %d back to back, then %.0f/s for %s", r.S.FlushCalls, r.S.FlushRate, r.S.FlushDuration)
	seq := Sequential(ctx, r.S.FlushCalls, 5*time.Second, op)
	paced := r.load(ctx, r.S.FlushRate, r.S.FlushDuration, 5*time.Second, func(*Client) Op { return op })
	const what = "machine floor: 8 KiB write + fdatasync on PostgreSQL's disk (a commit's WAL flush)"
	rep.add(Row{Section: "0 generator", Case: what + ", back to back", Result: &seq, Budget: "—"})
	rep.add(Row{Section: "0 generator", Case: what + ", paced", Offered: r.S.FlushRate, Result: &paced, Budget: "—"})
}

// 1: sync warm trivial handler per runtime.
func (r *Runner) syncWarm(ctx context.Context, rep *Report, fns map[string]Function) {
	for i, title := range r.S.Runtimes {
		f := fns[title]
		req := r.P.InvokeRequest(f, Event)
		r.logf("1 sync warm %s: warm-up %s, then %.0f/s for %s", title, r.S.Warmup, r.S.SyncRate, r.S.SyncDuration)
		r.load(ctx, r.S.SyncRate, r.S.Warmup, 10*time.Second, func(c *Client) Op { return HTTPOp(c, req) })
		var prof chan string
		if i == 0 && r.During != nil {
			prof = make(chan string, 1)
			go func() { prof <- r.During(ctx, r.S.SyncDuration) }()
		}
		res := r.load(ctx, r.S.SyncRate, r.S.SyncDuration, 10*time.Second, func(c *Client) Op { return HTTPOp(c, req) })
		row := Row{Section: "1 sync warm", Case: title + " trivial handler, full stack", Offered: r.S.SyncRate, Result: &res,
			Budget: "p50 ≤ 2 ms, p99 ≤ 10 ms, 0 errors"}
		row.Verdict = verdict(res.Quantile(50) <= 2 && res.Quantile(99) <= 10 && res.Errors == 0)
		rep.add(row)
		if prof != nil {
			rep.Profile = <-prof
		}
		r.pause(ctx)
	}
}

// 2: sync Redis cache hit.
func (r *Runner) cacheHit(ctx context.Context, rep *Report) {
	title := r.S.Runtimes[0]
	f, err := r.P.Register(ctx, "bench-cache-"+title, title, Handlers[title], map[string]any{"cache_ttl_s": 3600})
	if err == nil {
		err = r.P.Invoke(ctx, f, Event) // fills the cache
	}
	if err != nil {
		rep.add(Row{Section: "2 cache hit", Case: title, Note: "setup failed: " + err.Error(), Verdict: "FAIL"})
		return
	}
	req := r.P.InvokeRequest(f, Event)
	req.Check = checkCached
	r.logf("2 cache hit: warm-up, then %.0f/s for %s", r.S.CacheRate, r.S.CacheDuration)
	r.load(ctx, r.S.CacheRate, r.S.Warmup, 10*time.Second, func(c *Client) Op { return HTTPOp(c, req) })
	res := r.load(ctx, r.S.CacheRate, r.S.CacheDuration, 10*time.Second, func(c *Client) Op { return HTTPOp(c, req) })
	row := Row{Section: "2 cache hit", Case: title + " handler, Redis result cache hit", Offered: r.S.CacheRate, Result: &res,
		Budget: "p99 ≤ 3 ms"}
	row.Verdict = verdict(res.Quantile(99) <= 3 && res.ErrorRate() < 0.001)
	rep.add(row)
	r.pause(ctx)
}

// checkCached accepts a succeeded envelope that came from the cache.
func checkCached(body []byte) error {
	if err := checkEnvelope(body); err != nil {
		return err
	}
	if !strings.Contains(string(body), `"cached":true`) {
		return fmt.Errorf("not a cache hit")
	}
	return nil
}

// searchKeys is how many API keys scenario 3 spreads its load over: at the README's
// 5,000/s per key, enough for the tenant's 10,000/s.
const searchKeys = 4

// 3: the highest sustained sync rate per runtime.
func (r *Runner) search(ctx context.Context, rep *Report, fns map[string]Function) {
	keys, err := r.P.Keys(ctx, searchKeys)
	if err != nil {
		rep.add(Row{Section: "3 max sync", Case: "keys", Note: "setup failed: " + err.Error(), Verdict: "FAIL"})
		return
	}
	for _, title := range r.S.Runtimes {
		f := fns[title]
		req := r.P.InvokeRequest(f, Event)
		s := Search{Start: r.S.SearchStart, Factor: r.S.SearchFactor, Max: r.S.SearchMax, Min: 50,
			Step: r.S.SearchStep, Refine: r.S.SearchRefine,
			Pass: func(res Result) bool {
				return res.Quantile(99) < ms64(r.S.SearchP99) && res.ErrorRate() < r.S.SearchErrors
			},
			Between: r.pause,
		}
		sr := s.Run(ctx, func(ctx context.Context, rate float64) Result {
			r.logf("3 max sync %s: step %.0f/s for %s", title, rate, r.S.SearchStep)
			return r.load(ctx, rate, r.S.SearchStep, 5*time.Second, func(c *Client) Op { return RotateKeys(c, req, keys) })
		})
		rep.addSearch("3 max sync", title, sr, fmt.Sprintf("p99 < %s, errors < %.1f %%", r.S.SearchP99, r.S.SearchErrors*100),
			"≥ 3,000/s", sr.Best >= 3000)
	}
}

// 4: async POST → result visible.
func (r *Runner) async(ctx context.Context, rep *Report, fns map[string]Function) {
	title := r.S.Runtimes[0]
	f := fns[title]
	run := func(ctx context.Context, rate float64, d time.Duration) Result {
		l := Load{Rate: rate, Duration: d, Timeout: r.S.AsyncTimeout, Workers: min(8192, max(256, int(rate*r.S.AsyncTimeout.Seconds())+64))}
		c := NewClient(l.Workers)
		defer c.CloseIdleConnections()
		res := Run(ctx, l, r.P.AsyncOp(c, f, Event))
		r.drain(ctx)
		return res
	}
	for _, rate := range r.S.AsyncRates {
		r.logf("4 async %s: %.0f workflows/s for %s", title, rate, r.S.AsyncDuration)
		res := run(ctx, rate, r.S.AsyncDuration)
		row := Row{Section: "4 async", Case: title + " trivial handler, POST → final envelope (long-poll)", Offered: rate, Result: &res,
			Budget: "p50 ≤ 50 ms (50–100 accepted)"}
		row.Verdict = verdict(res.Quantile(50) <= 50 && res.ErrorRate() < 0.001)
		rep.add(row)
	}
	s := Search{Start: r.S.AsyncSearchStart, Factor: r.S.AsyncSearchFactor, Max: r.S.AsyncSearchMax, Min: 1,
		Step: r.S.AsyncSearchStep, Refine: r.S.AsyncSearchRefine,
		Pass: func(res Result) bool {
			return res.Quantile(99) < ms64(r.S.AsyncP99) && res.ErrorRate() < 0.001
		},
	}
	sr := s.Run(ctx, func(ctx context.Context, rate float64) Result {
		r.logf("4 max async %s: step %.0f/s for %s", title, rate, r.S.AsyncSearchStep)
		return run(ctx, rate, r.S.AsyncSearchStep)
	})
	rep.addSearch("4 async", title, sr, fmt.Sprintf("p99 < %s, errors < 0.1 %%", r.S.AsyncP99), "≥ 100 workflows/s", sr.Best >= 100)
}

// drain waits (up to AsyncDrain) until no execution is queued or running, so that one
// async load's backlog does not land in the next.
func (r *Runner) drain(ctx context.Context) { r.drainList(ctx, "/v1/executions", "async") }

// drainList waits (up to AsyncDrain) until the API's list at path (executions or runs)
// shows nothing queued or running, then pauses; what names the backlog in the log.
func (r *Runner) drainList(ctx context.Context, path, what string) {
	deadline := time.Now().Add(r.S.AsyncDrain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		busy := false
		for _, st := range []string{"queued", "running"} {
			status, body, err := Do(ctx, r.P.client(), http.MethodGet, r.P.APIURL+path+"?limit=1&status="+st, r.P.Header(), nil)
			if err != nil || status != http.StatusOK || strings.Contains(string(body), `"id"`) {
				busy = true
			}
		}
		if !busy {
			r.pause(ctx)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.logf("%s backlog not drained after %s", what, r.S.AsyncDrain)
}

// 5: first call of a new version per runtime, over warm.
func (r *Runner) cold(ctx context.Context, rep *Report, fns map[string]Function) {
	for _, title := range r.S.Runtimes {
		f := fns[title]
		warm := Sequential(ctx, r.S.ColdWarmCalls, 10*time.Second, HTTPOp(r.P.client(), r.P.InvokeRequest(f, Event)))
		n := r.S.ColdVersions
		if title == "rust" {
			n = r.S.RustColdVersions
		}
		res := Result{ErrorKinds: map[string]int{}, Latency: NewHistogram(), SendLag: NewHistogram()}
		reg := Result{ErrorKinds: map[string]int{}, Latency: NewHistogram(), SendLag: NewHistogram()}
		for i := range n {
			src := fmt.Sprintf("%s\n%sbench cold version %d %d\n", Handlers[title], comment(title), time.Now().UnixNano(), i)
			var nf Function
			// Registering a version builds it on its runtime (syntax check, Rust compile)
			// before the API answers; then the first call runs it.
			mergeInto(&reg, Sequential(ctx, 1, 3*time.Minute, func(ctx context.Context) error {
				var err error
				nf, err = r.P.Register(ctx, "bench-cold-"+title, title, src, nil)
				return err
			}))
			if nf.Version == 0 {
				continue
			}
			mergeInto(&res, Sequential(ctx, 1, 2*time.Minute, HTTPOp(r.P.client(), r.P.InvokeRequest(nf, Event))))
		}
		r.logf("5 cold %s: %d new versions, register p50 %.1f ms, first call p50 %.1f ms (warm p50 %.2f ms)",
			title, n, reg.Quantile(50), res.Quantile(50), warm.Quantile(50))
		over := res.Quantile(50) - warm.Quantile(50)
		regRow := Row{Section: "5 cold", Case: title + ": register a new version (PUT; the API builds it on the runtime first)", Result: &reg}
		row := Row{Section: "5 cold", Case: title + ": first call of the new version", Result: &res,
			Note: fmt.Sprintf("warm p50 %.2f ms (%d calls) → **%+.1f ms over warm** at p50", warm.Quantile(50), warm.Sent, over)}
		if title == "rust" {
			regRow.Budget = "compile ≤ 3 s"
			regRow.Verdict = verdict(reg.Quantile(50) <= 3000 && reg.Errors == 0)
			row.Budget = "—"
		} else {
			regRow.Budget = "—"
			row.Budget = "≤ 30 ms over warm"
			row.Verdict = verdict(over <= 30 && res.Errors == 0)
		}
		rep.add(regRow)
		rep.add(row)
	}
}

// DepsSet is the dependency set of the dependencies row: a real npm package from the
// configured registry.
var DepsSet = map[string]string{"is-number": "7.0.0"}

// 5: registering a new node function whose dependency set another function installed
// already: resolve (the lock, against the registry), the build, no install.
func (r *Runner) depsCached(ctx context.Context, rep *Report) {
	if !slices.Contains(r.S.Runtimes, "node") {
		return
	}
	src := func(i int) string {
		return fmt.Sprintf("const isNumber = require('is-number');\nexports.handler = (e) => ({ ok: isNumber(e.n), v: %d });\n// %d\n", i, time.Now().UnixNano())
	}
	extra := map[string]any{"dependencies": DepsSet}
	row := Row{Section: "5 cold", Case: "node: register a new function whose dependencies are installed (is-number, cache hit)", Budget: "≤ 1 s"}
	prime, err := r.P.Register(ctx, "bench-deps-prime", "node", src(0), extra)
	if err == nil {
		err = r.P.Invoke(ctx, prime, Event)
	}
	if err != nil {
		r.logf("5 deps: priming failed: %v", err)
		res := Result{ErrorKinds: map[string]int{errorKind(err): 1}, Latency: NewHistogram(), SendLag: NewHistogram(), Sent: 1, Errors: 1}
		row.Result, row.Verdict = &res, verdict(false)
		rep.add(row)
		return
	}
	reg := Result{ErrorKinds: map[string]int{}, Latency: NewHistogram(), SendLag: NewHistogram()}
	for i := range r.S.ColdVersions {
		mergeInto(&reg, Sequential(ctx, 1, time.Minute, func(ctx context.Context) error {
			_, err := r.P.Register(ctx, fmt.Sprintf("bench-deps-%d-%d", time.Now().UnixNano()%1e6, i), "node", src(i+1), extra)
			return err
		}))
	}
	r.logf("5 deps: %d registrations with an installed set, p50 %.1f ms", reg.Sent, reg.Quantile(50))
	row.Result = &reg
	row.Verdict = verdict(reg.Quantile(50) <= 1000 && reg.Errors == 0)
	row.Note = "each a new function and source with the same set: the api reuses the lock it resolved (LAMBDA_DEPS_RESOLVED_TTL), the host finds the install and builds"
	rep.add(row)
}

// 6: the runtime host alone vs the whole stack, same handler, same event, same run.
func (r *Runner) overhead(ctx context.Context, rep *Report, fns map[string]Function) {
	title := r.S.Runtimes[0]
	f := fns[title]
	direct, replica, err := r.direct(ctx, title, f)
	if err != nil {
		rep.add(Row{Section: "6 overhead", Case: title, Note: "setup failed: " + err.Error(), Verdict: "FAIL"})
		return
	}
	stack := r.P.InvokeRequest(f, Event)

	// Sequential, interleaved: service time of each without queueing.
	seqD := Result{ErrorKinds: map[string]int{}, Latency: NewHistogram(), SendLag: NewHistogram()}
	seqS := Result{ErrorKinds: map[string]int{}, Latency: NewHistogram(), SendLag: NewHistogram()}
	dOp, sOp := HTTPOp(r.P.client(), direct), HTTPOp(r.P.client(), stack)
	r.logf("6 overhead %s: %d sequential calls each, interleaved", title, r.S.OverheadCalls)
	for range r.S.OverheadCalls {
		mergeInto(&seqD, Sequential(ctx, 1, 10*time.Second, dOp))
		mergeInto(&seqS, Sequential(ctx, 1, 10*time.Second, sOp))
	}
	r.logf("6 overhead %s: open loop %.0f/s for %s each", title, r.S.OverheadRate, r.S.OverheadDuration)
	oD := r.load(ctx, r.S.OverheadRate, r.S.OverheadDuration, 10*time.Second, func(c *Client) Op { return HTTPOp(c, direct) })
	r.pause(ctx)
	oS := r.load(ctx, r.S.OverheadRate, r.S.OverheadDuration, 10*time.Second, func(c *Client) Op { return HTTPOp(c, stack) })
	r.pause(ctx)

	rep.add(Row{Section: "6 overhead", Case: title + " runtime host alone (" + replica + "), sequential", Result: &seqD, Budget: "—"})
	rep.add(Row{Section: "6 overhead", Case: title + " whole stack, sequential", Result: &seqS, Budget: "—"})
	rep.add(Row{Section: "6 overhead", Case: title + " runtime host alone, open loop", Offered: r.S.OverheadRate, Result: &oD, Budget: "—"})
	rep.add(Row{Section: "6 overhead", Case: title + " whole stack, open loop", Offered: r.S.OverheadRate, Result: &oS, Budget: "—"})
	seqOver := seqS.Quantile(50) - seqD.Quantile(50)
	openOver := oS.Quantile(50) - oD.Quantile(50)
	rep.add(Row{Section: "6 overhead", Case: "platform overhead = whole stack − host alone, p50",
		Note: fmt.Sprintf("**%.2f ms** sequential, **%.2f ms** open loop at %.0f/s (p99: %.2f ms / %.2f ms)",
			seqOver, openOver, r.S.OverheadRate, seqS.Quantile(99)-seqD.Quantile(99), oS.Quantile(99)-oD.Quantile(99)),
		Budget: "≤ 1 ms at p50", Verdict: verdict(seqOver <= 1 && openOver <= 1)})
	rep.OverheadP50 = seqOver
}

// direct is a call of f on its runtime host's first ready replica, bypassing the
// platform. The first direct call carries the source; the returned request, like the
// platform, only the sha256.
func (r *Runner) direct(ctx context.Context, title string, f Function) (Request, string, error) {
	fn := r.runtimeFunction(title)
	reps, err := r.P.Replicas(ctx, fn)
	if err == nil && len(reps) == 0 {
		err = fmt.Errorf("no ready replica of %s", fn)
	}
	if err != nil {
		return Request{}, "", err
	}
	replica := reps[0]
	if err := HTTPOp(r.P.client(), DirectRequest(replica, f, Event, 10*time.Second, true, r.P.RuntimeSecret))(ctx); err != nil {
		return Request{}, "", fmt.Errorf("direct call: %w", err)
	}
	return DirectRequest(replica, f, Event, 10*time.Second, false, r.P.RuntimeSecret), replica, nil
}

// 7: fork-per-request baseline vs the warm pool, same handler, same run. The baseline is
// a function server of the classic watchdog's design (a fresh interpreter per HTTP
// request); the warm pool is measured where it lives, the runtime host called directly the
// same way, and through the whole stack.
func (r *Runner) fork(ctx context.Context, rep *Report, fns map[string]Function) {
	const title = "python"
	f, ok := fns[title]
	if !ok {
		return
	}
	wd, err := StartWatchdog(r.S.Python, Handlers[title])
	if err != nil {
		rep.add(Row{Section: "7 fork baseline", Case: title, Note: "setup failed: " + err.Error(), Verdict: "FAIL"})
		return
	}
	defer wd.Close()
	direct, replica, err := r.direct(ctx, title, f)
	if err != nil {
		rep.add(Row{Section: "7 fork baseline", Case: title, Note: "setup failed: " + err.Error(), Verdict: "FAIL"})
		return
	}
	reqs := []Request{wd.Request(Event), direct, r.P.InvokeRequest(f, Event)}
	cases := []string{
		"fork per request: watchdog (`" + r.S.Python + "` started per HTTP request)",
		"warm pool: runtime host alone (" + replica + ")",
		"warm pool: whole stack",
	}
	r.logf("7 fork-per-request: %d sequential calls each, interleaved, then %.0f/s for %s each", r.S.ForkCalls, r.S.ForkRate, r.S.ForkDuration)
	seq := make([]Result, len(reqs))
	ops := make([]Op, len(reqs))
	for i, req := range reqs {
		seq[i] = Result{ErrorKinds: map[string]int{}, Latency: NewHistogram(), SendLag: NewHistogram()}
		ops[i] = HTTPOp(r.P.client(), req)
	}
	for range r.S.ForkCalls {
		for i, op := range ops {
			mergeInto(&seq[i], Sequential(ctx, 1, 10*time.Second, op))
		}
	}
	open := make([]Result, len(reqs))
	for i, req := range reqs {
		open[i] = r.load(ctx, r.S.ForkRate, r.S.ForkDuration, 10*time.Second, func(c *Client) Op { return HTTPOp(c, req) })
		r.pause(ctx)
	}
	for i := range reqs {
		rep.add(Row{Section: "7 fork baseline", Case: cases[i] + ", sequential", Result: &seq[i], Budget: "—"})
		rep.add(Row{Section: "7 fork baseline", Case: cases[i] + ", open loop", Offered: r.S.ForkRate, Result: &open[i], Budget: "—"})
	}
	hostSeq, hostOpen := safeDiv(seq[0].Quantile(50), seq[1].Quantile(50)), safeDiv(open[0].Quantile(50), open[1].Quantile(50))
	stackSeq, stackOpen := safeDiv(seq[0].Quantile(50), seq[2].Quantile(50)), safeDiv(open[0].Quantile(50), open[2].Quantile(50))
	rep.add(Row{Section: "7 fork baseline", Case: "warm pool speed-up at p50 (watchdog ÷ runtime host)",
		Note:   fmt.Sprintf("**%.0f×** sequential, **%.0f×** open loop at %.0f/s", hostSeq, hostOpen, r.S.ForkRate),
		Budget: "≥ 20×", Verdict: verdict(hostSeq >= 20 && hostOpen >= 20)})
	rep.add(Row{Section: "7 fork baseline", Case: "whole stack speed-up at p50 (watchdog ÷ whole stack)",
		Note:   fmt.Sprintf("%.0f× sequential, %.0f× open loop at %.0f/s (the stack adds its hops and a durable request log: scenario 6)", stackSeq, stackOpen, r.S.ForkRate),
		Budget: "—"})
}

func mergeInto(dst *Result, src Result) {
	dst.Sent += src.Sent
	dst.OK += src.OK
	dst.Errors += src.Errors
	for k, v := range src.ErrorKinds {
		dst.ErrorKinds[k] += v
	}
	dst.Latency.Merge(src.Latency)
	dst.Elapsed += src.Elapsed
	dst.SendSpan = dst.Elapsed
	if dst.Elapsed > 0 {
		dst.AchievedRate = float64(dst.Sent) / dst.Elapsed.Seconds()
	}
}

func safeDiv(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func ms64(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", ms64(d)) }

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}
