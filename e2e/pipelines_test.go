package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSyncPipelineAcrossLanguages runs a python → node → rust pipeline on the fast path:
// each step is a real call of its runtime, recorded as an execution of the run's step.
func TestSyncPipelineAcrossLanguages(t *testing.T) {
	t.Parallel()
	servedOrSkip(t, "/v1/pipelines", "pipelines")
	for _, l := range languages[:3] {
		mustRegister(t, "pl-"+l.title, l.title, l.add, nil)
	}
	r := call(t, "POST", "/v1/pipelines", `{"name":"pl-chain","steps":[
		{"id":"py","function":"pl-python","input":{"a":"${input.a}","b":1}},
		{"id":"js","function":"pl-node","input":{"a":"${steps.py.output.sum}","b":10}},
		{"id":"rs","function":"pl-rust","input":{"a":"${steps.js.output.sum}","b":100}}],
		"output":{"total":"${steps.rs.output.sum}"}}`)
	require.Equal(t, http.StatusCreated, r.status, r.raw)

	r = call(t, "POST", "/v1/pipelines/pl-chain/runs", `{"a":1}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)
	require.Equal(t, "succeeded", r.body["status"])
	require.Equal(t, map[string]any{"total": 112.0}, r.body["output"])
	steps := r.body["steps"].([]any)
	require.Len(t, steps, 3)
	for i, lang := range []string{"python", "node", "rust"} {
		s := steps[i].(map[string]any)
		require.Equal(t, "succeeded", s["status"], s)
		e := call(t, "GET", "/v1/executions/"+s["execution_id"].(string), "")
		require.Equal(t, http.StatusOK, e.status, e.raw)
		require.Equal(t, lang, e.body["language"])
		require.Equal(t, r.body["id"], e.body["run_id"])
		require.Equal(t, s["id"], e.body["step_id"])
	}
}

// TestAsyncPipelineAcrossLanguages runs the same python → node → rust pipeline durably
// (Prefer: respond-async: one RunPipeline workflow) with the same result as its sync run,
// then a run that waits for an approval signal.
func TestAsyncPipelineAcrossLanguages(t *testing.T) {
	t.Parallel()
	servedOrSkip(t, "/v1/pipelines", "pipelines")
	for _, l := range languages[:3] {
		mustRegister(t, "apl-"+l.title, l.title, l.add, nil)
	}
	r := call(t, "POST", "/v1/pipelines", `{"name":"apl-chain","steps":[
		{"id":"py","function":"apl-python","input":{"a":"${input.a}","b":1}},
		{"id":"js","function":"apl-node","input":{"a":"${steps.py.output.sum}","b":10}},
		{"id":"rs","function":"apl-rust","input":{"a":"${steps.js.output.sum}","b":100}}],
		"output":{"total":"${steps.rs.output.sum}"}}`)
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	sync := call(t, "POST", "/v1/pipelines/apl-chain/runs", `{"a":1}`)
	require.Equal(t, http.StatusOK, sync.status, sync.raw)

	r = call(t, "POST", "/v1/pipelines/apl-chain/runs", `{"a":1}`, "Prefer", "respond-async")
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	loc := r.header.Get("Location")
	require.Equal(t, "/v1/runs/"+r.body["id"].(string), loc)
	done := waitRun(t, loc, "succeeded")
	require.Equal(t, "async", done.body["mode"])
	require.Equal(t, sync.body["output"], done.body["output"], "durable gives what sync gives")
	steps := done.body["steps"].([]any)
	require.Len(t, steps, 3)
	for i, lang := range []string{"python", "node", "rust"} {
		s := steps[i].(map[string]any)
		require.Equal(t, "succeeded", s["status"], s)
		require.Equal(t, 1.0, s["attempts"], s)
		e := call(t, "GET", "/v1/executions/"+s["execution_id"].(string), "")
		require.Equal(t, http.StatusOK, e.status, e.raw)
		require.Equal(t, lang, e.body["language"])
		require.Equal(t, done.body["id"], e.body["run_id"])
	}

	// An approval: the run waits for its signal, whose payload the next step reads.
	r = call(t, "POST", "/v1/pipelines", `{"name":"apl-approve","steps":[
		{"id":"py","function":"apl-python","input":{"a":"${input.a}","b":1}},
		{"id":"ok","wait_for":{"signal":"approve","timeout_ms":600000}},
		{"id":"rs","function":"apl-rust","input":{"a":"${steps.py.output.sum}","b":"${steps.ok.output.extra}"}}]}`)
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	r = call(t, "POST", "/v1/pipelines/apl-approve/runs", `{"a":1}`)
	require.Equal(t, http.StatusAccepted, r.status, "a pipeline with a wait runs durably: %s", r.raw)
	loc = r.header.Get("Location")
	waitRun(t, loc, "waiting")
	r = call(t, "POST", loc+"/signals/approve", `{"extra":40}`)
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	done = waitRun(t, loc, "succeeded")
	require.Equal(t, map[string]any{"sum": 42.0}, done.body["output"])
	r = call(t, "POST", loc+"/signals/approve", `{}`)
	require.Equal(t, http.StatusConflict, r.status, "finished: no longer waiting: %s", r.raw)
}

// waitRun long-polls a run until it has status (failing if it ends otherwise).
func waitRun(t *testing.T, loc, status string) reply {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		r := call(t, "GET", loc+"?wait=10s", "")
		require.Equal(t, http.StatusOK, r.status, r.raw)
		st := r.body["status"].(string)
		if st == status {
			return r
		}
		if st == "succeeded" || st == "failed" || st == "canceled" || time.Now().After(deadline) {
			t.Fatalf("run %s: %s, want %s: %s", loc, st, status, r.raw)
		}
		if status == "waiting" {
			time.Sleep(50 * time.Millisecond)
		}
	}
}
