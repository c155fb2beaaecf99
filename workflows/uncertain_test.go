package workflows

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
)

// A start that may have reached the server is uncertain; a refusal, or a connection never
// made, is not.
func TestUncertainStartErrors(t *testing.T) {
	t.Parallel()
	live := context.Background()
	done, cancel := context.WithCancel(live)
	cancel()
	for _, tc := range []struct {
		ctx  context.Context
		err  error
		want bool
	}{
		{live, serviceerror.NewDeadlineExceeded("deadline"), true},
		{live, fmt.Errorf("start: %w", serviceerror.NewUnavailable("connection reset")), true},
		{live, serviceerror.NewCanceled("canceled"), true},
		{live, context.DeadlineExceeded, true},
		{done, errors.New("anything, once the call's context ended"), true},
		{live, serviceerror.NewUnavailable(`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:7233: connect: connection refused"`), false},
		{live, serviceerror.NewInvalidArgument("bad memo"), false},
		{live, serviceerror.NewNamespaceNotFound("default"), false},
	} {
		require.Equal(t, tc.want, uncertain(tc.ctx, tc.err), "%v", tc.err)
	}
}
