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

// A function step settled with its call: the step's row commits with the execution's,
// its output the execution's result; a later write never rewrites the final step.
func TestWriteWithStepSettlesTheStepInTheExecutionsCommit(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	w := newWriter(t, st)
	ctx := context.Background()
	r := asyncRun(t, st, "default")
	_, created, err := st.InsertRun(ctx, r, store.Admission{})
	require.NoError(t, err)
	require.True(t, created)

	run, err := st.LoadRunMarkingRunning(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, "running", run.Status, "the load marks the run running")
	require.NotNil(t, run.StartedAt)
	_, err = st.LoadRunMarkingRunning(ctx, uuid.NewString())
	require.True(t, fault.Is(err, fault.NotFound), "%v", err)

	e := execution(uuid.NewString())
	e.Mode, e.RunID, e.StepID = "pipeline", r.ID, "s"
	started := time.Now().UTC().Add(-time.Second).Truncate(time.Microsecond)
	fin := time.Now().UTC().Truncate(time.Microsecond)
	require.NoError(t, w.WriteWithStep(ctx, e, r.ID, store.RunStep{ID: "s", Status: "succeeded", Attempts: 1,
		StartedAt: &started, FinishedAt: &fin}))
	steps, err := st.RunSteps(ctx, r.ID)
	require.NoError(t, err)
	require.Len(t, steps, 1)
	require.Equal(t, "succeeded", steps[0].Status)
	require.Equal(t, e.ID, steps[0].ExecutionID)
	require.JSONEq(t, `{"sum":3}`, string(steps[0].Output), "the execution's result")
	require.True(t, started.Equal(*steps[0].StartedAt))

	e2 := execution(uuid.NewString())
	e2.Mode, e2.RunID, e2.StepID, e2.Result = "pipeline", r.ID, "s", json.RawMessage(`{"sum":4}`)
	require.NoError(t, w.WriteWithStep(ctx, e2, r.ID, store.RunStep{ID: "s", Status: "succeeded", Attempts: 2}))
	steps, err = st.RunSteps(ctx, r.ID)
	require.NoError(t, err)
	require.Equal(t, e.ID, steps[0].ExecutionID, "a final step is never rewritten")
	require.JSONEq(t, `{"sum":3}`, string(steps[0].Output))
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

// The reads a long-poll and a step's call make in one round trip each: tenant-scoped,
// every part present only when asked for, a missing execution not an error.
func TestRunReadsInOneRoundTrip(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	w := newWriter(t, st)
	ctx := context.Background()
	r := asyncRun(t, st, "default")
	r.Input = json.RawMessage(`{"n":7}`)
	_, _, err := st.InsertRun(ctx, r, store.Admission{})
	require.NoError(t, err)

	status, err := st.RunStatus(ctx, "default", r.ID)
	require.NoError(t, err)
	require.Equal(t, store.StatusQueued, status)
	for _, c := range []struct{ tenant, id string }{{"other", r.ID}, {"default", uuid.NewString()}, {"default", "not-a-uuid"}} {
		_, err = st.RunStatus(ctx, c.tenant, c.id)
		require.True(t, fault.Is(err, fault.NotFound), "%v", err)
		_, _, err = st.GetRunWithSteps(ctx, c.tenant, c.id, true)
		require.True(t, fault.Is(err, fault.NotFound), "%v", err)
	}

	e := execution(uuid.NewString())
	e.Mode, e.RunID, e.StepID = "pipeline", r.ID, "s"
	require.NoError(t, w.WriteWithStep(ctx, e, r.ID, store.RunStep{ID: "s", Status: "succeeded", Attempts: 1}))
	require.NoError(t, st.SaveItems(ctx, r.ID, "m", json.RawMessage(`[10,20,30]`)))

	run, steps, err := st.GetRunWithSteps(ctx, "default", r.ID, true)
	require.NoError(t, err)
	require.Equal(t, r.ID, run.ID)
	require.JSONEq(t, `{"n":7}`, string(run.Input))
	require.Len(t, steps, 1)
	require.Equal(t, e.ID, steps[0].ExecutionID)
	require.Nil(t, run.CallbackState)
	require.Empty(t, run.Schedule)
	// A run with a callback shows it when annotated, not otherwise.
	r2 := asyncRun(t, st, "default")
	r2.Callback = "https://hooks.example.com/done"
	_, _, err = st.InsertRun(ctx, r2, store.Admission{Origin: &store.Origin{CallbackURL: r2.Callback, Schedule: "nightly"}})
	require.NoError(t, err)
	run, _, err = st.GetRunWithSteps(ctx, "default", r2.ID, true)
	require.NoError(t, err)
	require.NotNil(t, run.CallbackState)
	require.Equal(t, r2.Callback, run.CallbackState.URL)
	require.Equal(t, "nightly", run.Schedule)
	run, _, err = st.GetRunWithSteps(ctx, "default", r2.ID, false)
	require.NoError(t, err)
	require.Nil(t, run.CallbackState)

	// A first call: nothing recorded under its id; its input and referenced step read.
	reads, err := st.ReadForCall(ctx, store.CallWant{Tenant: "default", RunID: r.ID, StepID: "t", ExecutionID: uuid.NewString(),
		Item: -1, Input: true, Steps: []string{"s", "absent"}})
	require.NoError(t, err)
	require.Nil(t, reads.Prev)
	require.JSONEq(t, `{"n":7}`, string(reads.Input))
	require.Len(t, reads.Steps, 1)
	require.JSONEq(t, `{"sum":3}`, string(reads.Steps[0].Output))
	require.Nil(t, reads.Item)

	// A repeat finds its execution; a map item reads its item; nothing else unless asked.
	reads, err = st.ReadForCall(ctx, store.CallWant{Tenant: "default", RunID: r.ID, StepID: "m", ExecutionID: e.ID, Item: 1})
	require.NoError(t, err)
	require.NotNil(t, reads.Prev)
	require.Equal(t, store.StatusSucceeded, reads.Prev.Status)
	require.JSONEq(t, `20`, string(reads.Item))
	require.Nil(t, reads.Input)
	require.Nil(t, reads.Steps)
	// Another tenant's execution is not this call's.
	reads, err = st.ReadForCall(ctx, store.CallWant{Tenant: "other", RunID: r.ID, StepID: "s", ExecutionID: e.ID, Item: -1, AllSteps: true})
	require.NoError(t, err)
	require.Nil(t, reads.Prev)
	require.Len(t, reads.Steps, 1)
	// A map item with no items stored is NotFound, as Item is.
	_, err = st.ReadForCall(ctx, store.CallWant{Tenant: "default", RunID: r.ID, StepID: "none", ExecutionID: uuid.NewString(), Item: 0})
	require.True(t, fault.Is(err, fault.NotFound), "%v", err)
}

// Far below its cap a tenant's async execution or run is admitted in one statement,
// which writes nothing once the tenant is within store.UnlockedMargin of the cap (the
// locked path then decides); its count covers executions and runs alike.
func TestOneStatementAdmissionStopsNearTheCap(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	maxOpen := store.UnlockedMargin + 3 // admitted in one statement while 3 or fewer are open

	for i, want := range []bool{true, true, true, true, false} {
		var ok bool
		var err error
		if i%2 == 0 {
			ok, err = st.AdmitFarFromCap(ctx, queued("near"), nil, maxOpen)
		} else {
			ok, err = st.AdmitFarFromCap(ctx, nil, asyncRun(t, st, "near"), maxOpen)
		}
		require.NoError(t, err)
		require.Equal(t, want, ok, "admission %d (%d open before it)", i+1, i)
	}
	ok, err := st.AdmitFarFromCap(ctx, nil, asyncRun(t, st, "far"), maxOpen)
	require.NoError(t, err)
	require.True(t, ok, "another tenant counts its own")

	// The admissions that went through are real rows: the locked path counts them and
	// admits up to the cap exactly.
	admitted := 0
	for range 2*store.UnlockedMargin + 10 {
		_, _, err := st.InsertRun(ctx, asyncRun(t, st, "near"), store.Admission{MaxOpen: maxOpen})
		if err != nil {
			require.True(t, fault.Is(err, fault.RateLimited), "%v", err)
			break
		}
		admitted++
	}
	require.Equal(t, maxOpen-4, admitted)
}
