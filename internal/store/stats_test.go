package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/store"
)

// TestFunctionStatsBuckets writes rows at known times and reads them back as buckets:
// empty buckets present, bounds half-open, other tenants and functions left out,
// errors = failed + timeout, latencies over finished rows only (percentile_cont).
func TestFunctionStatsBuckets(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	start := time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	step := time.Minute
	row := func(at time.Duration, status string, ms float64, mods ...func(*store.Execution)) {
		t.Helper()
		e := execution(uuid.Must(uuid.NewV7()).String())
		e.CreatedAt, e.Status, e.DurationMS = start.Add(at), status, ms
		for _, m := range mods {
			m(e)
		}
		require.NoError(t, st.SaveExecution(ctx, e))
	}
	// Bucket 0: four successes.
	for i, ms := range []float64{10, 20, 30, 40} {
		row(time.Duration(i)*time.Second, store.StatusSucceeded, ms)
	}
	// Bucket 2 (from its first instant): a failure, a timeout, one still queued.
	row(2*step, store.StatusFailed, 5)
	row(2*step+time.Second, store.StatusTimeout, 100)
	row(2*step+2*time.Second, store.StatusQueued, 0)
	// Bucket 4 (its last instant): canceled, a call without a latency.
	row(5*step-time.Millisecond, store.StatusCanceled, 7)
	// Outside: before, at the end (half-open), another function, another tenant.
	row(-time.Millisecond, store.StatusSucceeded, 1)
	row(5*step, store.StatusSucceeded, 1)
	row(time.Second, store.StatusSucceeded, 1, func(e *store.Execution) { e.Function = "other" })
	row(time.Second, store.StatusSucceeded, 1, func(e *store.Execution) { e.Tenant = "t2" })

	got, err := st.FunctionStats(ctx, store.StatsQuery{Tenant: "default", Function: "add", Start: start, Step: step, Buckets: 5})
	require.NoError(t, err)
	require.Len(t, got, 5)
	for i, b := range got {
		require.True(t, start.Add(time.Duration(i)*step).Equal(b.Start), "bucket %d starts at %s", i, b.Start)
	}
	f := func(v float64) *float64 { return &v }
	type agg struct {
		calls, errors int
		p50, p99      *float64
	}
	want := []agg{{4, 0, f(25), f(39.7)}, {}, {3, 2, f(52.5), f(99.05)}, {}, {1, 0, nil, nil}}
	for i, w := range want {
		b := got[i]
		require.Equal(t, w.calls, b.Calls, "bucket %d calls", i)
		require.Equal(t, w.errors, b.Errors, "bucket %d errors", i)
		for _, p := range []struct {
			name      string
			want, got *float64
		}{{"p50", w.p50, b.P50MS}, {"p99", w.p99, b.P99MS}} {
			if p.want == nil {
				require.Nil(t, p.got, "bucket %d %s", i, p.name)
			} else {
				require.NotNil(t, p.got, "bucket %d %s", i, p.name)
				require.InDelta(t, *p.want, *p.got, 1e-9, "bucket %d %s", i, p.name)
			}
		}
	}

	none, err := st.FunctionStats(ctx, store.StatsQuery{Tenant: "default", Function: "nothing", Start: start, Step: step, Buckets: 3})
	require.NoError(t, err)
	require.Len(t, none, 3, "a function without calls still has every bucket")
	require.Zero(t, none[2].Calls)
}
