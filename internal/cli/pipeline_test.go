package cli

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

const etlYAML = `name: etl
description: fetch, square each, sum
steps:
  - id: fetch
    function: fetch-js
  - id: squares
    map:
      items: "${steps.fetch.output.numbers}"
      max_concurrency: 5
      step: {function: square-rs}
  - id: pause
    sleep_ms: 1500
  - id: approve
    wait_for: {signal: approve, timeout_ms: 60000}
  - id: total
    function: sum-py
    version: 2
    input: {values: "${steps.squares.output}"}
    if: "size(steps.squares.output) > 0"
`

func pipelineJSON(version int) map[string]any {
	return map[string]any{"name": "etl", "description": "fetch, square each, sum", "version": version,
		"sha256": "5d41402abc4b2a76b9719d911017c592ae7c6e3b8d6b9d0b6f4c2e5a1b3c4d5e",
		"steps": []any{
			map[string]any{"id": "fetch", "function": "fetch-js"},
			map[string]any{"id": "squares", "map": map[string]any{"items": "${steps.fetch.output.numbers}", "step": map[string]any{"function": "square-rs"}}},
			map[string]any{"id": "pause", "sleep_ms": 1500},
			map[string]any{"id": "approve", "wait_for": map[string]any{"signal": "approve", "timeout_ms": 60000}},
			map[string]any{"id": "total", "function": "sum-py", "version": 2, "if": "size(steps.squares.output) > 0"},
		},
		"created_at": "2026-12-01T10:00:00Z"}
}

func TestPipelineDeploy(t *testing.T) {
	t.Parallel()
	const wantBody = `{"name":"etl","description":"fetch, square each, sum","steps":[
		{"id":"fetch","function":"fetch-js"},
		{"id":"squares","map":{"items":"${steps.fetch.output.numbers}","max_concurrency":5,"step":{"function":"square-rs"}}},
		{"id":"pause","sleep_ms":1500},
		{"id":"approve","wait_for":{"signal":"approve","timeout_ms":60000}},
		{"id":"total","function":"sum-py","version":2,"input":{"values":"${steps.squares.output}"},"if":"size(steps.squares.output) > 0"}]}`
	tests := []struct {
		name, file, content string
		args                []string
		put                 http.HandlerFunc
		wantOut, wantBody   string
		wantCalls           []string
	}{
		{name: "yaml created", file: "etl.yaml", content: etlYAML,
			put:     problem(404, "urn:lambda:problem:not_found", `pipeline "etl" not found`),
			wantOut: "created etl v1\n", wantBody: wantBody,
			wantCalls: []string{"PUT /v1/pipelines/etl", "POST /v1/pipelines"}},
		{name: "json updated, name from file", file: "My_Flow.json", content: `{"steps":[{"id":"a","function":"add"}]}`,
			put:     reply(201, map[string]any{"name": "my-flow", "version": 3}),
			wantOut: "updated my-flow v3\n", wantBody: `{"name":"my-flow","steps":[{"id":"a","function":"add"}]}`,
			wantCalls: []string{"PUT /v1/pipelines/my-flow"}},
		{name: "yml unchanged, --name wins", file: "x.yml", content: "name: etl\nsteps: []\n", args: []string{"--name", "etl2"},
			put:     reply(200, map[string]any{"name": "etl2", "version": 1}),
			wantOut: "unchanged etl2 v1\n", wantBody: `{"name":"etl2","steps":[]}`,
			wantCalls: []string{"PUT /v1/pipelines/etl2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t).on("PUT /v1/pipelines/{name}", tt.put).on("POST /v1/pipelines", reply(201, pipelineJSON(1)))
			dir := writeFiles(t, map[string]string{tt.file: tt.content})
			r := on(f).run(t, append([]string{"pipeline", "deploy", filepath.Join(dir, tt.file)}, tt.args...)...)
			require.Equal(t, 0, r.code, r.stderr)
			require.Equal(t, tt.wantOut, r.stdout)
			require.Equal(t, tt.wantCalls, f.lines())
			for _, c := range f.received() {
				require.JSONEq(t, tt.wantBody, c.Body)
			}
		})
	}
}

