package workflows_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/workflows"
)

// TestScheduledStartCanceledWhileRecording: a firing canceled (cancel_other) while its
// recording activity runs records its execution canceled — the record the activity made
// all the same is found again by the firing's key — instead of leaving it queued for the
// sweeper to start; no child workflow is started.
func TestScheduledStartCanceledWhileRecording(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.ScheduledStart, workflow.RegisterOptions{Name: workflows.ScheduledWorkflowName})
	env.RegisterActivity(a)
	exec := &core.AsyncExecution{ID: "exec-1", Pinned: core.Pinned{Tenant: "t"}}
	var records atomic.Int32
	env.OnActivity(a.StartScheduled, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.ScheduledInput) (core.ScheduledStart, error) {
			if records.Add(1) == 1 {
				time.Sleep(300 * time.Millisecond) // the cancel arrives meanwhile
			}
			return core.ScheduledStart{Execution: exec}, nil
		})
	var persisted []activities.PersistInput
	env.OnActivity(a.Persist, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PersistInput) (activities.PersistResult, error) {
			persisted = append(persisted, in)
			return activities.PersistResult{Status: in.Status}, nil
		})
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Millisecond)
	env.ExecuteWorkflow(workflows.ScheduledWorkflowName, workflows.ScheduleRef{Tenant: "t", Schedule: "eager"})
	require.True(t, env.IsWorkflowCompleted())
	var canceled *temporal.CanceledError
	require.ErrorAs(t, env.GetWorkflowError(), &canceled)
	require.Len(t, persisted, 1, "the firing's execution is recorded once")
	require.Equal(t, "exec-1", persisted[0].Exec.ID)
	require.Equal(t, "canceled", persisted[0].Status)
}
