package api_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/api"
	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/store"
)

// The step operations the durable runner calls may be repeated by Temporal after a worker
// crash: each of them is idempotent over the PostgreSQL state.
func TestStepOperationsAreIdempotent(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	runs.hold = make(chan struct{}) // the run is driven by hand below
	f := newFixture(t, runs)
	f.functions(t)
	p := `{"name":"ops","steps":[
		{"id":"one","function":"add","input":{"a":"${input.a}","b":1}},
		{"id":"each","map":{"items":"[1, 2, 3]","step":{"function":"add","input":{"a":"${item}","b":"${steps.one.output.sum}"}}}},
		{"id":"gate","wait_for":{"signal":"go","timeout_ms":60000}}],
		"output":{"one":"${steps.one.output.sum}","each":"${steps.each.output}","gate":"${steps.gate.output}"}}`
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", p).status)
	r := f.do(t, "POST", "/v1/pipelines/ops/runs", `{"a":5}`)
	require.Equal(t, 202, r.status, r.raw)
	id := r.body["id"].(string)
	svc, ctx := runs.svc, context.Background()

	plan, err := svc.RunPlan(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "ops", plan.Pipeline)
	require.Empty(t, plan.Options.Seed)
	require.NoError(t, svc.MarkRunning(ctx, id))
	require.NoError(t, svc.MarkRunning(ctx, id))
	require.Equal(t, "running", f.do(t, "GET", "/v1/runs/"+id, "").body["status"])

	// A call repeated is returned as recorded: the handler runs once.
	calls := f.runner.calls.Load()
	spec := pipeline.CallSpec{StepID: "one", Item: -1, Attempt: 1, Function: "add"}
	a, err := svc.CallStep(ctx, id, spec)
	require.NoError(t, err)
	b, err := svc.CallStep(ctx, id, spec)
	require.NoError(t, err)
	require.Equal(t, pipeline.CallSucceeded, a.Status)
	require.Equal(t, a.ExecutionID, b.ExecutionID)
	require.Equal(t, pipeline.StepExecutionID(id, "one", -1), a.ExecutionID)
	require.EqualValues(t, 1, f.runner.calls.Load()-calls)
	e := f.do(t, "GET", "/v1/executions/"+a.ExecutionID, "")
	require.Equal(t, map[string]any{"sum": float64(6)}, e.body["result"])
	require.Equal(t, "one", e.body["step_id"])

	rec := pipeline.StepRecord{StepID: "one", Status: pipeline.StepSucceeded, Attempts: 1, ExecutionID: a.ExecutionID,
		StartedAt: time.Now(), FinishedAt: time.Now(), Output: pipeline.OutputRef{Kind: pipeline.OutputCall, ExecutionID: a.ExecutionID}}
	require.NoError(t, svc.SettleStep(ctx, id, rec))
	require.NoError(t, svc.SettleStep(ctx, id, rec))
	// A final step is never rewritten.
	bad := rec
	bad.Status, bad.Output = pipeline.StepFailed, pipeline.OutputRef{Kind: pipeline.OutputNone}
	require.NoError(t, svc.SettleStep(ctx, id, bad))

	// Items are stored once; each item's call renders from them and the recorded output.
	ev, err := svc.EvalStep(ctx, id, pipeline.EvalSpec{StepID: "each", Kind: pipeline.EvalItems})
	require.NoError(t, err)
	require.Equal(t, 3, ev.Count)
	_, err = svc.EvalStep(ctx, id, pipeline.EvalSpec{StepID: "each", Kind: pipeline.EvalItems})
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		c, err := svc.CallStep(ctx, id, pipeline.CallSpec{StepID: "each", Item: i, Attempt: 1, Function: "add"})
		require.NoError(t, err)
		require.Equal(t, pipeline.CallSucceeded, c.Status)
	}
	require.NoError(t, svc.SettleStep(ctx, id, pipeline.StepRecord{StepID: "each", Status: pipeline.StepSucceeded, Attempts: 3,
		Items: &pipeline.ItemCounts{Total: 3, Succeeded: 3}, Output: pipeline.OutputRef{Kind: pipeline.OutputItems, Count: 3}}))

	// A signal is 409 until the step waits; the payload is taken once, by that step.
	require.Equal(t, 409, f.do(t, "POST", "/v1/runs/"+id+"/signals/go", `{"ok":1}`).status)
	wait := pipeline.WaitSpec{StepID: "gate", Signal: "go", Timeout: time.Minute}
	require.NoError(t, svc.MarkWaiting(ctx, id, wait, true))
	require.NoError(t, svc.MarkWaiting(ctx, id, wait, true))
	require.Equal(t, "waiting", f.do(t, "GET", "/v1/runs/"+id, "").body["status"])
	require.Equal(t, 202, f.do(t, "POST", "/v1/runs/"+id+"/signals/go", `{"ok":1}`).status)
	require.NoError(t, svc.MarkWaiting(ctx, id, wait, false))
	require.Equal(t, "running", f.do(t, "GET", "/v1/runs/"+id, "").body["status"])
	sig := pipeline.StepRecord{StepID: "gate", Status: pipeline.StepSucceeded, Output: pipeline.OutputRef{Kind: pipeline.OutputSignal}}
	require.NoError(t, svc.SettleStep(ctx, id, sig))
	require.NoError(t, svc.SettleStep(ctx, id, sig))

	done := pipeline.RunOutcome{Status: pipeline.RunSucceeded, OutputFrom: pipeline.Source{Step: "gate"}}
	st, err := svc.FinishRun(ctx, id, done)
	require.NoError(t, err)
	require.Equal(t, done.Status, st)
	st, err = svc.FinishRun(ctx, id, pipeline.RunOutcome{Status: pipeline.RunFailed, Error: &pipeline.Error{Type: "X", Message: "late"}})
	require.NoError(t, err)
	require.Equal(t, done.Status, st, "the status recorded first stays")
	w := f.do(t, "GET", "/v1/runs/"+id, "")
	require.Equal(t, "succeeded", w.body["status"], w.raw)
	var want map[string]any
	require.NoError(t, json.Unmarshal([]byte(`{"one":6,"each":[7,8,9],"gate":{"ok":1}}`), &want))
	got := w.body["output"].(map[string]any)
	require.EqualValues(t, want["one"], got["one"])
	require.EqualValues(t, want["gate"], got["gate"])
	each := got["each"].([]any)
	require.Len(t, each, 3)
	for i, x := range each {
		require.EqualValues(t, 7+i, x.(map[string]any)["sum"])
	}
	steps := stepsByID(t, w.body)
	require.Equal(t, "succeeded", steps["one"]["status"], "a final step is never rewritten")
	require.Equal(t, map[string]any{"ok": float64(1)}, steps["gate"]["output"])

	// The plan of a run seeds the steps it has recorded final.
	plan, err = svc.RunPlan(ctx, id)
	require.NoError(t, err)
	require.Len(t, plan.Options.Seed, 3)
	require.Equal(t, pipeline.StepSucceeded, plan.Options.Seed["each"].Status)
	close(runs.hold)
}

