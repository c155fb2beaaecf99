package runtimehost_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/runtimehost"
	"github.com/lambda-microservice/lambda/runtimes"
)

// needDepsTool skips when an installer is missing, except under CI=true (.ci/run installs
// them), where it fails.
func needDepsTool(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (CI=true)", what)
	}
	t.Skipf("%s is missing locally: skipping", what)
}

// depsHarness is a host for title whose dependency engine is engine (a private cache);
// extra are more of the host's variables.
func depsHarness(t *testing.T, title, cacheDir string, engine *deps.Engine, extra ...map[string]string) (*harness, *runtimes.Runtime) {
	t.Helper()
	reg, err := runtimes.Load(bundledRegistry)
	require.NoError(t, err)
	rt, ok := reg.Lookup(title)
	require.True(t, ok)
	require.NotNil(t, rt.Deps, "the %s registry entry declares its dependencies", title)
	if cacheDir == "" {
		cacheDir = t.TempDir()
	}
	vars := map[string]string{"LAMBDA_RUNTIME": title, "LAMBDA_RUNTIME_CACHE_DIR": cacheDir, "LAMBDA_RUNTIME_SECRET": testSecret}
	for _, e := range extra {
		maps.Copy(vars, e)
	}
	var cfg runtimehost.Config
	require.NoError(t, env.ParseWithOptions(&cfg, env.Options{Environment: vars}))
	require.NoError(t, cfg.Validate())
	promReg := prometheus.NewRegistry()
	host, err := runtimehost.New(runtimehost.Options{
		Config: cfg, Runtime: rt, BuildEnv: runtimehost.BuildEnviron(rt, os.Getenv), Deps: engine,
		Metrics: metrics.NewRuntime(promReg), HTTP: metrics.NewHTTP(promReg), Logger: zap.NewNop(),
	})
	require.NoError(t, err)
	host.Start()
	t.Cleanup(host.Close)
	deadline := time.Now().Add(3 * time.Minute)
	for !host.Ready() {
		require.Empty(t, host.Problem())
		require.True(t, time.Now().Before(deadline), "host %s never became ready", title)
		time.Sleep(10 * time.Millisecond)
	}
	return &harness{host: host, handler: runtimehost.NewServer(host, promReg)}, rt
}

func newDepsEngine(t *testing.T, vars map[string]string) *deps.Engine {
	t.Helper()
	e, err := deps.New(deps.Config{Dir: t.TempDir(), Getenv: func(k string) string { return vars[k] }})
	require.NoError(t, err)
	return e
}

// callLocked invokes src with lock the way the platform does (sha256 = deps.BuildHash).
func (h *harness) callLocked(t *testing.T, fn, src string, lock *deps.Lock, event any) (int, response) {
	t.Helper()
	return h.call(t, fn, src, event, map[string]any{"sha256": deps.BuildHash(src, lock), "lock": lock})
}

func TestDepsNodeRegistryPackage(t *testing.T) {
	_, err := exec.LookPath("npm")
	needDepsTool(t, err == nil, "npm")
	engine := newDepsEngine(t, nil)
	h, rt := depsHarness(t, "node", "", engine)
	lock, err := engine.Resolve(context.Background(), rt.Deps, map[string]string{"is-number": "7.0.0"})
	require.NoError(t, err)
	src := "const isNumber = require('is-number');\nexports.handler = (e) => ({n: isNumber(e.x), s: isNumber('x')});\n"
	code, r := h.callLocked(t, "isn", src, lock, map[string]any{"x": 5})
	require.Equal(t, http.StatusOK, code, "%+v", r.Error)
	require.Equal(t, "succeeded", r.Status, "%+v", r.Error)
	require.JSONEq(t, `{"n":true,"s":false}`, string(r.Result))
	require.True(t, r.Cold)
	code, r = h.callLocked(t, "isn", src, lock, map[string]any{"x": 6})
	require.Equal(t, http.StatusOK, code)
	require.False(t, r.Cold, "warm afterwards")
	require.Equal(t, int64(1), engine.InstallRuns())

	// The same source without the lock is another build, and finds no package.
	code, r = h.call(t, "isn-bare", src, map[string]any{"x": 5}, nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "failed", r.Status)
	require.Contains(t, r.Error.Message, "is-number")

	// A lock whose hash does not cover its files is refused.
	bad := *lock
	bad.Hash = deps.HashFiles("node", map[string][]byte{"x": nil})
	code, r = h.call(t, "isn-bad", src, nil, map[string]any{"sha256": deps.BuildHash(src, &bad), "lock": &bad, "source": src})
	require.Equal(t, http.StatusBadRequest, code, "%+v", r.Error)
}

// Two new scripts sharing a new lock, built at once: both run, the packages install once.
func TestDepsConcurrentBuildsInstallOnce(t *testing.T) {
	_, err := exec.LookPath("npm")
	needDepsTool(t, err == nil, "npm")
	engine := newDepsEngine(t, nil)
	h, rt := depsHarness(t, "node", "", engine)
	lock, err := engine.Resolve(context.Background(), rt.Deps, map[string]string{"is-number": "^7"})
	require.NoError(t, err)
	var wg sync.WaitGroup
	codes := make([]int, 2)
	results := make([]string, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprintf("const n = require('is-number');\nexports.handler = (e) => [%d, n(e.x)];\n", i)
			code, r := h.callLocked(t, fmt.Sprintf("f%d", i), src, lock, map[string]any{"x": 1})
			codes[i], results[i] = code, string(r.Result)
		}()
	}
	wg.Wait()
	require.Equal(t, []int{200, 200}, codes)
	require.Equal(t, []string{"[0,true]", "[1,true]"}, results)
	require.Equal(t, int64(1), engine.InstallRuns(), "one install for both")
	require.Len(t, engine.Entries(), 1)
}

