package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/internal/testkit/db"
)

// TestPostgresDownDuringAsyncExecutions stops PostgreSQL (its own throwaway server) while
// async executions are inside their runtime calls, on both Invoke paths (a local activity
// for short functions, a heartbeating activity for long ones), and starts it again a few
// seconds later. Every acknowledged execution is recorded exactly once with its result,
// its handler ran once, and an invocation attempted while the database was down was
// refused instead of acknowledged.
func TestPostgresDownDuringAsyncExecutions(t *testing.T) {
	t.Parallel()
	pg := db.Private(t)
	ctx := context.Background()
	require.NoError(t, store.Migrate(ctx, pg.URL()))
	p := newPlatformOn(t, "pgrestart", "", pg.URL())
	p.register("short", 5000, 0) // Invoke as a local activity
	p.register("long", 60000, 0) // Invoke as an activity with heartbeats
	p.startWorker()
	d := p.dispatcher(5 * time.Second)

	const n = 10
	type started struct {
		id   string
		want float64
	}
	var runs []started
	for i := range n {
		for _, fn := range []string{"short", "long"} {
			ev := fakeEvent{A: float64(i), B: 1000, SleepMS: 2000}
			if fn == "long" {
				ev.B = 2000
			}
			runs = append(runs, started{id: p.start(d, fn, ev, "").ID, want: ev.A + ev.B})
		}
	}
	require.Eventually(t, func() bool { return p.fake.inflight.Load() == 2*n }, 60*time.Second, 10*time.Millisecond,
		"every execution reaches the runtime")

	pg.Stop(t)
	t.Log("PostgreSQL stopped with every execution inside its runtime call")
	time.Sleep(1100 * time.Millisecond) // past the version cache: the next invocation must reach the database
	_, _, err := d.Start(ctx, core.Request{Tenant: p.tenant, Function: "short", LanguageTitle: "python",
		Event: json.RawMessage(`{"A":1,"B":2}`)})
	require.Error(t, err, "an invocation while the database is down is not acknowledged")
	require.True(t, fault.Is(err, fault.Unavailable), "refused as unavailable (503), not %v", err)
	// The runtime calls finish while the database is down: recording them fails and is retried.
	require.Eventually(t, func() bool { return p.fake.inflight.Load() == 0 }, 30*time.Second, 10*time.Millisecond)
	// Down a moment longer, then back. A short function's whole execution is one workflow
	// task that holds its Persist retries too: the outage must stay well inside the
	// workflow task timeout (10 s), or a slow machine sees the task time out and the call
	// run again — at-least-once, by design, but not what this test is about.
	time.Sleep(500 * time.Millisecond)
	pg.Start(t)
	t0 := time.Now()

	for _, r := range runs {
		e := p.wait(r.id, 90*time.Second)
		require.Equal(t, store.StatusSucceeded, e.Status, "%s: %+v", r.id, e.Error)
		require.JSONEq(t, fmt.Sprint(r.want), string(e.Result))
		require.Equal(t, 1, e.Attempts)
		require.Equal(t, 1, p.fake.callsOf(r.id), "the handler ran once")
		require.Equal(t, 1, p.rows(r.id), "recorded exactly once")
	}
	t.Logf("%d executions recorded %s after PostgreSQL came back", len(runs), time.Since(t0).Round(time.Millisecond))
	var count int
	require.NoError(t, pgCount(p, &count))
	require.Equal(t, 2*n, count, "the refused invocation left no row")
}
