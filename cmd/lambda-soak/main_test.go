package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Bad flags fail before anything starts.
func TestFlags(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"-faults", "kill-api,meteor-strike"}, map[string]string{}, &out, &errOut)
	require.ErrorContains(t, err, `unknown fault "meteor-strike"`)
	err = run(context.Background(), []string{"-duration", "soon"}, map[string]string{}, &out, &errOut)
	require.Error(t, err)
	require.Empty(t, out.String())
}
