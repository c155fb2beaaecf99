package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/workflows"
)

// lostAnswerStarter starts the workflow, then reports the start as timed out: the answer
// to a start that reached Temporal was lost (Temporal paused, a connection cut).
type lostAnswerStarter struct{ *workflows.Starter }

func (s lostAnswerStarter) StartExecution(ctx context.Context, x core.AsyncExecution) error {
	if err := s.Starter.StartExecution(ctx, x); err != nil {
		return err
	}
	return fmt.Errorf("%w: %w", core.ErrStartUncertain, context.DeadlineExceeded)
}

// TestUncertainStartRunsOnce: an async invocation whose start's outcome is unknown is
// accepted queued with its Idempotency-Key kept, so the client's retry gets the same
// execution, which runs once. (The soak found two executions for one key: the start
// timed out while Temporal was stopped, the row was failed and the key freed, the retry
// started a second execution, and the first workflow ran once Temporal resumed.)
func TestUncertainStartRunsOnce(t *testing.T) {
	t.Parallel()
	p := newPlatform(t, "harden-uncertain")
	p.startWorker()
	p.register("add", 5000, 0)
	starter := workflows.NewStarter(workflows.StarterConfig{HeartbeatTimeout: 5 * time.Second, MaxAttempts: 5,
		StartTimeout: 5 * time.Second, LocalInvokeMax: 10 * time.Second}, p.client, p.ns)
	d := &dispatcher{core: p.newCore(lostAnswerStarter{starter})}
	event := map[string]int{"a": 40, "b": 2}

	first := p.start(d, "add", event, "uncertain-start")
	require.Equal(t, store.StatusQueued, first.Status)
	retry := p.start(d, "add", event, "uncertain-start")
	require.Equal(t, first.ID, retry.ID, "the retry gets the key's execution")

	e := p.wait(first.ID, 30*time.Second)
	require.Equal(t, store.StatusSucceeded, e.Status, "%+v", e.Error)
	require.JSONEq(t, "42", string(e.Result))
	require.Equal(t, 1, p.fake.callsOf(first.ID))
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.dbURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM request_logs WHERE tenant = $1 AND function = 'add'`, p.tenant).Scan(&n))
	require.Equal(t, 1, n, "one execution for the key")
}
