package workflows

import (
	"context"
	"errors"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// ScheduledWorkflowName is the registered name of ScheduledStart, the action of every
// schedule.
const ScheduledWorkflowName = "ScheduledStart"

// ScheduleRef is ScheduledStart's input, fixed when the schedule is created: the
// schedule's name (its target and input are read from PostgreSQL at each firing) and the
// settings of the runs it starts.
type ScheduleRef struct {
	Tenant   string   `json:"tenant"`
	Schedule string   `json:"schedule"`
	Settings Settings `json:"settings"`
}

// ScheduledStart is one firing of a schedule. It records the firing's execution or run
// (StartScheduled: the row names the schedule, is admitted under the tenant's cap and
// pins the version, exactly as an async invoke or run is) and then runs it as a child
// workflow with the ordinary ID (exec-<id> or run-<id>), waiting for its end. Waiting is
// what makes the schedule's overlap policy apply to the work itself: Temporal sees this
// workflow running while the execution runs (skip, buffer_one), and cancel_other cancels
// it, which requests the child's cancellation and ends this workflow at once. The child is the same workflow an async invoke starts, so a scheduled
// execution is searchable, cancelable (DELETE /v1/executions/{id}) and finishes the same
// way.
func ScheduledStart(ctx workflow.Context, ref ScheduleRef) error {
	key := "schedule:" + workflow.GetInfo(ctx).WorkflowExecution.ID
	opts := workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, ScheduleToCloseTimeout: 10 * time.Minute,
		RetryPolicy: platformRetry, Summary: "record the start of schedule " + ref.Schedule}
	var st core.ScheduledStart
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, opts), a.StartScheduled,
		activities.ScheduledInput{Tenant: ref.Tenant, Schedule: ref.Schedule, Key: key}).Get(ctx, &st)
	if err != nil {
		if ctx.Err() != nil && workflow.GetVersion(ctx, "scheduled-cancel-unstarted", workflow.DefaultVersion, 1) == 1 {
			// Canceled while recording: the record may have been made all the same. The key
			// makes a repeat return it (or make it), and it is recorded canceled.
			dctx, _ := workflow.NewDisconnectedContext(ctx)
			if workflow.ExecuteActivity(workflow.WithActivityOptions(dctx, opts), a.StartScheduled,
				activities.ScheduledInput{Tenant: ref.Tenant, Schedule: ref.Schedule, Key: key}).Get(dctx, &st) == nil {
				cancelUnstarted(ctx, nil, st, opts)
			}
			return temporal.NewCanceledError()
		}
		return err
	}
	copts := workflow.ChildWorkflowOptions{
		TaskQueue:             TaskQueue,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
	}
	var child workflow.ChildWorkflowFuture
	switch {
	case st.Execution != nil:
		xref := NewExecutionRef(*st.Execution, ref.Settings)
		copts.WorkflowID, copts.Memo, copts.TypedSearchAttributes = WorkflowID(xref.ID), Memo(xref), executionSearch(xref)
		copts.StaticSummary = executionSummary(xref) + ", schedule " + ref.Schedule
		child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, copts), WorkflowName, xref)
	case st.Run != nil:
		rref := NewRunRef(*st.Run, ref.Settings)
		copts.WorkflowID, copts.Memo, copts.TypedSearchAttributes = RunWorkflowID(rref.RunID), RunMemo(rref), runSearch(rref)
		copts.StaticSummary = runSummary(rref) + ", schedule " + ref.Schedule
		child = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(ctx, copts), RunWorkflowName, rref)
	default:
		return nil
	}
	// The child's outcome is recorded by the child; a failed execution is not the
	// schedule's failure. A cancel (cancel_other) ends this workflow at once, without
	// waiting for the child to close: the cancel is passed on to the child, which records
	// it unless it finishes first (a runtime call in a local activity sees it only once
	// the call returns), and the next start need not wait for that.
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(child, func(workflow.Future) {})
	sel.AddReceive(ctx.Done(), func(workflow.ReceiveChannel, bool) {})
	sel.Select(ctx)
	if ctx.Err() != nil {
		if workflow.GetVersion(ctx, "scheduled-cancel-unstarted", workflow.DefaultVersion, 1) == 1 {
			cancelUnstarted(ctx, child, st, opts)
		}
		return temporal.NewCanceledError()
	}
	return nil
}

// cancelUnstarted records the firing's execution or run canceled when the cancel came
// before its child workflow started (the child, once started, records its own outcome):
// otherwise the row would stay queued until the sweeper started the work the cancel was
// meant to stop.
func cancelUnstarted(ctx workflow.Context, child workflow.ChildWorkflowFuture, st core.ScheduledStart, opts workflow.ActivityOptions) {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	if child != nil && child.GetChildWorkflowExecution().Get(dctx, nil) == nil {
		return
	}
	opts.Summary = "record the canceled start"
	actx := workflow.WithActivityOptions(dctx, opts)
	msg := "canceled before it started (the schedule's overlap policy or a cancel)"
	switch {
	case st.Execution != nil:
		_ = workflow.ExecuteActivity(actx, a.Persist, activities.PersistInput{
			Exec:   activities.Target{ID: st.Execution.ID, Tenant: st.Execution.Tenant},
			Status: "canceled", ErrorType: "Canceled", ErrorMessage: msg, Notify: true}).Get(actx, nil)
	case st.Run != nil:
		_ = workflow.ExecuteActivity(actx, a.FinishRun, activities.FinishRunInput{RunID: st.Run.RunID,
			Outcome: pipeline.RunOutcome{Status: pipeline.RunCanceled,
				Error: &pipeline.Error{Type: "Canceled", Message: msg}}}).Get(actx, nil)
	}
}

