package store_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/internal/testkit/db"
)

func open(t *testing.T) (*store.Store, string) {
	t.Helper()
	url := db.New(t)
	st, err := store.Open(context.Background(), url, 8)
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st, url
}

func version(name, source string) store.Version {
	return store.Version{Tenant: "default", Name: name, Language: "python", Source: source, SHA256: "sha-" + source,
		Settings: store.Settings{TimeoutMS: 1000, MemoryMB: 128}}
}

func TestFunctionsLifecycle(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()

	f, err := st.CreateFunction(ctx, version("add", "a"))
	require.NoError(t, err)
	require.Equal(t, 1, f.Version.Version)

	_, err = st.CreateFunction(ctx, version("add", "b"))
	require.True(t, fault.Is(err, fault.Conflict), "duplicate name: %v", err)

	same, created, err := st.PutVersion(ctx, version("add", "a"))
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, 1, same.Version.Version)

	next, created, err := st.PutVersion(ctx, version("add", "b"))
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, 2, next.Version.Version)

	other := version("add", "c")
	other.Language = "node"
	_, _, err = st.PutVersion(ctx, other)
	require.True(t, fault.Is(err, fault.Invalid), "language change: %v", err)

	got, err := st.GetFunction(ctx, "default", "add")
	require.NoError(t, err)
	require.Equal(t, 2, got.Version.Version)
	require.Empty(t, got.Source, "metadata never carries the source")

	v1, err := st.GetVersion(ctx, "default", "add", 1)
	require.NoError(t, err)
	require.Equal(t, "a", v1.Source)
	latest, err := st.GetVersion(ctx, "default", "add", 0)
	require.NoError(t, err)
	require.Equal(t, "b", latest.Source)

	vs, err := st.ListVersions(ctx, "default", "add")
	require.NoError(t, err)
	require.Len(t, vs, 2)

	_, err = st.GetFunction(ctx, "other-tenant", "add")
	require.True(t, fault.Is(err, fault.NotFound))
	_, err = st.GetVersion(ctx, "default", "add", 9)
	require.True(t, fault.Is(err, fault.NotFound))

	require.NoError(t, st.DeleteFunction(ctx, "default", "add"))
	require.True(t, fault.Is(st.DeleteFunction(ctx, "default", "add"), fault.NotFound))
	_, err = st.ListVersions(ctx, "default", "add")
	require.True(t, fault.Is(err, fault.NotFound))
}

func execution(id string) *store.Execution {
	now := time.Now().UTC()
	return &store.Execution{ID: id, Tenant: "default", Function: "add", Version: 1, Language: "python",
		LanguageTitle: "Python", Mode: "sync", Status: store.StatusSucceeded, Result: json.RawMessage(`{"sum":3}`),
		Payload: json.RawMessage(`{"a":1,"b":2}`), Stdout: "hi\n", DurationMS: 1.5, Attempts: 1,
		CreatedAt: now, FinishedAt: &now}
}

