package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/store"
)

// TestRunShowsItsLiveSteps reads a durable run while its steps are in flight, as GET
// /v1/runs/{id} does (GetRun, then the workflow's live steps): a function step running
// for 2 s shows running with attempt 1 and its start time before any row of it is
// recorded, a 3 s sleep shows sleeping until its wake-up time, and once each has
// finished its recorded row is answered; a final run is answered with no live flag.
func TestRunShowsItsLiveSteps(t *testing.T) {
	p := newPlatform(t, "pipeline")
	p.startWorker()
	c := p.runCore(false)
	// Its timeout is above LocalInvokeMax (10 s): the call is a regular activity, so the
	// workflow answers queries while it runs (during a local activity the workflow task
	// stays open and a query waits for it: the read then answers the recorded rows).
	p.register("add", 15000, 0)
	p.registerPipeline(c, `{"name":"slowly","steps":[
	  {"id":"work","function":"add","input":{"A":1,"B":1,"sleep_ms":2000}},
	  {"id":"nap","sleep_ms":3000},
	  {"id":"last","function":"add","input":{"A":"${steps.work.output}","B":1}}]}`)
	ctx := context.Background()
	started, _, err := c.StartRun(ctx, core.RunRequest{Tenant: p.tenant, Pipeline: "slowly", Input: json.RawMessage(`{}`), Async: true})
	require.NoError(t, err)

	read := func() store.Run {
		r, err := c.GetRun(ctx, p.tenant, started.ID)
		require.NoError(t, err)
		return c.WithLiveSteps(ctx, r)
	}
	// until polls the run until cond holds on its steps.
	until := func(what string, cond func(store.Run, map[string]store.RunStep) bool) store.Run {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			r := read()
			if cond(r, stepsByID(r)) {
				return r
			}
			if store.RunFinished(r.Status) || time.Now().After(deadline) {
				t.Fatalf("%s: never seen; run %s, steps %+v", what, r.Status, r.Steps)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	r := until("work running", func(_ store.Run, s map[string]store.RunStep) bool { return s["work"].Status == "running" })
	q := time.Now()
	again := c.WithLiveSteps(ctx, r)
	t.Logf("the live steps of a run in flight: %s (query and merge)", time.Since(q))
	require.True(t, *again.Live)
	require.NotNil(t, r.Live)
	require.True(t, *r.Live, "the workflow answered")
	work := stepsByID(r)["work"]
	require.Equal(t, 1, work.Attempts)
	require.NotNil(t, work.StartedAt)
	require.WithinDuration(t, time.Now(), *work.StartedAt, 30*time.Second)
	require.Nil(t, work.FinishedAt)
	require.Equal(t, "pending", stepsByID(r)["nap"].Status)
	rows, err := p.store.RunSteps(ctx, started.ID)
	require.NoError(t, err)
	for _, row := range rows {
		require.NotEqual(t, "work", row.ID, "nothing of the running step is recorded: what GET showed is live")
	}

	r = until("nap sleeping, work recorded", func(_ store.Run, s map[string]store.RunStep) bool {
		return s["nap"].Status == core.StepSleeping && string(s["work"].Output) == "2"
	})
	require.True(t, *r.Live)
	steps := stepsByID(r)
	require.Equal(t, store.StatusSucceeded, steps["work"].Status, "a finished step is its recorded row")
	require.JSONEq(t, "2", string(steps["work"].Output))
	require.NotNil(t, steps["work"].FinishedAt)
	nap := steps["nap"]
	require.NotNil(t, nap.StartedAt)
	require.NotNil(t, nap.Until)
	require.Equal(t, 3*time.Second, nap.Until.Sub(*nap.StartedAt), "sleeping until its start + sleep_ms")
	require.True(t, time.Now().Before(nap.Until.Add(time.Second)), "seen while it sleeps")

	r = p.waitRun(c, started.ID, 60*time.Second)
	require.Equal(t, store.StatusSucceeded, r.Status, "%+v", r.Error)
	r = c.WithLiveSteps(ctx, r)
	require.Nil(t, r.Live, "a final run is its recorded rows, no query")
	nap = stepsByID(r)["nap"]
	require.Equal(t, store.StatusSucceeded, nap.Status)
	require.Nil(t, nap.Until)
	require.NotNil(t, nap.FinishedAt)
	require.GreaterOrEqual(t, nap.FinishedAt.Sub(*nap.StartedAt), 3*time.Second)
}
