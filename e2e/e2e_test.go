package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestPythonRegisterInvokeReadBack is the walking skeleton: register over HTTP, invoke
// through the real OpenFaaS gateway, read the execution back from the api and from its
// request_logs row.
func TestPythonRegisterInvokeReadBack(t *testing.T) {
	t.Parallel()
	src := "def handler(event, context):\n    return {\"sum\": event[\"a\"] + event[\"b\"]}\n"
	r := call(t, "POST", "/v1/functions", `{"name":"py-add","source":`+quote(src)+`}`, "Language-Title", "python")
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	require.EqualValues(t, 1, r.body["version"])

	r = invoke(t, "py-add", "Python", `{"a":2,"b":40}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "succeeded", r.body["status"])
	require.Equal(t, map[string]any{"sum": 42.0}, r.body["result"])
	require.NotEmpty(t, r.header.Get("X-Request-Id"))
	id := r.body["id"].(string)

	got := call(t, "GET", "/v1/executions/"+id, "")
	require.Equal(t, http.StatusOK, got.status, got.raw)
	for _, k := range []string{"id", "function", "version", "language", "mode", "status", "result", "duration_ms", "cached"} {
		require.Equal(t, r.body[k], got.body[k], k)
	}

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, stack.DatabaseURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var title, status, function, mode string
	var payload, result []byte
	var duration float64
	var version int
	var cached bool
	var ts time.Time
	require.NoError(t, conn.QueryRow(ctx, `SELECT language_title, status, function, version, mode, payload, result,
		duration, cached, timestamp FROM request_logs WHERE id = $1`, id).
		Scan(&title, &status, &function, &version, &mode, &payload, &result, &duration, &cached, &ts))
	require.Equal(t, "Python", title, "the header as sent")
	require.Equal(t, "succeeded", status)
	require.Equal(t, "py-add", function)
	require.Equal(t, 1, version)
	require.Equal(t, "sync", mode)
	require.JSONEq(t, `{"a":2,"b":40}`, string(payload))
	require.JSONEq(t, `{"sum":42}`, string(result))
	require.False(t, cached)
	require.Greater(t, duration, 0.0)
	require.WithinDuration(t, time.Now(), ts, time.Minute)
}

// TestScriptSeesNoPlatformSecret reads the environment and /proc/1/environ from a script.
func TestScriptSeesNoPlatformSecret(t *testing.T) {
	t.Parallel()
	src := `import os
def handler(event, context):
    seen = dict(os.environ)
    try:
        seen["/proc/1/environ"] = open("/proc/1/environ", "rb").read().decode(errors="replace")
    except Exception as e:
        seen["/proc/1/environ"] = repr(e)
    return seen
`
	mustRegister(t, "py-env", "python", src, nil)
	r := invoke(t, "py-env", "python", `{}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	dump, err := json.Marshal(r.body["result"])
	require.NoError(t, err)
	for _, secret := range []string{"LAMBDA_", "postgres://", "redis://", stack.AdminToken} {
		require.NotContains(t, string(dump), secret)
	}
}

type language struct {
	title, alias                        string
	add, fail, sleep, exit, flood, echo string
	syntax                              string
	failType, syntaxHint                string
}

var languages = []language{
	{
		title: "python", alias: "py",
		add:        "def handler(event, context):\n    return {\"sum\": event[\"a\"] + event[\"b\"]}\n",
		fail:       "def handler(event, context):\n    raise ValueError(\"bad input\")\n",
		sleep:      "import time\ndef handler(event, context):\n    time.sleep(5)\n",
		exit:       "import os\ndef handler(event, context):\n    os._exit(1)\n",
		flood:      "def handler(event, context):\n    print(\"x\" * (10 * 1024 * 1024))\n    return \"done\"\n",
		echo:       "import sys\ndef handler(event, context):\n    print(\"hello from python\")\n    print(\"warning\", file=sys.stderr)\n    return context.function\n",
		syntax:     "def handler(event, context)\n    return 1\n",
		failType:   "ValueError",
		syntaxHint: "line 1",
	},
	{
		title: "node", alias: "javascript",
		add:        "exports.handler = async (event) => ({ sum: event.a + event.b });\n",
		fail:       "exports.handler = async () => { throw new TypeError('bad input'); };\n",
		sleep:      "exports.handler = () => new Promise((resolve) => setTimeout(resolve, 5000));\n",
		exit:       "exports.handler = () => { process.exit(1); };\n",
		flood:      "exports.handler = () => { console.log('x'.repeat(10 * 1024 * 1024)); return 'done'; };\n",
		echo:       "exports.handler = (event, context) => {\n  console.log('hello from node');\n  console.error('warning');\n  return context.functionName;\n};\n",
		syntax:     "exports.handler = () => {\n  return 1;\n",
		failType:   "TypeError",
		syntaxHint: "handler.js",
	},
	{
		title: "rust", alias: "rs",
		add: "use serde_json::{json, Value};\n\nfn handler(event: Value, _ctx: &Context) -> Result<Value, String> {\n" +
			"    Ok(json!({\"sum\": event[\"a\"].as_i64().unwrap_or(0) + event[\"b\"].as_i64().unwrap_or(0)}))\n}\n",
		fail: "use serde_json::Value;\n\nfn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {\n" +
			"    Err(\"bad input\".to_string())\n}\n",
		sleep: "use serde_json::Value;\n\nfn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {\n" +
			"    std::thread::sleep(std::time::Duration::from_secs(5));\n    Ok(Value::Null)\n}\n",
		exit: "use serde_json::Value;\n\nfn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {\n" +
			"    std::process::exit(1)\n}\n",
		flood: "use serde_json::{json, Value};\n\nfn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {\n" +
			"    println!(\"{}\", \"x\".repeat(10 * 1024 * 1024));\n    Ok(json!(\"done\"))\n}\n",
		echo: "use serde_json::{json, Value};\n\nfn handler(_event: Value, ctx: &Context) -> Result<Value, String> {\n" +
			"    println!(\"hello from rust\");\n    eprintln!(\"warning\");\n    Ok(json!(ctx.function))\n}\n",
		syntax:     "use serde_json::Value;\n\nfn handler(event: Value, _ctx: &Context) -> Result<Value, String> {\n    Ok(event\n}\n",
		failType:   "Error",
		syntaxHint: "handler.rs",
	},
}

// TestLanguages runs the same flow on every language: register, sync invoke, async invoke,
// stdout/stderr capture, failure, timeout, crash, output flood, compile error.
func TestLanguages(t *testing.T) {
	t.Parallel()
	for _, l := range languages {
		t.Run(l.title, func(t *testing.T) {
			t.Parallel()
			name := func(s string) string { return l.title + "-" + s }
			mustRegister(t, name("add"), l.title, l.add, nil)

			r := invoke(t, name("add"), l.alias, `{"a":20,"b":22}`)
			require.Equal(t, http.StatusOK, r.status, r.raw)
			require.Equal(t, map[string]any{"sum": 42.0}, r.body["result"])
			require.Equal(t, l.title, r.body["language"])

			// Async: 202 + Location, then the result by long poll.
			r = invoke(t, name("add"), l.title, `{"a":1,"b":2}`, "Prefer", "respond-async")
			require.Equal(t, http.StatusAccepted, r.status, r.raw)
			loc := r.header.Get("Location")
			require.Equal(t, "/v1/executions/"+r.body["id"].(string), loc)
			got := call(t, "GET", loc+"?wait=60s", "")
			require.Equal(t, "succeeded", got.body["status"], got.raw)
			require.Equal(t, map[string]any{"sum": 3.0}, got.body["result"])
			require.Equal(t, "async", got.body["mode"])

			mustRegister(t, name("echo"), l.title, l.echo, nil)
			r = invoke(t, name("echo"), l.title, `null`)
			require.Equal(t, http.StatusOK, r.status, r.raw)
			require.Equal(t, name("echo"), r.body["result"], "context names the function")
			require.Contains(t, r.body["stdout"], "hello from "+l.title)
			require.Contains(t, r.body["stderr"], "warning")

			mustRegister(t, name("fail"), l.title, l.fail, nil)
			r = invoke(t, name("fail"), l.title, `{}`)
			require.Equal(t, http.StatusInternalServerError, r.status, r.raw)
			require.Equal(t, "failed", r.body["status"])
			require.Equal(t, l.failType, errorOf(r)["type"])
			require.Contains(t, errorOf(r)["message"], "bad input")

			mustRegister(t, name("sleep"), l.title, l.sleep, map[string]any{"timeout_ms": 500})
			start := time.Now()
			r = invoke(t, name("sleep"), l.title, `{}`)
			require.Equal(t, http.StatusGatewayTimeout, r.status, r.raw)
			require.Equal(t, "timeout", r.body["status"])
			require.Less(t, time.Since(start), 4*time.Second, "the worker is killed at its timeout")

			mustRegister(t, name("exit"), l.title, l.exit, nil)
			r = invoke(t, name("exit"), l.title, `{}`)
			require.Equal(t, http.StatusInternalServerError, r.status, r.raw)
			require.Equal(t, "failed", r.body["status"])

			mustRegister(t, name("flood"), l.title, l.flood, nil)
			r = invoke(t, name("flood"), l.title, `{}`)
			require.Equal(t, http.StatusOK, r.status, r.raw[:min(len(r.raw), 300)])
			require.Equal(t, true, r.body["truncated"])
			require.LessOrEqual(t, len(r.body["stdout"].(string)), 64<<10)

			// After a timeout, a crash and a flood, the same functions still answer.
			for _, fn := range []string{"sleep", "exit", "flood"} {
				r = invoke(t, name(fn), l.title, `{}`)
				require.NotEqual(t, http.StatusBadGateway, r.status)
				require.NotEqual(t, http.StatusServiceUnavailable, r.status, r.raw)
			}
			r = invoke(t, name("add"), l.title, `{"a":1,"b":1}`)
			require.Equal(t, http.StatusOK, r.status, r.raw)

			r = call(t, "POST", "/v1/functions", registerBody(name("syntax"), l.title, l.syntax, nil))
			require.Equal(t, http.StatusUnprocessableEntity, r.status, r.raw)
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
			require.Contains(t, r.body["detail"], l.syntaxHint)
			require.Equal(t, http.StatusNotFound, call(t, "GET", "/v1/functions/"+name("syntax"), "").status)
		})
	}
}

// TestFourthLanguageWithoutGoChanges runs Perl, which exists only as a test registry entry
// and a bootstrap, through the normal API.
func TestFourthLanguageWithoutGoChanges(t *testing.T) {
	t.Parallel()
	src := "sub handler {\n    my ($event, $context) = @_;\n    print \"hello from perl\\n\";\n    return { sum => $event->{a} + $event->{b} };\n}\n1;\n"
	mustRegister(t, "perl-add", "perl", src, nil)
	r := invoke(t, "perl-add", "pl", `{"a":40,"b":2}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, map[string]any{"sum": 42.0}, r.body["result"])
	require.Contains(t, r.body["stdout"], "hello from perl")

	r = invoke(t, "perl-add", "cobol", `{}`)
	require.Equal(t, http.StatusBadRequest, r.status)
	require.Contains(t, r.body["detail"], "perl", "the supported titles come from the registry")
}

// TestReadyz reports every runtime of the registry.
func TestReadyz(t *testing.T) {
	t.Parallel()
	r := call(t, "GET", "/readyz", "")
	require.Equal(t, http.StatusOK, r.status, r.raw)
	checks := r.body["checks"].(map[string]any)
	for _, title := range []string{"python", "node", "rust", "perl"} {
		require.Equal(t, "ok", checks["runtime:"+title], r.raw)
	}
	require.Equal(t, "ok", checks["postgres"])
	// The api listens for finished executions (/readyz caches its checks for a second, and
	// the first probe may come before the feed's connection is up).
	require.Eventually(t, func() bool {
		checks, _ := call(t, "GET", "/readyz", "").body["checks"].(map[string]any)
		return checks["finish_feed"] == "ok"
	}, 10*time.Second, 200*time.Millisecond, "finish_feed ok in /readyz")
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
