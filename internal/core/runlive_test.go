package core

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/store"
)

// silentRuns is a durable side whose workflows never answer a query (Temporal stopped,
// no worker polling): LiveSteps blocks until its context ends.
type silentRuns struct{ queries atomic.Int32 }

func (*silentRuns) StartRun(context.Context, RunStart) error        { return nil }
func (*silentRuns) SignalRun(context.Context, string, string) error { return nil }
func (*silentRuns) CancelRun(context.Context, string) error         { return nil }
func (s *silentRuns) LiveSteps(ctx context.Context, _ string) ([]pipeline.StepState, error) {
	s.queries.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestLiveStepsTimeoutAnswersTheRecordedSteps(t *testing.T) {
	t.Parallel()
	runs := &silentRuns{}
	s := New(Config{LiveStepsTimeout: 50 * time.Millisecond}, Deps{Runs: runs})
	recorded := []store.RunStep{{ID: "a", Status: "pending", Output: json.RawMessage("null")}}
	r := store.Run{ID: "r1", Mode: ModeAsync, Status: store.StatusRunning, Steps: recorded}
	start := time.Now()
	got := s.WithLiveSteps(context.Background(), r)
	require.Less(t, time.Since(start), time.Second, "bounded by LiveStepsTimeout")
	require.NotNil(t, got.Live)
	require.False(t, *got.Live)
	require.Equal(t, recorded, got.Steps)
	require.EqualValues(t, 1, runs.queries.Load())

	for _, r := range []store.Run{
		{ID: "r2", Mode: ModeAsync, Status: store.StatusSucceeded},
		{ID: "r3", Mode: ModeSync, Status: store.StatusRunning},
	} {
		got := s.WithLiveSteps(context.Background(), r)
		require.Nil(t, got.Live, r.ID)
	}
	require.EqualValues(t, 1, runs.queries.Load(), "final and sync runs are not queried")
}

func TestMergeLiveSteps(t *testing.T) {
	t.Parallel()
	d, err := pipeline.Parse(json.RawMessage(`{"name":"p","steps":[
	  {"id":"a","function":"f"},{"id":"b","function":"f"},{"id":"nap","sleep_ms":1500},{"id":"w","wait_for":{"signal":"go","timeout_ms":60000}},{"id":"z","function":"f"},
	  {"id":"y","function":"f"}]}`))
	require.NoError(t, err)
	comp, err := pipeline.Compile(d)
	require.NoError(t, err)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	done := t0.Add(time.Second)
	recorded := []store.RunStep{
		{ID: "a", Status: "succeeded", Attempts: 1, StartedAt: &t0, FinishedAt: &done, Output: json.RawMessage("1")},
		{ID: "b", Status: "pending"}, {ID: "nap", Status: "pending"}, {ID: "w", Status: "waiting"}, {ID: "z", Status: "pending"},
		{ID: "y", Status: "pending", Output: json.RawMessage("null")},
	}
	live := []pipeline.StepState{
		{ID: "a", Status: pipeline.StepRunning, Attempts: 3, StartedAt: t0.Add(time.Hour)}, // recorded final row wins
		{ID: "b", Status: pipeline.StepRunning, Attempts: 2, StartedAt: t0, ExecutionID: "e-b"},
		{ID: "nap", Status: pipeline.StepRunning, StartedAt: t0},
		{ID: "w", Status: pipeline.StepWaiting, StartedAt: t0},
		{ID: "z", Status: pipeline.StepPending},
		{ID: "y", Status: pipeline.StepSucceeded, StartedAt: t0, FinishedAt: done},
	}
	out := mergeLiveSteps(comp, recorded, live)
	require.Equal(t, recorded[0], out[0])
	require.Equal(t, "running", out[1].Status)
	require.Equal(t, 2, out[1].Attempts)
	require.Equal(t, t0, *out[1].StartedAt)
	require.Equal(t, "e-b", out[1].ExecutionID)
	require.Equal(t, StepSleeping, out[2].Status)
	require.Equal(t, t0.Add(1500*time.Millisecond), *out[2].Until)
	require.Equal(t, "waiting", out[3].Status)
	require.Equal(t, t0, *out[3].StartedAt)
	require.Equal(t, "pending", out[4].Status)
	require.Nil(t, out[4].StartedAt)
	require.Equal(t, "succeeded", out[5].Status, "settled after the rows were read")
	require.Equal(t, done, *out[5].FinishedAt)
	require.JSONEq(t, "null", string(out[5].Output))
	require.Equal(t, "pending", recorded[1].Status, "the recorded steps are not changed")
}
