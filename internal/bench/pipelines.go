package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// PipelineSettings are scenario 8's (pipelines) rates and counts.
type PipelineSettings struct {
	SyncRate     float64       // 3-step sync runs per second, open loop
	SyncDuration time.Duration // … for this long
	SeqSteps     int           // steps of the sequential pipeline
	SeqRuns      int           // runs of it, back to back
	StepCalls    int           // back-to-back runs of a 1-step pipeline and bare calls, interleaved
}

// RegisterPipeline creates a pipeline (POST /v1/pipelines) or adds a version when it
// exists (PUT); it returns the version.
func (p *Platform) RegisterPipeline(ctx context.Context, name string, def map[string]any) (int, error) {
	def["name"] = name
	body, _ := json.Marshal(def)
	status, resp, err := Do(ctx, p.client(), http.MethodPost, p.APIURL+"/v1/pipelines", p.Header(), body)
	if err == nil && status == http.StatusConflict {
		status, resp, err = Do(ctx, p.client(), http.MethodPut, p.APIURL+"/v1/pipelines/"+url.PathEscape(name), p.Header(), body)
	}
	if err != nil {
		return 0, fmt.Errorf("register pipeline %s: %w", name, err)
	}
	if status != http.StatusCreated && status != http.StatusOK {
		return 0, fmt.Errorf("register pipeline %s: %w", name, StatusError(status, resp))
	}
	var out struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(resp, &out); err != nil {
		return 0, fmt.Errorf("register pipeline %s: %w", name, err)
	}
	return out.Version, nil
}

// RunRequest is a run of a pipeline's version through the whole stack, sync unless
// header asks otherwise; it succeeds when the run envelope says succeeded.
func (p *Platform) RunRequest(name string, version int, input []byte, header ...string) Request {
	return Request{
		Method: http.MethodPost,
		URL:    fmt.Sprintf("%s/v1/pipelines/%s/runs?version=%d", p.APIURL, url.PathEscape(name), version),
		Header: p.Header(header...),
		Body:   input,
		Check:  checkEnvelope,
	}
}

// stepsOver are pipeline steps calling fns in turn (ids s0, s1, …), n of them; each step
// gets the previous one's output.
func stepsOver(fns []Function, n int) []map[string]any {
	steps := make([]map[string]any, n)
	for i := range steps {
		steps[i] = map[string]any{"id": fmt.Sprintf("s%d", i), "function": fns[i%len(fns)].Name,
			"version": fns[i%len(fns)].Version}
	}
	return steps
}

