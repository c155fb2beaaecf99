package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NoisySettings are scenario 13's: tenant A floods async executions of a slow function
// while tenant B calls a trivial one sync, open loop.
type NoisySettings struct {
	Sleep     time.Duration // how long A's handler sleeps
	FloodRate float64       // A's async POSTs per second, for Warmup + Duration
	Rate      float64       // B's sync calls per second, measured for Duration
	// Warmup is how long A floods before B's measured load starts (B calls at Rate,
	// unrecorded, meanwhile): long enough to fill the runtime's workers and let the
	// provider's autoscaler see it.
	Warmup   time.Duration
	Duration time.Duration
	// Alone is how long B is measured at Rate before A starts: the same stack and machine
	// without the neighbour, for comparison.
	Alone time.Duration
}

// noisyBudget is the bound on B's sync p99 while A saturates async.
const noisyBudget = 100 * time.Millisecond

// SlowHandler is tenant A's function: it sleeps d, then answers like the trivial handler.
func SlowHandler(d time.Duration) string {
	return fmt.Sprintf("import time\n\ndef handler(event, context):\n    time.sleep(%g)\n    return {\"ok\": True, \"n\": event.get(\"n\")}\n", d.Seconds())
}

// AsyncPostOp starts f asynchronously (Prefer: respond-async) and does not wait for the
// execution: it succeeds on 202, and a refusal is a StatusError (status 429: the tenant's
// async cap LAMBDA_TENANT_ASYNC_MAX or its rate limit).
func (p *Platform) AsyncPostOp(c *Client, f Function, event []byte) Op {
	post := p.InvokeRequest(f, event)
	post.Header = p.Header("Language-Title", f.Language, "Prefer", "respond-async")
	post.Want = http.StatusAccepted
	post.Check = nil
	return HTTPOp(c, post)
}

// refused counts the requests of res answered 429.
func refused(res Result) int {
	n := 0
	for kind, c := range res.ErrorKinds {
		if strings.HasPrefix(kind, "status 429") {
			n += c
		}
	}
	return n
}

// noisyNote describes a scenario 13 run beside B's row: A's side and the replicas.
func noisyNote(ns NoisySettings, flood Result, replicasBefore, replicasMax, replicasAfter int) string {
	other := flood.Errors - refused(flood)
	s := fmt.Sprintf("A: %d async POSTs of a %s sleep at %.0f/s → %d accepted, %d refused 429", flood.Sent, ns.Sleep,
		ns.FloodRate, flood.OK, refused(flood))
	if other > 0 {
		rest := Result{ErrorKinds: map[string]int{}}
		for kind, n := range flood.ErrorKinds {
			if !strings.HasPrefix(kind, "status 429") {
				rest.ErrorKinds[kind] = n
			}
		}
		s += fmt.Sprintf(", %d other errors (%s)", other, strings.Join(rest.TopErrors(2), "; "))
	}
	return s + fmt.Sprintf("; runtime replicas %d → max %d (%d at the end)", replicasBefore, replicasMax, replicasAfter)
}

// noisyPass is scenario 13's verdict on B's calls: p99 under the budget, no errors.
func noisyPass(b Result) bool {
	return b.Sent > 0 && b.Quantile(99) < ms64(noisyBudget) && b.Errors == 0
}

// ReplicaCount is the number of replicas (desired) of a function, from the provider's
// GET /system/function/{name}.
func (p *Platform) ReplicaCount(ctx context.Context, function string) (int, error) {
	status, body, err := Do(ctx, p.client(), http.MethodGet, p.ProviderURL+"/system/function/"+url.PathEscape(function), nil, nil)
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, StatusError(status, body)
	}
	return parseReplicas(body)
}

