package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// AsyncPipelineSettings are scenario 9's (durable pipeline runs on Temporal).
type AsyncPipelineSettings struct {
	Rate     float64       // 3-step async runs per second, open loop
	Duration time.Duration // … for this long
	// The sustained-rate search (p99 < AsyncP99, errors < 0.1 %).
	SearchStart, SearchFactor, SearchMax float64
	SearchStep                           time.Duration
	SearchRefine                         int
	MapItems, MapConcurrency, MapRuns    int // a map step's items and max_concurrency; runs back to back
}

// AsyncRunOp runs a pipeline's version durably (Prefer: respond-async → 202) and
// long-polls GET /v1/runs/{id}?wait= until the run is final; it fails unless it
// succeeded.
func (p *Platform) AsyncRunOp(c *Client, name string, version int, input []byte) Op {
	return p.asyncOp(c, p.RunRequest(name, version, input, "Prefer", "respond-async"), "run", "/v1/runs/", runFinished)
}

func runFinished(status string) bool {
	switch status {
	case "succeeded", "failed", "canceled":
		return true
	}
	return false
}

// 9: durable pipeline runs (one RunPipeline workflow each): a 3-step run across the
// runtimes at a light rate and the highest sustained rate, and a map over 1,000 items.
func (r *Runner) asyncPipelines(ctx context.Context, rep *Report, fns map[string]Function) {
	const section = "9 async pipelines"
	ps := r.S.AsyncPipelines
	var chain []Function
	for _, title := range r.S.Runtimes {
		chain = append(chain, fns[title])
	}
	titles := strings.Join(r.S.Runtimes, " → ")
	setup := func(name string, def map[string]any, input []byte) (int, bool) {
		v, err := r.P.RegisterPipeline(ctx, name, def)
		if err == nil {
			err = r.P.AsyncRunOp(r.P.client(), name, v, input)(ctx)
		}
		if err != nil {
			rep.add(Row{Section: section, Case: name, Note: "setup failed: " + err.Error(), Verdict: "FAIL"})
			return 0, false
		}
		return v, true
	}
	// cpu keeps, per rate, the machine's CPU by program while that rate's load was offered.
	cpu := map[float64]ProcCPU{}
	run := func(ctx context.Context, name string, v int, rate float64, d time.Duration) Result {
		l := Load{Rate: rate, Duration: d, Timeout: r.S.AsyncTimeout, Workers: min(8192, max(256, int(rate*r.S.AsyncTimeout.Seconds())+64))}
		c := NewClient(l.Workers)
		defer c.CloseIdleConnections()
		prof := make(chan ProcCPU, 1)
		go func() { prof <- MeasureProcCPU(ctx, d) }()
		res := Run(ctx, l, r.P.AsyncRunOp(c, name, v, Event))
		cpu[rate] = <-prof
		r.drainRuns(ctx)
		return res
	}
	perRun := func(rate float64) string {
		p := cpu[rate]
		return p.PerOp(int(rate*p.Interval.Seconds()), 4, "run")
	}

	if v, ok := setup("bench-async-3step", map[string]any{"steps": stepsOver(chain, 3)}, Event); ok {
		r.logf("9 async pipelines: 3-step %s at %.0f/s for %s", titles, ps.Rate, ps.Duration)
		res := run(ctx, "bench-async-3step", v, ps.Rate, ps.Duration)
		row := Row{Section: section, Case: "async 3-step run (" + titles + "), POST → final envelope (long-poll)",
			Offered: ps.Rate, Result: &res, Budget: "p50 ≤ 25 ms"}
		row.Verdict = verdict(res.Quantile(50) <= 25 && res.ErrorRate() < 0.001)
		rep.add(row)
		s := Search{Start: ps.SearchStart, Factor: ps.SearchFactor, Max: ps.SearchMax, Min: 1, Step: ps.SearchStep,
			Refine: ps.SearchRefine,
			Pass:   func(res Result) bool { return res.Quantile(99) < ms64(r.S.AsyncP99) && res.ErrorRate() < 0.001 },
		}
		sr := s.Run(ctx, func(ctx context.Context, rate float64) Result {
			r.logf("9 max async 3-step runs: step %.0f/s for %s", rate, ps.SearchStep)
			return run(ctx, "bench-async-3step", v, rate, ps.SearchStep)
		})
		rep.addSearch(section, "3-step run", sr, fmt.Sprintf("p99 < %s, errors < 0.1 %%", r.S.AsyncP99), "≥ 100 runs/s", sr.Best >= 100)
		// What a run costs, so that a rate can be judged against the cores: CPU by program
		// (whole machine, /proc) over the fixed-rate phase and the highest passing step.
		rep.notef("Scenario 9: CPU per 3-step run at %.0f/s: %s.", ps.Rate, perRun(ps.Rate))
		if sr.Best > 0 {
			rep.notef("Scenario 9: CPU per 3-step run at %.0f/s (highest sustained): %s.", sr.Best, perRun(sr.Best))
		}
	}

	items := make([]int, ps.MapItems)
	for i := range items {
		items[i] = i
	}
	input, _ := json.Marshal(map[string]any{"items": items})
	first := chain[0]
	def := map[string]any{"steps": []map[string]any{{"id": "m", "map": map[string]any{"items": "input.items",
		"max_concurrency": ps.MapConcurrency, "step": map[string]any{"function": first.Name, "version": first.Version,
			"input": map[string]any{"n": "${item}"}}}}}}
	name := fmt.Sprintf("bench-map-%d", ps.MapItems)
	if v, ok := setup(name, def, input); ok {
		r.logf("9 async pipelines: map of %d items (max_concurrency %d), %d runs back to back", ps.MapItems, ps.MapConcurrency, ps.MapRuns)
		res := Sequential(ctx, ps.MapRuns, 5*time.Minute, r.P.AsyncRunOp(r.P.client(), name, v, input))
		row := Row{Section: section, Case: fmt.Sprintf("async run of a map over %d %s calls (max_concurrency %d), back to back",
			ps.MapItems, first.Language, ps.MapConcurrency), Result: &res, Budget: "≤ 10 s"}
		row.Verdict = verdict(res.Quantile(50) <= 10_000 && res.Errors == 0)
		rep.add(row)
		r.drainRuns(ctx)
	}
}

// drainRuns waits (up to AsyncDrain) until no run is queued or running.
func (r *Runner) drainRuns(ctx context.Context) { r.drainList(ctx, "/v1/runs", "run") }
