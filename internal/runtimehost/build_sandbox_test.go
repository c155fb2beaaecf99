package runtimehost_test

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A build is user input too: it runs as an unprivileged uid of its own, without network,
// seeing its own folder, the toolchain and the prepared dependencies only. Reading a host
// file or another script's source fails without leaking it, the diagnostics show paths
// relative to the script, and a slow build does not hold up another script's.
func TestRustBuildIsSandboxed(t *testing.T) {
	requireSandbox(t)
	t.Parallel()
	h := newHarness(t, bundledRegistry, "rust", rustCache, map[string]string{"LAMBDA_RUNTIME_BUILDS": "4", "LAMBDA_RUNTIME_BUILD_TIMEOUT": "25s"})
	nonce := randomHex(6)
	victim := rustCases.add + "\n// victim-marker-" + nonce + "\n"
	h.ok(t, "victim", victim, map[string]int{"a": 1, "b": 2}, "succeeded", map[string]any{"timeout_ms": 120000, "tenant": "victim"})

	compileFails := func(t *testing.T, name, src string) string {
		t.Helper()
		code, r := h.call(t, name, src, map[string]any{}, map[string]any{"timeout_ms": 120000, "tenant": "mallory"})
		require.Equal(t, http.StatusUnprocessableEntity, code, "%+v", r)
		t.Logf("%s: %.300s", name, r.Error.Message)
		return r.Error.Message
	}
	wrap := func(expr string) string {
		return fmt.Sprintf(`use serde_json::{json, Value};
fn handler(_e: Value, _c: &Context) -> Result<Value, String> {
    Ok(json!(%s))
}
// %s
`, expr, randomHex(6))
	}
	t.Run("include /etc/shadow", func(t *testing.T) {
		msg := compileFails(t, "shadow", wrap(`include_str!("/etc/shadow")`))
		require.NotContains(t, msg, "root:")
	})
	t.Run("include another script's source", func(t *testing.T) {
		msg := compileFails(t, "steal", wrap(`include_str!("../`+sum(victim)+`/handler.rs")`))
		require.NotContains(t, msg, "victim-marker-"+nonce)
	})
	t.Run("include the host's cache listing", func(t *testing.T) {
		msg := compileFails(t, "list", wrap(`include_bytes!("/proc/1/environ").len()`))
		require.NotContains(t, msg, secretValue)
	})
	t.Run("diagnostics are relative", func(t *testing.T) {
		msg := compileFails(t, "typo", wrap(`undefined_thing`))
		require.Contains(t, msg, "handler.rs")
		require.NotContains(t, msg, rustCache, "no host path in the diagnostics")
	})
	t.Run("a slow build holds up no other", func(t *testing.T) {
		// Const evaluation that keeps rustc busy for a long while.
		slow := `use serde_json::{json, Value};
const fn spin(n: u64) -> u64 { let mut i = 0; let mut s = 0u64; while i < n { s = s.wrapping_mul(31).wrapping_add(i); i += 1; } s }
#[allow(long_running_const_eval)]
const X: u64 = spin(3_000_000_000);
fn handler(_e: Value, _c: &Context) -> Result<Value, String> { Ok(json!(X)) }
// ` + randomHex(6) + "\n"
		var wg sync.WaitGroup
		wg.Add(1)
		slowDone := make(chan time.Time, 1)
		go func() {
			defer wg.Done()
			code, r := h.call(t, "slow", slow, map[string]any{}, map[string]any{"timeout_ms": 60000, "tenant": "mallory"})
			t.Logf("slow build: %d %.200s", code, errMessage(r))
			if code != http.StatusUnprocessableEntity || !strings.Contains(r.Error.Message, "longer than") {
				t.Errorf("a build over its time is a compile error: %d %+v", code, r.Error)
			}
			slowDone <- time.Now()
		}()
		time.Sleep(500 * time.Millisecond) // the slow build is under way
		quick := rustCases.add + "\n// quick " + randomHex(6) + "\n"
		r := h.ok(t, "quick", quick, map[string]int{"a": 2, "b": 3}, "succeeded", map[string]any{"timeout_ms": 120000, "tenant": "bystander"})
		require.JSONEq(t, `{"sum":5}`, string(r.Result))
		select {
		case <-slowDone:
			t.Fatal("the slow build ended before the quick one: it did not keep rustc busy")
		default: // the quick build finished while the slow one still ran
		}
		wg.Wait()
	})
	// The victim is untouched, and nothing of the builds is left running.
	r := h.ok(t, "victim", victim, map[string]int{"a": 1, "b": 2}, "succeeded", map[string]any{"tenant": "victim"})
	require.JSONEq(t, `{"sum":3}`, string(r.Result))
	entries, _ := os.ReadDir(rustCache)
	for _, e := range entries {
		require.False(t, strings.HasPrefix(e.Name(), "target"), "no shared target is written by scripts")
	}
}

func errMessage(r response) string {
	if r.Error == nil {
		return r.Status
	}
	return r.Error.Type + ": " + r.Error.Message
}

// A traceback names the script's file, never where the host keeps it.
func TestTracebackPathsAreRelative(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	h := newHarness(t, bundledRegistry, "python", cache, map[string]string{"LAMBDA_SANDBOX": "off"})
	src := "def handler(event, context):\n    raise ValueError('kaboom')\n# " + randomHex(6) + "\n"
	r := h.ok(t, "tb", src, map[string]any{}, "failed", nil)
	require.Equal(t, "ValueError", r.Error.Type)
	require.Contains(t, r.Error.Stack, "handler.py")
	require.NotContains(t, r.Error.Stack, cache)
	require.NotContains(t, r.Error.Message, cache)
}
