package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCLIRuns drives durable pipeline runs with the real bin/lambda: a run that waits for
// an approval is started --async, seen waiting, signaled and watched to its end; another
// is canceled; a failed run is retried from its failed step, reusing the steps before it.
func TestCLIRuns(t *testing.T) {
	t.Parallel()
	servedOrSkip(t, "/v1/pipelines", "pipelines")
	u := newCLIUser(t, "cli-runs")
	dir := writeFiles(t, map[string]string{
		"gate-add.py": "def handler(event, context):\n    return {'sum': event['a'] + event['b']}\n",
		"frail.py": "def handler(event, context):\n    if event.get('fail'):\n        raise ValueError('asked to fail')\n" +
			"    return {'ok': True}\n",
		"gate.yaml": "steps:\n" +
			"  - id: first\n    function: gate-add\n    input: {a: \"${input.a}\", b: 1}\n" +
			"  - id: ok\n    wait_for: {signal: approve, timeout_ms: 600000}\n" +
			"  - id: last\n    function: gate-add\n    input: {a: \"${steps.first.output.sum}\", b: \"${steps.ok.output.extra}\"}\n" +
			"output: {total: \"${steps.last.output.sum}\"}\n",
		"retry-me.yaml": "steps:\n" +
			"  - id: first\n    function: gate-add\n    input: {a: 1, b: 2}\n" +
			"  - id: boom\n    function: frail\n    input: {fail: \"${input.fail}\"}\n",
	})
	file := func(name string) string { return filepath.Join(dir, name) }
	for _, f := range []string{"gate-add.py", "frail.py", "gate.yaml", "retry-me.yaml"} {
		what := "fn"
		if strings.HasSuffix(f, ".yaml") {
			what = "pipeline"
		}
		r := u.run(t, what, "deploy", file(f))
		require.Equal(t, 0, r.code, "%s: %s", f, r.stderr)
	}
	if r := u.run(t, "run", "gate", "--async", "-d", `{"a": 0}`); r.code != 0 && strings.Contains(r.stderr, "not enabled") {
		t.Skip("durable pipeline runs not yet enabled on the platform (503)")
	}

	// waitStatus polls `run get -o json` until the run has status.
	waitStatus := func(t *testing.T, id, status string) {
		t.Helper()
		require.Eventually(t, func() bool {
			var run map[string]any
			u.json(t, &run, "run", "get", id)
			return run["status"] == status
		}, 90*time.Second, 200*time.Millisecond, "run %s never %s", id, status)
	}

	t.Run("signal, then watch to the end", func(t *testing.T) {
		t.Parallel()
		r := u.run(t, "run", "gate", "--async", "-d", `{"a": 1}`)
		require.Equal(t, 0, r.code, r.stderr)
		id := strings.TrimSpace(r.stdout)
		require.Regexp(t, `^[0-9a-f-]{36}$`, id)
		require.Contains(t, r.stderr, "lambda run watch "+id)
		waitStatus(t, id, "waiting")
		r = u.run(t, "run", "get", id)
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `^run gate v1 waiting `+id+`\n`, r.stdout)
		require.Regexp(t, `(?m)^first +succeeded +1 +\S+$`, r.stdout)
		require.Regexp(t, `(?m)^ok +waiting `, r.stdout)

		r = u.run(t, "run", "signal", id, "approve", "--data", `{"extra": 40}`)
		require.Equal(t, cliResult{stdout: "signaled approve to run " + id + "\n", code: 0}, r)
		r = u.run(t, "run", "watch", id)
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `^run gate v1 succeeded in \S+ `+id+`\n`, r.stdout)
		require.Regexp(t, `(?m)^last +succeeded +1 +\S+$`, r.stdout)
		require.Contains(t, r.stdout, "output:\n{\n  \"total\": 42\n}\n")
		require.NotContains(t, r.stderr, "\x1b[", "no terminal, no escape codes")
		// No longer waiting: the platform's 409.
		r = u.run(t, "run", "signal", id, "approve")
		require.Equal(t, 3, r.code, r.stderr)
		require.Contains(t, r.stderr, "(409)")
	})

	t.Run("cancel a waiting run", func(t *testing.T) {
		t.Parallel()
		r := u.run(t, "run", "gate", "--async", "-d", `{"a": 2}`)
		require.Equal(t, 0, r.code, r.stderr)
		id := strings.TrimSpace(r.stdout)
		waitStatus(t, id, "waiting")
		require.Equal(t, cliResult{stdout: "canceling run " + id + "\n", code: 0}, u.run(t, "run", "cancel", id))
		r = u.run(t, "run", "watch", id)
		require.Equal(t, 1, r.code, "a canceled run is exit 1: %s", r.stderr)
		require.Regexp(t, `^run gate v1 canceled `, r.stdout)
		require.Contains(t, r.stderr, "error: run "+id+" canceled")
		r = u.run(t, "run", "cancel", id)
		require.Equal(t, 3, r.code, r.stderr)
		require.Contains(t, r.stderr, "(409)")
	})

	t.Run("retry from the failed step", func(t *testing.T) {
		t.Parallel()
		r := u.run(t, "run", "retry-me", "-d", `{"fail": true}`, "-o", "json")
		require.Equal(t, 1, r.code, "a failed run is exit 1: %s", r.stderr)
		var failed runJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &failed), r.stdout)
		require.Equal(t, "failed", failed.Status)
		require.Contains(t, r.stderr, "error: run "+failed.ID+" failed: step boom: ")

		// The same input fails again, without running the first step again.
		r = u.run(t, "run", "retry", failed.ID, "--wait", "-o", "json")
		require.Equal(t, 1, r.code, r.stderr)
		var again runJSON
		require.NoError(t, json.Unmarshal([]byte(r.stdout), &again), r.stdout)
		require.NotEqual(t, failed.ID, again.ID)
		require.Equal(t, "failed", again.Status)
		require.Equal(t, failed.step("first").ExecutionID, again.step("first").ExecutionID, "the first step's output is reused")

		// A run that succeeded, retried from a step: a new run, which succeeds too.
		var ok runJSON
		u.json(t, &ok, "run", "retry-me", "-d", `{"fail": false}`)
		require.Equal(t, "succeeded", ok.Status)
		r = u.run(t, "run", "retry", ok.ID, "--from-step", "boom")
		require.Equal(t, 0, r.code, r.stderr)
		id := strings.TrimSpace(r.stdout)
		require.Regexp(t, `^[0-9a-f-]{36}$`, id)
		r = u.run(t, "run", "watch", id)
		require.Equal(t, 0, r.code, r.stderr)
		require.Regexp(t, `^run retry-me v1 succeeded `, r.stdout)
		// Retrying a succeeded run needs a step: the platform's 409.
		r = u.run(t, "run", "retry", ok.ID)
		require.Equal(t, 3, r.code, r.stderr)
		require.Contains(t, r.stderr, "(409)")
	})
}

// runJSON is the part of a run envelope these tests read.
type runJSON struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Steps  []struct {
		ID          string `json:"id"`
		Status      string `json:"status"`
		ExecutionID string `json:"execution_id"`
	} `json:"steps"`
}

func (r runJSON) step(id string) (s struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	ExecutionID string `json:"execution_id"`
}) {
	for _, st := range r.Steps {
		if st.ID == id {
			return st
		}
	}
	return s
}
