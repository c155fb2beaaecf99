package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/runtimehost"
	"github.com/lambda-microservice/lambda/runtimes"
)

// buildWheel builds a wheel of a one-module project name==version holding about padKB of
// source into house (offline: pip wheel of a local directory).
func buildWheel(t *testing.T, house, name, version string, padKB int) {
	t.Helper()
	proj := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.MkdirAll(filepath.Join(proj, name), 0o755))
	src := fmt.Sprintf("PAD = %q\n\ndef hello(n):\n    return 'hello ' + n\n", strings.Repeat("x", padKB<<10))
	require.NoError(t, os.WriteFile(filepath.Join(proj, name, "__init__.py"), []byte(src), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(proj, "pyproject.toml"), []byte(`[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "`+name+`"
version = "`+version+`"
`), 0o644))
	out, err := exec.Command("/usr/bin/python3", "-I", "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
		"-w", house, proj).CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// A registration whose packages install larger than LAMBDA_MAX_DEPS_MB is refused with a
// problem naming the limit, and nothing is stored: the api resolves and builds through
// a real Python runtime host, which installs with its own limit.
func TestDependenciesOverTheSizeLimit(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-I", "-m", "pip", "--version").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("/usr/bin/python3 -m pip is missing (CI=true)")
		}
		t.Skip("/usr/bin/python3 -m pip (python3-pip) is missing locally")
	}
	// The wheels compress the padding: resolving downloads little, installing writes it.
	house := t.TempDir()
	buildWheel(t, house, "smalllib", "1.0.0", 4)
	buildWheel(t, house, "biglib", "1.0.0", 1536)

	reg, err := runtimes.Load("../runtimes/runtimes.yaml")
	require.NoError(t, err)
	rt, ok := reg.Lookup("python")
	require.True(t, ok)
	engine, err := deps.New(deps.Config{Dir: t.TempDir(), MaxInstallBytes: 1 << 20, CacheBytes: 64 << 20,
		Getenv: func(k string) string { return map[string]string{"LAMBDA_PIP_WHEELHOUSE": house}[k] }})
	require.NoError(t, err)
	const secret = "a-runtime-secret-for-the-size-test"
	var cfg runtimehost.Config
	require.NoError(t, env.ParseWithOptions(&cfg, env.Options{Environment: map[string]string{
		"LAMBDA_RUNTIME": "python", "LAMBDA_RUNTIME_CACHE_DIR": t.TempDir(), "LAMBDA_RUNTIME_SECRET": secret}}))
	require.NoError(t, cfg.Validate())
	promReg := prometheus.NewRegistry()
	host, err := runtimehost.New(runtimehost.Options{Config: cfg, Runtime: rt, BuildEnv: runtimehost.BuildEnviron(rt, os.Getenv),
		Deps: engine, Metrics: metrics.NewRuntime(promReg), HTTP: metrics.NewHTTP(promReg), Logger: zap.NewNop()})
	require.NoError(t, err)
	host.Start()
	t.Cleanup(host.Close)
	require.Eventually(t, host.Ready, time.Minute, 10*time.Millisecond, "%s", host.Problem())
	srv := httptest.NewServer(runtimehost.NewServer(host, promReg))
	t.Cleanup(srv.Close)
	fx, err := faas.New(faas.Config{GatewayURL: srv.URL, Route: faas.RouteDirect, EndpointTemplate: srv.URL, RuntimeSecret: secret})
	require.NoError(t, err)

	f := newFixture(t, collaboratorsOption(func(d *core.Deps) { d.Registry, d.Runner, d.Deps = reg, fx, fx }))
	src := "import {{.}}\n\ndef handler(event, context):\n    return {{.}}.hello(event['n'])\n"

	r := f.do(t, "POST", "/v1/functions", registerDeps("small", "python", strings.ReplaceAll(src, "{{.}}", "smalllib"),
		map[string]string{"smalllib": "1.0.0"}))
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	functions, versions := f.count(t, "functions"), f.count(t, "function_versions")

	r = f.do(t, "POST", "/v1/functions", registerDeps("big", "python", strings.ReplaceAll(src, "{{.}}", "biglib"),
		map[string]string{"biglib": "1.0.0"}))
	require.Equal(t, http.StatusRequestEntityTooLarge, r.status, r.raw)
	require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
	require.Contains(t, r.body["detail"], "LAMBDA_MAX_DEPS_MB")
	require.Equal(t, functions, f.count(t, "functions"), "nothing stored")
	require.Equal(t, versions, f.count(t, "function_versions"), "nothing stored")
	require.Equal(t, http.StatusNotFound, f.do(t, "GET", "/v1/functions/big", "").status)

	// An update asking for the big set is refused the same way; the function keeps its version.
	r = f.do(t, "PUT", "/v1/functions/small", registerDeps("small", "", strings.ReplaceAll(src, "{{.}}", "biglib"),
		map[string]string{"biglib": "1.0.0"}))
	require.Equal(t, http.StatusRequestEntityTooLarge, r.status, r.raw)
	require.Equal(t, versions, f.count(t, "function_versions"), "nothing stored")
}
