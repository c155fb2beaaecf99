package runtimehost_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/caarlos0/env/v11"
	"github.com/stretchr/testify/require"

	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
	"github.com/lambda-microservice/lambda/internal/runtimehost"
)

// A call without the deployment's secret (straight to the replica, or through the
// gateway's /function/runtime-*) is 401 and builds, writes and runs nothing.
func TestInvokeWithoutTheSecretRunsNothing(t *testing.T) {
	cache := t.TempDir()
	h := newHarness(t, bundledRegistry, "python", cache, map[string]string{"LAMBDA_SANDBOX": "off"})
	marker := filepath.Join(t.TempDir(), "ran")
	src := "open(" + jsonString(marker) + ", 'w').write('x')\ndef handler(event, context):\n    return 1\n"
	body, err := json.Marshal(map[string]any{"execution_id": "x", "function": "f", "version": 1, "tenant": "victim",
		"sha256": sum(src), "source": src, "event": map[string]any{}, "timeout_ms": 5000})
	require.NoError(t, err)
	for name, header := range map[string]string{"none": "", "wrong": testSecret + "x", "prefix": testSecret[:len(testSecret)-1]} {
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		if header != "" {
			req.Header.Set(platformsecret.RuntimeHeader, header)
		}
		rec := httptest.NewRecorder()
		h.handler.ServeHTTP(rec, req)
		require.Equal(t, http.StatusUnauthorized, rec.Code, "%s: %s", name, rec.Body.String())
		require.Contains(t, rec.Body.String(), `"Unauthorized"`, name)
	}
	_, err = os.Stat(marker)
	require.True(t, os.IsNotExist(err), "the script's top level ran")
	_, err = os.Stat(filepath.Join(cache, sum(src)))
	require.True(t, os.IsNotExist(err), "the script was written to the build cache")

	// With the secret the same call runs.
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, signed(httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	_, err = os.Stat(marker)
	require.NoError(t, err)
}

// A host without a secret refuses to start unless told explicitly to accept any caller.
func TestHostNeedsASecret(t *testing.T) {
	parse := func(vars map[string]string) error {
		var cfg runtimehost.Config
		require.NoError(t, env.ParseWithOptions(&cfg, env.Options{Environment: vars}))
		return cfg.Validate()
	}
	err := parse(map[string]string{"LAMBDA_RUNTIME": "python"})
	require.ErrorContains(t, err, "LAMBDA_RUNTIME_SECRET_FILE")
	err = parse(map[string]string{"LAMBDA_RUNTIME": "python", "LAMBDA_RUNTIME_SECRET": "short"})
	require.ErrorContains(t, err, "at least")
	file := filepath.Join(t.TempDir(), "secret")
	require.NoError(t, os.WriteFile(file, []byte(testSecret+"\n"), 0o600))
	require.NoError(t, parse(map[string]string{"LAMBDA_RUNTIME": "python", "LAMBDA_RUNTIME_SECRET_FILE": file}))
	require.NoError(t, parse(map[string]string{"LAMBDA_RUNTIME": "python", "LAMBDA_RUNTIME_AUTH": "none"}))
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
