package worker_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/workflows"
)

// runCore is the platform's core with durable executions and runs on the workflows'
// Starter, as the api composes it.
func (p *platform) runCore(eager bool) *core.Service {
	st := workflows.NewStarter(workflows.StarterConfig{HeartbeatTimeout: 2 * time.Second, MaxAttempts: 5,
		StartTimeout: 5 * time.Second, Eager: eager, LocalInvokeMax: 10 * time.Second}, p.client, p.ns)
	return core.New(core.Config{SyncTimeoutMax: time.Minute, IdempotencyTTL: 24 * time.Hour,
		VersionCacheTTL: time.Second, RuntimeCallSlack: 5 * time.Second, SyncPipelineMax: 10 * time.Second,
		AsyncPerTenant: 100_000, Functions: core.FunctionLimits{
			MaxSourceBytes: 1 << 18, DefaultTimeoutMS: 3000, DefaultMemoryMB: 128, MaxTimeout: 15 * time.Minute}},
		core.Deps{Store: p.store, Cache: p.cache, Runner: p.fx, Logs: p.logs, Registry: p.runtimes, Durable: st, Runs: st,
			Metrics: p.im, Log: p.log})
}

func (p *platform) registerPipeline(c *core.Service, def string) {
	p.t.Helper()
	_, err := c.RegisterPipeline(context.Background(), p.tenant, json.RawMessage(def))
	require.NoError(p.t, err)
}

// waitRun polls a run until it is final.
func (p *platform) waitRun(c *core.Service, id string, within time.Duration) store.Run {
	p.t.Helper()
	return p.waitRunStatus(c, id, within, store.RunFinished)
}

func (p *platform) waitRunStatus(c *core.Service, id string, within time.Duration, done func(string) bool) store.Run {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r, err := c.GetRun(context.Background(), p.tenant, id)
		require.NoError(p.t, err)
		if done(r.Status) {
			return r
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("run %s still %s after %s", id, r.Status, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *platform) query(sql string, args ...any) int {
	p.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.dbURL)
	require.NoError(p.t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(p.t, conn.QueryRow(ctx, sql, args...).Scan(&n))
	return n
}

func stepsByID(r store.Run) map[string]store.RunStep {
	out := map[string]store.RunStep{}
	for _, s := range r.Steps {
		out[s.ID] = s
	}
	return out
}

// TestPipelineRunAsync runs a 3-step pipeline sync and async on the real stack
// (PostgreSQL, Redis, the Temporal dev server; the runtime is the fake one): the same
// result, every step recorded once with its execution, visible in Temporal.
func TestPipelineRunAsync(t *testing.T) {
	p := newPlatform(t, "pipeline")
	p.startWorker()
	c := p.runCore(false)
	p.register("add", 3000, 0)
	p.registerPipeline(c, `{"name":"chain","steps":[
	  {"id":"s1","function":"add","input":{"A":"${input.a}","B":1}},
	  {"id":"s2","function":"add","input":{"A":"${steps.s1.output}","B":10}},
	  {"id":"s3","function":"add","input":{"A":"${steps.s2.output}","B":100}}]}`)
	ctx := context.Background()

	sync, _, err := c.StartRun(ctx, core.RunRequest{Tenant: p.tenant, Pipeline: "chain", Input: json.RawMessage(`{"a":1}`)})
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, sync.Status, "%+v", sync.Error)
	require.Equal(t, core.ModeSync, sync.Mode)

	started, _, err := c.StartRun(ctx, core.RunRequest{Tenant: p.tenant, Pipeline: "chain", Input: json.RawMessage(`{"a":1}`), Async: true})
	require.NoError(t, err)
	require.Equal(t, core.ModeAsync, started.Mode)
	r := p.waitRun(c, started.ID, 30*time.Second)
	require.Equal(t, store.StatusSucceeded, r.Status, "%+v", r.Error)
	require.JSONEq(t, "112", string(r.Output))
	require.JSONEq(t, string(sync.Output), string(r.Output), "async gives what sync gives")
	steps := stepsByID(r)
	for _, id := range []string{"s1", "s2", "s3"} {
		s := steps[id]
		require.Equal(t, store.StatusSucceeded, s.Status, id)
		require.Equal(t, 1, s.Attempts, id)
		require.Equal(t, pipeline.StepExecutionID(r.ID, id, -1), s.ExecutionID, id)
		require.Equal(t, 1, p.rows(s.ExecutionID), "step %s recorded as one execution", id)
		require.Equal(t, 1, p.fake.callsOf(s.ExecutionID), "step %s's handler ran once", id)
		require.NotNil(t, s.StartedAt, id)
		require.NotNil(t, s.FinishedAt, id)
		require.False(t, s.FinishedAt.Before(*s.StartedAt), id)
	}
	require.JSONEq(t, "2", string(steps["s1"].Output))
	require.Equal(t, 3, p.query(`SELECT count(*) FROM request_logs WHERE run_id = $1`, r.ID))

	// Temporal: run-{id} of type RunPipeline, its search attributes, and the steps query.
	d, err := p.client.DescribeWorkflowExecution(ctx, workflows.RunWorkflowID(r.ID), "")
	require.NoError(t, err)
	info := d.GetWorkflowExecutionInfo()
	require.Equal(t, workflows.RunWorkflowName, info.GetType().GetName())
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, info.GetStatus())
	sa := info.GetSearchAttributes().GetIndexedFields()
	require.Contains(t, string(sa["LambdaPipeline"].GetData()), "chain")
	require.Contains(t, string(sa["LambdaStatus"].GetData()), "succeeded")
	v, err := p.client.QueryWorkflow(ctx, workflows.RunWorkflowID(r.ID), "", workflows.StepsQuery)
	require.NoError(t, err)
	var snap []pipeline.StepState
	require.NoError(t, v.Get(&snap))
	require.Len(t, snap, 3)
	for _, s := range snap {
		require.Equal(t, pipeline.StepSucceeded, s.Status, s.ID)
	}
	hist := p.history(r.ID)
	require.Contains(t, hist, `"run_id":"`+r.ID)
	require.NotContains(t, hist, `"a":1`, "payloads stay in PostgreSQL")
	// The output 112 as a JSON value (a payload line, or a field or element of one) — not the
	// digits inside a timestamp or an id.
	require.NotRegexp(t, `(^|\n|[:\[,])\s*112\s*($|\n|[,\]}])`, hist, "payloads stay in PostgreSQL")
	require.Contains(t, hist, "step s2: add v1", "activity summaries name the step and the function")
	// One workflow task: the start, the task, the version marker, five local activities
	// (the plan with the move to running, three calls that settle their steps, the
	// finish), the finish's version marker, three search-attribute upserts (the two
	// version markers' TemporalChangeVersion, LambdaStatus succeeded), the end.
	require.Equal(t, 15, p.historyLen(workflows.RunWorkflowID(r.ID)), "%s", hist)
	p.recordHistory(workflows.RunWorkflowID(r.ID), "history-run-fused.json")
}

