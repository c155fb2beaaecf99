package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/core"
)

// keyedInvoke posts a sync invocation with an Idempotency-Key, giving up after timeout.
func (f *fixture) keyedInvoke(fn, key string, timeout time.Duration) (reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", f.srv.URL+"/v1/functions/"+fn+"/invoke", strings.NewReader(`{"a":1,"b":2}`))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Language-Title", "python")
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r, err
}

// TestSyncRetryWaitsForTheRunningCall: a client that times out and retries with the same
// Idempotency-Key while its first call still runs gets that call's execution once it
// finishes — the handler runs once.
func TestSyncRetryWaitsForTheRunningCall(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	src := fmt.Sprintf("# block %d\n%s", time.Now().UnixNano(), addSource)
	body, _ := json.Marshal(map[string]any{"name": "slowadd", "language": "python", "source": src, "timeout_ms": 10000})
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", string(body)).status)
	calls := f.runner.calls.Load()

	_, err := f.keyedInvoke("slowadd", "retry-1", 300*time.Millisecond)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "the first client gives up: %v", err)
	go func() {
		time.Sleep(700 * time.Millisecond)
		close(f.runner.gate) // the handler finishes while the retry waits
	}()
	start := time.Now()
	r, err := f.keyedInvoke("slowadd", "retry-1", 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, 200, r.status, r.raw)
	require.Equal(t, "succeeded", r.body["status"])
	require.Equal(t, "true", r.header.Get("Idempotent-Replayed"), "the retry is answered with the first call's execution")
	require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "it waited for the first call")
	require.Equal(t, calls+1, f.runner.calls.Load(), "the handler ran once")

	// The first call's row is the one recorded, once; another retry replays it at once.
	again := f.do(t, "POST", "/v1/functions/slowadd/invoke", `{"a":1,"b":2}`, "Language-Title", "python", "Idempotency-Key", "retry-1")
	require.Equal(t, r.body["id"], again.body["id"])
	require.Equal(t, 1, f.count(t, "request_logs"))
}

// TestSyncClaimOfADeadCallExpires: a call that never records its execution (its api
// died, or hangs, mid-call) holds its Idempotency-Key only for as long as it could have
// run: a retry meanwhile is 409 in progress once it has waited that long, and a retry
// after the function's timeout, the runtime slack and the margin runs.
func TestSyncClaimOfADeadCallExpires(t *testing.T) {
	t.Parallel()
	f := newFixture(t, coreOption(func(c *core.Config) { c.IdempotencyPendingMargin = 300 * time.Millisecond }))
	src := fmt.Sprintf("# hang %d\n%s", time.Now().UnixNano(), addSource)
	body, _ := json.Marshal(map[string]any{"name": "dies", "language": "python", "source": src, "timeout_ms": 300})
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", string(body)).status)
	calls := f.runner.calls.Load()

	go func() { _, _ = f.keyedInvoke("dies", "retry-2", 30*time.Second) }() // never answers
	require.Eventually(t, func() bool { return f.runner.calls.Load() == calls+1 }, 2*time.Second, 5*time.Millisecond)
	start := time.Now()
	r, err := f.keyedInvoke("dies", "retry-2", 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, http.StatusConflict, r.status, r.raw)
	require.Contains(t, r.body["detail"], "in progress")
	// It waited as long as the call could take: timeout 300 ms + the fixture's slack 1 s.
	require.GreaterOrEqual(t, time.Since(start), 1200*time.Millisecond)
	require.Equal(t, calls+1, f.runner.calls.Load(), "no second run while the first may still run")

	time.Sleep(500 * time.Millisecond) // timeout + slack + margin (300 ms) have passed
	r, err = f.keyedInvoke("dies", "retry-2", 10*time.Second)
	require.NoError(t, err)
	require.Equal(t, 200, r.status, r.raw)
	require.Empty(t, r.header.Get("Idempotent-Replayed"), "the key was free again: this call ran")
	require.Equal(t, calls+2, f.runner.calls.Load())
}
