package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/freeport"
	"github.com/lambda-microservice/lambda/internal/testkit/db"
)

// temporalTestLog collects a process's log lines from several goroutines.
type temporalTestLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *temporalTestLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *temporalTestLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSyncWhileTemporalDown runs `lambda api` with no Temporal server listening: it
// starts, sync invocations succeed, /readyz reports Temporal degraded (still 200), and
// an async invocation is a quick 503 problem.
func TestSyncWhileTemporalDown(t *testing.T) {
	t.Parallel()
	// The runtime function and the gateway's management API, faked: this test is about
	// the api's independence from Temporal.
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/system/function/") {
			name := strings.TrimPrefix(r.URL.Path, "/system/function/")
			_ = json.NewEncoder(w).Encode(map[string]any{"name": name, "replicas": 1, "availableReplicas": 1})
			return
		}
		var call faas.Call
		_ = json.NewDecoder(r.Body).Decode(&call)
		_ = json.NewEncoder(w).Encode(faas.Result{Status: "succeeded", Result: call.Event})
	}))
	defer gw.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	deadTemporal := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	apiAddr := temporalTestFreeAddr(t)
	redisURL := os.Getenv("LAMBDA_TEST_REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://127.0.0.1:6379/0"
	}
	env := Env{
		"LAMBDA_DATABASE_URL": db.New(t), "LAMBDA_REDIS_URL": redisURL, "LAMBDA_GATEWAY_URL": gw.URL,
		"LAMBDA_HTTP_ADDR": apiAddr, "LAMBDA_TEMPORAL_ADDR": deadTemporal, "LAMBDA_TEMPORAL_START_TIMEOUT": "1s",
		"LAMBDA_ADMIN_TOKEN": "test-admin-token", "LAMBDA_LOG_LEVEL": "warn",
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &temporalTestLog{}
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- run(ctx, []string{"api"}, env, nil, io.Discard, logs) }()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	base := "http://" + apiAddr
	call := func(method, path string, body any, hdr map[string]string) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequest(method, base+path, rd)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer test-admin-token")
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	require.Eventually(t, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "the api starts without Temporal; log:\n%s", logs)
	t.Logf("api serving %s after start, Temporal down", time.Since(t0))

	status, body := call(http.MethodPost, "/v1/functions", map[string]any{"name": "echo", "language": "python",
		"source": "def handler(event, context):\n    return event\n"}, nil)
	require.Equal(t, http.StatusCreated, status, "%v", body)

	for i := range 3 {
		start := time.Now()
		status, body = call(http.MethodPost, "/v1/functions/echo/invoke", map[string]any{"n": i}, map[string]string{"Language-Title": "python"})
		require.Equal(t, http.StatusOK, status, "%v", body)
		require.Equal(t, "succeeded", body["status"])
		require.Equal(t, map[string]any{"n": float64(i)}, body["result"])
		require.Less(t, time.Since(start), time.Second, "the fast path does not wait on Temporal")
	}

	status, body = call(http.MethodGet, "/readyz", nil, nil)
	require.Equal(t, http.StatusOK, status, "%v", body)
	require.Equal(t, "degraded", body["status"])
	checks, _ := body["checks"].(map[string]any)
	require.True(t, strings.HasPrefix(checks["temporal"].(string), "degraded"), "%v", checks)

	start := time.Now()
	status, body = call(http.MethodPost, "/v1/functions/echo/invoke", map[string]any{"n": 9},
		map[string]string{"Language-Title": "python", "Prefer": "respond-async"})
	require.Equal(t, http.StatusServiceUnavailable, status, "%v", body)
	require.Less(t, time.Since(start), 5*time.Second)

	// And the sync path still works after the failed async attempt.
	status, _ = call(http.MethodPost, "/v1/functions/echo/invoke", map[string]any{"n": 10}, map[string]string{"Language-Title": "python"})
	require.Equal(t, http.StatusOK, status)
}

func temporalTestFreeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	require.NoError(t, err)
	return addr
}
