package workflows_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/workflows"
)

var a *activities.Activities

var ref = workflows.ExecutionRef{ID: "0190e5d4-0000-7000-8000-000000000001", Tenant: "default", Function: "add",
	Version: 3, SHA256: "abc", Language: "python", LanguageTitle: "python", HeartbeatTimeout: 2 * time.Second, MaxAttempts: 4}

// harness is a workflow test environment with ResolveVersion answering a version with
// cacheTTL, and Persist/StoreCache recording what they were asked.
type harness struct {
	env       *testsuite.TestWorkflowEnvironment
	ref       workflows.ExecutionRef
	persisted []activities.PersistInput
	cached    []activities.StoreCacheInput
	statuses  []string

	resolveErr   error  // ResolveVersion fails with it
	alreadyFinal string // Persist finds the row final with this status
}

func newHarness(t *testing.T, cacheTTL int, opts ...func(*harness)) *harness {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	h := &harness{env: s.NewTestWorkflowEnvironment(), ref: ref}
	for _, o := range opts {
		o(h)
	}
	h.env.RegisterWorkflowWithOptions(workflows.ExecuteFunction, workflowRegisterOptions())
	h.env.RegisterActivity(a)
	h.env.OnActivity(a.ResolveVersion, mock.Anything, mock.Anything).Return(
		activities.Resolved{TimeoutMS: 1000, CacheTTLS: cacheTTL}, h.resolveErr)
	h.env.OnActivity(a.Persist, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PersistInput) (activities.PersistResult, error) {
			h.persisted = append(h.persisted, in)
			if h.alreadyFinal != "" {
				return activities.PersistResult{Status: h.alreadyFinal, Attempts: 1}, nil
			}
			return activities.PersistResult{Status: in.Status, Attempts: in.Attempts}, nil
		})
	h.env.OnActivity(a.StoreCache, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.StoreCacheInput) error {
			h.cached = append(h.cached, in)
			return nil
		}).Maybe()
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(workflows.SearchStatus); ok {
			h.statuses = append(h.statuses, v)
		}
	}).Return(nil).Maybe()
	return h
}

func (h *harness) run() (workflows.Outcome, error) {
	h.env.ExecuteWorkflow(workflows.WorkflowName, h.ref)
	if !h.env.IsWorkflowCompleted() {
		return workflows.Outcome{}, errors.New("workflow did not complete")
	}
	var out workflows.Outcome
	err := h.env.GetWorkflowError()
	if err == nil {
		err = h.env.GetWorkflowResult(&out)
	}
	return out, err
}

func TestSucceeded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0)
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		activities.InvokeResult{Status: store.StatusSucceeded, Attempt: 1}, nil).Once()
	out, err := h.run()
	require.NoError(t, err)
	require.Equal(t, workflows.Outcome{Status: store.StatusSucceeded, Attempts: 1}, out)
	require.Len(t, h.persisted, 1)
	require.Equal(t, store.StatusSucceeded, h.persisted[0].Status)
	require.Equal(t, []string{store.StatusRunning, store.StatusSucceeded}, h.statuses)
	require.Empty(t, h.cached, "a version without cache_ttl_s is not cached")
	h.env.AssertExpectations(t)
}

func TestPlatformFaultRetriesThenSucceeds(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0)
	calls := 0
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.InvokeInput) (activities.InvokeResult, error) {
			calls++
			attempt := int(activity.GetInfo(ctx).Attempt)
			if attempt < 3 {
				// What classify makes of a gateway 502 or an unreachable runtime.
				return activities.InvokeResult{}, temporal.NewApplicationError("invoke: runtime runtime-python unavailable", "unavailable")
			}
			return activities.InvokeResult{Status: store.StatusSucceeded, Attempt: attempt}, nil
		})
	out, err := h.run()
	require.NoError(t, err)
	require.Equal(t, 3, calls)
	require.Equal(t, workflows.Outcome{Status: store.StatusSucceeded, Attempts: 3}, out)
	require.Len(t, h.persisted, 1)
	require.Equal(t, 3, h.persisted[0].Attempts)
}

