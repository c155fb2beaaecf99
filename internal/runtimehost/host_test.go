package runtimehost_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
	"github.com/lambda-microservice/lambda/internal/runtimehost"
	"github.com/lambda-microservice/lambda/runtimes"
)

const (
	bundledRegistry = "../../runtimes/runtimes.yaml"
	testRegistry    = "../../runtimes/testdata/runtimes.yaml"
	secretValue     = "s3cr3t-host-value"
)

// rustCache is shared by every Rust test of a run: serde_json compiles once.
var rustCache string

func TestMain(m *testing.M) {
	// Host secrets a worker must never see.
	os.Setenv("LAMBDA_TEST_SECRET", secretValue)
	os.Setenv("DATABASE_URL", "postgres://user:"+secretValue+"@db/lambda")
	dir, err := os.MkdirTemp("", "lambda-rust-cache-")
	if err != nil {
		panic(err)
	}
	rustCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type harness struct {
	host    *runtimehost.Host
	handler http.Handler
	seq     atomic.Int64
}

// newHarness starts a host for title from the registry at path, with the config defaults
// plus overrides (LAMBDA_* names), and waits until it is ready.
func newHarness(t testing.TB, path, title, cacheDir string, overrides map[string]string) *harness {
	t.Helper()
	reg, err := runtimes.Load(path)
	require.NoError(t, err)
	rt, ok := reg.Lookup(title)
	require.True(t, ok, "runtime %s", title)
	if cacheDir == "" {
		cacheDir = t.TempDir()
	}
	vars := map[string]string{"LAMBDA_RUNTIME": title, "LAMBDA_RUNTIME_CACHE_DIR": cacheDir, "LAMBDA_RUNTIME_SECRET": testSecret}
	for k, v := range overrides {
		vars[k] = v
	}
	var cfg runtimehost.Config
	require.NoError(t, env.ParseWithOptions(&cfg, env.Options{Environment: vars}))
	require.NoError(t, cfg.Validate())
	promReg := prometheus.NewRegistry()
	host, err := runtimehost.New(runtimehost.Options{
		Config:   cfg,
		Runtime:  rt,
		BuildEnv: runtimehost.BuildEnviron(rt, os.Getenv),
		Metrics:  metrics.NewRuntime(promReg),
		HTTP:     metrics.NewHTTP(promReg),
		Logger:   zap.NewNop(),
	})
	require.NoError(t, err)
	host.Start()
	t.Cleanup(host.Close)
	h := &harness{host: host, handler: runtimehost.NewServer(host, promReg)}
	deadline := time.Now().Add(3 * time.Minute)
	for !host.Ready() {
		require.Empty(t, host.Problem(), "host %s failed to start", title)
		require.True(t, time.Now().Before(deadline), "host %s never became ready", title)
		time.Sleep(10 * time.Millisecond)
	}
	return h
}

type errorDoc struct {
	Type     string `json:"type"`
	Message  string `json:"message"`
	Stack    string `json:"stack"`
	ExitCode *int   `json:"exit_code"`
}

type response struct {
	Status          string          `json:"status"`
	Result          json.RawMessage `json:"result"`
	Error           *errorDoc       `json:"error"`
	Stdout          string          `json:"stdout"`
	Stderr          string          `json:"stderr"`
	StdoutTruncated bool            `json:"stdout_truncated"`
	StderrTruncated bool            `json:"stderr_truncated"`
	DurationMS      float64         `json:"duration_ms"`
	Cold            bool            `json:"cold"`
}

// testSecret is the invoke secret of every test host; signed adds it to a request.
const testSecret = "test-runtime-secret-0123456789"

func signed(r *http.Request) *http.Request {
	r.Header.Set(platformsecret.RuntimeHeader, testSecret)
	return r
}

func sum(src string) string {
	s := sha256.Sum256([]byte(src))
	return hex.EncodeToString(s[:])
}

func (h *harness) post(t testing.TB, body map[string]any) (int, response) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, signed(httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(b))))
	var r response
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r), "body %s", rec.Body.String())
	return rec.Code, r
}

// call invokes fn (the script src) the way the platform does: without the source first,
// again with it on 428. Extra fields override the request's.
func (h *harness) call(t testing.TB, fn, src string, event any, extra map[string]any) (int, response) {
	t.Helper()
	body := map[string]any{
		"execution_id": fmt.Sprintf("exec-%d", h.seq.Add(1)),
		"function":     fn, "version": 1, "sha256": sum(src), "event": event,
		"timeout_ms": 60000, "memory_mb": 128, // a cold Rust call builds first: seconds under load
	}
	for k, v := range extra {
		body[k] = v
	}
	code, r := h.post(t, body)
	if code == http.StatusPreconditionRequired {
		require.Equal(t, "SourceRequired", r.Error.Type)
		body["source"] = src
		code, r = h.post(t, body)
	}
	return code, r
}

