package workflows_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/workflows"
)

// TestDeliverCallback: a delivery the receiver refused is not retried and not recorded
// again; retryable attempts go on until the retries are spent (24 h on the server), and the callback is then
// recorded failed; a callback delivered on attempt 3 ends there.
func TestDeliverCallback(t *testing.T) {
	cases := map[string]struct {
		attempt func(n int32) error
		calls   int32
		gaveUp  bool
	}{
		"delivered on the third attempt": {attempt: func(n int32) error {
			if n < 3 {
				return temporal.NewApplicationError("HTTP 503", activities.ErrCallbackRetry)
			}
			return nil
		}, calls: 3},
		"refused": {attempt: func(int32) error {
			return temporal.NewNonRetryableApplicationError("refused: 10.0.0.1 is a private address", activities.ErrCallbackFailed, nil)
		}, calls: 1},
		"down for a day": {attempt: func(int32) error {
			return temporal.NewApplicationError("HTTP 503", activities.ErrCallbackRetry)
		}, gaveUp: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			env.RegisterWorkflowWithOptions(workflows.DeliverCallback, workflow.RegisterOptions{Name: workflows.CallbackWorkflowName})
			env.RegisterActivity(a)
			var calls int32
			env.OnActivity(a.DeliverCallback, mock.Anything, mock.Anything).Return(
				func(context.Context, activities.CallbackInput) error {
					calls++
					return tc.attempt(calls)
				})
			var gaveUp []activities.GiveUpCallbackInput
			env.OnActivity(a.GiveUpCallback, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.GiveUpCallbackInput) error {
					gaveUp = append(gaveUp, in)
					return nil
				}).Maybe()
			env.ExecuteWorkflow(workflows.CallbackWorkflowName, workflows.CallbackRef{Kind: "execution", Tenant: "t", ID: "id-1"})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			if tc.gaveUp {
				require.Len(t, gaveUp, 1)
				require.Contains(t, gaveUp[0].Reason, "gave up")
				require.Greater(t, calls, int32(1), "retried before giving up")
				return
			}
			require.Empty(t, gaveUp)
			require.Equal(t, tc.calls, calls)
		})
	}
}