// A map item's call reads only what its input needs: with a 900 KiB run input that the
// items' input does not use, each call still renders its item and the step it references.
// The time per call is logged (BENCHMARKS.md, run 18: it was items × input size).
func TestCallStepOverALargeInput(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	runs.hold = make(chan struct{})
	f := newFixture(t, runs, fixtureOption(func(d *api.Deps, _ *store.Store, _ *cache.Cache) {
		d.Config.MaxEventBytes = 6 << 20
	}))
	f.functions(t)
	p := `{"name":"big","steps":[
		{"id":"one","function":"add","input":{"a":1,"b":1}},
		{"id":"each","map":{"items":"input.list","step":{"function":"add","input":{"a":"${item}","b":"${steps.one.output.sum}"}}}}]}`
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", p).status)
	const n = 100
	list := make([]int, n)
	for i := range list {
		list[i] = i
	}
	in, err := json.Marshal(map[string]any{"list": list, "pad": strings.Repeat("x", 4<<20)})
	require.NoError(t, err)
	r := f.do(t, "POST", "/v1/pipelines/big/runs", string(in), "Prefer", "respond-async")
	require.Equal(t, 202, r.status, r.raw)
	id := r.body["id"].(string)
	svc, ctx := runs.svc, context.Background()
	require.NoError(t, svc.MarkRunning(ctx, id))
	a, err := svc.CallStep(ctx, id, pipeline.CallSpec{StepID: "one", Item: -1, Attempt: 1, Function: "add"})
	require.NoError(t, err)
	require.NoError(t, svc.SettleStep(ctx, id, pipeline.StepRecord{StepID: "one", Status: pipeline.StepSucceeded, Attempts: 1,
		ExecutionID: a.ExecutionID, Output: pipeline.OutputRef{Kind: pipeline.OutputCall, ExecutionID: a.ExecutionID}}))
	ev, err := svc.EvalStep(ctx, id, pipeline.EvalSpec{StepID: "each", Kind: pipeline.EvalItems})
	require.NoError(t, err)
	require.Equal(t, n, ev.Count)
	start := time.Now()
	for i := 0; i < n; i++ {
		c, err := svc.CallStep(ctx, id, pipeline.CallSpec{StepID: "each", Item: i, Attempt: 1, Function: "add"})
		require.NoError(t, err)
		require.Equal(t, pipeline.CallSucceeded, c.Status)
		if i == n-1 {
			e := f.do(t, "GET", "/v1/executions/"+c.ExecutionID, "")
			require.Equal(t, map[string]any{"sum": float64(n - 1 + 2)}, e.body["result"], e.raw)
		}
	}
	t.Logf("%d item calls over a 4 MiB input: %v per call", n, time.Since(start)/n)
}
