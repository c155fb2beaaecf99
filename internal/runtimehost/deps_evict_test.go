package runtimehost_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/deps"
)

// buildWheels builds greetlib wheels of the given versions, each with about padKB of
// source, into a new wheelhouse.
func buildWheels(t *testing.T, padKB int, versions ...string) string {
	t.Helper()
	dir := t.TempDir()
	house := filepath.Join(dir, "wheelhouse")
	for _, v := range versions {
		proj := filepath.Join(dir, "proj-"+v)
		require.NoError(t, os.MkdirAll(filepath.Join(proj, "greetlib"), 0o755))
		src := fmt.Sprintf("PAD = %q\n\ndef hello(n):\n    return 'hello %s ' + n\n", strings.Repeat("x", padKB<<10), v)
		require.NoError(t, os.WriteFile(filepath.Join(proj, "greetlib", "__init__.py"), []byte(src), 0o644))
		require.NoError(t, os.WriteFile(filepath.Join(proj, "pyproject.toml"), []byte(`[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "greetlib"
version = "`+v+`"
`), 0o644))
		out, err := exec.Command("/usr/bin/python3", "-I", "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
			"-w", house, proj).CombinedOutput()
		require.NoError(t, err, "%s", out)
	}
	return house
}

// A host holds an install directory while a call or a warm worker of a version uses it,
// then lets it go: the cache stays within LAMBDA_DEPS_CACHE_MB once workers are gone, and a
// later call of an evicted version installs it again.
func TestDepsHoldsEndWithTheWorkers(t *testing.T) {
	err := exec.Command("/usr/bin/python3", "-I", "-m", "pip", "--version").Run()
	needDepsTool(t, err == nil, "/usr/bin/python3 -m pip (python3-pip)")
	house := buildWheels(t, 64, "1.0.0", "1.1.0")
	vars := map[string]string{"LAMBDA_PIP_WHEELHOUSE": house}
	getenv := func(k string) string { return vars[k] }
	ctx := context.Background()

	// The size of one install, measured with an engine of its own.
	probe, err := deps.New(deps.Config{Dir: t.TempDir(), Getenv: getenv})
	require.NoError(t, err)
	_, rt := depsHarness(t, "python", "", probe)
	lockA, err := probe.Resolve(ctx, rt.Deps, map[string]string{"greetlib": "1.0.0"})
	require.NoError(t, err)
	in, err := probe.Install(ctx, rt.Deps, lockA)
	require.NoError(t, err)
	in.Release()
	require.Positive(t, in.Size)

	// A cache with room for one install and a half.
	room := in.Size * 3 / 2
	engine, err := deps.New(deps.Config{Dir: t.TempDir(), Getenv: getenv, CacheBytes: room, MaxInstallBytes: room})
	require.NoError(t, err)
	h, rt := depsHarness(t, "python", "", engine, map[string]string{"LAMBDA_RUNTIME_IDLE_TIMEOUT": "10s"}) // above an install under load
	lockA, err = engine.Resolve(ctx, rt.Deps, map[string]string{"greetlib": "1.0.0"})
	require.NoError(t, err)
	lockB, err := engine.Resolve(ctx, rt.Deps, map[string]string{"greetlib": "1.1.0"})
	require.NoError(t, err)
	src := "import greetlib\n\ndef handler(event, context):\n    return greetlib.hello(event['n'])\n"
	call := func(lock *deps.Lock, want string) {
		t.Helper()
		code, r := h.callLocked(t, "greet", src, lock, map[string]any{"n": "x"})
		require.Equal(t, 200, code, "%+v", r.Error)
		require.Equal(t, "succeeded", r.Status, "%+v", r.Error)
		require.Equal(t, `"`+want+`"`, string(r.Result))
	}
	call(lockA, "hello 1.0.0 x")
	call(lockB, "hello 1.1.0 x")
	require.Equal(t, int64(2), engine.InstallRuns())
	installs := func() []string {
		var out []string
		for _, e := range engine.Entries() {
			out = append(out, e.Hash)
		}
		slices.Sort(out)
		return out
	}
	require.Len(t, installs(), 2, "both held while their calls and workers ran")

	// The idle workers stop (LAMBDA_RUNTIME_IDLE_TIMEOUT): nothing holds either install,
	// and eviction brings the cache back within its size, the least recently used first.
	require.Eventually(t, func() bool {
		engine.Evict()
		return slices.Equal(installs(), []string{lockB.Hash})
	}, 60*time.Second, 250*time.Millisecond, "installs left: %v", installs())

	// The evicted version runs again: its packages are installed again.
	call(lockA, "hello 1.0.0 x")
	require.Equal(t, int64(3), engine.InstallRuns())
}