func TestDepsPythonWheelhouse(t *testing.T) {
	err := exec.Command("/usr/bin/python3", "-I", "-m", "pip", "--version").Run()
	needDepsTool(t, err == nil, "/usr/bin/python3 -m pip (python3-pip)")
	// A wheel built offline from a tiny local project.
	dir := t.TempDir()
	proj, house := filepath.Join(dir, "proj"), filepath.Join(dir, "wheelhouse")
	require.NoError(t, os.MkdirAll(filepath.Join(proj, "greetlib"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(proj, "greetlib", "__init__.py"), []byte("def hello(n):\n    return 'hello ' + n\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(proj, "pyproject.toml"), []byte(`[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "greetlib"
version = "1.2.0"
`), 0o644))
	out, err := exec.Command("/usr/bin/python3", "-I", "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
		"-w", house, proj).CombinedOutput()
	require.NoError(t, err, "%s", out)

	engine := newDepsEngine(t, map[string]string{"LAMBDA_PIP_WHEELHOUSE": house})
	h, rt := depsHarness(t, "python", "", engine)
	lock, err := engine.Resolve(context.Background(), rt.Deps, map[string]string{"greetlib": "1.2.0"})
	require.NoError(t, err)
	require.Contains(t, string(lock.Files["requirements.txt"]), "greetlib==1.2.0 --hash=sha256:")
	src := "import greetlib\n\ndef handler(event, context):\n    return greetlib.hello(event['n'])\n"
	code, r := h.callLocked(t, "greet", src, lock, map[string]any{"n": "py"})
	require.Equal(t, http.StatusOK, code, "%+v", r.Error)
	require.Equal(t, "succeeded", r.Status, "%+v", r.Error)
	require.Equal(t, `"hello py"`, string(r.Result))
	_, r = h.callLocked(t, "greet", src, lock, map[string]any{"n": "again"})
	require.False(t, r.Cold)
	require.Equal(t, `"hello again"`, string(r.Result))
}

func TestDepsRustDebianCrate(t *testing.T) {
	_, err := exec.LookPath("cargo")
	if err != nil {
		_, err = os.Stat(filepath.Join(os.Getenv("HOME"), ".cargo", "bin", "cargo"))
	}
	needDepsTool(t, err == nil, "cargo")
	m, _ := filepath.Glob("/usr/share/cargo/registry/itoa-*")
	needDepsTool(t, len(m) > 0, "librust-itoa-dev")
	engine, err := deps.New(deps.Config{Dir: t.TempDir()}) // the host's PATH finds rustup's cargo
	require.NoError(t, err)
	h, rt := depsHarness(t, "rust", rustCache, engine)
	lock, err := engine.Resolve(context.Background(), rt.Deps, map[string]string{"itoa": "1"})
	require.NoError(t, err)
	src := `use serde_json::{json, Value};

fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    let mut buf = itoa::Buffer::new();
    Ok(json!(buf.format(event["n"].as_i64().unwrap_or(0)).to_string()))
}
`
	code, r := h.callLocked(t, "itoa", src, lock, map[string]any{"n": 1234})
	require.Equal(t, http.StatusOK, code, "%+v", r.Error)
	require.Equal(t, "succeeded", r.Status, "%+v", r.Error)
	require.Equal(t, `"1234"`, string(r.Result))
	_, r = h.callLocked(t, "itoa", src, lock, map[string]any{"n": 7})
	require.False(t, r.Cold)
	require.Equal(t, `"7"`, string(r.Result))
}

// An install the installer refuses (here: the host's registry has lost the package) is a
// 422 with npm's message, and is not remembered: the next call, with the package back,
// installs and runs.
func TestDepsInstallFailureNotCached(t *testing.T) {
	_, err := exec.LookPath("npm")
	needDepsTool(t, err == nil, "npm")
	resolver := newDepsEngine(t, nil)
	empty := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(empty.Close)
	var mu sync.Mutex
	vars := map[string]string{"LAMBDA_NPM_REGISTRY": empty.URL + "/"}
	hostEngine, err := deps.New(deps.Config{Dir: t.TempDir(), Getenv: func(k string) string {
		mu.Lock()
		defer mu.Unlock()
		return vars[k]
	}})
	require.NoError(t, err)
	h, rt := depsHarness(t, "node", "", hostEngine)
	lock, err := resolver.Resolve(context.Background(), rt.Deps, map[string]string{"is-number": "7.0.0"})
	require.NoError(t, err)
	src := "const n = require('is-number');\nexports.handler = (e) => n(e.x);\n"
	code, r := h.callLocked(t, "isn", src, lock, map[string]any{"x": 1})
	require.Equal(t, http.StatusUnprocessableEntity, code, "%+v", r)
	require.Contains(t, r.Error.Message, "node dependencies: install failed (")
	require.Contains(t, r.Error.Message, "npm error code E404")
	require.Empty(t, hostEngine.Entries())

	mu.Lock()
	vars["LAMBDA_NPM_REGISTRY"] = "https://registry.npmjs.org/"
	mu.Unlock()
	code, r = h.callLocked(t, "isn", src, lock, map[string]any{"x": 1})
	require.Equal(t, http.StatusOK, code, "%+v", r.Error)
	require.Equal(t, "true", string(r.Result))
}