// ok invokes and requires a 200 whose status is want.
func (h *harness) ok(t testing.TB, fn, src string, event any, want string, extra map[string]any) response {
	t.Helper()
	code, r := h.call(t, fn, src, event, extra)
	require.Equal(t, http.StatusOK, code, "response %+v (error %+v)", r, r.Error)
	require.Equal(t, want, r.Status, "response %+v (error %+v)", r, r.Error)
	return r
}

// langCases are one language's scripts for the shared host-level suite.
type langCases struct {
	registry, title, cacheDir string

	add       string // event {a, b} → {"sum": a+b}
	output    string // event {tag}: prints out-<tag> on stdout, err-<tag> on stderr, and runs `echo native-<tag>` as a child
	raise     string // fails with raiseType / "kaboom" and a stack naming helper
	raiseType string
	sleep     string // event {ms}: sleeps, returns "slept"
	exit      string // event {exit: bool}: exits the process with status 3, else returns "alive"
	bigPrint  string // event {n}: prints n bytes of 'x', returns n
	syntax    string // does not compile
	syntaxAt  string // the diagnostics mention this (file and line)
	comment   string // starts a line comment
	async     string // awaits something, returns "async" (empty: not applicable)
	envProbe  string // returns {"secret": LAMBDA_TEST_SECRET or null, "lambda": [LAMBDA_* names], "mine": MY_VAR, "db": DATABASE_URL or null}
	isoA      string // leaves a global and a file in the temp dir, returns how many calls this process served
	isoB      string // returns {"global": <the global or null>, "file": <whether the file exists>}
}

