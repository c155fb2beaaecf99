package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/internal/testkit/db"
)

// TestNoAcknowledgedExecutionLostWhenPostgresRestarts writes request logs continuously while
// the server restarts: every write that returned nil is in the table afterwards, and the
// writes during the outage wait for the server instead of failing.
func TestNoAcknowledgedExecutionLostWhenPostgresRestarts(t *testing.T) {
	pg := db.Private(t)
	ctx := context.Background()
	require.NoError(t, store.Migrate(ctx, pg.URL()))
	st, err := store.Open(ctx, pg.URL(), 8)
	require.NoError(t, err)
	defer st.Close()
	w := st.NewLogWriter(store.LogWriterConfig{MaxBatch: 64, Writers: 2, RetryFor: 30 * time.Second}, zap.NewNop(), nil)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(wctx); close(done) }()
	defer func() { stop(); <-done }()

	var mu sync.Mutex
	var acked []string
	var failures []error
	deadline := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				id := uuid.Must(uuid.NewV7()).String()
				err := w.Write(ctx, execution(id))
				mu.Lock()
				if err == nil {
					acked = append(acked, id)
				} else {
					failures = append(failures, err)
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	pg.Restart(t) // fast shutdown: open connections are terminated
	wg.Wait()
	require.Positive(t, before, "writes were acknowledged before the restart")
	require.Greater(t, len(acked), before, "writes went on after the restart")
	if len(failures) > 0 {
		t.Fatalf("%d writes failed instead of waiting for the server; the first: %v", len(failures), failures[0])
	}

	conn, err := pgx.Connect(ctx, pg.URL())
	require.NoError(t, err)
	defer conn.Close(ctx)
	var missing int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM unnest($1::uuid[]) AS a(id)
		WHERE NOT EXISTS (SELECT 1 FROM request_logs r WHERE r.id = a.id)`, acked).Scan(&missing))
	require.Zero(t, missing, "of %d acknowledged executions", len(acked))
}
