package main

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// A bad setting stops a component before it connects to anything, with the setting's name.
func TestBadCacheSettingsAreRefused(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"api", "worker"} {
		for _, kv := range [][2]string{{"LAMBDA_CACHE_LOCAL_TTL", "-1s"}, {"LAMBDA_CACHE_LOCAL_BYTES", "-5"}} {
			err := run(context.Background(), []string{cmd}, Env{kv[0]: kv[1]}, nil, io.Discard, io.Discard)
			require.Error(t, err, "%s with %s=%s", cmd, kv[0], kv[1])
			require.Contains(t, err.Error(), kv[0])
		}
	}
	var api apiConfig
	require.NoError(t, Env{}.parse(&api))
	require.NoError(t, api.validate(), "the defaults are valid")
	require.Positive(t, api.Data.Cache.LocalTTL, "local copies are on by default")
}

// A bad dependency setting stops the api and the worker before they connect to anything.
func TestBadDependencySettingsAreRefused(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"api", "worker"} {
		for _, kv := range [][2]string{{"LAMBDA_MAX_DEPS_MB", "-5"}, {"LAMBDA_MAX_DEPS", "many"},
			{"LAMBDA_DEPS_INSTALL_TIMEOUT", "soon"}, {"LAMBDA_DEPS_RESOLVED_TTL", "-1m"}} {
			err := run(context.Background(), []string{cmd}, Env{kv[0]: kv[1]}, nil, io.Discard, io.Discard)
			require.Error(t, err, "%s with %s=%s", cmd, kv[0], kv[1])
			require.Contains(t, err.Error(), kv[0])
		}
	}
}
