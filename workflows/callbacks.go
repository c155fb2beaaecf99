package workflows

import (
	"context"
	"errors"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/callback"
	"github.com/lambda-microservice/lambda/internal/core"
)

// CallbackWorkflowName is the registered name of DeliverCallback.
const CallbackWorkflowName = "DeliverCallback"

// CallbackWorkflowID is the workflow ID of the callback of execution or run id.
func CallbackWorkflowID(id string) string { return "callback-" + id }

// CallbackRef is DeliverCallback's input: references only (the envelope is read from
// PostgreSQL at each attempt, the URL and state live in the callbacks row).
type CallbackRef struct {
	Kind   string `json:"kind"`
	Tenant string `json:"tenant"`
	ID     string `json:"id"`
}

// CallbackOptions are the delivery activity's options: one attempt per activity attempt,
// retried on callback.DefaultBackoff's curve (the activity sets each next delay) for up to
// its GiveUpAfter, 24 h; a refused delivery is not retried.
func CallbackOptions(id string) workflow.ActivityOptions {
	b := callback.DefaultBackoff
	return workflow.ActivityOptions{
		StartToCloseTimeout:    callback.DefaultTimeout + 15*time.Second,
		ScheduleToCloseTimeout: b.GiveUpAfter,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        b.Initial,
			BackoffCoefficient:     b.Multiplier,
			MaximumInterval:        b.Max,
			NonRetryableErrorTypes: []string{activities.ErrCallbackFailed},
		},
		Summary: "deliver callback of " + id,
	}
}

// DeliverCallback delivers the completion callback of a finished execution or run. It is
// a workflow of its own, started when the work is recorded final (core.Finish,
// core.FinishRun through Starter.StartCallback): the execution's or run's workflow ends
// at once, and a receiver that is down for hours keeps only this small workflow open.
func DeliverCallback(ctx workflow.Context, ref CallbackRef) error {
	err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, CallbackOptions(ref.ID)),
		a.DeliverCallback, activities.CallbackInput{ID: ref.ID}).Get(ctx, nil)
	var appErr *temporal.ApplicationError
	if err == nil || (errors.As(err, &appErr) && appErr.Type() == activities.ErrCallbackFailed) {
		return nil // recorded delivered or failed by the attempt itself
	}
	reason := "gave up: " + err.Error()
	if errors.As(err, &appErr) {
		reason = "gave up after " + callback.DefaultBackoff.GiveUpAfter.String() + ": " + appErr.Message()
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	opts := localOptions("record callback failed")
	opts.RetryPolicy, opts.ScheduleToCloseTimeout = persistRetry, 30*time.Minute
	return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(dctx, opts), a.GiveUpCallback,
		activities.GiveUpCallbackInput{ID: ref.ID, Reason: reason}).Get(dctx, nil)
}

// StartCallback starts the callback workflow of a finished execution or run; a
// callback already started (or delivered) is not started again.
func (s *Starter) StartCallback(ctx context.Context, c core.CallbackStart) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	ref := CallbackRef{Kind: c.Kind, Tenant: c.Tenant, ID: c.ID}
	opts := client.StartWorkflowOptions{
		ID:                       CallbackWorkflowID(c.ID),
		TaskQueue:                TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Memo:                     map[string]any{"tenant": c.Tenant, "kind": c.Kind, "id": c.ID},
		StaticSummary:            "callback of " + c.Kind + " " + c.ID,
	}
	return s.execute(ctx, opts, CallbackWorkflowName, ref)
}
