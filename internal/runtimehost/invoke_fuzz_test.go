package runtimehost

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/caarlos0/env/v11"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/runtimes"
)

// FuzzInvokeRequest feeds arbitrary bodies to POST / (decode, validation, build cache,
// worker acquisition) of a host whose workers cannot start: whatever arrives, the host
// answers one of its documented statuses with a JSON body, never panics, and a request it
// accepts as valid satisfies the validation's promises. `go test` runs the seeds; CI runs
// `go test -fuzz=FuzzInvokeRequest -fuzztime=10s ./runtimehost` (make test).
func FuzzInvokeRequest(f *testing.F) {
	src := "def handler(event, context):\n    return 1\n"
	sum := "0b2a5c3b2e8ea7a3bd9e4d35cd9d9bdb5ab4f0de7acb2fd58e2f2d3b1d5b8e40" // not src's: BadRequest
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `{"function":"f"}`,
		`{"execution_id":"e","function":"add","version":1,"sha256":"` + sum + `","event":{"a":1},"timeout_ms":1000,"memory_mb":128}`,
		`{"function":"add","sha256":"` + sum + `","source":` + jsonString(src) + `}`,
		`{"function":"add","sha256":"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855","event":[1,2]}`,
		`{"function":"add","sha256":"` + sum + `","timeout_ms":-5,"memory_mb":-1,"version":-2}`,
		`{"function":"add","sha256":"` + sum + `","timeout_ms":99999999999999,"env":{"A=B":"x","":"y","K":"\u0000"}}`,
		`{"function":"add","sha256":"` + sum + `","build_only":true,"tenant":"t","event":"\ud800"}`,
		`{"function":1,"version":"x","event":}`,
		`{"function":"a","sha256":"` + sum + `","event":` + string(bytes.Repeat([]byte("["), 2000)) + `}`,
	} {
		f.Add([]byte(seed))
	}
	reg, err := runtimes.Load("../../runtimes/runtimes.yaml")
	if err != nil {
		f.Fatal(err)
	}
	python, _ := reg.Lookup("python")
	rt := *python
	rt.Command = []string{"/nonexistent/lambda-fuzz-worker"} // workers never start: no code runs
	var cfg Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: map[string]string{
		"LAMBDA_RUNTIME": "python", "LAMBDA_RUNTIME_CACHE_DIR": f.TempDir(), "LAMBDA_SANDBOX": "off",
		"LAMBDA_RUNTIME_AUTH": "none", "LAMBDA_RUNTIME_MAX_BODY": "65536", "LAMBDA_RUNTIME_QUEUE_WAIT": "0s",
	}}); err != nil {
		f.Fatal(err)
	}
	promReg := prometheus.NewRegistry()
	h, err := New(Options{Config: cfg, Runtime: &rt, Metrics: metrics.NewRuntime(promReg), HTTP: metrics.NewHTTP(promReg), Logger: zap.NewNop()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(h.Close)
	srv := NewServer(h, promReg)
	allowed := map[int]string{
		http.StatusBadRequest: "BadRequest", http.StatusRequestEntityTooLarge: "TooLarge",
		http.StatusPreconditionRequired: "SourceRequired", http.StatusUnprocessableEntity: "CompileError",
		http.StatusServiceUnavailable: "", http.StatusInternalServerError: "InternalError",
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
		want, ok := allowed[rec.Code]
		if !ok {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.String())
		}
		var doc struct {
			Error struct{ Type, Message string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("status %d with a body that is not JSON: %q", rec.Code, rec.Body.String())
		}
		if want != "" && doc.Error.Type != want {
			t.Fatalf("status %d with error type %q", rec.Code, doc.Error.Type)
		}
		// What validation lets through keeps its promises.
		var req Request
		if json.Unmarshal(body, &req) != nil {
			return
		}
		timeout, err := h.validate(&req)
		if err != nil {
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("invalid request (%v) answered %d", err, rec.Code)
			}
			return
		}
		if len(req.SHA256) != 64 || !isLowerHex(req.SHA256) || req.Function == "" || timeout <= 0 || timeout > cfg.MaxTimeout ||
			req.MemoryMB < 0 || req.Version < 0 {
			t.Fatalf("validation accepted %+v (timeout %s)", req, timeout)
		}
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
