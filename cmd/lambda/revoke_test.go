package main

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/testkit/db"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// lambdaBinary is bin/lambda (LAMBDA_BIN_DIR, set by make test), or one built for the test.
func lambdaBinary(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("LAMBDA_BIN_DIR"); dir != "" {
		bin := filepath.Join(dir, "lambda")
		if _, err := os.Stat(bin); err != nil {
			prereq.Missing(t, "%s (make build): %v", bin, err)
		}
		return bin
	}
	bin := filepath.Join(t.TempDir(), "lambda")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// TestRevocationReachesEveryReplicaAtOnce runs two `lambda api` processes on one database:
// a key verified (and cached, for a minute) by the second stops working there within a
// second of its revocation through the first. Unauthenticated /readyz reads ok or
// degraded per check; the admin reads the details.
func TestRevocationReachesEveryReplicaAtOnce(t *testing.T) {
	t.Parallel()
	bin := lambdaBinary(t)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		name := strings.TrimPrefix(r.URL.Path, "/system/function/")
		_ = json.NewEncoder(w).Encode(map[string]any{"name": name, "replicas": 1, "availableReplicas": 1})
	}))
	defer gw.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadTemporal := ln.Addr().String()
	require.NoError(t, ln.Close())
	redisURL := os.Getenv("LAMBDA_TEST_REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379/0"
	}
	dbURL := db.New(t)
	const admin = "test-admin-token"
	start := func(name string) string {
		addr := temporalTestFreeAddr(t)
		cmd := exec.Command(bin, "api")
		cmd.Env = append(os.Environ(), "LAMBDA_DATABASE_URL="+dbURL, "LAMBDA_REDIS_URL="+redisURL,
			"LAMBDA_GATEWAY_URL="+gw.URL, "LAMBDA_HTTP_ADDR="+addr, "LAMBDA_TEMPORAL_ADDR="+deadTemporal,
			"LAMBDA_ADMIN_TOKEN="+admin, "LAMBDA_AUTH_CACHE_TTL=1m", "LAMBDA_LOG_LEVEL=warn", "LAMBDA_LOG_FORMAT=console")
		logPath := filepath.Join(t.TempDir(), name+".log")
		f, err := os.Create(logPath)
		require.NoError(t, err)
		cmd.Stdout, cmd.Stderr = f, f
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		require.NoError(t, cmd.Start())
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			_ = f.Close()
			if t.Failed() {
				out, _ := os.ReadFile(logPath)
				t.Logf("%s log:\n%s", name, out)
			}
		})
		base := "http://" + addr
		require.Eventually(t, func() bool { // both listen for revocations
			checks, _ := get(base+"/readyz", admin)["checks"].(map[string]any)
			return checks["key_revocations"] == "ok"
		}, 60*time.Second, 50*time.Millisecond, "%s listens for revocations", name)
		return base
	}
	a, b := start("api-a"), start("api-b")

	// Tenant and key through A; the key verified (and cached) by B.
	req, _ := http.NewRequest("POST", a+"/v1/tenants", strings.NewReader(`{"name":"revoked"}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var created map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&created))
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%v", created)
	key, keyID := created["api_key"].(string), created["key_id"].(string)
	status := func(base string) int {
		req, _ := http.NewRequest("GET", base+"/v1/functions", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, http.StatusOK, status(b))

	req, _ = http.NewRequest("DELETE", a+"/v1/keys/"+keyID, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	revoked := time.Now()
	require.Eventually(t, func() bool { return status(b) == http.StatusUnauthorized }, time.Second, 10*time.Millisecond,
		"the other replica refuses the key within a second (its cache would keep it a minute)")
	t.Logf("replica B refused the revoked key %s after the revocation", time.Since(revoked))
	require.Equal(t, http.StatusUnauthorized, status(a))

	// /readyz: per-check words for anyone, the details for the admin (Temporal is down).
	anon := get(b+"/readyz", "")
	require.Equal(t, "degraded", anon["status"], "%v", anon)
	for name, v := range anon["checks"].(map[string]any) {
		require.Contains(t, []string{"ok", "degraded", "down"}, v, "check %s", name)
	}
	require.NotContains(t, anon, "error")
	detailed := get(b+"/readyz", admin)["checks"].(map[string]any)
	require.True(t, strings.HasPrefix(detailed["temporal"].(string), "degraded: "), "%v", detailed)
	withKey := get(b+"/readyz", "nonsense")["checks"].(map[string]any)
	require.Equal(t, "degraded", withKey["temporal"], "a bad token reads what anyone reads")
}

// get reads a JSON object, with a bearer token unless it is empty.
func get(url, token string) map[string]any {
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out
}