// history is a run's workflow history as JSON.
func (p *platform) history(runID string) string {
	p.t.Helper()
	it := p.client.GetWorkflowHistory(context.Background(), workflows.RunWorkflowID(runID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var b strings.Builder
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(p.t, err)
		j, _ := json.Marshal(e)
		var v any
		require.NoError(p.t, json.Unmarshal(j, &v))
		decodePayloads(&b, v)
	}
	return b.String()
}

// decodePayloads writes the decoded "data" fields (payloads, summaries) found in v.
func decodePayloads(b *strings.Builder, v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "data" {
				if raw, err := base64.StdEncoding.DecodeString(s); err == nil {
					b.Write(raw)
					b.WriteByte('\n')
				}
				continue
			}
			decodePayloads(b, e)
		}
	case []any:
		for _, e := range x {
			decodePayloads(b, e)
		}
	}
}

// recordHistory writes a run's history to $LAMBDA_RECORD_HISTORIES/name (the replay
// tests' testdata: LAMBDA_RECORD_HISTORIES=$PWD/workflows/testdata go test ./worker -run
// TestPipeline).
func (p *platform) recordHistory(workflowID, name string) {
	p.t.Helper()
	dir := os.Getenv("LAMBDA_RECORD_HISTORIES")
	if dir == "" {
		return
	}
	h := &historypb.History{}
	it := p.client.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(p.t, err)
		h.Events = append(h.Events, e)
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(h)
	require.NoError(p.t, err)
	require.NoError(p.t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
}

func (p *platform) historyLen(workflowID string) int {
	p.t.Helper()
	d, err := p.client.DescribeWorkflowExecution(context.Background(), workflowID, "")
	require.NoError(p.t, err)
	return int(d.GetWorkflowExecutionInfo().GetHistoryLength())
}

// TestPipelineApprovalSignal: a run waits for its approval signal, the payload reaches
// the next step; a cancel stops a waiting run.
func TestPipelineApprovalSignal(t *testing.T) {
	p := newPlatform(t, "pipeline")
	p.startWorker()
	c := p.runCore(false)
	p.register("add", 3000, 0)
	p.registerPipeline(c, `{"name":"approve","steps":[
	  {"id":"s1","function":"add","input":{"A":1,"B":2}},
	  {"id":"approval","wait_for":{"signal":"approve","timeout_ms":60000}},
	  {"id":"s2","function":"add","input":{"A":"${steps.s1.output}","B":"${steps.approval.output.amount}"}}]}`)
	ctx := context.Background()
	started, _, err := c.StartRun(ctx, core.RunRequest{Tenant: p.tenant, Pipeline: "approve", Input: json.RawMessage(`{}`)})
	require.NoError(t, err)
	require.Equal(t, core.ModeAsync, started.Mode, "a pipeline with a wait runs durably")
	p.waitRunStatus(c, started.ID, 30*time.Second, func(s string) bool { return s == store.RunWaiting })
	require.NoError(t, c.SignalRun(ctx, p.tenant, started.ID, "approve", json.RawMessage(`{"amount":5}`)))
	r := p.waitRun(c, started.ID, 30*time.Second)
	require.Equal(t, store.StatusSucceeded, r.Status, "%+v", r.Error)
	require.JSONEq(t, "8", string(r.Output))
	require.JSONEq(t, `{"amount":5}`, string(stepsByID(r)["approval"].Output))
	p.recordHistory(workflows.RunWorkflowID(r.ID), "history-run-signal.json")

	// Canceled while waiting.
	started, _, err = c.StartRun(ctx, core.RunRequest{Tenant: p.tenant, Pipeline: "approve", Input: json.RawMessage(`{}`)})
	require.NoError(t, err)
	p.waitRunStatus(c, started.ID, 30*time.Second, func(s string) bool { return s == store.RunWaiting })
	require.NoError(t, c.CancelRun(ctx, p.tenant, started.ID))
	r = p.waitRun(c, started.ID, 30*time.Second)
	require.Equal(t, store.StatusCanceled, r.Status)
	require.Equal(t, string(pipeline.StepCanceled), stepsByID(r)["approval"].Status)
	d, err := p.client.DescribeWorkflowExecution(ctx, workflows.RunWorkflowID(r.ID), "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_CANCELED, d.GetWorkflowExecutionInfo().GetStatus())
	p.recordHistory(workflows.RunWorkflowID(r.ID), "history-run-canceled.json")
}

// noStart records runs without starting their workflows: the test starts them itself.
type noStart struct{}

func (noStart) StartRun(context.Context, core.RunStart) error             { return nil }
func (noStart) SignalRun(context.Context, string, string) error           { return nil }
func (noStart) CancelRun(context.Context, string) error                   { return nil }
func (noStart) RunID(id string) string                                    { return id }
func (noStart) StartExecution(context.Context, core.AsyncExecution) error { return nil }
func (noStart) CancelExecution(context.Context, string) error             { return nil }

// TestPipelineChunkedMap runs a map in chunks small enough to look at (3 items per child
// workflow): every kind of step and a chunked map, the histories recorded for replay.
func TestPipelineChunkedMap(t *testing.T) {
	p := newPlatform(t, "pipeline")
	p.startWorker()
	c := p.runCore(false)
	p.register("add", 3000, 0)
	p.registerPipeline(c, `{"name":"kinds","steps":[
	  {"id":"m","map":{"items":"input","max_concurrency":2,"step":{"function":"add","input":{"A":"${item}","B":1}}}},
	  {"id":"skip","function":"add","if":"size(steps.m.output) > 100"},
	  {"id":"par","parallel":{"x":[{"id":"x1","function":"add","input":{"A":1,"B":1}}],
	                          "y":[{"id":"y1","function":"add","input":{"op":"fail"},"catch":"y2"},{"id":"y2","function":"add","input":{"A":2,"B":2}}]}},
	  {"id":"nap","sleep_ms":50},
	  {"id":"w","wait_for":{"signal":"never","timeout_ms":100,"on_timeout":7}},
	  {"id":"last","function":"add","input":{"A":"${steps.m.output[6]}","B":"${steps.par.output.x + steps.par.output.y + steps.w.output}"}}]}`)
	ctx := context.Background()
	rc := core.New(core.Config{SyncPipelineMax: 10 * time.Second, AsyncPerTenant: 1000},
		core.Deps{Store: p.store, Cache: p.cache, Runner: p.fx, Logs: p.logs, Registry: p.runtimes, Durable: noStart{},
			Runs: noStart{}, Metrics: p.im, Log: p.log})
	run, _, err := rc.StartRun(ctx, core.RunRequest{Tenant: p.tenant, Pipeline: "kinds", Input: json.RawMessage(`[0,1,2,3,4,5,6]`), Async: true})
	require.NoError(t, err)
	ref := workflows.RunRef{RunID: run.ID, Tenant: p.tenant, Pipeline: "kinds", Version: 1, MaxAttempts: 3,
		LocalInvokeMax: 10 * time.Second, ChunkThreshold: 4, ChunkItems: 3}
	_, err = p.client.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: workflows.RunWorkflowID(run.ID),
		TaskQueue: workflows.TaskQueue}, workflows.RunWorkflowName, ref)
	require.NoError(t, err)
	r := p.waitRun(c, run.ID, 30*time.Second)
	require.Equal(t, store.StatusSucceeded, r.Status, "%+v", r.Error)
	require.JSONEq(t, "20", string(r.Output), "m[6] = 7, par.x = 2, par.y = 4, w = 7 (on_timeout)")
	steps := stepsByID(r)
	require.Equal(t, &pipeline.ItemCounts{Total: 7, Succeeded: 7}, steps["m"].Items)
	require.JSONEq(t, "[1,2,3,4,5,6,7]", string(steps["m"].Output))
	require.Equal(t, "skipped", steps["skip"].Status)
	require.Equal(t, "failed", steps["y1"].Status)
	for k := range 3 {
		id := fmt.Sprintf("%s-m-%d", workflows.RunWorkflowID(r.ID), k)
		d, err := p.client.DescribeWorkflowExecution(ctx, id, "")
		require.NoError(t, err, "chunk %d ran as a child workflow", k)
		require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED, d.GetWorkflowExecutionInfo().GetStatus())
	}
	p.recordHistory(workflows.RunWorkflowID(r.ID), "history-run-kinds.json")
	p.recordHistory(workflows.RunWorkflowID(r.ID)+"-m-0", "history-run-chunk.json")
}