var overlapPolicies = map[string]enumspb.ScheduleOverlapPolicy{
	"skip":         enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
	"buffer_one":   enumspb.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE,
	"allow_all":    enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
	"cancel_other": enumspb.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER,
}

// scheduleError translates Temporal's answers about a schedule.
func scheduleError(err error, id string) error {
	var nf *serviceerror.NotFound
	var inv *serviceerror.InvalidArgument
	switch {
	case err == nil:
		return nil
	case errors.As(err, &nf):
		return fault.Wrap(fault.NotFound, err, "schedule %s not found", id)
	case errors.Is(err, temporal.ErrScheduleAlreadyRunning):
		return fault.Wrap(fault.Conflict, err, "schedule %s already exists", id)
	case errors.As(err, &inv):
		return fault.Wrap(fault.Invalid, err, "the schedule is invalid: %s", strings.TrimSpace(inv.Message))
	}
	return fault.Wrap(fault.Unavailable, err, "the durable execution service (Temporal) is unavailable")
}

// CreateSchedule creates Temporal schedule sched-<tenant>-<name>; its action starts
// ScheduledStart with ID sched-<tenant>-<name> (Temporal appends the firing's time).
func (s *Starter) CreateSchedule(ctx context.Context, tenant string, spec core.ScheduleSpec) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	id := core.ScheduleID(tenant, spec.Name)
	ss := client.ScheduleSpec{CronExpressions: spec.Cron, TimeZoneName: spec.Timezone}
	if spec.IntervalMS > 0 {
		ss.Intervals = []client.ScheduleIntervalSpec{{Every: time.Duration(spec.IntervalMS) * time.Millisecond}}
	}
	target := "function " + spec.Target.Function
	if spec.Target.Pipeline != "" {
		target = "pipeline " + spec.Target.Pipeline
	}
	_, err := s.client.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:   id,
		Spec: ss,
		Action: &client.ScheduleWorkflowAction{
			ID:            id,
			Workflow:      ScheduledWorkflowName,
			Args:          []any{ScheduleRef{Tenant: tenant, Schedule: spec.Name, Settings: s.cfg.settings()}},
			TaskQueue:     TaskQueue,
			StaticSummary: "schedule " + spec.Name + ": " + target,
		},
		Overlap: overlapPolicies[spec.Overlap],
		Paused:  spec.Paused,
		Memo:    map[string]any{"tenant": tenant, "name": spec.Name, "target": target},
		Note:    "lambda schedule " + spec.Name + " of tenant " + tenant,
	})
	return scheduleError(err, id)
}

// DescribeSchedule reads a schedule's state, next action times and recent actions.
func (s *Starter) DescribeSchedule(ctx context.Context, tenant, name string) (core.ScheduleInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	id := core.ScheduleID(tenant, name)
	d, err := s.client.ScheduleClient().GetHandle(ctx, id).Describe(ctx)
	if err != nil {
		return core.ScheduleInfo{}, scheduleError(err, id)
	}
	info := core.ScheduleInfo{NextRuns: d.Info.NextActionTimes, Actions: int64(d.Info.NumActions)}
	if d.Schedule.State != nil {
		info.Paused = d.Schedule.State.Paused
	}
	for _, r := range d.Info.RecentActions {
		act := core.ScheduleAction{ScheduledAt: r.ScheduleTime, StartedAt: r.ActualTime}
		if r.StartWorkflowResult != nil {
			act.WorkflowID = r.StartWorkflowResult.WorkflowID
		}
		info.RecentActions = append(info.RecentActions, act)
	}
	return info, nil
}

// PauseSchedule pauses or unpauses a schedule.
func (s *Starter) PauseSchedule(ctx context.Context, tenant, name string, paused bool) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	id := core.ScheduleID(tenant, name)
	h := s.client.ScheduleClient().GetHandle(ctx, id)
	if paused {
		return scheduleError(h.Pause(ctx, client.SchedulePauseOptions{Note: "paused through the lambda API"}), id)
	}
	return scheduleError(h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: "resumed through the lambda API"}), id)
}

// TriggerSchedule starts the schedule's action once, now, whatever runs already.
func (s *Starter) TriggerSchedule(ctx context.Context, tenant, name string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	id := core.ScheduleID(tenant, name)
	return scheduleError(s.client.ScheduleClient().GetHandle(ctx, id).Trigger(ctx,
		client.ScheduleTriggerOptions{Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL}), id)
}

// DeleteSchedule deletes a schedule; what it started runs on.
func (s *Starter) DeleteSchedule(ctx context.Context, tenant, name string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	id := core.ScheduleID(tenant, name)
	return scheduleError(s.client.ScheduleClient().GetHandle(ctx, id).Delete(ctx), id)
}
