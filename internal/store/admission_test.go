package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

func queued(tenant string) *store.Execution {
	e := execution(uuid.NewString())
	e.Tenant, e.Mode, e.Status, e.Result, e.FinishedAt = tenant, "async", store.StatusQueued, nil, nil
	return e
}

// TestPendingClaimsExpireWithoutARow: a sync call's claim is pending until its row
// exists; a claim whose call died (no row by the pending time) is free again, one with a
// row holds for the TTL.
func TestPendingClaimsExpireWithoutARow(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	a, b, c := uuid.NewString(), uuid.NewString(), uuid.NewString()

	_, claimed, err := st.ClaimPendingIdempotencyKey(ctx, "default", "k", a, "h", 24*time.Hour, 200*time.Millisecond)
	require.NoError(t, err)
	require.True(t, claimed)
	owner, claimed, err := st.ClaimPendingIdempotencyKey(ctx, "default", "k", b, "h", 24*time.Hour, 200*time.Millisecond)
	require.NoError(t, err)
	require.False(t, claimed, "pending: held")
	require.Equal(t, a, owner)

	time.Sleep(300 * time.Millisecond) // a's call died: no row, pending time passed
	owner, claimed, err = st.ClaimPendingIdempotencyKey(ctx, "default", "k", b, "h", 24*time.Hour, 200*time.Millisecond)
	require.NoError(t, err)
	require.True(t, claimed, "a dead call's claim is taken over")
	require.Equal(t, b, owner)

	e := execution(b) // b's call records its row: the claim now holds for the TTL
	require.NoError(t, st.SaveExecution(ctx, e))
	time.Sleep(300 * time.Millisecond)
	owner, claimed, err = st.ClaimPendingIdempotencyKey(ctx, "default", "k", c, "h", 24*time.Hour, 200*time.Millisecond)
	require.NoError(t, err)
	require.False(t, claimed)
	require.Equal(t, b, owner)

	// A claim without pending time (an async one, or a pipeline run's) never expires early.
	_, claimed, err = st.ClaimIdempotencyKey(ctx, "default", "k2", a, "h", 24*time.Hour)
	require.NoError(t, err)
	require.True(t, claimed)
	time.Sleep(50 * time.Millisecond)
	_, claimed, err = st.ClaimPendingIdempotencyKey(ctx, "default", "k2", c, "h", 24*time.Hour, time.Millisecond)
	require.NoError(t, err)
	require.False(t, claimed)
}

// TestEnqueueWritesClaimAndRowTogether: the key's claim and the queued row commit
// together or not at all; a replay writes nothing.
func TestEnqueueWritesClaimAndRowTogether(t *testing.T) {
	t.Parallel()
	st, url := open(t)
	ctx := context.Background()
	adm := store.Admission{Key: "once", RequestHash: "h", KeyTTL: 24 * time.Hour}

	first := queued("default")
	owner, created, err := st.EnqueueExecution(ctx, first, adm)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, first.ID, owner)
	again := queued("default")
	owner, created, err = st.EnqueueExecution(ctx, again, adm)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, first.ID, owner)
	_, err = st.GetExecution(ctx, "default", again.ID, false)
	require.True(t, fault.Is(err, fault.NotFound), "a replay writes no row")
	_, _, err = st.EnqueueExecution(ctx, queued("default"), store.Admission{Key: "once", RequestHash: "other", KeyTTL: time.Hour})
	require.True(t, fault.Is(err, fault.Unprocessable), "%v", err)

	// The row fails to be written: the claim is not kept either.
	bad := queued("default")
	bad.Status = "nonsense" // violates request_logs_status_check
	_, _, err = st.EnqueueExecution(ctx, bad, store.Admission{Key: "broken", RequestHash: "h", KeyTTL: time.Hour})
	require.Error(t, err)
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE key = 'broken'`).Scan(&n))
	require.Zero(t, n, "no key names an execution that was never written")
}

// TestEnqueueCapsATenantsOpenAsync: at the cap one more async execution is RateLimited,
// exactly, however many arrive at once; a finished one frees a place; other tenants and
// replays are not counted against it.
func TestEnqueueCapsATenantsOpenAsync(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	const limit = 5
	var wg sync.WaitGroup
	results := make(chan error, 20)
	var mu sync.Mutex
	var admitted []*store.Execution
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := queued("capped")
			_, _, err := st.EnqueueExecution(ctx, e, store.Admission{MaxOpen: limit})
			if err == nil {
				mu.Lock()
				admitted = append(admitted, e)
				mu.Unlock()
			}
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	refused := 0
	for err := range results {
		if err != nil {
			require.True(t, fault.Is(err, fault.RateLimited), "%v", err)
			refused++
		}
	}
	require.Len(t, admitted, limit)
	require.Equal(t, 20-limit, refused)

	_, _, err := st.EnqueueExecution(ctx, queued("other"), store.Admission{MaxOpen: limit})
	require.NoError(t, err, "another tenant has its own cap")

	done := admitted[0]
	now := time.Now().UTC()
	done.Status, done.FinishedAt = store.StatusSucceeded, &now
	require.NoError(t, st.SaveExecution(ctx, done))
	_, _, err = st.EnqueueExecution(ctx, queued("capped"), store.Admission{MaxOpen: limit})
	require.NoError(t, err, "a finished execution frees its place")
	_, _, err = st.EnqueueExecution(ctx, queued("capped"), store.Admission{MaxOpen: limit})
	require.True(t, fault.Is(err, fault.RateLimited))
}

// TestEnqueueCapHoldsWithoutTheLock: admissions far below the cap skip the tenant's lock
// (store.UnlockedMargin); racing up to the cap, exactly the cap is admitted.
func TestEnqueueCapHoldsWithoutTheLock(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	limit := store.UnlockedMargin + 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted, refused := 0, 0
	for range limit + 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := st.EnqueueExecution(ctx, queued("wide"), store.Admission{MaxOpen: limit})
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				admitted++
				return
			}
			require.True(t, fault.Is(err, fault.RateLimited), "%v", err)
			refused++
		}()
	}
	wg.Wait()
	require.Equal(t, limit, admitted)
	require.Equal(t, 40, refused)
}

// TestOneLeaderAtATime: the advisory lock lets one process lead; it passes on when the
// leader lets go.
func TestOneLeaderAtATime(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	key := time.Now().UnixNano()
	a, ok, err := st.TryLead(ctx, "test", key)
	require.NoError(t, err)
	require.True(t, ok)
	require.True(t, a.Alive(ctx))
	_, ok, err = st.TryLead(ctx, "test", key)
	require.NoError(t, err)
	require.False(t, ok, "one leader at a time")
	a.Release()
	b, ok, err := st.TryLead(ctx, "test", key)
	require.NoError(t, err)
	require.True(t, ok, "the lock passes on")
	b.Release()
}
