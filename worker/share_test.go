package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// TestTenantBacklogWaitsForItsShare: on the real runtime host (one replica of two
// workers, a tenant's share one of them, a 300 ms queue wait), tenant A's async backlog
// far beyond its share (8 executions of a 1 s handler: 8 s of work for its one worker)
// completes with every execution succeeded on its first attempt, none failed
// "overloaded", while tenant B's sync calls all succeed. (Before, A's calls beyond its
// share came back as retryable overloads and the last ones failed after MaxAttempts.)
func TestTenantBacklogWaitsForItsShare(t *testing.T) {
	// Not parallel: TestRealRuntimeKilledMidCall counts this process's runtime hosts.
	bin := prereq.Binary(t, "lambda-runtime")
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	env := map[string]string{"LAMBDA_RUNTIME_WORKERS": "2", "LAMBDA_RUNTIME_TENANT_SHARE": "0.5",
		"LAMBDA_RUNTIME_QUEUE_WAIT": "300ms"}
	pass := []string{"PATH", "HOME", "TMPDIR", "XDG_CACHE_HOME", "LAMBDA_SANDBOX*", "LAMBDA_RUNTIME_WORKERS",
		"LAMBDA_RUNTIME_TENANT_SHARE", "LAMBDA_RUNTIME_QUEUE_WAIT"}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "XDG_CACHE_HOME", "LAMBDA_SANDBOX"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	srvURL := pythonProvider(ctx, t, bin, env, pass, 1) // no scale-out: the share alone decides

	p := newPlatformWith(t, "share", srvURL)
	p.startWorker()
	d := p.dispatcher(5 * time.Second)
	p.tenant = "tenant-b"
	p.registerSource("trivial", "def handler(event, context):\n    return event[\"a\"] + event[\"b\"]\n", 3000, 0)
	p.tenant = "tenant-a"
	p.registerSource("slow", "import time\n\ndef handler(event, context):\n    time.sleep(1)\n    return event[\"i\"]\n", 3000, 0)
	syncB := func(a int) (store.Execution, error) {
		e, _, err := p.core.Invoke(ctx, core.Request{Tenant: "tenant-b", Function: "trivial", LanguageTitle: "python",
			Event: json.RawMessage(fmt.Sprintf(`{"a":%d,"b":2}`, a))})
		return e, err
	}
	e, err := syncB(0) // warm
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, e.Status, "%+v", e.Error)

	const backlog = 8
	ids := make([]string, backlog)
	for i := range ids {
		ids[i] = p.start(d, "slow", map[string]int{"i": i}, "").ID
	}
	// B calls while A's backlog waits: each finds B's worker.
	var wg sync.WaitGroup
	bErrs := make(chan error, 20)
	wg.Go(func() {
		for i := range 20 {
			e, err := syncB(i)
			if err == nil && e.Status != store.StatusSucceeded {
				err = fmt.Errorf("B's call %d: %s %+v", i, e.Status, e.Error)
			}
			if err != nil {
				bErrs <- err
			}
			time.Sleep(150 * time.Millisecond)
		}
	})
	for i, id := range ids {
		got := p.wait(id, 120*time.Second)
		require.Equal(t, store.StatusSucceeded, got.Status, "execution %d: %+v", i, got.Error)
		require.JSONEq(t, fmt.Sprint(i), string(got.Result))
		require.Equal(t, 1, got.Attempts, "execution %d: waiting for the share spent no attempt", i)
	}
	wg.Wait()
	close(bErrs)
	for err := range bErrs {
		require.NoError(t, err, "tenant B's sync calls all succeed")
	}
}

// TestShareWaitInTheWorkflow: when the worker cannot wait for the share within Invoke's
// deadline (here a runtime-call slack longer than that deadline leaves no room), the
// refusal reaches the workflow, which sleeps and invokes again (share-wait) until a call is
// admitted: the execution succeeds on attempt 1 after three refusals. Its history is the
// replay tests' testdata/history-share-wait.json (LAMBDA_RECORD_HISTORIES).
func TestShareWaitInTheWorkflow(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, "share-wf")
	p.core = core.New(core.Config{SyncTimeoutMax: time.Minute, IdempotencyTTL: 24 * time.Hour,
		VersionCacheTTL: time.Second, RuntimeCallSlack: time.Minute, Functions: core.FunctionLimits{
			MaxSourceBytes: 1 << 18, DefaultTimeoutMS: 3000, DefaultMemoryMB: 128, MaxTimeout: 15 * time.Minute}},
		core.Deps{Store: p.store, Cache: p.cache, Runner: p.fx, Logs: p.logs, Registry: p.runtimes, Metrics: p.im, Log: p.log})
	p.startWorker()
	d := p.dispatcher(5 * time.Second)
	p.register("add", 3000, 0)
	e := p.start(d, "add", map[string]any{"a": 40, "b": 2, "share_refusals": 3}, "")
	got := p.wait(e.ID, 60*time.Second)
	require.Equal(t, store.StatusSucceeded, got.Status, "%+v", got.Error)
	require.JSONEq(t, "42", string(got.Result))
	require.Equal(t, 1, got.Attempts, "the refusals spent no attempt")
	require.Equal(t, 4, p.fake.callsOf(e.ID), "three refusals, then the call")
	p.recordHistory("exec-"+e.ID, "history-share-wait.json")
}

// TestShareWaitersPerTenantAreBounded: one tenant's calls refused for its share wait inside
// the worker only up to LAMBDA_ASYNC_SHARE_WAITERS at a time (here 1); the others go back
// to their workflows and wait on timers, so a backlog does not hold every slot of the
// worker. Every execution still succeeds on its first attempt.
func TestShareWaitersPerTenantAreBounded(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, "share-waiters")
	p.core = core.New(core.Config{SyncTimeoutMax: time.Minute, IdempotencyTTL: 24 * time.Hour,
		VersionCacheTTL: time.Second, RuntimeCallSlack: time.Second, ShareWaitersPerTenant: 1,
		Functions: core.FunctionLimits{MaxSourceBytes: 1 << 18, DefaultTimeoutMS: 3000, DefaultMemoryMB: 128,
			MaxTimeout: 15 * time.Minute}},
		core.Deps{Store: p.store, Cache: p.cache, Runner: p.fx, Logs: p.logs, Registry: p.runtimes, Metrics: p.im, Log: p.log})
	p.startWorker()
	d := p.dispatcher(5 * time.Second)
	p.register("add", 3000, 0)
	const n = 4
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			ids[i] = p.start(d, "add", map[string]any{"a": i, "b": 1, "share_refusals": 5}, "").ID
		})
	}
	wg.Wait()
	timers := 0
	for i, id := range ids {
		got := p.wait(id, 90*time.Second)
		require.Equal(t, store.StatusSucceeded, got.Status, "execution %d: %+v", i, got.Error)
		require.Equal(t, 1, got.Attempts, "execution %d: waiting spent no attempt", i)
		it := p.client.GetWorkflowHistory(context.Background(), "exec-"+id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		for it.HasNext() {
			e, err := it.Next()
			require.NoError(t, err)
			if e.GetEventType() == enumspb.EVENT_TYPE_TIMER_STARTED {
				timers++
				break
			}
		}
	}
	require.GreaterOrEqual(t, timers, n-2, "with one waiter allowed in the worker, the others wait on their workflows' timers")
}