func runLanguageSuite(t *testing.T, lc langCases) {
	h := newHarness(t, lc.registry, lc.title, lc.cacheDir, nil)

	t.Run("add", func(t *testing.T) {
		t.Parallel()
		r := h.ok(t, "add", lc.add, map[string]int{"a": 2, "b": 40}, "succeeded", nil)
		require.JSONEq(t, `{"sum":42}`, string(r.Result))
		require.True(t, r.Cold)
		r = h.ok(t, "add", lc.add, map[string]int{"a": 1, "b": 2}, "succeeded", nil)
		require.JSONEq(t, `{"sum":3}`, string(r.Result))
		require.False(t, r.Cold, "the second call reuses the warm worker")
		require.Nil(t, r.Error)
	})

	t.Run("output per execution", func(t *testing.T) {
		t.Parallel()
		for _, tag := range []string{"one", "two", "three"} {
			r := h.ok(t, "output", lc.output, map[string]string{"tag": tag}, "succeeded", nil)
			require.Equal(t, "out-"+tag+"\nnative-"+tag+"\n", r.Stdout)
			require.Equal(t, "err-"+tag+"\n", r.Stderr)
			require.False(t, r.StdoutTruncated)
		}
	})

	t.Run("handler error", func(t *testing.T) {
		t.Parallel()
		for range 2 {
			r := h.ok(t, "raise", lc.raise, map[string]any{}, "failed", nil)
			require.NotNil(t, r.Error)
			require.Equal(t, lc.raiseType, r.Error.Type)
			require.Contains(t, r.Error.Message, "kaboom")
			if lc.title != "rust" {
				require.Contains(t, r.Error.Stack, "helper")
				require.NotContains(t, r.Error.Stack, "bootstrap")
			}
		}
	})

	t.Run("timeout then next call", func(t *testing.T) {
		t.Parallel()
		h.ok(t, "sleep", lc.sleep, map[string]int{"ms": 1}, "succeeded", map[string]any{"timeout_ms": 60000}) // built and warm (a build under load takes seconds)
		r := h.ok(t, "sleep", lc.sleep, map[string]int{"ms": 5000}, "timeout", map[string]any{"timeout_ms": 300})
		require.Equal(t, "Timeout", r.Error.Type)
		require.Less(t, r.DurationMS, 2000.0)
		r = h.ok(t, "sleep", lc.sleep, map[string]int{"ms": 1}, "succeeded", map[string]any{"timeout_ms": 5000})
		require.JSONEq(t, `"slept"`, string(r.Result))
	})

	t.Run("process exit mid-call", func(t *testing.T) {
		t.Parallel()
		h.ok(t, "exit", lc.exit, map[string]bool{"exit": false}, "succeeded", nil)
		r := h.ok(t, "exit", lc.exit, map[string]bool{"exit": true}, "failed", nil)
		require.Equal(t, "RuntimeExit", r.Error.Type)
		require.Contains(t, r.Error.Message, "3")
		r = h.ok(t, "exit", lc.exit, map[string]bool{"exit": false}, "succeeded", nil)
		require.JSONEq(t, `"alive"`, string(r.Result))
		require.True(t, r.Cold, "a fresh worker replaces the one that exited")
	})

	t.Run("10 MB of output is capped", func(t *testing.T) {
		t.Parallel()
		r := h.ok(t, "bigprint", lc.bigPrint, map[string]int{"n": 10 << 20}, "succeeded", nil)
		require.Len(t, r.Stdout, 65536)
		require.True(t, r.StdoutTruncated)
		require.Equal(t, strings.Repeat("x", 65536), r.Stdout)
		r = h.ok(t, "bigprint", lc.bigPrint, map[string]int{"n": 5}, "succeeded", nil)
		require.Equal(t, "xxxxx", strings.TrimSpace(r.Stdout))
		require.False(t, r.StdoutTruncated)
		require.False(t, r.Cold)
	})

	t.Run("compile error", func(t *testing.T) {
		t.Parallel()
		for range 2 { // the second answer comes from the cached failure
			code, r := h.call(t, "syntax", lc.syntax, map[string]any{}, nil)
			require.Equal(t, http.StatusUnprocessableEntity, code)
			require.Equal(t, "CompileError", r.Error.Type)
			require.Contains(t, r.Error.Message, lc.syntaxAt)
		}
	})

	t.Run("source required then resent", func(t *testing.T) {
		t.Parallel()
		src := fmt.Sprintf("%s\n%s %s %d\n", lc.add, lc.comment, t.Name(), time.Now().UnixNano())
		body := map[string]any{"function": "fresh", "version": 1, "sha256": sum(src), "event": map[string]int{"a": 1, "b": 1}, "timeout_ms": 10000}
		code, r := h.post(t, body)
		require.Equal(t, http.StatusPreconditionRequired, code)
		require.Equal(t, "SourceRequired", r.Error.Type)
		body["source"] = src
		code, r = h.post(t, body)
		require.Equal(t, http.StatusOK, code)
		require.JSONEq(t, `{"sum":2}`, string(r.Result))
		delete(body, "source")
		code, _ = h.post(t, body)
		require.Equal(t, http.StatusOK, code, "once seen, no source is needed")
	})

	t.Run("bad requests", func(t *testing.T) {
		t.Parallel()
		code, r := h.post(t, map[string]any{"function": "x", "sha256": sum("other"), "source": lc.add})
		require.Equal(t, http.StatusBadRequest, code)
		require.Equal(t, "BadRequest", r.Error.Type)
		code, _ = h.post(t, map[string]any{"function": "x", "sha256": "nothex"})
		require.Equal(t, http.StatusBadRequest, code)
	})

	t.Run("build only", func(t *testing.T) {
		t.Parallel()
		src := fmt.Sprintf("%s\n%s %s %d\n", lc.add, lc.comment, t.Name(), time.Now().UnixNano())
		code, r := h.post(t, map[string]any{"function": "built", "version": 1, "sha256": sum(src), "source": src, "build_only": true, "memory_mb": 128})
		require.Equal(t, http.StatusOK, code)
		require.Equal(t, "succeeded", r.Status)
		r = h.ok(t, "built", src, map[string]int{"a": 5, "b": 5}, "succeeded", nil)
		require.JSONEq(t, `{"sum":10}`, string(r.Result))
		require.False(t, r.Cold, "build_only leaves a warm worker behind")
	})

	if lc.async != "" {
		t.Run("async handler", func(t *testing.T) {
			t.Parallel()
			for range 2 {
				r := h.ok(t, "async", lc.async, map[string]any{}, "succeeded", nil)
				require.JSONEq(t, `"async"`, string(r.Result))
			}
		})
	}

	t.Run("environment isolation", func(t *testing.T) {
		t.Parallel()
		r := h.ok(t, "env", lc.envProbe, map[string]any{}, "succeeded", map[string]any{"env": map[string]string{"MY_VAR": "mine"}})
		var got struct {
			Secret *string  `json:"secret"`
			Lambda []string `json:"lambda"`
			Mine   string   `json:"mine"`
			DB     *string  `json:"db"`
		}
		require.NoError(t, json.Unmarshal(r.Result, &got))
		require.Nil(t, got.Secret, "the host's LAMBDA_TEST_SECRET leaked")
		require.Nil(t, got.DB, "the host's DATABASE_URL leaked")
		require.Empty(t, got.Lambda, "LAMBDA_* variables leaked")
		require.Equal(t, "mine", got.Mine)
		require.NotContains(t, string(r.Result)+r.Stdout, secretValue)
	})

	t.Run("version isolation", func(t *testing.T) {
		t.Parallel()
		r := h.ok(t, "iso-a", lc.isoA, map[string]any{}, "succeeded", nil)
		require.JSONEq(t, `1`, string(r.Result))
		r = h.ok(t, "iso-a", lc.isoA, map[string]any{}, "succeeded", nil)
		require.JSONEq(t, `2`, string(r.Result), "warm reuse keeps the version's own state")
		r = h.ok(t, "iso-b", lc.isoB, map[string]any{}, "succeeded", nil)
		require.JSONEq(t, `{"global":null,"file":false}`, string(r.Result))
		// The same script under another function name gets its own worker too.
		r = h.ok(t, "iso-a-twin", lc.isoA, map[string]any{}, "succeeded", nil)
		require.JSONEq(t, `1`, string(r.Result))
	})
}
