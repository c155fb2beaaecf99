package provider_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/openfaas/faas-provider/types"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/provider"
)

// Replicas resolve and install dependencies themselves: every dependency setting of the
// provider's environment (LAMBDA_DEPS_*, LAMBDA_MAX_DEP*) reaches them by default, and a
// deployment cannot set one.
func TestReplicasGetTheDependencySettings(t *testing.T) {
	t.Parallel()
	var def provider.Config
	require.NoError(t, env.ParseWithOptions(&def, env.Options{Environment: map[string]string{}}))
	cfg := fakeConfig(t)
	cfg.PassEnv = def.PassEnv
	for k, v := range map[string]string{"LAMBDA_DEPS_RESOLVE_TIMEOUT": "3m", "LAMBDA_DEPS_RESOLVED_TTL": "0",
		"LAMBDA_MAX_DEPS": "7", "LAMBDA_MAX_DEP_PACKAGES": "70", "LAMBDA_DEPS_INSTALL_TIMEOUT": "4m"} {
		cfg.Environ[k] = v
	}
	_, srv, client := newProvider(t, cfg)
	ctx := context.Background()
	const name = "runtime-deps-env"
	spec := types.FunctionDeployment{Service: name, Image: "x", EnvVars: map[string]string{fakeReplicaEnv: "1", "LAMBDA_RUNTIME": "fake"}}
	bad := spec
	bad.EnvVars = map[string]string{fakeReplicaEnv: "1", "LAMBDA_DEPS_RESOLVED_TTL": "1h"}
	_, err := client.Deploy(ctx, bad)
	require.ErrorContains(t, err, "LAMBDA_DEPS_RESOLVED_TTL")
	_, err = client.Deploy(ctx, spec)
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "1 available replica", func() bool {
		st, err := client.GetFunction(ctx, name, "")
		return err == nil && st.AvailableReplicas == 1
	})
	code, ans, raw := invoke(t, srv.URL, name, nil, `{}`)
	require.Equal(t, http.StatusOK, code, raw)
	got := strings.Join(ans.Env, "\n") + "\n"
	for _, kv := range []string{"LAMBDA_DEPS_RESOLVE_TIMEOUT=3m", "LAMBDA_DEPS_RESOLVED_TTL=0", "LAMBDA_MAX_DEPS=7",
		"LAMBDA_MAX_DEP_PACKAGES=70", "LAMBDA_DEPS_INSTALL_TIMEOUT=4m"} {
		require.Contains(t, got, kv+"\n")
	}
}