func TestPlatformFaultExhaustsAttempts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0)
	calls := 0
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.InvokeInput) (activities.InvokeResult, error) {
			calls++
			return activities.InvokeResult{}, temporal.NewApplicationError("invoke: runtime runtime-python unavailable", "unavailable")
		})
	_, err := h.run()
	require.Error(t, err)
	require.Equal(t, ref.MaxAttempts, calls, "retries stop at MaxAttempts")
	require.Len(t, h.persisted, 1)
	p := h.persisted[0]
	require.Equal(t, store.StatusFailed, p.Status)
	require.Equal(t, "unavailable", p.ErrorType)
	require.Contains(t, p.ErrorMessage, "unavailable")
}

func TestHandlerOutcomesAreNotRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, errType, status string
	}{
		{"failed", activities.ErrHandlerFailed, store.StatusFailed},
		{"timeout", activities.ErrHandlerTimeout, store.StatusTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 60)
			h.env.OnActivity(a.CheckCache, mock.Anything, mock.Anything).Return(activities.CacheResult{Key: "k"}, nil)
			calls := 0
			h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
				func(ctx context.Context, in activities.InvokeInput) (activities.InvokeResult, error) {
					calls++
					res := activities.InvokeResult{Status: tc.status, Attempt: int(activity.GetInfo(ctx).Attempt)}
					return res, temporal.NewNonRetryableApplicationError("ZeroDivisionError: division by zero", tc.errType, nil, res)
				})
			out, err := h.run()
			require.Error(t, err)
			var appErr *temporal.ApplicationError
			require.ErrorAs(t, err, &appErr)
			require.Equal(t, 1, calls, "the script's own failure is not retried")
			require.Len(t, h.persisted, 1)
			require.Equal(t, tc.status, h.persisted[0].Status)
			require.Equal(t, 1, h.persisted[0].Attempts)
			require.Empty(t, h.persisted[0].ErrorType, "the runtime's error (staged in the row) is kept")
			require.Empty(t, h.cached, "only successes are cached")
			require.Equal(t, []string{store.StatusRunning, tc.status}, h.statuses)
			_ = out
		})
	}
}

func TestHeartbeatTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0)
	calls := 0
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.InvokeInput) (activities.InvokeResult, error) {
			calls++
			attempt := int(activity.GetInfo(ctx).Attempt)
			if attempt == 1 {
				// The worker running attempt 1 died: the server times its heartbeat out.
				return activities.InvokeResult{}, temporal.NewTimeoutError(enumspb.TIMEOUT_TYPE_HEARTBEAT, nil)
			}
			return activities.InvokeResult{Status: store.StatusSucceeded, Attempt: attempt}, nil
		})
	out, err := h.run()
	require.NoError(t, err)
	require.Equal(t, 2, calls)
	require.Equal(t, 2, out.Attempts)
}

func TestCancelWhileRunning(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0)
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.InvokeInput) (activities.InvokeResult, error) {
			select {
			case <-ctx.Done():
				return activities.InvokeResult{}, ctx.Err()
			case <-time.After(10 * time.Second):
				return activities.InvokeResult{Status: store.StatusSucceeded, Attempt: 1}, nil
			}
		})
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 500*time.Millisecond)
	_, err := h.run()
	require.Error(t, err)
	require.True(t, temporal.IsCanceledError(err), "the workflow ends canceled: %v", err)
	require.Len(t, h.persisted, 1, "the cancel is recorded through a disconnected context")
	require.Equal(t, store.StatusCanceled, h.persisted[0].Status)
	require.Equal(t, "Canceled", h.persisted[0].ErrorType)
	require.Equal(t, store.StatusCanceled, h.statuses[len(h.statuses)-1])
}

func TestCancelAfterFinalKeepsFinalStatus(t *testing.T) {
	t.Parallel()
	// The execution finished just before the cancel: Persist finds the row final.
	h := newHarness(t, 0, func(h *harness) { h.alreadyFinal = store.StatusSucceeded })
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.InvokeInput) (activities.InvokeResult, error) {
			<-ctx.Done()
			return activities.InvokeResult{}, ctx.Err()
		})
	h.env.RegisterDelayedCallback(h.env.CancelWorkflow, 100*time.Millisecond)
	out, err := h.run()
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, out.Status)
}

