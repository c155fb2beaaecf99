package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/store"
)

func receives(ch <-chan struct{}, within time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(within):
		return false
	}
}

// notified saves a queued async execution, then its final row, and reports whether its
// waiter was woken.
func notified(ctx context.Context, t *testing.T, st *store.Store, feed *store.FinishFeed) bool {
	t.Helper()
	e := execution(uuid.NewString())
	e.Mode = "async"
	ch, unsubscribe := feed.Subscribe(e.ID)
	defer unsubscribe()
	queued := *e
	queued.Status, queued.FinishedAt = store.StatusQueued, nil
	require.NoError(t, st.SaveExecution(ctx, &queued))
	require.NoError(t, st.SaveExecution(ctx, e))
	return receives(ch, 5*time.Second)
}

// A finish notifies only when a row committed unfinished turns final: a long-poll waits
// only for a row it has read unfinished, so a row first written final (a sync run
// recorded at its end, its calls' executions) would wake nobody — its NOTIFY would only
// serialize its commit behind every other notifying one.
func TestFinishFeedNotifiesOnlyRowsThatWereUnfinished(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	feed, _ := startFeed(ctx, t, st, nil)
	def := json.RawMessage(`{"steps":[{"id":"s","function":"f"}]}`)
	_, err := st.CreatePipeline(ctx, store.PipelineVersion{Tenant: "default", Name: "p", SHA256: "sha-p", Definition: def})
	require.NoError(t, err)
	syncRun := func() (*store.Run, []store.RunStep, []*store.Execution) {
		now := time.Now().UTC().Truncate(time.Microsecond)
		r := &store.Run{ID: uuid.NewString(), Tenant: "default", Pipeline: "p", Version: 1, SHA256: "sha-p", Mode: "sync",
			Status: store.StatusRunning, Input: def, Output: json.RawMessage("null"), CreatedAt: now, StartedAt: &now}
		e := execution(uuid.NewString())
		e.Mode, e.RunID, e.StepID = "pipeline", r.ID, "s"
		return r, []store.RunStep{{ID: "s", Status: store.StatusSucceeded, Attempts: 1, ExecutionID: e.ID,
			Output: e.Result, StartedAt: &now, FinishedAt: &now}}, []*store.Execution{e}
	}
	finish := func(r *store.Run, steps []store.RunStep, execs []*store.Execution) {
		now := time.Now().UTC().Truncate(time.Microsecond)
		r.Status, r.FinishedAt = store.StatusSucceeded, &now
		require.NoError(t, st.FinishSyncRun(ctx, r, steps, execs))
	}

	// A short sync run is recorded once, final: neither it nor its call notifies.
	r, steps, execs := syncRun()
	runCh, unsubscribeRun := feed.Subscribe(r.ID)
	defer unsubscribeRun()
	execCh, unsubscribeExec := feed.Subscribe(execs[0].ID)
	defer unsubscribeExec()
	finish(r, steps, execs)
	got, err := st.GetRun(ctx, "default", r.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, got.Status, "the run is recorded")
	require.False(t, receives(runCh, 300*time.Millisecond), "a run first written final does not notify")
	require.False(t, receives(execCh, 100*time.Millisecond), "nor does a call's execution first written final")

	// A longer one was recorded running first (a long-poll may wait for it): its end notifies.
	r, steps, execs = syncRun()
	runCh2, unsubscribeRun2 := feed.Subscribe(r.ID)
	defer unsubscribeRun2()
	require.NoError(t, st.RecordRunning(ctx, r))
	require.False(t, receives(runCh2, 100*time.Millisecond), "a running run is no finish")
	finish(r, steps, execs)
	require.True(t, receives(runCh2, 5*time.Second), "a run recorded running notifies when it turns final")

	// An async execution written queued, then final, notifies; one written final at once does not.
	require.True(t, notified(ctx, t, st, feed))
	e := execution(uuid.NewString())
	e.Mode = "async"
	ch, unsubscribe := feed.Subscribe(e.ID)
	defer unsubscribe()
	require.NoError(t, st.SaveExecution(ctx, e))
	require.False(t, receives(ch, 300*time.Millisecond), "an execution first written final does not notify")
}