func newWriter(t *testing.T, st *store.Store) *store.LogWriter {
	w := st.NewLogWriter(store.LogWriterConfig{MaxBatch: 64, Writers: 2, RetryFor: 5 * time.Second}, zap.NewNop(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

func TestLogWriterGroupCommitAndReadBack(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	w := newWriter(t, st)
	ctx := context.Background()

	const n = 300
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			errs <- w.Write(ctx, execution(id))
		}(ids[i])
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, id := range ids[:5] {
		e, err := st.GetExecution(ctx, "default", id, true)
		require.NoError(t, err)
		require.Equal(t, store.StatusSucceeded, e.Status)
		require.JSONEq(t, `{"sum":3}`, string(e.Result))
		require.JSONEq(t, `{"a":1,"b":2}`, string(e.Payload))
		require.Equal(t, "Python", e.LanguageTitle)
		require.Equal(t, "python", e.Language)
	}
	page, next, err := st.ListExecutions(ctx, store.ExecutionFilter{Tenant: "default", Limit: 200})
	require.NoError(t, err)
	require.Len(t, page, 200)
	require.NotEmpty(t, next)
	rest, next2, err := st.ListExecutions(ctx, store.ExecutionFilter{Tenant: "default", Limit: 200, Cursor: next})
	require.NoError(t, err)
	require.Len(t, rest, n-200)
	require.Empty(t, next2)
	seen := map[string]bool{}
	for _, e := range append(page, rest...) {
		require.False(t, seen[e.ID], "duplicate across pages")
		seen[e.ID] = true
	}
	_, _, err = st.ListExecutions(ctx, store.ExecutionFilter{Tenant: "default", Limit: 10, Cursor: "garbage"})
	require.True(t, fault.Is(err, fault.Invalid))
}

func TestFinalRowIsWrittenOnce(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	w := newWriter(t, st)
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7()).String()

	queued := execution(id)
	queued.Status, queued.Result, queued.FinishedAt, queued.Mode = store.StatusQueued, nil, nil, "async"
	require.NoError(t, st.SaveExecution(ctx, queued))
	require.NoError(t, st.MarkRunning(ctx, "default", id, 1))

	final := execution(id)
	final.Mode, final.Payload, final.Attempts = "async", nil, 2
	require.NoError(t, w.Write(ctx, final))

	// A retried activity writing a different outcome later changes nothing.
	late := execution(id)
	late.Mode, late.Payload, late.Status, late.Result = "async", nil, store.StatusFailed, nil
	require.NoError(t, w.Write(ctx, late))
	require.NoError(t, st.MarkRunning(ctx, "default", id, 3))

	e, err := st.GetExecution(ctx, "default", id, true)
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, e.Status)
	require.Equal(t, 2, e.Attempts)
	require.JSONEq(t, `{"a":1,"b":2}`, string(e.Payload), "the queued row's payload survives the final write")
}

