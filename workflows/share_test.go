package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/workflows"
)

// shareRefusal is what classify makes of the runtime host's TenantShare answer: a
// retryable platform fault of its own type, which the execution's RetryPolicy lists
// non-retryable.
func shareRefusal() error {
	return temporal.NewApplicationError("invoke: this tenant's calls hold its share of runtime runtime-python's workers; retry later",
		activities.ErrTenantShare)
}

// An execution refused for its tenant's share waits and runs once a worker of its share is
// free: no refusal spends one of Invoke's attempts (each Invoke is attempt 1, however many
// refusals came before), and the execution succeeds with the attempts of its one real run.
// Both shapes of Invoke (local activity, regular activity) wait the same way.
func TestShareRefusalsWaitWithoutSpendingAttempts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		local time.Duration
	}{{"regular activity", 0}, {"local activity", 10 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 0, func(h *harness) { h.ref.LocalInvokeMax = tc.local })
			const refusals = 7 // more than ref.MaxAttempts (4): retries would have failed it
			var attempts []int32
			h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, in activities.InvokeInput) (activities.InvokeResult, error) {
					attempts = append(attempts, activity.GetInfo(ctx).Attempt)
					if len(attempts) <= refusals {
						return activities.InvokeResult{}, shareRefusal()
					}
					return activities.InvokeResult{Status: store.StatusSucceeded, Attempt: 1}, nil
				})
			out, err := h.run()
			require.NoError(t, err)
			require.Equal(t, workflows.Outcome{Status: store.StatusSucceeded, Attempts: 1}, out)
			require.Len(t, attempts, refusals+1)
			for i, n := range attempts {
				require.EqualValues(t, 1, n, "Invoke %d started as attempt 1: no refusal was retried as an attempt", i)
			}
			require.Len(t, h.persisted, 1)
			require.Equal(t, store.StatusSucceeded, h.persisted[0].Status)
			require.Equal(t, 1, h.persisted[0].Attempts)
			require.Empty(t, h.persisted[0].ErrorType)
		})
	}
}

// An execution whose tenant's share stays taken until its ShareWait has passed is recorded
// timeout (TenantShareTimeout), not failed as a platform fault.
func TestShareRefusalsUntilTheDeadlineTimeOut(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, func(h *harness) { h.ref.ShareWait = 30 * time.Second })
	var calls int
	var start, last time.Time
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.InvokeInput) (activities.InvokeResult, error) {
			calls++
			require.EqualValues(t, 1, activity.GetInfo(ctx).Attempt)
			last = h.env.Now()
			if start.IsZero() {
				start = last
			}
			return activities.InvokeResult{}, shareRefusal()
		})
	_, err := h.run()
	require.Error(t, err)
	require.Greater(t, calls, 4, "it asked again with backoff, more often than MaxAttempts")
	require.GreaterOrEqual(t, last.Sub(start), 25*time.Second, "it asked until about its ShareWait")
	require.Len(t, h.persisted, 1)
	p := h.persisted[0]
	require.Equal(t, store.StatusTimeout, p.Status)
	require.Equal(t, workflows.ErrTenantShareTimeout, p.ErrorType)
	require.Contains(t, p.ErrorMessage, "30s")
	require.Equal(t, []string{store.StatusRunning, store.StatusTimeout}, h.statuses)
}

// A cancel while the execution waits for its share records it canceled.
func TestCancelWhileWaitingForTheShare(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0)
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(activities.InvokeResult{}, shareRefusal())
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 20*time.Second)
	_, err := h.run()
	require.Error(t, err)
	require.True(t, temporal.IsCanceledError(err), "%v", err)
	require.Len(t, h.persisted, 1)
	require.Equal(t, store.StatusCanceled, h.persisted[0].Status)
}