// startFeed runs a finish feed on st until the test ends and waits until it listens.
func startFeed(ctx context.Context, t *testing.T, st *store.Store, configure func(*store.FinishFeed)) (*store.FinishFeed, <-chan struct{}) {
	t.Helper()
	feed := st.NewFinishFeed(zap.NewNop())
	if configure != nil {
		configure(feed)
	}
	done := make(chan struct{})
	go func() { feed.Run(ctx); close(done) }()
	require.Eventually(t, feed.Listening, 10*time.Second, 10*time.Millisecond)
	return feed, done
}

// feedBackends lists the PostgreSQL backends of the finish feed's connection.
func feedBackends(ctx context.Context, t *testing.T, admin *pgx.Conn) []int {
	t.Helper()
	rows, err := admin.Query(ctx, `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1`, store.FinishFeedApplication)
	require.NoError(t, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	return pids
}

func TestFinishFeedWakesTheWaitersOfAFinishedAsyncExecution(t *testing.T) {
	t.Parallel()
	st, url := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	feed, done := startFeed(ctx, t, st, nil)

	async := execution(uuid.NewString())
	async.Mode, async.Status, async.FinishedAt = "async", store.StatusQueued, nil
	asyncCh, unsubscribe := feed.Subscribe(async.ID)
	defer unsubscribe()
	other, unsubscribeOther := feed.Subscribe(uuid.NewString())
	defer unsubscribeOther()

	require.NoError(t, st.SaveExecution(ctx, async))
	require.NoError(t, st.MarkRunning(ctx, "default", async.ID, 1))
	require.False(t, receives(asyncCh, 300*time.Millisecond), "queued and running rows are not finishes")

	final := *async
	now := time.Now().UTC()
	final.Status, final.FinishedAt, final.Attempts = store.StatusSucceeded, &now, 1
	require.NoError(t, newWriter(t, st).Write(ctx, &final), "the final row, group-committed like an activity's")
	require.True(t, receives(asyncCh, 5*time.Second), "the waiter is woken when the final row commits")
	require.False(t, receives(other, 100*time.Millisecond), "waiters of other executions are not")

	// A sync execution never notifies: it is final before anyone can ask for it.
	syncRow := execution(uuid.NewString())
	syncCh, unsubscribeSync := feed.Subscribe(syncRow.ID)
	defer unsubscribeSync()
	require.NoError(t, st.SaveExecution(ctx, syncRow))
	require.False(t, receives(syncCh, 300*time.Millisecond), "sync rows do not notify")

	// The listening connection is killed: the feed reconnects, wakes every waiter (a finish
	// may have been missed meanwhile) and delivers again.
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	pids := feedBackends(ctx, t, admin)
	require.Len(t, pids, 1, "one LISTEN connection")
	_, err = admin.Exec(ctx, "SELECT pg_terminate_backend($1)", pids[0])
	require.NoError(t, err)
	require.True(t, receives(other, 10*time.Second), "after a reconnect every waiter looks again")
	require.Eventually(t, feed.Listening, 10*time.Second, 10*time.Millisecond)
	require.True(t, notified(ctx, t, st, feed), "notifications flow again after the reconnect")

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	require.False(t, feed.Listening())
}

// A quiet feed checks its connection now and then; the check must leave the connection
// listening (a timed-out wait does not break it).
func TestFinishFeedStaysListeningAcrossIdleChecks(t *testing.T) {
	t.Parallel()
	st, url := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	admin, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer admin.Close(ctx)
	feed, _ := startFeed(ctx, t, st, func(f *store.FinishFeed) { store.SetIdleCheck(f, 20*time.Millisecond) })

	before := feedBackends(ctx, t, admin)
	require.Len(t, before, 1)
	time.Sleep(300 * time.Millisecond) // about fifteen idle checks
	require.Equal(t, before, feedBackends(ctx, t, admin), "the same connection: the checks did not break it")
	require.True(t, notified(ctx, t, st, feed), "notifications still arrive after idle checks")
	require.True(t, feed.Listening())
}
