package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/cli/client"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden with the output of this run")

// call is one request the fake API received.
type call struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
}

// line is "METHOD /path?query".
func (c call) line() string {
	if c.Query == "" {
		return c.Method + " " + c.Path
	}
	return c.Method + " " + c.Path + "?" + c.Query
}

// fakeAPI is an httptest server speaking the documented API from canned answers: each
// route (a ServeMux pattern such as "GET /v1/functions/{name}") answers what the test
// set; anything else is a problem+json 404. It records every request.
type fakeAPI struct {
	*httptest.Server
	mux   *http.ServeMux
	mu    sync.Mutex
	calls []call
}

func newFake(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{mux: http.NewServeMux()}
	f.mux.HandleFunc("/", problem(404, "urn:lambda:problem:not_found", "no such route"))
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.calls = append(f.calls, call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Header: r.Header.Clone(), Body: string(body)})
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		w.Header().Set("X-Request-Id", "req-1")
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// on answers pattern with h.
func (f *fakeAPI) on(pattern string, h http.HandlerFunc) *fakeAPI {
	f.mux.HandleFunc(pattern, h)
	return f
}

func (f *fakeAPI) received() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// lines are the requests received as "METHOD /path?query".
func (f *fakeAPI) lines() []string {
	var out []string
	for _, c := range f.received() {
		out = append(out, c.line())
	}
	return out
}

// reply answers status with v as JSON (a string is sent as is).
func reply(status int, v any, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if s, ok := v.(string); ok {
			io.WriteString(w, s)
			return
		}
		if v != nil {
			_ = json.NewEncoder(w).Encode(v)
		}
	}
}

// problem answers an RFC 9457 problem.
func problem(status int, typ, detail string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"type": typ, "title": http.StatusText(status),
			"status": status, "detail": detail, "instance": r.URL.Path, "request_id": "req-1"})
	}
}

// sequence answers with each handler in turn, the last one from then on.
func sequence(hs ...http.HandlerFunc) http.HandlerFunc {
	var mu sync.Mutex
	i := 0
	return func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		h := hs[min(i, len(hs)-1)]
		i++
		mu.Unlock()
		h(w, r)
	}
}

// result is what one command run printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// golden is the stable text of a result: stdout, stderr and exit code.
func (r result) golden() string {
	return fmt.Sprintf("-- stdout --\n%s-- stderr --\n%s-- exit %d --\n", r.stdout, r.stderr, r.code)
}

// env is a test's environment: the fake's address and a token unless overridden.
type env map[string]string

// cli runs the lambda root with the user commands mounted, as the binary does, with
// no terminal, a fixed clock and a private config directory.
type cli struct {
	env       env
	stdin     string
	configDir string
}

func (c cli) run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	root := &cobra.Command{Use: "lambda", SilenceErrors: true, SilenceUsage: true}
	dir := c.configDir
	if dir == "" {
		dir = t.TempDir()
	}
	Mount(root, Options{
		In: strings.NewReader(c.stdin), Out: &out, Err: &errb,
		Getenv:     func(k string) string { return c.env[k] },
		IsTerminal: func(any) bool { return false },
		ConfigDir:  dir,
		Now:        func() time.Time { return testNow },
	})
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errb)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code := Execute(ctx, root, &errb)
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

// on runs against f with LAMBDA_API and LAMBDA_TOKEN set.
func on(f *fakeAPI) cli {
	return cli{env: env{"LAMBDA_API": f.URL, "LAMBDA_TOKEN": "tok"}}
}

var testNow = time.Date(2026, 12, 1, 10, 0, 5, 0, time.UTC)

// checkGolden compares got with testdata/name.golden, or rewrites it under -update.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test -update to create %s", path)
	require.Equal(t, string(want), got, "output differs from %s (go test -update rewrites it)", path)
}

// writeFiles writes name → content under a new temporary directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return dir
}

// Canned API objects.
const (
	execID = "0193a5c4-8e1f-7c2a-9d3b-4f5e6a7b8c9d"
	runID  = "0193a5c4-0000-7000-8000-00000000a001"
)

func fnJSON(name, language string, version int) map[string]any {
	return map[string]any{"name": name, "language": language, "version": version,
		"sha256":     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		"timeout_ms": 3000, "memory_mb": 128, "cache_ttl_s": 0, "env": nil,
		"created_at": "2026-12-01T10:00:00Z", "function_created_at": "2026-11-30T09:00:00Z"}
}

func execJSON(status string, extra map[string]any) map[string]any {
	e := map[string]any{"id": execID, "function": "add", "version": 1, "language": "python", "mode": "sync",
		"status": status, "result": nil, "error": nil, "stdout": "", "stderr": "", "truncated": false,
		"duration_ms": 1.7, "cached": false, "attempts": 1, "created_at": "2026-12-01T10:00:00Z", "finished_at": nil}
	if client.Finished(status) {
		e["finished_at"] = "2026-12-01T10:00:00.0017Z"
	}
	for k, v := range extra {
		e[k] = v
	}
	return e
}
