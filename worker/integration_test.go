package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/lambda-microservice/lambda/api"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/workflows"
)

// The in-process group: one platform (database, worker) in namespace "inproc" shared
// by the subtests, which run in parallel.
func TestAsyncExecutions(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, "inproc")
	p.startWorker()
	d := p.dispatcher(5 * time.Second)

	t.Run("fifty executions complete with correct results", func(t *testing.T) {
		t.Parallel()
		p.register("add50", 5000, 0)
		const n = 50
		ids := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids[i] = p.start(d, "add50", fakeEvent{A: float64(i), B: 1000}, "").ID
			}()
		}
		wg.Wait()
		for i, id := range ids {
			e := p.wait(id, 60*time.Second)
			require.Equal(t, store.StatusSucceeded, e.Status, "execution %d: %+v", i, e.Error)
			require.JSONEq(t, fmt.Sprint(i+1000), string(e.Result))
			require.Equal(t, 1, e.Attempts)
			require.Equal(t, "async", e.Mode)
			require.Equal(t, "adding\n", e.Stdout)
			require.Equal(t, workflows.WorkflowID(id), e.WorkflowID)
			require.Equal(t, 1, p.fake.callsOf(id))
		}
		// The Web UI's view: search attributes and memo on each run (once the run closed).
		var desc *workflowservice.DescribeWorkflowExecutionResponse
		require.Eventually(t, func() bool {
			var err error
			desc, err = p.client.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(ids[0]), "")
			return err == nil && desc.GetWorkflowExecutionInfo().GetStatus().String() == "Completed"
		}, 10*time.Second, 20*time.Millisecond)
		sa := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()
		var fn, status, lang string
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(sa["LambdaFunction"], &fn))
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(sa["LambdaStatus"], &status))
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(sa["LambdaLanguage"], &lang))
		require.Equal(t, []string{"add50", store.StatusSucceeded, "python"}, []string{fn, status, lang})
		var memoFn string
		require.NoError(t, converter.GetDefaultDataConverter().FromPayload(desc.GetWorkflowExecutionInfo().GetMemo().GetFields()["function"], &memoFn))
		require.Equal(t, "add50", memoFn)
		// Filtering by function, as an operator does in the UI.
		require.Eventually(t, func() bool {
			res, err := p.client.CountWorkflow(context.Background(), countRequest{ns: p.ns,
				query: `LambdaFunction = "add50" AND LambdaStatus = "succeeded"`}.proto())
			return err == nil && res.GetCount() == n
		}, 10*time.Second, 100*time.Millisecond)
	})

	t.Run("a short execution records its outcome in one workflow task, status at its end", func(t *testing.T) {
		t.Parallel()
		p.register("add3s", 3000, 0) // a timeout of at most workflows.StatusAtEndMax
		id := p.start(d, "add3s", fakeEvent{A: 1, B: 2}, "").ID
		e := p.wait(id, 60*time.Second)
		require.Equal(t, store.StatusSucceeded, e.Status, "%+v", e.Error)
		require.JSONEq(t, "3", string(e.Result))
		require.Equal(t, 1, e.Attempts)
		require.NotNil(t, e.FinishedAt)
		require.Eventually(t, func() bool {
			desc, err := p.client.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(id), "")
			return err == nil && desc.GetWorkflowExecutionInfo().GetStatus().String() == "Completed"
		}, 10*time.Second, 20*time.Millisecond)
		var statuses []string
		it := p.client.GetWorkflowHistory(context.Background(), workflows.WorkflowID(id), "", false, 0)
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			if f := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()["LambdaStatus"]; f != nil {
				var st string
				require.NoError(t, converter.GetDefaultDataConverter().FromPayload(f, &st))
				statuses = append(statuses, st)
			}
		}
		require.Equal(t, []string{store.StatusSucceeded}, statuses, "no running status upserted with the final one")
		p.recordHistory(workflows.WorkflowID(id), "history-status-at-end.json")
	})

	t.Run("runtime killed mid-call retries and is recorded once", func(t *testing.T) {
		t.Parallel()
		p.register("dies", 5000, 0)
		for _, ev := range []fakeEvent{{A: 1, B: 2, DieOnce: true, SleepMS: 100}, {A: 1, B: 2, Gateway5x: true}} {
			e := p.start(d, "dies", ev, "")
			got := p.wait(e.ID, 30*time.Second)
			require.Equal(t, store.StatusSucceeded, got.Status, "%+v", got.Error)
			require.JSONEq(t, "3", string(got.Result))
			require.Equal(t, 2, got.Attempts, "the second attempt produced the result")
			require.Equal(t, 2, p.fake.callsOf(e.ID))
			require.Equal(t, 1, p.rows(e.ID))
		}
	})

	t.Run("handler failure and timeout are not retried", func(t *testing.T) {
		t.Parallel()
		p.register("fails", 5000, 0)
		for op, status := range map[string]string{"fail": store.StatusFailed, "timeout": store.StatusTimeout} {
			e := p.start(d, "fails", fakeEvent{Op: op}, "")
			got := p.wait(e.ID, 30*time.Second)
			require.Equal(t, status, got.Status)
			require.Equal(t, 1, got.Attempts)
			require.Equal(t, 1, p.fake.callsOf(e.ID))
			require.NotNil(t, got.Error)
			require.Nil(t, got.Result)
			// The row is final a moment before the workflow itself closes.
			require.Eventually(t, func() bool {
				desc, err := p.client.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(e.ID), "")
				return err == nil && desc.GetWorkflowExecutionInfo().GetStatus().String() == "Failed"
			}, 10*time.Second, 20*time.Millisecond, "the workflow ends as Failed")
		}
		got := p.wait(p.start(d, "fails", fakeEvent{Op: "fail"}, "").ID, 30*time.Second)
		require.Equal(t, "ValueError", got.Error.Type)
		require.Equal(t, "boom", got.Error.Message)
	})

	t.Run("six MiB event travels by claim check", func(t *testing.T) {
		t.Parallel()
		p.register("big", 5000, 0)
		pad := strings.Repeat("x", 6<<20-64)
		e := p.start(d, "big", fakeEvent{Op: "len", Pad: pad}, "")
		got := p.wait(e.ID, 60*time.Second)
		require.Equal(t, store.StatusSucceeded, got.Status, "%+v", got.Error)
		require.JSONEq(t, fmt.Sprint(len(pad)), string(got.Result))
	})

	t.Run("idempotency key starts nothing new", func(t *testing.T) {
		t.Parallel()
		p.register("idem", 5000, 0)
		first := p.start(d, "idem", fakeEvent{A: 2, B: 2}, "key-1")
		raw, _ := json.Marshal(fakeEvent{A: 2, B: 2})
		second, replayed, err := d.Start(context.Background(), req(p, "idem", raw, "key-1"))
		require.NoError(t, err)
		require.True(t, replayed)
		require.Equal(t, first.ID, second.ID)
		p.wait(first.ID, 30*time.Second)
		third, replayed, err := d.Start(context.Background(), req(p, "idem", raw, "key-1"))
		require.NoError(t, err)
		require.True(t, replayed)
		require.Equal(t, first.ID, third.ID)
		require.Equal(t, store.StatusSucceeded, third.Status)
		require.Equal(t, 1, p.fake.callsOf(first.ID))
		other, _ := json.Marshal(fakeEvent{A: 3, B: 2})
		_, _, err = d.Start(context.Background(), req(p, "idem", other, "key-1"))
		require.True(t, fault.Is(err, fault.Unprocessable), "the key reused with another event: %v", err)
	})

	t.Run("cache hit answers without the runtime", func(t *testing.T) {
		t.Parallel()
		p.register("cached", 5000, 60)
		e1 := p.wait(p.start(d, "cached", fakeEvent{A: 5, B: 5}, "").ID, 30*time.Second)
		require.False(t, e1.Cached)
		var e2 store.Execution
		require.Eventually(t, func() bool { // StoreCache runs right after Persist
			e2 = p.wait(p.start(d, "cached", fakeEvent{A: 5, B: 5}, "").ID, 30*time.Second)
			return e2.Cached
		}, 10*time.Second, 50*time.Millisecond)
		require.Equal(t, store.StatusSucceeded, e2.Status)
		require.JSONEq(t, "10", string(e2.Result))
		require.Equal(t, 0, p.fake.callsOf(e2.ID))
	})

	t.Run("cancel abandons the runtime call", func(t *testing.T) {
		t.Parallel()
		p.register("slow", 60000, 0)
		e := p.start(d, "slow", fakeEvent{SleepMS: 30000}, "")
		require.Eventually(t, func() bool { return p.fake.callsOf(e.ID) == 1 }, 10*time.Second, 10*time.Millisecond)
		abandoned := p.fake.abandoned.Load()
		t0 := time.Now()
		require.NoError(t, d.Cancel(context.Background(), p.tenant, e.ID))
		got := p.wait(e.ID, 10*time.Second)
		t.Logf("canceled recorded %s after DELETE", time.Since(t0))
		require.Equal(t, store.StatusCanceled, got.Status)
		require.Equal(t, "Canceled", got.Error.Type)
		require.Eventually(t, func() bool { return p.fake.abandoned.Load() > abandoned }, 5*time.Second, 20*time.Millisecond,
			"the runtime call is abandoned")
		err := d.Cancel(context.Background(), p.tenant, e.ID)
		require.True(t, fault.Is(err, fault.Conflict), "a finished execution: %v", err)
		err = d.Cancel(context.Background(), "someone-else", e.ID)
		require.True(t, fault.Is(err, fault.NotFound), "another tenant's execution: %v", err)
		require.Eventually(t, func() bool {
			desc, err := p.client.DescribeWorkflowExecution(context.Background(), workflows.WorkflowID(e.ID), "")
			return err == nil && desc.GetWorkflowExecutionInfo().GetStatus().String() == "Canceled"
		}, 10*time.Second, 20*time.Millisecond, "the workflow ends as Canceled")
	})

	t.Run("HTTP: respond-async, Location, long-poll, cancel conflict", func(t *testing.T) {
		t.Parallel()
		p.register("http", 5000, 0)
		srv := httptest.NewServer(api.NewServer(api.Deps{Config: api.Config{MaxEventBytes: 6 << 20, MaxWait: time.Minute},
			Log: p.log, Core: d.core, Store: p.store, Metrics: metrics.NewHTTP(prometheus.NewRegistry()),
			Gatherer: prometheus.NewRegistry()}))
		defer srv.Close()
		do := func(method, path, body string, hdr ...string) (*http.Response, map[string]any) {
			req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
			require.NoError(t, err)
			for i := 0; i+1 < len(hdr); i += 2 {
				req.Header.Set(hdr[i], hdr[i+1])
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var out map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&out)
			return resp, out
		}
		resp, body := do(http.MethodPost, "/v1/functions/http/invoke", `{"A":20,"B":22}`,
			"Language-Title", "python", "Prefer", "respond-async", "Idempotency-Key", "http-1")
		require.Equal(t, http.StatusAccepted, resp.StatusCode, "%v", body)
		id, _ := body["id"].(string)
		require.Equal(t, "/v1/executions/"+id, resp.Header.Get("Location"))
		require.Equal(t, "queued", body["status"])
		resp, body = do(http.MethodGet, resp.Header.Get("Location")+"?wait=30s", "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "succeeded", body["status"], "%v", body)
		require.Equal(t, float64(42), body["result"])
		require.Equal(t, float64(1), body["attempts"])
		resp, body = do(http.MethodPost, "/v1/functions/http/invoke", `{"A":20,"B":22}`,
			"Language-Title", "python", "Prefer", "respond-async", "Idempotency-Key", "http-1")
		require.Equal(t, http.StatusAccepted, resp.StatusCode)
		require.Equal(t, "true", resp.Header.Get("Idempotent-Replayed"))
		require.Equal(t, id, body["id"])
		resp, _ = do(http.MethodDelete, "/v1/executions/"+id, "")
		require.Equal(t, http.StatusConflict, resp.StatusCode)
		require.Equal(t, 1, p.fake.callsOf(id))
	})

	t.Run("thirty-second handler heartbeats through a five-second heartbeat timeout", func(t *testing.T) {
		t.Parallel()
		p.register("long", 120000, 0)
		e := p.start(d, "long", fakeEvent{A: 1, B: 1, SleepMS: 30000}, "")
		got := p.wait(e.ID, 90*time.Second)
		require.Equal(t, store.StatusSucceeded, got.Status, "%+v", got.Error)
		require.Equal(t, 1, got.Attempts, "heartbeats kept the only attempt alive")
		require.Equal(t, 1, p.fake.callsOf(e.ID))
	})
}

