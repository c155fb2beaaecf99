package runtimehost_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// BenchmarkInvokeWarm measures a warm Python invocation through the HTTP handler: decode,
// pool, frame round trip over the pipes, output capture, encode.
func BenchmarkInvokeWarm(b *testing.B) {
	h := newHarness(b, bundledRegistry, "python", "", nil)
	src := pythonCases.add
	h.ok(b, "add", src, map[string]int{"a": 1, "b": 2}, "succeeded", nil)
	body := []byte(`{"execution_id":"bench","function":"add","version":1,"sha256":"` + sum(src) +
		`","event":{"a":1,"b":2},"timeout_ms":10000,"memory_mb":128}`)
	rec := httptest.NewRecorder()
	req := signed(httptest.NewRequest(http.MethodPost, "/", nil))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec.Body.Reset()
		req.Body = nopCloser{bytes.NewReader(body)}
		h.handler.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// BenchmarkInvokeNewVersion measures the first call of a script version this host has not
// seen (source included), served by the spare worker: build check, init, invoke.
func BenchmarkInvokeNewVersion(b *testing.B) {
	for _, lc := range []langCases{pythonCases, nodeCases} {
		b.Run(lc.title, func(b *testing.B) {
			h := newHarness(b, bundledRegistry, lc.title, "", nil)
			h.ok(b, "warm", lc.add, map[string]int{"a": 1, "b": 2}, "succeeded", nil)
			i := 0
			for b.Loop() {
				b.StopTimer()
				i++
				src := lc.add + "\n" + lc.comment + " version " + strconv.Itoa(i) + "\n"
				time.Sleep(300 * time.Millisecond) // a spare is ready again
				b.StartTimer()
				r := h.ok(b, "new", src, map[string]int{"a": 1, "b": 2}, "succeeded", map[string]any{"source": src})
				if !r.Cold {
					b.Fatal("not a cold call")
				}
			}
		})
	}
}
