package provider_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/faas"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// TestProviderRealRuntimeHost deploys the python runtime with the real runtime host and
// runs a handler through the provider's proxy.
func TestProviderRealRuntimeHost(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := fakeConfig(t)
	cfg.RuntimeBin = prereq.Binary(t, "lambda-runtime")
	cfg.ReadyTimeout = 60 * time.Second
	cfg.PassEnv = []string{"PATH", "HOME", "TMPDIR", "XDG_CACHE_HOME"}
	cfg.Environ = map[string]string{"PATH": os.Getenv("PATH"), "HOME": os.Getenv("HOME"), "TMPDIR": os.Getenv("TMPDIR"), "XDG_CACHE_HOME": os.Getenv("XDG_CACHE_HOME")}
	const secret = "provider-test-runtime-secret"
	cfg.RuntimeSecretFile = filepath.Join(t.TempDir(), "runtime-secret")
	require.NoError(t, os.WriteFile(cfg.RuntimeSecretFile, []byte(secret), 0o600))
	_, srv, client := newProvider(t, cfg)

	_, err := client.Deploy(ctx, types.FunctionDeployment{
		Service: "runtime-python",
		Image:   "ghcr.io/lambda-microservice/runtime-python:latest",
		EnvVars: map[string]string{"LAMBDA_RUNTIME": "python"},
	})
	require.NoError(t, err)
	waitFor(t, 60*time.Second, "the python runtime host to be ready", func() bool {
		st, err := client.GetFunction(ctx, "runtime-python", "")
		return err == nil && st.AvailableReplicas == 1
	})

	src := "def handler(event, context):\n    return {\"sum\": event[\"a\"] + event[\"b\"]}\n"
	sum := sha256.Sum256([]byte(src))
	body, _ := json.Marshal(map[string]any{
		"execution_id": "e-provider-test", "function": "add", "version": 1,
		"sha256": hex.EncodeToString(sum[:]), "source": src,
		"event": map[string]int{"a": 1, "b": 2}, "timeout_ms": 10000, "memory_mb": 128,
	})
	// Without the deployment's secret the replica runs nothing.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/function/runtime-python", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/function/runtime-python", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(platformsecret.RuntimeHeader, secret)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%v", out)
	require.Equal(t, map[string]any{"sum": 3.0}, out["result"], "%v", out)

	eps, err := faas.FetchEndpoints(ctx, http.DefaultClient, srv.URL, "runtime-python")
	require.NoError(t, err)
	require.Len(t, eps, 1)
	hr, err := http.Get(eps[0] + "/_/health")
	require.NoError(t, err)
	hr.Body.Close()
	require.Equal(t, http.StatusOK, hr.StatusCode)
}
