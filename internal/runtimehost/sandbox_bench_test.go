package runtimehost_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// The sandbox's costs, each with LAMBDA_SANDBOX=off and strict:
//
//	go test -run='^$' -bench=Sandbox -benchtime=2s ./runtimehost
func sandboxModes(b *testing.B, f func(b *testing.B, mode string)) {
	for _, mode := range []string{"off", "strict"} {
		b.Run(mode, func(b *testing.B) { f(b, mode) })
	}
}

// BenchmarkSandboxInvokeWarm is BenchmarkInvokeWarm per mode: the warm round trip.
func BenchmarkSandboxInvokeWarm(b *testing.B) {
	sandboxModes(b, func(b *testing.B, mode string) {
		h := newHarness(b, bundledRegistry, "python", "", map[string]string{"LAMBDA_SANDBOX": mode})
		src := pythonCases.add
		h.ok(b, "add", src, map[string]int{"a": 1, "b": 2}, "succeeded", nil)
		body := []byte(`{"execution_id":"bench","function":"add","version":1,"sha256":"` + sum(src) +
			`","event":{"a":1,"b":2},"timeout_ms":10000,"memory_mb":128}`)
		rec := httptest.NewRecorder()
		req := signed(httptest.NewRequest(http.MethodPost, "/", nil))
		b.ReportAllocs()
		for b.Loop() {
			rec.Body.Reset()
			req.Body = nopCloser{bytes.NewReader(body)}
			h.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
			}
		}
	})
}

// BenchmarkSandboxNewVersion is the first call of an unseen Python version (the spare takes
// it: confinement, init, invoke) per mode.
func BenchmarkSandboxNewVersion(b *testing.B) {
	sandboxModes(b, func(b *testing.B, mode string) {
		h := newHarness(b, bundledRegistry, "python", "", map[string]string{"LAMBDA_SANDBOX": mode})
		h.ok(b, "warm", pythonCases.add, map[string]int{"a": 1, "b": 2}, "succeeded", nil)
		i := 0
		for b.Loop() {
			b.StopTimer()
			i++
			src := pythonCases.add + "\n# version " + strconv.Itoa(i) + " " + mode + "\n"
			time.Sleep(300 * time.Millisecond) // a spare is ready again
			b.StartTimer()
			r := h.ok(b, "new", src, map[string]int{"a": 1, "b": 2}, "succeeded", map[string]any{"source": src})
			if !r.Cold {
				b.Fatal("not a cold call")
			}
		}
	})
}
