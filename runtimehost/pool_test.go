package runtimehost_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const pySleep = `import time
def handler(event, context):
    time.sleep(event.get("ms", 0) / 1000)
    return context.function
`

func TestPoolOverloaded(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bundledRegistry, "python", "", map[string]string{
		"LAMBDA_RUNTIME_WORKERS": "1", "LAMBDA_RUNTIME_QUEUE": "0",
	})
	h.ok(t, "warmup", pySleep, map[string]int{}, "succeeded", nil)
	var wg sync.WaitGroup
	wg.Go(func() {
		h.ok(t, "slow", pySleep, map[string]int{"ms": 600}, "succeeded", nil)
	})
	time.Sleep(200 * time.Millisecond)
	code, r := h.call(t, "other", pySleep, map[string]int{}, nil)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "Overloaded", r.Error.Type)
	wg.Wait()
	h.ok(t, "other", pySleep, map[string]int{}, "succeeded", nil)
}

func TestPoolQueuesAndEvicts(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bundledRegistry, "python", "", map[string]string{
		"LAMBDA_RUNTIME_WORKERS": "2", "LAMBDA_RUNTIME_QUEUE": "8", "LAMBDA_RUNTIME_QUEUE_WAIT": "5s",
	})
	// More functions than workers: each new one evicts the least recently used.
	for _, fn := range []string{"f1", "f2", "f3", "f1"} {
		r := h.ok(t, fn, pySleep, map[string]int{}, "succeeded", nil)
		require.JSONEq(t, `"`+fn+`"`, string(r.Result))
	}
	r := h.ok(t, "f1", pySleep, map[string]int{}, "succeeded", nil)
	require.False(t, r.Cold)
	// Four concurrent calls on two workers: two wait in the queue, none is refused.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			h.ok(t, "f1", pySleep, map[string]int{"ms": 200}, "succeeded", nil)
		})
	}
	wg.Wait()
}