// TestWorkerKilled runs `lambda worker` as a process, kill -9s it while 20 executions
// (and one 30-second handler) are mid-call, starts a new one, and checks each
// execution completes and is recorded exactly once.
func TestWorkerKilled(t *testing.T) {
	t.Parallel()
	bin := lambdaBin(t)
	p := newPlatform(t, "kill")
	p.register("work", 10000, 0)
	p.register("long", 120000, 0)
	short := p.dispatcher(2 * time.Second)
	long := p.dispatcher(5 * time.Second)

	w1 := p.startWorkerProcess(bin)
	const n = 20
	ids := make([]string, n)
	for i := range n {
		ids[i] = p.start(short, "work", fakeEvent{A: float64(i), B: 1, SleepMS: 3000}, "").ID
	}
	longID := p.start(long, "long", fakeEvent{A: 40, B: 2, SleepMS: 30000}, "").ID
	require.Eventually(t, func() bool { return p.fake.inflight.Load() == n+1 }, 60*time.Second, 20*time.Millisecond,
		"all executions reach the runtime")
	for _, id := range append(slices.Clone(ids), longID) {
		e, err := p.store.GetExecution(context.Background(), p.tenant, id, false)
		require.NoError(t, err)
		require.Equal(t, store.StatusRunning, e.Status)
	}
	w1.kill9()
	t0 := time.Now()
	w2 := p.startWorkerProcess(bin)

	p.requireRanAgain(ids)
	t.Logf("20 executions completed %s after the kill", time.Since(t0))
	e := p.wait(longID, 120*time.Second)
	require.Equal(t, store.StatusSucceeded, e.Status, "%+v", e.Error)
	require.JSONEq(t, "42", string(e.Result))
	require.Equal(t, 2, e.Attempts, "the 30-second handler was retried on another attempt")
	require.Equal(t, 1, p.rows(longID))

	var count int
	require.NoError(t, pgCount(p, &count))
	require.Equal(t, n+1, count, "one request_logs row per execution")

	// The worker's /metrics: the platform's collectors and the Temporal SDK's. The count of
	// finished executions follows each row's commit by a moment: scrape until it is there.
	var raw []byte
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + w2.metrics + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ = io.ReadAll(resp.Body)
		return strings.Contains(string(raw), `lambda_workflow_executions_total{runtime="python",status="succeeded"} 21`)
	}, 10*time.Second, 50*time.Millisecond, "all 21 executions counted")
	for _, name := range []string{`lambda_activity_duration_seconds_bucket{activity="Invoke",outcome="ok"`,
		"temporal_activity_execution_latency_seconds_bucket", "temporal_workflow_task_queue_poll_succeed_total"} {
		require.Contains(t, string(raw), name)
	}
}
