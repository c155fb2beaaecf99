package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/worker"
	"github.com/lambda-microservice/lambda/workflows"
)

// TestAsyncResultOverTheCap: an async execution whose result is over the cap fails with
// ResultTooLarge and stores no result — 7 MiB (refused by the core) and 20 MiB (the
// runtime client stops reading) alike.
func TestAsyncResultOverTheCap(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, "harden-result")
	p.startWorker()
	p.register("big", 5000, 60)
	d := p.dispatcher(5 * time.Second)
	small := p.start(d, "big", fakeEvent{Op: "big", Size: 10}, "")
	over := p.start(d, "big", fakeEvent{Op: "big", Size: 7 << 20}, "")
	huge := p.start(d, "big", fakeEvent{Op: "big", Size: 20 << 20}, "")

	require.Equal(t, store.StatusSucceeded, p.wait(small.ID, 30*time.Second).Status)
	for _, id := range []string{over.ID, huge.ID} {
		e := p.wait(id, 60*time.Second)
		require.Equal(t, store.StatusFailed, e.Status)
		require.Nil(t, e.Result)
		require.NotNil(t, e.Error)
		require.Equal(t, "ResultTooLarge", e.Error.Type, e.Error.Message)
		require.Contains(t, e.Error.Message, "LAMBDA_MAX_RESULT_BYTES")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var largest int
	require.NoError(t, conn.QueryRow(ctx, `SELECT coalesce(max(length(result::text)), 0) FROM request_logs`).Scan(&largest))
	require.Less(t, largest, 1<<20, "nothing oversized is stored")
}

// crashingStore is the store of an api that dies right after a failed write: it never
// gets to release a key it claimed.
type crashingStore struct{ *store.Store }

func (crashingStore) ReleaseIdempotencyKey(context.Context, string, string, string) error { return nil }

