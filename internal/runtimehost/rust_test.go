package runtimehost_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

var rustCases = langCases{
	registry: bundledRegistry,
	title:    "rust",
	add: `use serde_json::{json, Value};

fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    let a = event["a"].as_i64().ok_or("a must be an integer")?;
    let b = event["b"].as_i64().ok_or("b must be an integer")?;
    Ok(json!({ "sum": a + b }))
}
`,
	output: `use serde_json::Value;

fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    let tag = event["tag"].as_str().unwrap_or_default().to_string();
    println!("out-{}", tag);
    eprintln!("err-{}", tag);
    std::process::Command::new("sh").arg("-c").arg(format!("echo native-{}", tag)).status().map_err(|e| e.to_string())?;
    Ok(Value::String(tag))
}
`,
	raise: `use serde_json::Value;

fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    Err("kaboom: the input was wrong".to_string())
}
`,
	raiseType: "Error",
	sleep: `use serde_json::{json, Value};

fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    std::thread::sleep(std::time::Duration::from_millis(event["ms"].as_u64().unwrap_or(0)));
    Ok(json!("slept"))
}
`,
	exit: `use serde_json::{json, Value};

fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    if event["exit"].as_bool().unwrap_or(false) {
        std::process::exit(3);
    }
    Ok(json!("alive"))
}
`,
	bigPrint: `use serde_json::{json, Value};

fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    let n = event["n"].as_u64().unwrap_or(0) as usize;
    print!("{}", "x".repeat(n));
    Ok(json!(n))
}
`,
	syntax: `use serde_json::Value;

fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    let x: i32 = "not a number";
    Ok(event)
}
`,
	comment:  "//",
	syntaxAt: "handler.rs:4",
	envProbe: `use serde_json::{json, Value};

fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    let lambda: Vec<String> = std::env::vars().map(|(k, _)| k).filter(|k| k.starts_with("LAMBDA")).collect();
    Ok(json!({
        "secret": std::env::var("LAMBDA_TEST_SECRET").ok(),
        "db": std::env::var("DATABASE_URL").ok(),
        "lambda": lambda,
        "mine": std::env::var("MY_VAR").ok(),
    }))
}
`,
	isoA: `use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

static CALLS: AtomicU64 = AtomicU64::new(0);

fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    std::env::set_var("LEAKED", "from-a");
    std::fs::write(std::env::temp_dir().join("leak.txt"), "a").map_err(|e| e.to_string())?;
    Ok(json!(CALLS.fetch_add(1, Ordering::SeqCst) + 1))
}
`,
	isoB: `use serde_json::{json, Value};

fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    Ok(json!({
        "global": std::env::var("LEAKED").ok(),
        "file": std::env::temp_dir().join("leak.txt").exists(),
    }))
}
`,
}

func TestRust(t *testing.T) {
	t.Parallel()
	c := rustCases
	c.cacheDir = rustCache
	runLanguageSuite(t, c)
}

func TestRustPanicAndContext(t *testing.T) {
	t.Parallel()
	h := newHarness(t, bundledRegistry, "rust", rustCache, nil)
	src := `use serde_json::{json, Value};

fn handler(event: Value, ctx: &Context) -> Result<Value, String> {
    if event["panic"].as_bool().unwrap_or(false) {
        let v: Vec<i32> = Vec::new();
        panic!("kaboom at index {}", v.len());
    }
    Ok(json!({ "fn": ctx.function, "v": ctx.version, "id": ctx.execution_id, "left": ctx.remaining_ms() > 0 }))
}
`
	r := h.ok(t, "panicky", src, map[string]bool{"panic": true}, "failed", map[string]any{"version": 4})
	require.Equal(t, "Panic", r.Error.Type)
	require.Equal(t, "kaboom at index 0", r.Error.Message)
	require.Contains(t, r.Error.Stack, "handler.rs:6")
	require.Contains(t, r.Stderr, "kaboom at index 0")
	r = h.ok(t, "panicky", src, map[string]bool{"panic": false}, "succeeded", map[string]any{"execution_id": "e-9", "version": 4})
	require.False(t, r.Cold, "the worker survives a panic")
	require.JSONEq(t, `{"fn":"panicky","v":4,"id":"e-9","left":true}`, string(r.Result))
}