// TestPipelineLargeMapBoundedHistory maps over 10,000 items: the items run in child
// workflows of 500, so no history grows with the number of items.
func TestPipelineLargeMapBoundedHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 calls")
	}
	p := newPlatform(t, "pipeline")
	p.startWorker()
	c := p.runCore(false)
	p.register("add", 3000, 0)
	// The items come from an expression, so the run's input stays small (every call reads
	// the run's state).
	p.registerPipeline(c, `{"name":"big","steps":[
	  {"id":"m","map":{"items":"lists.range(input.n)","max_concurrency":50,"step":{"function":"add","input":{"A":"${item}","B":1}}}},
	  {"id":"sum","function":"add","input":{"A":"${size(steps.m.output)}","B":"${steps.m.output[9999]}"}}]}`)
	started, _, err := c.StartRun(context.Background(), core.RunRequest{Tenant: p.tenant, Pipeline: "big",
		Input: json.RawMessage(`{"n":10000}`), Async: true})
	require.NoError(t, err)
	r := p.waitRun(c, started.ID, 10*time.Minute)
	require.Equal(t, store.StatusSucceeded, r.Status, "%+v", r.Error)
	require.JSONEq(t, "20000", string(r.Output), "10,000 items + the last item's 10,000")
	require.Equal(t, &pipeline.ItemCounts{Total: 10_000, Succeeded: 10_000}, stepsByID(r)["m"].Items)
	require.Equal(t, 10_001, p.query(`SELECT count(*) FROM request_logs WHERE run_id = $1`, r.ID))

	parent := p.historyLen(workflows.RunWorkflowID(r.ID))
	t.Logf("run history: %d events", parent)
	require.Less(t, parent, 300, "the run's history does not grow with the items")
	for k := range 20 {
		n := p.historyLen(fmt.Sprintf("%s-m-%d", workflows.RunWorkflowID(r.ID), k))
		require.Less(t, n, 1500, "chunk %d's history is bounded by its 500 items", k)
	}
}