func parseReplicas(body []byte) (int, error) {
	var st struct {
		Replicas *int `json:"replicas"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return 0, fmt.Errorf("function status: %w", err)
	}
	if st.Replicas == nil {
		return 0, errors.New("function status: no replicas")
	}
	return *st.Replicas, nil
}

// watchReplicas polls function's replica count every interval until ctx ends and
// returns the largest it saw (0 when none could be read).
func (r *Runner) watchReplicas(ctx context.Context, function string, interval time.Duration) int {
	most := 0
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		if n, err := r.P.ReplicaCount(cctx, function); err == nil {
			most = max(most, n)
		}
		cancel()
		select {
		case <-ctx.Done():
			return most
		case <-t.C:
		}
	}
}

// 13: noisy neighbours, end to end: tenant A floods async executions of a slow Python
// function (more than the runtime's workers hold) while tenant B calls a trivial Python
// function sync at a fixed rate. B's calls find a worker because A holds at most its share
// of each replica (LAMBDA_RUNTIME_TENANT_SHARE), and the provider scales the runtime out.
func (r *Runner) noisy(ctx context.Context, rep *Report) {
	const section = "13 noisy neighbours"
	ns := r.S.Noisy
	const title = "python"
	fail := func(what string, err error) {
		rep.add(Row{Section: section, Case: "tenant B's sync calls", Note: what + ": " + err.Error(), Verdict: "FAIL"})
	}
	suffix := time.Now().UnixNano() % 1e9
	a, err := r.P.Tenant(ctx, fmt.Sprintf("noisy-a-%d", suffix))
	if err != nil {
		fail("setup failed", err)
		return
	}
	b, err := r.P.Tenant(ctx, fmt.Sprintf("noisy-b-%d", suffix))
	if err != nil {
		fail("setup failed", err)
		return
	}
	// A's timeout leaves its handler room; a short one, so the runtime call runs as a local
	// activity of the execution's workflow, as an ordinary short function's does.
	timeoutMS := int(2 * ns.Sleep / time.Millisecond)
	slow, err := a.Register(ctx, "slow", title, SlowHandler(ns.Sleep), map[string]any{"timeout_ms": timeoutMS})
	if err != nil {
		fail("setup failed", err)
		return
	}
	fast, err := b.Register(ctx, "trivial", title, Handlers[title], nil)
	if err == nil {
		err = b.Invoke(ctx, fast, Event)
	}
	if err != nil {
		fail("setup failed", err)
		return
	}
	fn := r.runtimeFunction(title)
	req := b.InvokeRequest(fast, Event)
	r.logf("13 noisy neighbours: B alone, %.0f/s for %s", ns.Rate, ns.Alone)
	alone := r.load(ctx, ns.Rate, ns.Alone, 10*time.Second, func(c *Client) Op { return HTTPOp(c, req) })
	rep.add(Row{Section: section, Case: "tenant B alone: python trivial handler sync (before A starts, for comparison)",
		Offered: ns.Rate, Result: &alone, Budget: "—"})
	before, _ := r.P.ReplicaCount(ctx, fn)

	r.logf("13 noisy neighbours: A floods %s sleeps at %.0f/s for %s; B %.0f/s sync, measured for the last %s",
		ns.Sleep, ns.FloodRate, ns.Warmup+ns.Duration, ns.Rate, ns.Duration)
	errsBefore, okBefore := r.invokeErrors(ctx)
	watchCtx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var most int
	wg.Go(func() { most = r.watchReplicas(watchCtx, fn, 500*time.Millisecond) })
	var flood Result
	wg.Go(func() {
		flood = r.load(ctx, ns.FloodRate, ns.Warmup+ns.Duration, 10*time.Second,
			func(c *Client) Op { return a.AsyncPostOp(c, slow, Event) })
	})
	r.load(ctx, ns.Rate, ns.Warmup, 10*time.Second, func(c *Client) Op { return HTTPOp(c, req) })
	var cpu ProcCPU
	wg.Go(func() { cpu = MeasureProcCPU(ctx, ns.Duration) })
	res := r.load(ctx, ns.Rate, ns.Duration, 10*time.Second, func(c *Client) Op { return HTTPOp(c, req) })
	stopWatch()
	wg.Wait()
	rep.notef("Scenario 13: CPU by program (cores) while B was measured and A flooded: %s.", cpu.Summary(6))
	after, _ := r.P.ReplicaCount(ctx, fn)
	errsAfter, okAfter := r.invokeErrors(ctx)
	if okBefore && okAfter {
		rep.notef("Scenario 13: Invoke activity runs that ended in an error (each a Temporal retry, or a refusal the workflow waits out) during A's flood: %d.",
			errsAfter-errsBefore)
	}
	rep.notef("Scenario 13: A's executions by status before the leftover backlog was canceled: %s.", r.statusCounts(ctx, a))
	r.cancelAll(ctx, a)

	row := Row{Section: section, Case: "tenant B: python trivial handler sync, while tenant A floods async executions of a slow python handler",
		Offered: ns.Rate, Result: &res, Budget: "B sync p99 < 100 ms (0 errors)",
		Note: noisyNote(ns, flood, before, max(most, before, after), after)}
	row.Verdict = verdict(noisyPass(res))
	rep.add(row)
	r.pause(ctx)
}

// invokeErrors sums, over r.MetricsURLs (the api, whose eager worker runs local
// activities, and the worker), the Invoke activity runs that ended in an error
// (lambda_activity_duration_seconds_count{activity="Invoke",outcome="error"}).
func (r *Runner) invokeErrors(ctx context.Context) (int, bool) {
	if len(r.MetricsURLs) == 0 {
		return 0, false
	}
	total := 0
	for _, u := range r.MetricsURLs {
		status, body, err := Do(ctx, r.P.client(), http.MethodGet, u, nil, nil)
		if err != nil || status != http.StatusOK {
			return 0, false
		}
		total += invokeErrorCount(body)
	}
	return total, true
}

// invokeErrorCount reads the Invoke activity's error count from a Prometheus text page.
func invokeErrorCount(page []byte) int {
	n := 0
	for line := range strings.Lines(string(page)) {
		name, rest, ok := strings.Cut(line, "{")
		if !ok || name != "lambda_activity_duration_seconds_count" ||
			!strings.Contains(rest, `activity="Invoke"`) || !strings.Contains(rest, `outcome="error"`) {
			continue
		}
		if i := strings.LastIndexByte(rest, ' '); i >= 0 {
			if v, err := strconv.ParseFloat(strings.TrimSpace(rest[i+1:]), 64); err == nil {
				n += int(v)
			}
		}
	}
	return n
}

// statusCounts counts tenant p's executions by status (up to 500 each).
func (r *Runner) statusCounts(ctx context.Context, p *Platform) string {
	var parts []string
	for _, st := range []string{"succeeded", "failed", "timeout", "running", "queued"} {
		status, body, err := Do(ctx, p.client(), http.MethodGet, p.APIURL+"/v1/executions?limit=500&status="+st, p.Header(), nil)
		var page struct {
			Executions []json.RawMessage `json:"executions"`
		}
		if err != nil || status != http.StatusOK || json.Unmarshal(body, &page) != nil {
			parts = append(parts, st+" ?")
			continue
		}
		n := fmt.Sprint(len(page.Executions))
		if len(page.Executions) == 500 {
			n = "≥500"
		}
		parts = append(parts, st+" "+n)
	}
	return strings.Join(parts, ", ")
}

// cancelAll cancels every queued or running execution of tenant p (DELETE
// /v1/executions/{id}) and waits, up to AsyncDrain, until none is left.
func (r *Runner) cancelAll(ctx context.Context, p *Platform) {
	deadline := time.Now().Add(r.S.AsyncDrain)
	canceled := map[string]bool{}
	for time.Now().Before(deadline) && ctx.Err() == nil {
		busy := false
		for _, st := range []string{"queued", "running"} {
			status, body, err := Do(ctx, p.client(), http.MethodGet, p.APIURL+"/v1/executions?limit=500&status="+st, p.Header(), nil)
			if err != nil || status != http.StatusOK {
				busy = true
				continue
			}
			var page struct {
				Executions []struct {
					ID string `json:"id"`
				} `json:"executions"`
			}
			if json.Unmarshal(body, &page) != nil {
				busy = true
				continue
			}
			for _, e := range page.Executions {
				busy = true
				if !canceled[e.ID] {
					canceled[e.ID] = true
					_, _, _ = Do(ctx, p.client(), http.MethodDelete, p.APIURL+"/v1/executions/"+e.ID, p.Header(), nil)
				}
			}
		}
		if !busy {
			r.logf("13 noisy neighbours: canceled %d of tenant A's executions", len(canceled))
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	r.logf("13 noisy neighbours: tenant A's executions not all finished after %s (%d canceled)", r.S.AsyncDrain, len(canceled))
}
