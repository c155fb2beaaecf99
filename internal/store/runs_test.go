package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

func asyncRun(t *testing.T, st *store.Store, tenant string) *store.Run {
	t.Helper()
	ctx := context.Background()
	def := json.RawMessage(`{"steps":[{"id":"s","function":"f"}]}`)
	_, err := st.CreatePipeline(ctx, store.PipelineVersion{Tenant: tenant, Name: "p-" + uuid.NewString()[:8], SHA256: "sha-" + tenant,
		Definition: def})
	if err != nil && !fault.Is(err, fault.Conflict) {
		require.NoError(t, err)
	}
	return &store.Run{ID: uuid.NewString(), Tenant: tenant, Pipeline: "p", Version: 1, SHA256: "sha-" + tenant,
		Mode: "async", Status: store.StatusQueued, Input: json.RawMessage(`{}`), CreatedAt: time.Now()}
}

// Async executions and durable runs are one budget per tenant: each counts against the
// other's admission.
func TestRunsAndExecutionsShareTheAsyncCap(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	a := store.Admission{MaxOpen: 2}

	_, created, err := st.EnqueueExecution(ctx, queued("acme"), a)
	require.NoError(t, err)
	require.True(t, created)
	_, created, err = st.InsertRun(ctx, asyncRun(t, st, "acme"), a)
	require.NoError(t, err)
	require.True(t, created)

	_, _, err = st.InsertRun(ctx, asyncRun(t, st, "acme"), a)
	require.True(t, fault.Is(err, fault.RateLimited), "%v", err)
	_, _, err = st.EnqueueExecution(ctx, queued("acme"), a)
	require.True(t, fault.Is(err, fault.RateLimited), "%v", err)
	// Another tenant has its own budget.
	_, created, err = st.InsertRun(ctx, asyncRun(t, st, "other"), a)
	require.NoError(t, err)
	require.True(t, created)
}

// A sync run's end writes its calls' executions and its steps with one statement per
// table: every value round-trips (nulls included), and the attempts of a retried call,
// which share an execution id, leave the last attempt's row.
func TestFinishSyncRunWritesEveryRow(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	def := json.RawMessage(`{"steps":[{"id":"a","function":"f"},{"id":"b","function":"f"}]}`)
	_, err := st.CreatePipeline(ctx, store.PipelineVersion{Tenant: "default", Name: "p", SHA256: "sha-rows", Definition: def})
	require.NoError(t, err)
	now := time.Now().UTC().Truncate(time.Microsecond)
	r := &store.Run{ID: uuid.NewString(), Tenant: "default", Pipeline: "p", Version: 1, SHA256: "sha-rows", Mode: "sync",
		Status: store.StatusFailed, Input: def, CreatedAt: now, StartedAt: &now, FinishedAt: &now,
		Error: &pipeline.Error{Type: "Boom", Message: "b failed"}}

	a := execution(uuid.NewString())
	a.Mode, a.RunID, a.StepID, a.Payload = "pipeline", r.ID, "a", nil
	first := execution(uuid.NewString())
	first.Mode, first.RunID, first.StepID, first.Status, first.Result = "pipeline", r.ID, "b", store.StatusFailed, nil
	first.Error = &store.ExecError{Type: "Boom", Message: "attempt 1"}
	second := *first
	second.Attempts, second.Error, second.Stderr = 2, &store.ExecError{Type: "Boom", Message: "attempt 2"}, "trace\n"
	steps := []store.RunStep{
		{ID: "a", Status: store.StatusSucceeded, Attempts: 1, ExecutionID: a.ID, Output: a.Result, StartedAt: &now, FinishedAt: &now},
		{ID: "b", Status: store.StatusFailed, Attempts: 2, ExecutionID: first.ID, Output: json.RawMessage("null"),
			Error: &pipeline.Error{Type: "Boom", Message: "attempt 2"}, StartedAt: &now, FinishedAt: &now},
	}
	require.NoError(t, st.FinishSyncRun(ctx, r, steps, []*store.Execution{a, first, &second}))

	gotA, err := st.GetExecution(ctx, "default", a.ID, true)
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, gotA.Status)
	require.JSONEq(t, string(a.Result), string(gotA.Result))
	require.Nil(t, gotA.Payload, "a null payload stays null")
	require.Nil(t, gotA.Error)
	require.Equal(t, r.ID, gotA.RunID)
	require.Equal(t, "a", gotA.StepID)
	require.Equal(t, a.Stdout, gotA.Stdout)
	require.InDelta(t, a.DurationMS, gotA.DurationMS, 1e-9)

	gotB, err := st.GetExecution(ctx, "default", first.ID, false)
	require.NoError(t, err)
	require.Equal(t, 2, gotB.Attempts, "the last attempt's row")
	require.Equal(t, "attempt 2", gotB.Error.Message)
	require.Equal(t, "trace\n", gotB.Stderr)
	require.Nil(t, gotB.Result)

	rows, err := st.RunSteps(ctx, r.ID)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	byID := map[string]store.RunStep{rows[0].ID: rows[0], rows[1].ID: rows[1]}
	require.Equal(t, a.ID, byID["a"].ExecutionID)
	require.JSONEq(t, string(a.Result), string(byID["a"].Output))
	require.Equal(t, store.StatusFailed, byID["b"].Status)
	require.Equal(t, 2, byID["b"].Attempts)
	require.Equal(t, "attempt 2", byID["b"].Error.Message)
	require.Equal(t, now, byID["b"].StartedAt.UTC())
	run, err := st.GetRun(ctx, "default", r.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusFailed, run.Status)
}
