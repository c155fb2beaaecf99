package activities

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err       error
		retryable bool
		typ       string
	}{
		{fault.New(fault.Unavailable, "runtime runtime-python unavailable"), true, "unavailable"},
		{fault.New(fault.Overloaded, "runtime runtime-python is overloaded"), true, "overloaded"},
		// Its own type: the execution workflow lists it non-retryable and waits for its share.
		{fault.New(fault.TenantShare, "this tenant's calls hold its share"), true, ErrTenantShare},
		{fault.Wrap(fault.Unavailable, errors.New("dial tcp: connection refused"), "save execution: postgresql unavailable"), true, "unavailable"},
		{fmt.Errorf("mark running: %w", context.DeadlineExceeded), true, "internal"},
		{fault.New(fault.NotFound, `function "add" not found`), false, "not_found"},
		{fault.New(fault.Invalid, "unknown Language-Title"), false, "invalid"},
		{fault.New(fault.Unprocessable, "SyntaxError"), false, "unprocessable"},
	} {
		err := classify("invoke", tc.err)
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr, "%v", tc.err)
		require.Equal(t, tc.typ, appErr.Type(), "%v", tc.err)
		require.Equal(t, !tc.retryable, appErr.NonRetryable(), "%v", tc.err)
		require.Contains(t, appErr.Message(), "invoke: ")
	}
	require.NoError(t, classify("x", nil))
	already := temporal.NewNonRetryableApplicationError("boom", ErrHandlerFailed, nil)
	require.Same(t, already, classify("x", already))
}