// 8: pipelines. Sync runs on the fast path, side by side with a bare call of one function:
// a 3-step run across the runtimes under open-loop load, a long sequential pipeline, and
// the overhead of a step over the call it makes.
func (r *Runner) pipelines(ctx context.Context, rep *Report, fns map[string]Function) {
	const section = "8 pipelines"
	ps := r.S.Pipelines
	var chain []Function
	for _, title := range r.S.Runtimes {
		chain = append(chain, fns[title])
	}
	first := chain[0]
	setup := func(name string, steps []map[string]any) (int, bool) {
		v, err := r.P.RegisterPipeline(ctx, name, map[string]any{"steps": steps})
		if err == nil {
			err = HTTPOp(r.P.client(), r.P.RunRequest(name, v, Event))(ctx)
		}
		if err != nil {
			rep.add(Row{Section: section, Case: name, Note: "setup failed: " + err.Error(), Verdict: "FAIL"})
			return 0, false
		}
		return v, true
	}
	titles := strings.Join(r.S.Runtimes, " → ")

	// 3 steps across the runtimes, sync, open loop; the bare call at the same rate.
	if v, ok := setup("bench-3step", stepsOver(chain, 3)); ok {
		bare := r.P.InvokeRequest(first, Event)
		run := r.P.RunRequest("bench-3step", v, Event)
		r.logf("8 pipelines: 3-step sync %s at %.0f/s for %s (warm-up %s)", titles, ps.SyncRate, ps.SyncDuration, r.S.Warmup)
		r.load(ctx, ps.SyncRate, r.S.Warmup, 10*time.Second, func(c *Client) Op { return HTTPOp(c, run) })
		res := r.load(ctx, ps.SyncRate, ps.SyncDuration, 10*time.Second, func(c *Client) Op { return HTTPOp(c, run) })
		row := Row{Section: section, Case: "sync 3-step run (" + titles + "), full stack", Offered: ps.SyncRate,
			Result: &res, Budget: "p50 ≤ 3 ms, p99 ≤ 15 ms, 0 errors"}
		row.Verdict = verdict(res.Quantile(50) <= 3 && res.Quantile(99) <= 15 && res.Errors == 0)
		rep.add(row)
		r.pause(ctx)
		one := r.load(ctx, ps.SyncRate, ps.SyncDuration, 10*time.Second, func(c *Client) Op { return HTTPOp(c, bare) })
		rep.add(Row{Section: section, Case: first.Language + " single function call, same rate (side by side)",
			Offered: ps.SyncRate, Result: &one, Budget: "—"})
		r.pause(ctx)
	}

	// A long sequential pipeline of trivial steps.
	name := fmt.Sprintf("bench-%dstep", ps.SeqSteps)
	if v, ok := setup(name, stepsOver(chain[:1], ps.SeqSteps)); ok {
		r.logf("8 pipelines: %d sequential steps, %d runs back to back", ps.SeqSteps, ps.SeqRuns)
		res := Sequential(ctx, ps.SeqRuns, 30*time.Second, HTTPOp(r.P.client(), r.P.RunRequest(name, v, Event)))
		row := Row{Section: section, Case: fmt.Sprintf("sync run of %d sequential %s steps, back to back", ps.SeqSteps, first.Language),
			Result: &res, Budget: "≤ 300 ms"}
		row.Verdict = verdict(res.Quantile(50) <= 300 && res.Errors == 0)
		rep.add(row)
		r.pause(ctx)
	}

	// Per-step overhead: a 1-step run against the bare call it makes, back to back,
	// interleaved so both see the same machine.
	if v, ok := setup("bench-1step", stepsOver(chain[:1], 1)); ok {
		r.logf("8 pipelines: 1-step run vs bare call, %d of each, interleaved", ps.StepCalls)
		runOp := HTTPOp(r.P.client(), r.P.RunRequest("bench-1step", v, Event))
		bareOp := HTTPOp(r.P.client(), r.P.InvokeRequest(first, Event))
		var runs, bares []Result
		for i := 0; i < 10 && ctx.Err() == nil; i++ {
			runs = append(runs, Sequential(ctx, ps.StepCalls/10, 10*time.Second, runOp))
			bares = append(bares, Sequential(ctx, ps.StepCalls/10, 10*time.Second, bareOp))
		}
		run, bare := merge(runs), merge(bares)
		rep.add(Row{Section: section, Case: "1-step sync run, back to back", Result: &run, Budget: "—"})
		rep.add(Row{Section: section, Case: first.Language + " bare call, back to back", Result: &bare, Budget: "—"})
		over := run.Quantile(50) - bare.Quantile(50)
		rep.add(Row{Section: section, Case: "per-step overhead = 1-step run − bare call, p50", Budget: "≤ 2 ms",
			Verdict: verdict(over <= 2 && run.Errors == 0), Note: fmt.Sprintf("**%.2f ms**", over)})
		r.pause(ctx)
	}
}

// merge adds up results of the same kind of operation.
func merge(rs []Result) Result {
	out := Result{ErrorKinds: map[string]int{}, Latency: NewHistogram(), SendLag: NewHistogram()}
	for _, r := range rs {
		out.Sent += r.Sent
		out.OK += r.OK
		out.Errors += r.Errors
		for k, n := range r.ErrorKinds {
			out.ErrorKinds[k] += n
		}
		out.Latency.Merge(r.Latency)
		out.SendLag.Merge(r.SendLag)
		out.Elapsed += r.Elapsed
	}
	out.SendSpan = out.Elapsed
	if out.Elapsed > 0 {
		out.AchievedRate = float64(out.Sent) / out.Elapsed.Seconds()
	}
	return out
}
