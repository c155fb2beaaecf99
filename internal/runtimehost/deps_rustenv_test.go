package runtimehost_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/deps"
)

// A Rust worker of a version with dependencies sees its version's env and none of the
// host's variables: the cargo settings of its install (LAMBDA_CARGO_*) are the build's only.
func TestDepsRustWorkerSeesNoHostVariables(t *testing.T) {
	_, err := exec.LookPath("cargo")
	if err != nil {
		_, err = os.Stat(filepath.Join(os.Getenv("HOME"), ".cargo", "bin", "cargo"))
	}
	needDepsTool(t, err == nil, "cargo")
	m, _ := filepath.Glob("/usr/share/cargo/registry/itoa-*")
	needDepsTool(t, len(m) > 0, "librust-itoa-dev")
	t.Setenv("LAMBDA_HOST_ONLY_MARKER", "host")
	engine, err := deps.New(deps.Config{Dir: t.TempDir()})
	require.NoError(t, err)
	h, rt := depsHarness(t, "rust", rustCache, engine)
	lock, err := engine.Resolve(context.Background(), rt.Deps, map[string]string{"itoa": "1"})
	require.NoError(t, err)
	src := `use serde_json::{json, Value};

fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    let mut buf = itoa::Buffer::new();
    let names: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    Ok(json!({"n": buf.format(42).to_string(), "env": names}))
}
`
	code, r := h.call(t, "rust-env", src, nil, map[string]any{"sha256": deps.BuildHash(src, lock), "lock": lock,
		"env": map[string]string{"GREETING": "hi"}})
	require.Equal(t, http.StatusOK, code, "%+v", r.Error)
	require.Equal(t, "succeeded", r.Status, "%+v", r.Error)
	var out struct {
		N   string   `json:"n"`
		Env []string `json:"env"`
	}
	require.NoError(t, json.Unmarshal(r.Result, &out))
	require.Equal(t, "42", out.N, "built with the locked crate")
	require.Contains(t, out.Env, "GREETING", "the version's env")
	for _, k := range out.Env {
		require.False(t, strings.HasPrefix(k, "LAMBDA_CARGO_"), "the worker sees %s (all: %v)", k, out.Env)
		require.False(t, strings.HasPrefix(k, "CARGO"), "the worker sees %s (all: %v)", k, out.Env)
		require.NotEqual(t, "LAMBDA_HOST_ONLY_MARKER", k, "a host variable reached the worker")
	}
	t.Logf("a Rust worker's environment: %v", out.Env)
}