func TestRejectedRowFailsAlone(t *testing.T) {
	t.Parallel()
	st, url := open(t)
	w := newWriter(t, st)
	ctx := context.Background()

	good := make([]string, 20)
	var wg sync.WaitGroup
	for i := range good {
		good[i] = uuid.Must(uuid.NewV7()).String()
		wg.Add(1)
		go func(id string) { defer wg.Done(); require.NoError(t, w.Write(ctx, execution(id))) }(good[i])
	}
	bad := execution(uuid.Must(uuid.NewV7()).String())
	bad.Stdout = "nul\x00byte" // PostgreSQL text cannot hold NUL
	require.Error(t, w.Write(ctx, bad))
	wg.Wait()

	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var count int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM request_logs`).Scan(&count))
	require.Equal(t, len(good), count)
}

func TestIdempotencyKeys(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	a, b := uuid.NewString(), uuid.NewString()

	owner, claimed, err := st.ClaimIdempotencyKey(ctx, "default", "k1", a, "h1", 24*time.Hour)
	require.NoError(t, err)
	require.True(t, claimed)
	require.Equal(t, a, owner)

	owner, claimed, err = st.ClaimIdempotencyKey(ctx, "default", "k1", b, "h1", 24*time.Hour)
	require.NoError(t, err)
	require.False(t, claimed)
	require.Equal(t, a, owner)

	_, _, err = st.ClaimIdempotencyKey(ctx, "default", "k1", b, "other", 24*time.Hour)
	require.True(t, fault.Is(err, fault.Unprocessable))

	// Another tenant's key space is separate; an expired key can be claimed again.
	_, claimed, err = st.ClaimIdempotencyKey(ctx, "t2", "k1", b, "h1", 24*time.Hour)
	require.NoError(t, err)
	require.True(t, claimed)
	owner, claimed, err = st.ClaimIdempotencyKey(ctx, "default", "k1", b, "h1", 0)
	require.NoError(t, err)
	require.True(t, claimed)
	require.Equal(t, b, owner)

	require.NoError(t, st.ReleaseIdempotencyKey(ctx, "default", "k1", b))
	_, claimed, err = st.ClaimIdempotencyKey(ctx, "default", "k1", a, "h1", 24*time.Hour)
	require.NoError(t, err)
	require.True(t, claimed)
}

func TestConcurrentMigrationsAreSerialised(t *testing.T) {
	t.Parallel()
	url := db.Empty(t) // five replicas start together on a new database
	errs := make(chan error, 5)
	for i := 0; i < 5; i++ {
		go func() { errs <- store.Migrate(context.Background(), url) }()
	}
	for i := 0; i < 5; i++ {
		require.NoError(t, <-errs)
	}
	st, err := store.Open(context.Background(), url, 2)
	require.NoError(t, err)
	defer st.Close()
	_, err = st.CreateFunction(context.Background(), version("after", "x"))
	require.NoError(t, err, "the schema is complete")
}

func TestPutVersionTakesTheNumberItWasGivenOrNone(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	_, err := st.CreateFunction(ctx, version("race", "a"))
	require.NoError(t, err)

	b := version("race", "b")
	b.Version = 2
	f, created, err := st.PutVersion(ctx, b)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, 2, f.Version.Version)

	// Another update built for version 2 as well: it is told, and nothing is written.
	c := version("race", "c")
	c.Version = 2
	_, _, err = st.PutVersion(ctx, c)
	require.ErrorIs(t, err, store.ErrLatestMoved)
	require.True(t, fault.Is(err, fault.Conflict), "%v", err)
	vs, err := st.ListVersions(ctx, "default", "race")
	require.NoError(t, err)
	require.Len(t, vs, 2)

	// The same source as the latest is no new version, whatever number it was built for.
	same := version("race", "b")
	same.Version = 7
	f, created, err = st.PutVersion(ctx, same)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, 2, f.Version.Version)
}

func TestStartAttemptCountsAcrossWorkers(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7()).String()
	queued := execution(id)
	queued.Status, queued.Result, queued.FinishedAt, queued.Mode = store.StatusQueued, nil, nil, "async"
	require.NoError(t, st.SaveExecution(ctx, queued))

	e, err := st.StartAttempt(ctx, "default", id, 1)
	require.NoError(t, err)
	require.Equal(t, store.StatusRunning, e.Status)
	require.Equal(t, 1, e.Attempts)
	require.JSONEq(t, `{"a":1,"b":2}`, string(e.Payload), "the event comes with the row")

	// The worker running attempt 1 died; the next one starts again at 1 (a local activity).
	e, err = st.StartAttempt(ctx, "default", id, 1)
	require.NoError(t, err)
	require.Equal(t, 2, e.Attempts, "counted after the attempt the row records")
	e, err = st.StartAttempt(ctx, "default", id, 5)
	require.NoError(t, err)
	require.Equal(t, 5, e.Attempts, "a higher attempt number of the activity itself wins")

	_, err = st.StartAttempt(ctx, "someone-else", id, 1)
	require.True(t, fault.Is(err, fault.NotFound), "%v", err)
}

// An attempt refused for the tenant's share is taken back: the next one counts as it.
func TestUndoAttemptTakesBackARefusedAttempt(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	id := uuid.Must(uuid.NewV7()).String()
	queued := execution(id)
	queued.Status, queued.Result, queued.FinishedAt, queued.Mode = store.StatusQueued, nil, nil, "async"
	require.NoError(t, st.SaveExecution(ctx, queued))

	for range 3 { // three rounds refused for the share
		e, err := st.StartAttempt(ctx, "default", id, 1)
		require.NoError(t, err)
		require.Equal(t, 1, e.Attempts)
		require.NoError(t, st.UndoAttempt(ctx, "default", id, e.Attempts))
	}
	e, err := st.StartAttempt(ctx, "default", id, 1)
	require.NoError(t, err)
	require.Equal(t, 1, e.Attempts, "the refused rounds did not count")
	require.NoError(t, st.UndoAttempt(ctx, "default", id, 7), "another attempt's undo changes nothing")
	require.NoError(t, st.UndoAttempt(ctx, "someone-else", id, 1))
	e, err = st.GetExecution(ctx, "default", id, false)
	require.NoError(t, err)
	require.Equal(t, 1, e.Attempts)
}
