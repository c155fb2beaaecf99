package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/cli/client"
)

// TestE2E runs the commands against a real platform: set LAMBDA_E2E_API and
// LAMBDA_E2E_TOKEN (with `make run`: http://127.0.0.1:8000 and .data/admin-token).
// Features the platform does not serve yet (pipelines, schedules, dependencies) are
// skipped by what it answers, so the same test grows with the server.
func TestE2E(t *testing.T) {
	api, token := os.Getenv("LAMBDA_E2E_API"), os.Getenv("LAMBDA_E2E_TOKEN")
	if api == "" || token == "" {
		t.Skip("set LAMBDA_E2E_API and LAMBDA_E2E_TOKEN to run against a platform")
	}
	c := cli{env: env{"LAMBDA_API": api, "LAMBDA_TOKEN": token}}
	id := fmt.Sprintf("%x", time.Now().UnixNano()%0xffffff)
	dir := writeFiles(t, map[string]string{
		"add.py":            "def handler(event, context):\n    print('adding', event)\n    return {'sum': event['a'] + event['b']}\n",
		"mul.py":            "def handler(event, context):\n    return event['a'] * event['b']\n",
		"hello.mjs":         "exports.handler = async (event) => ({ hello: event.name });\n",
		"square.rs":         "use serde_json::{json, Value};\nfn handler(event: Value, _ctx: &Context) -> Result<Value, String> {\n    let n = event[\"n\"].as_i64().ok_or(\"n must be an integer\")?;\n    Ok(json!({\"square\": n * n}))\n}\n",
		"slow.py":           "import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    print('slept', event.get('sleep', 0))\n    return 'done'\n",
		"deps/isn.js":       "const isNumber = require('is-number');\nexports.handler = async (e) => isNumber(e.x);\n",
		"deps/package.json": `{"dependencies": {"is-number": "^7.0.0"}}`,
	})
	add, hello, square, slow := "e2e-add-"+id, "e2e-hello-"+id, "e2e-square-"+id, "e2e-slow-"+id
	deploy := func(t *testing.T, file, name string, args ...string) result {
		t.Helper()
		return c.run(t, append([]string{"fn", "deploy", filepath.Join(dir, file), "--name", name}, args...)...)
	}
	t.Cleanup(func() { c.run(t, "fn", "rm", add, hello, square, slow) })

	t.Run("deploy python, new version, invoke sync", func(t *testing.T) {
		require.Equal(t, result{stdout: "created " + add + " v1\n", code: 0}, deploy(t, "add.py", add))
		require.Equal(t, "unchanged "+add+" v1\n", deploy(t, "add.py", add).stdout)
		r := c.run(t, "invoke", add, "--data", `{"a": 2, "b": 40}`)
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, "{\n  \"sum\": 42\n}\n", r.stdout)
		require.Contains(t, r.stderr, "adding {'a': 2, 'b': 40}")
		require.Equal(t, "updated "+add+" v2\n", deploy(t, "mul.py", add).stdout)
		require.Equal(t, "80\n", c.run(t, "invoke", add, "--data", `{"a": 2, "b": 40}`).stdout)
		require.Equal(t, "{\n  \"sum\": 42\n}\n", c.run(t, "invoke", add, "--version", "1", "--data", `{"a": 2, "b": 40}`).stdout)
		r = c.run(t, "invoke", add, "--data", `{"a": 2}`)
		require.Equal(t, ExitFailed, r.code)
		require.Contains(t, r.stderr, "KeyError")
	})
	t.Run("deploy node and rust", func(t *testing.T) {
		require.Equal(t, "created "+hello+" v1\n", deploy(t, "hello.mjs", hello).stdout)
		require.Equal(t, "{\n  \"hello\": \"ada\"\n}\n", c.run(t, "invoke", hello, "-d", `{"name":"ada"}`).stdout)
		require.Equal(t, "created "+square+" v1\n", deploy(t, "square.rs", square).stdout)
		require.Equal(t, "{\n  \"square\": 144\n}\n", c.run(t, "invoke", square, "-d", `{"n":12}`).stdout)
	})
	t.Run("dependencies", func(t *testing.T) {
		name := "e2e-deps-" + id
		r := deploy(t, "deps/isn.js", name)
		if r.code == ExitPlatform && strings.Contains(r.stderr, `unknown field "dependencies"`) {
			t.Skip("the platform does not take dependencies yet")
		}
		require.Equal(t, 0, r.code, r.stderr)
		t.Cleanup(func() { c.run(t, "fn", "rm", name) })
		require.Equal(t, "true\n", c.run(t, "invoke", name, "-d", `{"x": 5}`).stdout)
	})
	t.Run("async, watch, cancel", func(t *testing.T) {
		require.Equal(t, 0, deploy(t, "slow.py", slow, "--timeout", "1m").code)
		r := c.run(t, "invoke", slow, "--async", "--data", `{"sleep": 1}`)
		require.Equal(t, 0, r.code, r.stderr)
		execID := strings.TrimSpace(r.stdout)
		r = c.run(t, "exec", "watch", execID)
		require.Equal(t, 0, r.code, r.stderr)
		require.Equal(t, "\"done\"\n", r.stdout)
		require.Contains(t, r.stderr, "execution "+execID+" succeeded")

		r = c.run(t, "invoke", slow, "--async", "--wait", "--idempotency-key", "e2e-"+id, "--data", `{"sleep": 0}`)
		require.Equal(t, 0, r.code, r.stderr)

		r = c.run(t, "invoke", slow, "--async", "--data", `{"sleep": 30}`)
		long := strings.TrimSpace(r.stdout)
		require.Equal(t, "canceling "+long+"\n", c.run(t, "exec", "cancel", long).stdout)
		r = c.run(t, "exec", "watch", long)
		require.Equal(t, ExitFailed, r.code)
		require.Contains(t, r.stderr, "canceled")
	})
	t.Run("logs --follow picks up a new execution", func(t *testing.T) {
		var out syncBuffer
		root := &cobra.Command{Use: "lambda", SilenceErrors: true, SilenceUsage: true}
		Mount(root, Options{Out: &out, Err: &out, Getenv: c.env.get, IsTerminal: func(any) bool { return false }, ConfigDir: t.TempDir()})
		root.SetArgs([]string{"logs", hello, "--follow", "--interval", "100ms"})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int)
		go func() { done <- Execute(ctx, root, &out) }()
		time.Sleep(300 * time.Millisecond)
		require.Equal(t, 0, c.run(t, "invoke", hello, "-d", `{"name":"follow-me"}`).code)
		require.Eventually(t, func() bool { return strings.Contains(out.String(), hello+" v1 succeeded") }, 10*time.Second, 50*time.Millisecond)
		cancel()
		require.Equal(t, 0, <-done)
	})
	t.Run("pipeline from YAML, run --wait", func(t *testing.T) {
		if !served(t, api, token, "/v1/pipelines") {
			t.Skip("the platform does not serve pipelines yet")
		}
		name := "e2e-flow-" + id
		pdir := writeFiles(t, map[string]string{"flow.yaml": fmt.Sprintf(
			"name: %s\nsteps:\n  - id: sum\n    function: %s\n    input: {a: \"${input.a}\", b: 3}\n  - id: greet\n    function: %s\n    input: {name: \"${string(steps.sum.output)}\"}\n", name, add, hello)})
		require.Equal(t, "created "+name+" v1\n", c.run(t, "pipeline", "deploy", filepath.Join(pdir, "flow.yaml")).stdout)
		t.Cleanup(func() { c.run(t, "pipeline", "rm", name) })
		r := c.run(t, "run", name, "--async", "--wait", "--data", `{"a": 4}`, "-o", "json")
		require.Equal(t, 0, r.code, r.stderr)
		require.Contains(t, r.stdout, `"status": "succeeded"`)
	})
	t.Run("schedule created and paused", func(t *testing.T) {
		if !served(t, api, token, "/v1/schedules") {
			t.Skip("the platform does not serve schedules yet")
		}
		name := "e2e-sched-" + id
		r := c.run(t, "schedule", "create", name, "--function", hello, "--every", "1h", "--data", `{"name":"cron"}`)
		require.Equal(t, 0, r.code, r.stderr)
		t.Cleanup(func() { c.run(t, "schedule", "rm", name) })
		require.Equal(t, "paused schedule "+name+"\n", c.run(t, "schedule", "pause", name).stdout)
		require.Contains(t, c.run(t, "schedule", "ls").stdout, name)
	})
}

// served reports whether the platform answers path (not a 404 for the route).
func served(t *testing.T, api, token, path string) bool {
	t.Helper()
	cl, err := client.New(api, token)
	require.NoError(t, err)
	if path == "/v1/pipelines" {
		_, err = cl.ListPipelines(context.Background())
	} else {
		_, err = cl.ListSchedules(context.Background())
	}
	return !client.IsStatus(err, 404)
}