// TestPipelineWorkerKilled kills -9 the worker process in the middle of a 20-step async
// run: another worker completes it, and every step is recorded exactly once.
func TestPipelineWorkerKilled(t *testing.T) {
	bin := lambdaBin(t)
	p := newPlatform(t, "pipekill")
	c := p.runCore(false)
	p.register("add", 3000, 0)
	var steps []string
	for i := 1; i <= 20; i++ {
		in := `"${input}"`
		if i > 1 {
			in = fmt.Sprintf(`"${steps.s%d.output}"`, i-1)
		}
		steps = append(steps, fmt.Sprintf(`{"id":"s%d","function":"add","input":{"A":%s,"B":1,"sleep_ms":150}}`, i, in))
	}
	p.registerPipeline(c, `{"name":"twenty","steps":[`+strings.Join(steps, ",")+`]}`)
	w := p.startWorkerProcess(bin)
	started, _, err := c.StartRun(context.Background(), core.RunRequest{Tenant: p.tenant, Pipeline: "twenty",
		Input: json.RawMessage(`0`), Async: true})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return p.query(`SELECT count(*) FROM run_steps WHERE run_id = $1 AND status = 'succeeded'`, started.ID) >= 6
	}, 30*time.Second, 10*time.Millisecond)
	w.kill9()
	p.startWorkerProcess(bin)
	r := p.waitRun(c, started.ID, 90*time.Second)
	require.Equal(t, store.StatusSucceeded, r.Status, "%+v", r.Error)
	require.JSONEq(t, "20", string(r.Output))
	require.Len(t, r.Steps, 20)
	ran := 0
	for i, s := range r.Steps {
		require.Equal(t, store.StatusSucceeded, s.Status, s.ID)
		require.JSONEq(t, fmt.Sprint(i+1), string(s.Output), s.ID)
		require.Equal(t, 1, p.rows(s.ExecutionID), "step %s recorded exactly once", s.ID)
		ran += p.fake.callsOf(s.ExecutionID)
	}
	require.Equal(t, 20, p.query(`SELECT count(*) FROM run_steps WHERE run_id = $1`, r.ID))
	require.Equal(t, 20, p.query(`SELECT count(*) FROM request_logs WHERE run_id = $1`, r.ID))
	require.LessOrEqual(t, ran, 21, "at most the step in flight at the kill ran twice")
}

