package runtimehost_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
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
	req := httptest.NewRequest(http.MethodPost, "/", nil)
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
