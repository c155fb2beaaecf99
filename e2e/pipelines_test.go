package e2e

import (
	"net/http"
	"testing"

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
