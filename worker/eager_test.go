package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/worker"
	"github.com/lambda-microservice/lambda/workflows"
)

// startedEagerly reports whether an execution's first workflow task was handed back with
// its start (eager start): the server then writes WorkflowExecutionStarted,
// WorkflowTaskScheduled and WorkflowTaskStarted in one transaction, with consecutive task
// ids; a task dispatched through matching is started in a later transaction, after the
// start's own transfer and visibility tasks took the ids that follow.
func (p *platform) startedEagerly(id string) bool {
	p.t.Helper()
	it := p.client.GetWorkflowHistory(context.Background(), workflows.WorkflowID(id), "", false,
		enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var taskIDs []int64
	for it.HasNext() && len(taskIDs) < 3 {
		ev, err := it.Next()
		require.NoError(p.t, err)
		taskIDs = append(taskIDs, ev.GetTaskId())
		if len(taskIDs) == 3 {
			require.Equal(p.t, enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED, ev.GetEventType())
		}
	}
	require.Len(p.t, taskIDs, 3)
	return taskIDs[2] == taskIDs[0]+2
}

func TestEagerStart(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, "eager")
	p.startLocalWorker()
	p.register("add", 5000, 0)
	eager := p.dispatcherWith(5*time.Second, true)
	plain := p.dispatcher(5 * time.Second)

	t.Run("an eager start runs the first workflow task in the starting process", func(t *testing.T) {
		for i := range 5 {
			for _, d := range []*dispatcher{eager, plain} {
				id := p.start(d, "add", fakeEvent{A: float64(i), B: 1}, "").ID
				e := p.wait(id, 30*time.Second)
				require.Equal(t, store.StatusSucceeded, e.Status, "%+v", e.Error)
				require.JSONEq(t, fmt.Sprint(i+1), string(e.Result))
				require.Equal(t, 1, e.Attempts)
				require.Equal(t, 1, p.fake.callsOf(id))
				require.Equal(t, 1, p.rows(id))
				require.Equal(t, d == eager, p.startedEagerly(id), "eager=%v", d == eager)
			}
		}
	})

	t.Run("the api's worker leaves regular activities to the worker processes", func(t *testing.T) {
		// A timeout above LocalInvokeMax (10 s) makes Invoke a regular activity, which a
		// worker of workflow tasks and local activities never takes.
		p.register("long", 20000, 0)
		id := p.start(eager, "long", fakeEvent{A: 40, B: 2}, "").ID
		time.Sleep(time.Second)
		require.Equal(t, 0, p.fake.callsOf(id), "no worker runs regular activities yet")
		e, err := p.store.GetExecution(context.Background(), p.tenant, id, false)
		require.NoError(t, err)
		require.Equal(t, store.StatusQueued, e.Status)
		require.True(t, p.startedEagerly(id))

		p.startWorker()
		e = p.wait(id, 30*time.Second)
		require.Equal(t, store.StatusSucceeded, e.Status, "%+v", e.Error)
		require.JSONEq(t, "42", string(e.Result))
		require.Equal(t, 1, p.fake.callsOf(id))
	})
}

// The api process starts executions eagerly and runs them on its own worker; killed
// mid-call, its workflow tasks time out and a worker process runs every execution again,
// each recorded once.
func TestAPIKilledDuringEagerExecutions(t *testing.T) {
	t.Parallel()
	bin := lambdaBin(t)
	p := newPlatform(t, "apikill")
	p.register("work", 10000, 0)
	base, api := p.startAPIProcess(bin)
	p.startWorkerProcess(bin)

	const n = 10
	ids := make([]string, n)
	for i := range n {
		body, err := json.Marshal(fakeEvent{A: float64(i), B: 1, SleepMS: 3000})
		require.NoError(t, err)
		req, err := http.NewRequest(http.MethodPost, base+"/v1/functions/work/invoke", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		req.Header.Set("Language-Title", "python")
		req.Header.Set("Prefer", "respond-async")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var e store.Execution
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
		resp.Body.Close()
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		ids[i] = e.ID
	}
	require.Eventually(t, func() bool { return p.fake.inflight.Load() == n }, 30*time.Second, 20*time.Millisecond,
		"all executions reach the runtime")
	for _, id := range ids {
		require.True(t, p.startedEagerly(id), "execution %s runs on the api's worker", id)
	}
	api.kill9()
	t0 := time.Now()

	p.requireRanAgain(ids)
	t.Logf("%d executions completed %s after the api was killed", n, time.Since(t0))
}

// gate forwards TCP connections to target once opened; before that it closes them.
type gate struct {
	ln     net.Listener
	target string
	open   atomic.Bool
}

func newGate(t *testing.T, target string) *gate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	g := &gate{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !g.open.Load() {
				_ = c.Close()
				continue
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", g.target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c) }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return g
}

// The api's worker starts once Temporal answers, however late, and stops cleanly.
func TestStartWhenReachable(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, "eager")
	g := newGate(t, temporalServer(t))
	tc, err := worker.NewLazyClient(worker.TemporalConfig{Addr: g.ln.Addr().String(), Namespace: "eager"}, p.log, nil)
	require.NoError(t, err)
	defer tc.Close()
	acts := activities.New(activities.Config{}, p.core, metrics.NewWorkflow(prometheus.NewRegistry()), p.log)
	var builds atomic.Int32
	b := worker.StartWhenReachable(context.Background(), func() sdkworker.Worker {
		builds.Add(1)
		return worker.NewLocal(tc, worker.Config{MaxActivities: 1, MaxWorkflowTasks: 4, StopTimeout: time.Second}, acts)
	}, p.log)
	defer b.Stop()

	require.Eventually(t, func() bool { return builds.Load() >= 2 }, 10*time.Second, 20*time.Millisecond,
		"a new worker for every attempt")
	require.False(t, b.Running(), "Temporal unreachable: not started")

	g.open.Store(true)
	require.Eventually(t, b.Running, 15*time.Second, 50*time.Millisecond, "started once Temporal answers")
	b.Stop()
	require.False(t, b.Running())
}
