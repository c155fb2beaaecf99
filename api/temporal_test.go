package api_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/api"
	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/store"
	devtemporal "github.com/lambda-microservice/lambda/internal/testkit/temporal"
	"github.com/lambda-microservice/lambda/runtimes"
	"github.com/lambda-microservice/lambda/worker"
	"github.com/lambda-microservice/lambda/workflows"
)

// runsOption gives the fixture's core a durable side of pipeline runs.
type runsOption struct{ runs core.RunDurable }

// TestHandedOverRunOutlivesItsAPI: a sync run past LAMBDA_SYNC_PIPELINE_MAX is answered
// 202 and goes on as the workflow run-{id} on the Temporal dev server; the api that ran
// its first steps then goes away, and a worker (its own core, as the worker process has)
// finishes the run with every step's handler run exactly once.
func TestHandedOverRunOutlivesItsAPI(t *testing.T) {
	t.Parallel()
	addr := devtemporal.Start(t, devtemporal.Options{Namespaces: []string{"default"},
		SearchAttributes: workflows.SearchAttributeNames})
	ctx := context.Background()
	tc, err := worker.Dial(ctx, worker.TemporalConfig{Addr: addr, Namespace: "default"}, zap.NewNop(), nil)
	require.NoError(t, err)
	t.Cleanup(tc.Close)
	starter := workflows.NewStarter(workflows.StarterConfig{HeartbeatTimeout: 2 * time.Second, MaxAttempts: 5,
		StartTimeout: 5 * time.Second, LocalInvokeMax: 10 * time.Second}, tc, "default")

	var st *store.Store
	var rc *cache.Cache
	capture := fixtureOption(func(_ *api.Deps, s *store.Store, c *cache.Cache) { st, rc = s, c })
	f := newFixture(t, runsOption{starter}, capture, coreOption(func(c *core.Config) { c.SyncPipelineMax = 60 * time.Millisecond }))

	// The worker process: its own core over the same PostgreSQL, Redis and runtime.
	reg, err := runtimes.Load("testdata/runtimes.yaml")
	require.NoError(t, err)
	logs := st.NewLogWriter(store.LogWriterConfig{}, zap.NewNop(), nil)
	lctx, stopLogs := context.WithCancel(ctx)
	go logs.Run(lctx)
	t.Cleanup(stopLogs)
	wc := core.New(core.Config{SyncTimeoutMax: time.Minute, IdempotencyTTL: 24 * time.Hour, VersionCacheTTL: time.Second,
		RuntimeCallSlack: time.Second, AsyncPerTenant: 1000},
		core.Deps{Store: st, Cache: rc, Runner: f.runner, Logs: logs, Registry: reg, Durable: starter, Runs: starter,
			Metrics: metrics.NewInvoke(prometheus.NewRegistry()), Log: zap.NewNop()})
	acts := activities.WithRuns(activities.New(activities.Config{HeartbeatEvery: 200 * time.Millisecond}, wc,
		metrics.NewWorkflow(prometheus.NewRegistry()), zap.NewNop()), activities.RunsOf(wc))
	w := worker.New(tc, worker.Config{MaxActivities: 64, MaxWorkflowTasks: 16, HeartbeatThrottle: 500 * time.Millisecond,
		StopTimeout: time.Second}, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	f.functions(t)
	steps := make([]string, 12)
	for i := range steps {
		steps[i] = fmt.Sprintf(`{"id":"s%d","function":"nap","input":{"a":%d,"b":1}}`, i, i)
	}
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", `{"name":"slow","steps":[`+strings.Join(steps, ",")+`]}`).status)
	calls := f.runner.calls.Load()
	r := f.do(t, "POST", "/v1/pipelines/slow/runs", `{}`)
	require.Equal(t, 202, r.status, r.raw)
	id := r.body["id"].(string)
	require.Equal(t, "async", r.body["mode"])
	recorded := 0
	for _, s := range stepsByID(t, r.body) {
		if s["status"] == "succeeded" {
			recorded++
		}
	}
	require.Greater(t, recorded, 0, "the steps finished before the hand-over are recorded")
	require.Less(t, recorded, 12)

	// The api goes away right after its answer.
	f.srv.Close()

	deadline := time.Now().Add(60 * time.Second)
	var run store.Run
	for {
		run, err = wc.GetRun(ctx, "default", id)
		require.NoError(t, err)
		if store.RunFinished(run.Status) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, store.StatusSucceeded, run.Status, "%+v", run.Error)
	require.JSONEq(t, `{"sum":12}`, string(run.Output))
	for _, s := range run.Steps {
		require.Equal(t, "succeeded", s.Status, s.ID)
	}
	require.EqualValues(t, 12, f.runner.calls.Load()-calls, "every step's handler ran once")
	d, err := tc.DescribeWorkflowExecution(ctx, workflows.RunWorkflowID(id), "")
	require.NoError(t, err)
	require.Equal(t, workflows.RunWorkflowName, d.GetWorkflowExecutionInfo().GetType().GetName())
}