func step(id, status string, attempts int, started, finished string, extra ...any) map[string]any {
	s := map[string]any{"id": id, "status": status, "attempts": attempts, "output": nil, "error": nil}
	if started != "" {
		s["started_at"] = started
	}
	if finished != "" {
		s["finished_at"] = finished
	}
	for i := 0; i+1 < len(extra); i += 2 {
		s[extra[i].(string)] = extra[i+1]
	}
	return s
}

func runJSON(status string, steps []any, extra ...any) map[string]any {
	r := map[string]any{"id": runID, "pipeline": "etl", "version": 2, "mode": "async", "status": status,
		"input": map[string]any{"n": 3}, "output": nil, "error": nil, "steps": steps, "created_at": "2026-12-01T10:00:00Z"}
	for i := 0; i+1 < len(extra); i += 2 {
		r[extra[i].(string)] = extra[i+1]
	}
	return r
}

var (
	runRunning = runJSON("running", []any{
		step("fetch", "succeeded", 1, "2026-12-01T10:00:00Z", "2026-12-01T10:00:00.012Z"),
		step("squares", "running", 1, "2026-12-01T10:00:00.012Z", "", "items", map[string]int{"total": 10, "succeeded": 4, "failed": 0}),
	})
	runWaiting = runJSON("waiting", []any{
		step("fetch", "succeeded", 1, "2026-12-01T10:00:00Z", "2026-12-01T10:00:00.012Z"),
		step("squares", "succeeded", 1, "2026-12-01T10:00:00.012Z", "2026-12-01T10:00:00.412Z", "items", map[string]int{"total": 10, "succeeded": 10, "failed": 0}),
		step("approve", "waiting", 0, "2026-12-01T10:00:00.412Z", ""),
	})
	runSucceeded = runJSON("succeeded", []any{
		step("fetch", "succeeded", 1, "2026-12-01T10:00:00Z", "2026-12-01T10:00:00.012Z"),
		step("squares", "succeeded", 1, "2026-12-01T10:00:00.012Z", "2026-12-01T10:00:00.412Z", "items", map[string]int{"total": 10, "succeeded": 10, "failed": 0}),
		step("approve", "succeeded", 0, "2026-12-01T10:00:00.412Z", "2026-12-01T10:00:03Z"),
		step("total", "succeeded", 2, "2026-12-01T10:00:03Z", "2026-12-01T10:00:03.004Z"),
	}, "output", map[string]int{"sum": 385}, "finished_at", "2026-12-01T10:00:03.005Z")
	runFailedJSON = runJSON("failed", []any{
		step("fetch", "succeeded", 1, "2026-12-01T10:00:00Z", "2026-12-01T10:00:00.012Z"),
		step("squares", "failed", 3, "2026-12-01T10:00:00.012Z", "2026-12-01T10:00:01Z", "error", map[string]string{"type": "HandlerFailed", "message": "n must be an integer"}),
		step("total", "skipped", 0, "", ""),
	}, "error", map[string]string{"type": "StepFailed", "message": "n must be an integer", "step": "squares"}, "mode", "sync",
		"finished_at", "2026-12-01T10:00:01Z")
)

func TestPipelineAndRunCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		golden    string
		args      []string
		start     http.HandlerFunc
		wantCalls []string
		wantBody  string
		wantPref  string
	}{
		{golden: "pipeline_ls", args: []string{"pipeline", "ls"}, wantCalls: []string{"GET /v1/pipelines"}},
		{golden: "pipeline_get", args: []string{"pipeline", "get", "etl"}, wantCalls: []string{"GET /v1/pipelines/etl"}},
		{golden: "pipeline_rm", args: []string{"pipeline", "rm", "etl"}, wantCalls: []string{"DELETE /v1/pipelines/etl"}},
		{golden: "run_sync_failed", args: []string{"run", "etl", "--data", `{"n": "x"}`},
			start:     reply(500, runFailedJSON),
			wantCalls: []string{"POST /v1/pipelines/etl/runs"}, wantBody: `{"n": "x"}`},
		{golden: "run_durable_followed", args: []string{"run", "etl", "--version", "2"},
			start: reply(202, map[string]string{"id": runID, "status": "queued"}, "Location", "/v1/runs/"+runID),
			wantCalls: []string{"POST /v1/pipelines/etl/runs?version=2", "GET /v1/runs/" + runID + "?wait=30s",
				"GET /v1/runs/" + runID + "?wait=30s", "GET /v1/runs/" + runID + "?wait=30s"}},
		{golden: "run_async", args: []string{"run", "etl", "--async", "--idempotency-key", "k1"},
			start:     reply(202, map[string]string{"id": runID, "status": "queued"}, "Location", "/v1/runs/"+runID),
			wantCalls: []string{"POST /v1/pipelines/etl/runs"}, wantPref: "respond-async"},
		{golden: "run_async_wait_json", args: []string{"run", "etl", "--async", "--wait", "-o", "json"},
			start: reply(202, map[string]string{"id": runID, "status": "queued"}, "Location", "/v1/runs/"+runID),
			wantCalls: []string{"POST /v1/pipelines/etl/runs", "GET /v1/runs/" + runID + "?wait=30s",
				"GET /v1/runs/" + runID + "?wait=30s", "GET /v1/runs/" + runID + "?wait=30s"}, wantPref: "respond-async"},
		{golden: "run_get", args: []string{"run", "get", runID}, wantCalls: []string{"GET /v1/runs/" + runID}},
		{golden: "run_ls", args: []string{"run", "ls", "--pipeline", "etl"}, wantCalls: []string{"GET /v1/runs?limit=20&pipeline=etl"}},
		{golden: "run_signal", args: []string{"run", "signal", runID, "approve", "--data", `{"by":"ada"}`},
			wantCalls: []string{"POST /v1/runs/" + runID + "/signals/approve"}, wantBody: `{"by":"ada"}`},
		{golden: "run_cancel", args: []string{"run", "cancel", runID}, wantCalls: []string{"DELETE /v1/runs/" + runID}},
		{golden: "run_retry", args: []string{"run", "retry", runID, "--from-step", "squares"},
			wantCalls: []string{"POST /v1/runs/" + runID + "/retry"}, wantBody: `{"from_step":"squares"}`},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			f := newFake(t).
				on("GET /v1/pipelines", reply(200, map[string]any{"pipelines": []any{pipelineJSON(2)}})).
				on("GET /v1/pipelines/etl", reply(200, pipelineJSON(2))).
				on("DELETE /v1/pipelines/etl", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) }).
				on("GET /v1/runs", reply(200, map[string]any{"runs": []any{runSucceeded, runFailedJSON}})).
				on("POST /v1/runs/{id}/signals/{name}", reply(202, nil)).
				on("DELETE /v1/runs/{id}", reply(202, nil)).
				on("POST /v1/runs/{id}/retry", reply(202, map[string]string{"id": "0193a5c4-0000-7000-8000-00000000a002", "status": "queued"},
					"Location", "/v1/runs/0193a5c4-0000-7000-8000-00000000a002"))
			if tt.start != nil {
				f.on("POST /v1/pipelines/etl/runs", tt.start).
					on("GET /v1/runs/{id}", sequence(reply(200, runRunning), reply(200, runWaiting), reply(200, runSucceeded)))
			} else {
				f.on("GET /v1/runs/{id}", reply(200, runFailedJSON))
			}
			r := on(f).run(t, tt.args...)
			checkGolden(t, tt.golden, r.golden())
			require.Equal(t, tt.wantCalls, f.lines())
			first := f.received()[0]
			if tt.wantBody != "" {
				require.JSONEq(t, tt.wantBody, first.Body)
			}
			require.Equal(t, tt.wantPref, first.Header.Get("Prefer"))
		})
	}
}