func TestCacheHitSkipsInvoke(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 60)
	h.env.OnActivity(a.CheckCache, mock.Anything, mock.Anything).Return(activities.CacheResult{Hit: true, Key: "k"}, nil)
	out, err := h.run()
	require.NoError(t, err)
	require.Equal(t, workflows.Outcome{Status: store.StatusSucceeded, Cached: true}, out)
	require.Len(t, h.persisted, 1)
	require.True(t, h.persisted[0].Cached)
	require.Equal(t, 0, h.persisted[0].Attempts)
}

func TestCacheMissStoresResult(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 60)
	h.env.OnActivity(a.CheckCache, mock.Anything, mock.Anything).Return(activities.CacheResult{Key: "k"}, nil)
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		activities.InvokeResult{Status: store.StatusSucceeded, Attempt: 1}, nil)
	out, err := h.run()
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, out.Status)
	require.Equal(t, []activities.StoreCacheInput{{Exec: activities.Target{ID: ref.ID, Tenant: ref.Tenant}, Key: "k", TTLS: 60}}, h.cached)
}

func TestVersionGoneFailsWithoutInvoking(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, func(h *harness) {
		h.resolveErr = temporal.NewNonRetryableApplicationError(`resolve version: function "add" not found`, "not_found", nil)
	})
	_, err := h.run()
	require.Error(t, err)
	require.Len(t, h.persisted, 1)
	require.Equal(t, store.StatusFailed, h.persisted[0].Status)
	require.Equal(t, "not_found", h.persisted[0].ErrorType)
}

// invokeKinds counts how Invoke ran: as a local activity or as a regular one.
func (h *harness) invokeKinds() (local, regular *int) {
	local, regular = new(int), new(int)
	h.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		if info.ActivityType.Name == "Invoke" {
			*local++
		}
	})
	h.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		if info.ActivityType.Name == "Invoke" {
			*regular++
		}
	})
	return local, regular
}

func TestShortInvokeRunsAsLocalActivityWithRetries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0)
	h.ref.LocalInvokeMax = 10 * time.Second // the version's timeout is 1 s
	local, regular := h.invokeKinds()
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.InvokeInput) (activities.InvokeResult, error) {
			if attempt := int(activity.GetInfo(ctx).Attempt); attempt < 2 {
				return activities.InvokeResult{}, temporal.NewApplicationError("runtime unreachable", "unavailable")
			}
			return activities.InvokeResult{Status: store.StatusSucceeded, Attempt: 2}, nil
		})
	out, err := h.run()
	require.NoError(t, err)
	require.Equal(t, workflows.Outcome{Status: store.StatusSucceeded, Attempts: 2}, out)
	require.Equal(t, 2, *local, "a platform fault is retried by the local activity's policy")
	require.Zero(t, *regular)
}

func TestLongInvokeRunsAsHeartbeatingActivity(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0)
	h.ref.LocalInvokeMax = 500 * time.Millisecond // below the version's 1 s timeout
	local, regular := h.invokeKinds()
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		activities.InvokeResult{Status: store.StatusSucceeded, Attempt: 1}, nil).Once()
	out, err := h.run()
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, out.Status)
	require.Equal(t, 1, *regular)
	require.Zero(t, *local)
}

func TestInvokeLocalOptions(t *testing.T) {
	t.Parallel()
	o := workflows.InvokeLocalOptions(workflows.ExecutionRef{Function: "f", Version: 1, MaxAttempts: 3}, 2_000)
	require.Equal(t, 2*time.Second+workflows.InvokeMargin, o.StartToCloseTimeout)
	require.EqualValues(t, 3, o.RetryPolicy.MaximumAttempts)
	require.Contains(t, o.RetryPolicy.NonRetryableErrorTypes, activities.ErrHandlerTimeout)
}

