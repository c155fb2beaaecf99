package runtimehost_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
)

// A caller that goes away (a cancelled execution: the api abandons its runtime call) stops
// the handler at once: the worker is killed, not left to run to its timeout.
func TestAbandonedCallStopsTheHandler(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bundledRegistry, "python", "", map[string]string{"LAMBDA_SANDBOX": "off"})
	srv := httptest.NewServer(h.handler)
	t.Cleanup(srv.Close)
	pidFile := filepath.Join(t.TempDir(), "pid")
	src := "import os, time\ndef handler(event, context):\n    open(event['pid'], 'w').write(str(os.getpid()))\n    time.sleep(60)\n    return 'late'\n"
	body, _ := json.Marshal(map[string]any{"execution_id": "abandon", "function": "sleeper", "version": 1, "tenant": "t",
		"sha256": sum(src), "source": src, "event": map[string]string{"pid": pidFile}, "timeout_ms": 120000})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/", bytes.NewReader(body))
		req.Header.Set(platformsecret.RuntimeHeader, testSecret)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 0
	}, 30*time.Second, 10*time.Millisecond, "the handler started")
	cancel()
	require.Error(t, <-done)
	require.Eventually(t, func() bool { return syscall.Kill(pid, 0) != nil }, 3*time.Second, 10*time.Millisecond,
		"the abandoned handler's process is gone long before its 60 s sleep or its 120 s timeout")
	// The host serves the next call as usual.
	h.ok(t, "add", pythonCases.add, map[string]int{"a": 1, "b": 2}, "succeeded", nil)
}

// A thread a call leaves running keeps the warm worker busy: the worker is recycled
// before its next call, not reused with the thread still burning CPU.
func TestWorkerBurningCPUWhileIdleIsRecycled(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"off", "auto"} {
		t.Run(mode, func(t *testing.T) {
			if mode == "auto" {
				requireSandbox(t)
			}
			t.Parallel()
			h := newHarness(t, bundledRegistry, "python", "", map[string]string{"LAMBDA_SANDBOX": mode})
			src := "import threading\ndef spin():\n    while True:\n        pass\ndef handler(event, context):\n    if event.get('spin'):\n        threading.Thread(target=spin, daemon=True).start()\n    return 'ok'\n"
			h.ok(t, "spinner", src, map[string]bool{"spin": false}, "succeeded", nil)
			r := h.ok(t, "spinner", src, map[string]bool{"spin": false}, "succeeded", nil)
			require.False(t, r.Cold, "an idle worker that burns nothing stays warm")
			h.ok(t, "spinner", src, map[string]bool{"spin": true}, "succeeded", nil)
			// The leftover thread burns CPU: a share of a core on a busy machine, so the next
			// call may find too little burnt yet and run warm (the thread keeps burning).
			recycled := false
			for range 10 {
				time.Sleep(time.Second)
				if r = h.ok(t, "spinner", src, map[string]bool{"spin": false}, "succeeded", nil); r.Cold {
					recycled = true
					break
				}
			}
			require.True(t, recycled, "the worker whose thread kept running was replaced")
		})
	}
}