// TestAsyncKeyNeverNamesAMissingExecution: when the queued row cannot be written, the
// Idempotency-Key's claim is not kept either — even if the api dies before it could
// release it — so a retry with the key starts the execution instead of answering for
// an id that never existed.
func TestAsyncKeyNeverNamesAMissingExecution(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, "harden-crash")
	p.startWorker()
	p.register("crashy", 5000, 0)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE FUNCTION refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'disk full'; END $$;
		CREATE TRIGGER refuse_row BEFORE INSERT ON request_logs FOR EACH ROW EXECUTE FUNCTION refuse_row()`)
	require.NoError(t, err)

	c := core.New(core.Config{SyncTimeoutMax: time.Minute, IdempotencyTTL: 24 * time.Hour, VersionCacheTTL: time.Second,
		RuntimeCallSlack: 5 * time.Second, Functions: core.FunctionLimits{MaxSourceBytes: 1 << 18, DefaultTimeoutMS: 3000,
			DefaultMemoryMB: 128, MaxTimeout: 15 * time.Minute}},
		core.Deps{Store: crashingStore{p.store}, Cache: p.cache, Runner: p.fx, Logs: p.logs, Registry: p.runtimes,
			Durable: workflows.NewStarter(workflows.StarterConfig{HeartbeatTimeout: 5 * time.Second, MaxAttempts: 5,
				StartTimeout: 5 * time.Second}, p.client, p.ns),
			Metrics: p.im, Log: p.log})
	r := req(p, "crashy", json.RawMessage(`{"a":1,"b":2}`), "the-key")
	_, _, err = c.StartExecution(ctx, r)
	require.Error(t, err, "the row cannot be written")

	_, err = conn.Exec(ctx, `DROP TRIGGER refuse_row ON request_logs`)
	require.NoError(t, err)
	retryCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	e, replayed, err := c.StartExecution(retryCtx, r)
	require.NoError(t, err, "the key names nothing: the retry starts the execution")
	require.False(t, replayed)
	require.Equal(t, store.StatusSucceeded, p.wait(e.ID, 30*time.Second).Status)
}

// TestSweeperFinishesStuckExecutions: executions a crash left queued with no workflow are
// started again from their row (or failed when their function is gone), and one whose
// workflow was terminated before it recorded anything is failed — each saying why.
func TestSweeperFinishesStuckExecutions(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, "harden-sweep")
	p.startWorker()
	p.register("add", 5000, 0)
	ctx := context.Background()
	stuck := func(fn string) string {
		e := store.Execution{ID: core.NewExecutionID(), Tenant: p.tenant, Function: fn, Version: 1, Language: "python",
			LanguageTitle: "python", Mode: "async", Status: store.StatusQueued, Payload: json.RawMessage(`{"a":40,"b":2}`),
			CreatedAt: time.Now().Add(-2 * time.Minute).UTC()}
		e.WorkflowID = workflows.WorkflowID(e.ID)
		require.NoError(t, p.store.SaveExecution(ctx, &e)) // the api died before the start
		return e.ID
	}
	left, gone := stuck("add"), stuck("gone")

	starter := workflows.NewStarter(workflows.StarterConfig{HeartbeatTimeout: 5 * time.Second, MaxAttempts: 5,
		StartTimeout: 5 * time.Second, LocalInvokeMax: 10 * time.Second}, p.client, p.ns)
	c := p.newCore(starter)
	terminated := p.start(&dispatcher{core: c}, "add", fakeEvent{SleepMS: 3000}, "").ID
	require.Eventually(t, func() bool { return p.fake.callsOf(terminated) == 1 }, 10*time.Second, 10*time.Millisecond)
	require.NoError(t, p.client.TerminateWorkflow(ctx, workflows.WorkflowID(terminated), "", "an operator's mistake"))

	// Before the grace period nothing is touched.
	out, err := c.SweepExecutions(ctx, starter, time.Hour, 100)
	require.NoError(t, err)
	require.Equal(t, core.SweepOutcome{}, out)

	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		worker.NewSweeper(worker.SweepConfig{Interval: 200 * time.Millisecond, After: 0}, p.store, []worker.SweepTask{{
			Name: "executions", Sweep: func(ctx context.Context, olderThan time.Duration) (int, error) {
				out, err := c.SweepExecutions(ctx, starter, olderThan, 100)
				return out.Restarted + out.Failed, err
			}}}, p.log).Run(sctx)
	}()
	defer func() { stop(); <-done }()

	e := p.wait(left, 30*time.Second)
	require.Equal(t, store.StatusSucceeded, e.Status, "%+v", e.Error)
	require.JSONEq(t, "42", string(e.Result))
	require.Equal(t, 1, p.fake.callsOf(left))
	e = p.wait(gone, 30*time.Second)
	require.Equal(t, store.StatusFailed, e.Status)
	require.Equal(t, core.ErrAbandoned, e.Error.Type)
	require.Contains(t, e.Error.Message, "never started")
	e = p.wait(terminated, 30*time.Second)
	require.Equal(t, store.StatusFailed, e.Status)
	require.Equal(t, core.ErrAbandoned, e.Error.Type)
	require.Contains(t, e.Error.Message, "without recording an outcome")

	// Swept again: nothing left to do, nothing started twice.
	out, err = c.SweepExecutions(ctx, starter, 0, 100)
	require.NoError(t, err)
	require.Equal(t, core.SweepOutcome{}, out)
	require.Equal(t, 1, p.rows(left))
}

// TestTenantAsyncCapIs429: over LAMBDA_TENANT_ASYNC_MAX async executions queued or
// running, the api answers 429 problem+json with Retry-After, records nothing, and
// accepts again once one finished.
func TestTenantAsyncCapIs429(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, "harden-cap")
	p.register("add", 5000, 0)
	base, _ := p.startAPIProcess(lambdaBin(t), "LAMBDA_TENANT_ASYNC_MAX=2")
	post := func(sleepMS int) (int, http.Header, map[string]any) {
		body := `{"a":1,"b":2,"sleep_ms":` + strconv.Itoa(sleepMS) + `}`
		rq, _ := http.NewRequest("POST", base+"/v1/functions/add/invoke", bytes.NewBufferString(body))
		rq.Header.Set("Authorization", "Bearer "+adminToken)
		rq.Header.Set("Language-Title", "python")
		rq.Header.Set("Prefer", "respond-async")
		resp, err := http.DefaultClient.Do(rq)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, resp.Header, m
	}
	status, _, first := post(1500)
	require.Equal(t, http.StatusAccepted, status, "%v", first)
	status, _, _ = post(1500)
	require.Equal(t, http.StatusAccepted, status)
	var rows int
	require.NoError(t, pgCount(p, &rows))

	status, h, problem := post(0)
	require.Equal(t, http.StatusTooManyRequests, status, "%v", problem)
	require.Equal(t, "application/problem+json", h.Get("Content-Type"))
	require.NotEmpty(t, h.Get("Retry-After"))
	require.Contains(t, problem["detail"], "LAMBDA_TENANT_ASYNC_MAX")
	var after int
	require.NoError(t, pgCount(p, &after))
	require.Equal(t, rows, after, "a refused execution is not recorded")

	p.wait(first["id"].(string), 30*time.Second)
	status, _, _ = post(0)
	require.Equal(t, http.StatusAccepted, status, "a finished execution frees its place")
}