func TestInvokeOptions(t *testing.T) {
	t.Parallel()
	o := workflows.InvokeOptions(workflows.ExecutionRef{Function: "f", Version: 1}, 120_000)
	require.Equal(t, 2*time.Minute+workflows.InvokeMargin, o.StartToCloseTimeout)
	require.Equal(t, workflows.DefaultHeartbeatTimeout, o.HeartbeatTimeout)
	require.EqualValues(t, workflows.DefaultMaxAttempts, o.RetryPolicy.MaximumAttempts)
	require.Equal(t, 2.0, o.RetryPolicy.BackoffCoefficient)
	require.Contains(t, o.RetryPolicy.NonRetryableErrorTypes, activities.ErrHandlerFailed)
	require.NotEmpty(t, o.Summary)
}

func workflowRegisterOptions() workflow.RegisterOptions {
	return workflow.RegisterOptions{Name: workflows.WorkflowName}
}

// pinnedRef is a run started with its pinned version: no step resolves it again.
var pinnedRef = func() workflows.ExecutionRef {
	r := ref
	r.Runtime, r.TimeoutMS, r.MemoryMB = "runtime-python", 1000, 128
	return r
}()

func TestPinnedRunDoesNotResolveTheVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, func(h *harness) { h.ref = pinnedRef })
	var got activities.InvokeInput
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.InvokeInput) (activities.InvokeResult, error) {
			got = in
			return activities.InvokeResult{Status: store.StatusSucceeded, Attempt: 1}, nil
		}).Once()
	var resolved int
	h.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		if info.ActivityType.Name == "ResolveVersion" {
			resolved++
		}
	})
	out, err := h.run()
	require.NoError(t, err)
	require.Equal(t, workflows.Outcome{Status: store.StatusSucceeded, Attempts: 1}, out)
	require.Zero(t, resolved, "the pinned version is not resolved again")
	require.NotNil(t, got.Pinned)
	require.Equal(t, "runtime-python", got.Pinned.Runtime)
	require.Equal(t, 3, got.Pinned.Version)
	require.Equal(t, 1000, got.TimeoutMS, "the pinned version's timeout")
	require.True(t, got.Final, "Invoke records the outcome final")
	require.Len(t, h.persisted, 1)
}

func TestPinnedRunCachesInInvoke(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 0, func(h *harness) {
		h.ref = pinnedRef
		h.ref.CacheTTLS = 60
	})
	var checked activities.CheckCacheInput
	h.env.OnActivity(a.CheckCache, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CheckCacheInput) (activities.CacheResult, error) {
			checked = in
			return activities.CacheResult{Key: "k"}, nil
		})
	h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
		activities.InvokeResult{Status: store.StatusSucceeded, Attempt: 1}, nil)
	out, err := h.run()
	require.NoError(t, err)
	require.Equal(t, store.StatusSucceeded, out.Status)
	require.NotNil(t, checked.Pinned, "CheckCache gets the pinned version")
	require.Empty(t, h.cached, "Invoke stores the result itself: no StoreCache step")
}

// A pinned run whose Invoke is a short local activity ends within its workflow task: it
// upserts its final status only ("pinned-version" 2); a longer or a regular Invoke
// upserts running first.
func TestPinnedRunUpsertsRunningOnlyWhenItCanBeSeen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		timeoutMS int
		localMax  time.Duration
		want      []string
	}{
		{"short local invoke", 1000, 10 * time.Second, []string{store.StatusSucceeded}},
		{"long local invoke", 5000, 10 * time.Second, []string{store.StatusRunning, store.StatusSucceeded}},
		{"regular invoke", 1000, 500 * time.Millisecond, []string{store.StatusRunning, store.StatusSucceeded}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 0, func(h *harness) {
				h.ref = pinnedRef
				h.ref.TimeoutMS, h.ref.LocalInvokeMax = tc.timeoutMS, tc.localMax
			})
			h.env.OnActivity(a.Invoke, mock.Anything, mock.Anything).Return(
				activities.InvokeResult{Status: store.StatusSucceeded, Attempt: 1}, nil).Once()
			_, err := h.run()
			require.NoError(t, err)
			require.Equal(t, tc.want, h.statuses)
		})
	}
}