// An async run whose workflow an operator terminated is failed by the sweeper (once the
// grace period has passed), as an execution's is; a run still running is left alone.
func TestPipelineSweeperFailsTerminatedRuns(t *testing.T) {
	p := newPlatform(t, "pipeline")
	p.startWorker()
	c := p.runCore(false)
	p.register("add", 5000, 0)
	p.registerPipeline(c, `{"name":"slow","steps":[
	  {"id":"s1","function":"add","input":{"A":1,"B":1,"sleep_ms":3000}},
	  {"id":"s2","function":"add","input":{"A":"${steps.s1.output}","B":1}}]}`)
	ctx := context.Background()
	start := func() string {
		r, _, err := c.StartRun(ctx, core.RunRequest{Tenant: p.tenant, Pipeline: "slow", Input: json.RawMessage(`{}`), Async: true})
		require.NoError(t, err)
		p.waitRunStatus(c, r.ID, 30*time.Second, func(s string) bool { return s == store.StatusRunning })
		return r.ID
	}
	terminated, alive := start(), start()
	require.NoError(t, p.client.TerminateWorkflow(ctx, workflows.RunWorkflowID(terminated), "", "an operator's mistake"))

	n, err := c.SweepRuns(ctx, time.Hour, 100)
	require.NoError(t, err)
	require.Zero(t, n, "before the grace period nothing is touched")
	n, err = c.SweepRuns(ctx, 0, 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	r, err := c.GetRun(ctx, p.tenant, terminated)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, r.Status)
	require.Equal(t, core.ErrAbandoned, r.Error.Type)
	require.Contains(t, r.Error.Message, "without recording its outcome")

	r = p.waitRun(c, alive, 30*time.Second)
	require.Equal(t, store.StatusSucceeded, r.Status, "%+v", r.Error)
	n, err = c.SweepRuns(ctx, 0, 100)
	require.NoError(t, err)
	require.Zero(t, n, "swept again: nothing left to do")
}
