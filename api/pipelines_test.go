package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/ratelimit"
)

func registerLang(name, language, source string) string {
	b, _ := json.Marshal(map[string]any{"name": name, "language": language, "source": source})
	return string(b)
}

// functions registers the scripted functions the pipeline tests call: add answers
// {"sum": a+b}; fail raises; nap sleeps 15 ms then adds; flaky fails its first call.
func (f *fixture) functions(t *testing.T, headers ...string) {
	t.Helper()
	for _, fn := range []struct{ name, lang, src string }{
		{"add", "python", addSource},
		{"add-node", "node", "exports.handler = async (e) => ({sum: e.a + e.b});\n"},
		{"fail", "python", "def handler(e, c):\n    raise ValueError('raise')\n"},
		{"nap", "python", "def handler(e, c):\n    # nap\n    return {'sum': e['a'] + e['b']}\n"},
		{"flaky", "python", "def handler(e, c):\n    # flaky\n    return {'sum': e['a'] + e['b']}\n"},
	} {
		r := f.do(t, "POST", "/v1/functions", registerLang(fn.name, fn.lang, fn.src), headers...)
		require.Equal(t, 201, r.status, r.raw)
	}
}

const threeSteps = `{"name":"chain","description":"python, node, python","steps":[
	{"id":"one","function":"add","input":{"a":"${input.a}","b":1}},
	{"id":"two","function":"add-node","input":{"a":"${steps.one.output.sum}","b":10}},
	{"id":"three","function":"add","input":{"a":"${steps.two.output.sum}","b":100}}],
	"output":{"total":"${steps.three.output.sum}"}}`

func stepsByID(t *testing.T, body map[string]any) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	steps, _ := body["steps"].([]any)
	for _, s := range steps {
		m := s.(map[string]any)
		out[m["id"].(string)] = m
	}
	return out
}

func (f *fixture) query(t *testing.T, sql string, args ...any) pgx.Rows {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), f.dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	rows, err := conn.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	return rows
}

func TestPipelineVersions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.functions(t)

	r := f.do(t, "POST", "/v1/pipelines", threeSteps)
	require.Equal(t, 201, r.status, r.raw)
	require.EqualValues(t, 1, r.body["version"])
	require.Len(t, r.body["sha256"], 64)
	require.Equal(t, "/v1/pipelines/chain", r.header.Get("Location"))
	sha := r.body["sha256"]
	require.Equal(t, 409, f.do(t, "POST", "/v1/pipelines", threeSteps).status)

	// The same definition, keys reordered and spaced differently: identical, 200.
	var def map[string]any
	require.NoError(t, json.Unmarshal([]byte(threeSteps), &def))
	same, _ := json.MarshalIndent(def, "", "    ")
	r = f.do(t, "PUT", "/v1/pipelines/chain", string(same))
	require.Equal(t, 200, r.status, r.raw)
	require.EqualValues(t, 1, r.body["version"])
	require.Equal(t, sha, r.body["sha256"])

	def["description"] = "changed"
	changed, _ := json.Marshal(def)
	r = f.do(t, "PUT", "/v1/pipelines/chain", string(changed))
	require.Equal(t, 201, r.status, r.raw)
	require.EqualValues(t, 2, r.body["version"])

	r = f.do(t, "GET", "/v1/pipelines/chain", "")
	require.Equal(t, 200, r.status)
	require.EqualValues(t, 2, r.body["version"])
	require.Len(t, r.body["steps"], 3)
	require.Equal(t, "changed", r.body["description"])
	r = f.do(t, "GET", "/v1/pipelines/chain/versions/1", "")
	require.Equal(t, 200, r.status)
	require.Equal(t, "python, node, python", r.body["description"])
	require.Equal(t, 404, f.do(t, "GET", "/v1/pipelines/chain/versions/3", "").status)
	r = f.do(t, "GET", "/v1/pipelines/chain/versions", "")
	require.Len(t, r.body["versions"], 2)
	r = f.do(t, "GET", "/v1/pipelines", "")
	require.Len(t, r.body["pipelines"], 1)

	// A pinned version runs its own definition.
	r = f.do(t, "POST", "/v1/pipelines/chain/runs?version=1", `{"a":1}`)
	require.Equal(t, 200, r.status, r.raw)
	require.EqualValues(t, 1, r.body["version"])

	require.Equal(t, 204, f.do(t, "DELETE", "/v1/pipelines/chain", "").status)
	require.Equal(t, 404, f.do(t, "GET", "/v1/pipelines/chain", "").status)
	require.Equal(t, 404, f.do(t, "DELETE", "/v1/pipelines/chain", "").status)
	// Its runs stay, readable.
	require.Equal(t, 1, f.count(t, "runs"))
	r = f.do(t, "GET", "/v1/runs", "")
	require.Len(t, r.body["runs"], 1)
	id := r.body["runs"].([]any)[0].(map[string]any)["id"].(string)
	require.Equal(t, 200, f.do(t, "GET", "/v1/runs/"+id, "").status)
}

func TestPipelineBadInputIsAProblemAndChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.functions(t)
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", threeSteps).status)
	r := f.do(t, "POST", "/v1/pipelines/chain/runs", `{"a":1}`)
	require.Equal(t, 200, r.status, r.raw)
	runID := r.body["id"].(string)
	tables := []string{"pipelines", "pipeline_versions", "runs", "run_steps", "run_signals", "request_logs", "idempotency_keys"}
	before := map[string]int{}
	for _, tb := range tables {
		before[tb] = f.count(t, tb)
	}
	pl := func(steps string) string { return `{"name":"bad","steps":` + steps + `}` }
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		detail                   string
	}{
		{"malformed json", "POST", "/v1/pipelines", `{"name":`, nil, 400, "JSON"},
		{"unknown function", "POST", "/v1/pipelines", pl(`[{"id":"s1","function":"nope"}]`), nil, 422, `step "s1": unknown function "nope"`},
		{"bad expression", "POST", "/v1/pipelines", pl(`[{"id":"s1","function":"add","if":"input.a >"}]`), nil, 422, `step "s1"`},
		{"duplicate id", "POST", "/v1/pipelines", pl(`[{"id":"s1","function":"add"},{"id":"s1","function":"add"}]`), nil, 422, `"s1"`},
		{"missing catch target", "POST", "/v1/pipelines", pl(`[{"id":"s1","function":"add","catch":"nowhere"}]`), nil, 422, `step "s1"`},
		{"unknown pinned version", "POST", "/v1/pipelines", pl(`[{"id":"s1","function":"add","version":7}]`), nil, 422, "no version 7"},
		{"unknown step field", "POST", "/v1/pipelines", pl(`[{"id":"s1","function":"add","colour":1}]`), nil, 422, "colour"},
		{"bad name", "POST", "/v1/pipelines", `{"name":"Bad Name","steps":[{"id":"s1","function":"add"}]}`, nil, 422, "name"},
		{"put other name", "PUT", "/v1/pipelines/chain", pl(`[{"id":"s1","function":"add"}]`), nil, 400, "does not match"},
		{"put missing", "PUT", "/v1/pipelines/bad", pl(`[{"id":"s1","function":"add"}]`), nil, 404, "not found"},
		{"put bad step", "PUT", "/v1/pipelines/chain", `{"steps":[{"id":"s1","function":"nope"}]}`, nil, 422, `unknown function "nope"`},
		{"run unknown pipeline", "POST", "/v1/pipelines/nope/runs", `{}`, nil, 404, "not found"},
		{"run unknown version", "POST", "/v1/pipelines/chain/runs?version=9", `{}`, nil, 404, "no version 9"},
		{"run bad version", "POST", "/v1/pipelines/chain/runs?version=x", `{}`, nil, 400, "version"},
		{"run input too large", "POST", "/v1/pipelines/chain/runs", `"` + strings.Repeat("x", 3000) + `"`, nil, 413, "larger"},
		{"run malformed input", "POST", "/v1/pipelines/chain/runs", `{"a":`, nil, 400, "not valid JSON"},
		{"run async without durable side", "POST", "/v1/pipelines/chain/runs", `{}`, []string{"Prefer", "respond-async"}, 503, "not enabled"},
		{"run unknown", "GET", "/v1/runs/0193a5c4-8e1f-7c2a-9d3b-4f5e6a7b8c9d", "", nil, 404, "not found"},
		{"run not an id", "GET", "/v1/runs/nope", "", nil, 404, "not found"},
		{"runs bad status", "GET", "/v1/runs?status=odd", "", nil, 400, "unknown status"},
		{"runs bad limit", "GET", "/v1/runs?limit=0", "", nil, 400, "limit"},
		{"runs bad cursor", "GET", "/v1/runs?cursor=zz", "", nil, 400, "cursor"},
		{"signal finished run", "POST", "/v1/runs/" + runID + "/signals/go", `{}`, nil, 409, "finished"},
		{"cancel finished run", "DELETE", "/v1/runs/" + runID, "", nil, 409, "finished"},
		{"retry succeeded run", "POST", "/v1/runs/" + runID + "/retry", `{}`, nil, 409, "from_step"},
		{"retry unknown step", "POST", "/v1/runs/" + runID + "/retry", `{"from_step":"zz"}`, nil, 400, "no step"},
		{"retry unknown field", "POST", "/v1/runs/" + runID + "/retry", `{"step":"one"}`, nil, 400, "unknown field"},
		{"retry unknown run", "POST", "/v1/runs/0193a5c4-8e1f-7c2a-9d3b-4f5e6a7b8c9d/retry", `{}`, nil, 404, "not found"},
	}
	for _, c := range cases {
		r := f.do(t, c.method, c.path, c.body, c.headers...)
		require.Equal(t, c.status, r.status, "%s: %s", c.name, r.raw)
		require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), c.name)
		require.Contains(t, r.body["detail"], c.detail, c.name)
	}
	for _, tb := range tables {
		require.Equal(t, before[tb], f.count(t, tb), "table %s changed", tb)
	}
}

func TestSyncPipelineRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.functions(t)
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", threeSteps).status)

	r := f.do(t, "POST", "/v1/pipelines/chain/runs", `{"a":1}`)
	require.Equal(t, 200, r.status, r.raw)
	require.Equal(t, "succeeded", r.body["status"])
	require.Equal(t, "sync", r.body["mode"])
	require.Equal(t, map[string]any{"total": float64(112)}, r.body["output"])
	steps := stepsByID(t, r.body)
	require.Len(t, steps, 3)
	for _, id := range []string{"one", "two", "three"} {
		require.Equal(t, "succeeded", steps[id]["status"], id)
		require.EqualValues(t, 1, steps[id]["attempts"], id)
		require.NotEmpty(t, steps[id]["started_at"], id)
	}
	require.Equal(t, map[string]any{"sum": float64(12)}, steps["two"]["output"])

	// Each call is an execution of its run and step, with its output and stdout.
	e := f.do(t, "GET", "/v1/executions/"+steps["two"]["execution_id"].(string), "")
	require.Equal(t, 200, e.status, e.raw)
	require.Equal(t, r.body["id"], e.body["run_id"])
	require.Equal(t, "two", e.body["step_id"])
	require.Equal(t, "node", e.body["language"])
	require.Equal(t, "hello\n", e.body["stdout"])

	// The run is recorded as it was answered.
	g := f.do(t, "GET", "/v1/runs/"+r.body["id"].(string), "")
	require.Equal(t, 200, g.status)
	require.Equal(t, r.body["output"], g.body["output"])
	require.Equal(t, r.body["steps"], g.body["steps"])

	// A failing step fails the run: 500 with the envelope, naming the step.
	p := `{"name":"broken","steps":[{"id":"ok","function":"add","input":{"a":1,"b":2}},{"id":"boom","function":"fail"},{"id":"never","function":"add"}]}`
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", p).status)
	r = f.do(t, "POST", "/v1/pipelines/broken/runs", ``)
	require.Equal(t, 500, r.status, r.raw)
	require.Equal(t, "failed", r.body["status"])
	require.Equal(t, "boom", r.body["error"].(map[string]any)["step"])
	steps = stepsByID(t, r.body)
	require.Equal(t, "failed", steps["boom"]["status"])
	require.Equal(t, "pending", steps["never"]["status"])
	require.Equal(t, "ValueError", steps["boom"]["error"].(map[string]any)["type"])

	// The list filters by pipeline and status.
	l := f.do(t, "GET", "/v1/runs?pipeline=broken&status=failed", "")
	require.Len(t, l.body["runs"], 1)
	l = f.do(t, "GET", "/v1/runs?limit=1", "")
	require.Len(t, l.body["runs"], 1)
	next := l.body["next_cursor"].(string)
	l = f.do(t, "GET", "/v1/runs?limit=1&cursor="+next, "")
	require.Len(t, l.body["runs"], 1)
	require.Nil(t, l.body["next_cursor"])
}

func TestSyncPipelineControlFlow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.functions(t)
	p := `{"name":"flow","steps":[
		{"id":"first","function":"add","input":{"a":"${input.a}","b":0}},
		{"id":"big","if":"steps.first.output.sum > 100","function":"add","input":{"a":1000,"b":0}},
		{"id":"small","if":"steps.first.output.sum <= 100","function":"add","input":{"a":1,"b":0}},
		{"id":"risky","function":"fail","catch":"recover"},
		{"id":"skipped_by_catch","function":"add"},
		{"id":"recover","function":"add-node","input":{"a":"${size(steps.risky.error.message)}","b":0}},
		{"id":"fan","parallel":{
			"left":[{"id":"l1","function":"add","input":{"a":1,"b":1}}],
			"right":[{"id":"r1","function":"add-node","input":{"a":2,"b":2}},{"id":"r2","function":"add","input":{"a":"${steps.r1.output.sum}","b":2}}]}}
		]}`
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", p).status)
	r := f.do(t, "POST", "/v1/pipelines/flow/runs", `{"a":5}`)
	require.Equal(t, 200, r.status, r.raw)
	steps := stepsByID(t, r.body)
	require.Equal(t, "skipped", steps["big"]["status"])
	require.Nil(t, steps["big"]["output"])
	require.Equal(t, "succeeded", steps["small"]["status"])
	require.Equal(t, "failed", steps["risky"]["status"])
	require.Equal(t, "skipped", steps["skipped_by_catch"]["status"])
	require.Equal(t, "succeeded", steps["recover"]["status"])
	require.Equal(t, map[string]any{"left": map[string]any{"sum": float64(2)}, "right": map[string]any{"sum": float64(6)}},
		r.body["output"])
}

func TestSyncMapRunsAtMostMaxConcurrency(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.functions(t)
	p := `{"name":"fan","steps":[{"id":"each","map":{"items":"input.xs","max_concurrency":5,
		"step":{"function":"nap","input":{"a":"${item}","b":"${index}"}}}}]}`
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", p).status)
	xs := make([]int, 100)
	for i := range xs {
		xs[i] = i
	}
	in, _ := json.Marshal(map[string]any{"xs": xs})
	r := f.do(t, "POST", "/v1/pipelines/fan/runs", string(in))
	require.Equal(t, 200, r.status, r.raw)
	out := r.body["output"].([]any)
	require.Len(t, out, 100)
	for i, o := range out {
		require.EqualValues(t, 2*i, o.(map[string]any)["sum"], "item %d in item order", i)
	}
	steps := stepsByID(t, r.body)
	require.Equal(t, map[string]any{"total": float64(100), "succeeded": float64(100), "failed": float64(0)}, steps["each"]["items"])

	// From the execution rows' start and finish: never more than 5 at once.
	rows := f.query(t, `SELECT timestamp, finished_at FROM request_logs WHERE run_id = $1`, r.body["id"])
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for rows.Next() {
		var start, end time.Time
		require.NoError(t, rows.Scan(&start, &end))
		edges = append(edges, edge{start, 1}, edge{end, -1})
	}
	require.Len(t, edges, 200)
	sort.Slice(edges, func(i, j int) bool {
		if edges[i].at.Equal(edges[j].at) {
			return edges[i].delta < edges[j].delta // a finish before a start at the same instant
		}
		return edges[i].at.Before(edges[j].at)
	})
	n, peak := 0, 0
	for _, e := range edges {
		n += e.delta
		peak = max(peak, n)
	}
	require.LessOrEqual(t, peak, 5)
	require.Greater(t, peak, 1, "the items ran concurrently")
}

func TestAsyncRunSignalCancelRetry(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	f := newFixture(t, runs)
	f.functions(t)
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", threeSteps).status)

	// Prefer: respond-async → 202, Location; the same result as sync.
	r := f.do(t, "POST", "/v1/pipelines/chain/runs", `{"a":1}`, "Prefer", "respond-async")
	require.Equal(t, 202, r.status, r.raw)
	loc := r.header.Get("Location")
	require.Equal(t, "/v1/runs/"+r.body["id"].(string), loc)
	w := f.do(t, "GET", loc+"?wait=5s", "")
	require.Equal(t, "succeeded", w.body["status"], w.raw)
	require.Equal(t, "async", w.body["mode"])
	require.Equal(t, map[string]any{"total": float64(112)}, w.body["output"])

	// A pipeline that waits runs async: waiting, a wrong signal is 409, the right one
	// delivers its payload.
	p := `{"name":"approval","steps":[{"id":"prep","function":"add","input":{"a":1,"b":1}},
		{"id":"approve","wait_for":{"signal":"approved","timeout_ms":10000}},
		{"id":"after","function":"add","input":{"a":"${steps.approve.output.n}","b":"${steps.prep.output.sum}"}}]}`
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", p).status)
	r = f.do(t, "POST", "/v1/pipelines/approval/runs", `{}`)
	require.Equal(t, 202, r.status, r.raw)
	id := r.body["id"].(string)
	require.Eventually(t, func() bool {
		return f.do(t, "GET", "/v1/runs/"+id, "").body["status"] == "waiting"
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 409, f.do(t, "POST", "/v1/runs/"+id+"/signals/rejected", `{}`).status)
	s := f.do(t, "POST", "/v1/runs/"+id+"/signals/approved", `{"n":40}`)
	require.Equal(t, 202, s.status, s.raw)
	w = f.do(t, "GET", "/v1/runs/"+id+"?wait=5s", "")
	require.Equal(t, "succeeded", w.body["status"], w.raw)
	require.Equal(t, map[string]any{"sum": float64(42)}, w.body["output"])
	require.Equal(t, map[string]any{"n": float64(40)}, stepsByID(t, w.body)["approve"]["output"])

	// Cancel a waiting run: canceled, then 409.
	r = f.do(t, "POST", "/v1/pipelines/approval/runs", `{}`)
	id = r.body["id"].(string)
	require.Eventually(t, func() bool {
		return f.do(t, "GET", "/v1/runs/"+id, "").body["status"] == "waiting"
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 202, f.do(t, "DELETE", "/v1/runs/"+id, "").status)
	w = f.do(t, "GET", "/v1/runs/"+id+"?wait=5s", "")
	require.Equal(t, "canceled", w.body["status"], w.raw)
	require.Equal(t, 409, f.do(t, "DELETE", "/v1/runs/"+id, "").status)
	require.Equal(t, 409, f.do(t, "POST", "/v1/runs/"+id+"/signals/approved", `{}`).status)
}

// GET /v1/runs/{id} of a durable run in flight shows its live steps: a sleep step
// sleeping until its wake-up time, with "live":true; once final, the recorded rows and
// no live flag.
func TestRunEnvelopeShowsLiveSteps(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	f := newFixture(t, runs)
	f.functions(t)
	p := `{"name":"napper","steps":[{"id":"prep","function":"add","input":{"a":1,"b":1}},{"id":"nap","sleep_ms":1500},
		{"id":"after","function":"add","input":{"a":1,"b":2}}]}`
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", p).status)
	r := f.do(t, "POST", "/v1/pipelines/napper/runs", `{}`)
	require.Equal(t, 202, r.status, r.raw)
	id := r.body["id"].(string)
	var live map[string]any
	require.Eventually(t, func() bool {
		live = f.do(t, "GET", "/v1/runs/"+id, "").body
		return stepsByID(t, live)["nap"]["status"] == "sleeping"
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, true, live["live"], live)
	nap := stepsByID(t, live)["nap"]
	started, err := time.Parse(time.RFC3339Nano, nap["started_at"].(string))
	require.NoError(t, err)
	until, err := time.Parse(time.RFC3339Nano, nap["until"].(string))
	require.NoError(t, err)
	require.Equal(t, 1500*time.Millisecond, until.Sub(started))
	require.Equal(t, "succeeded", stepsByID(t, live)["prep"]["status"])
	require.Equal(t, "pending", stepsByID(t, live)["after"]["status"])

	w := f.do(t, "GET", "/v1/runs/"+id+"?wait=5s", "")
	require.Equal(t, "succeeded", w.body["status"], w.raw)
	require.NotContains(t, w.body, "live", "a final run: its rows, no query")
	require.Equal(t, "succeeded", stepsByID(t, w.body)["nap"]["status"])
	require.NotContains(t, stepsByID(t, w.body)["nap"], "until")
}

func TestRetryFromFailedStepReusesOutputs(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	f := newFixture(t, runs)
	f.functions(t)
	p := `{"name":"redrive","steps":[{"id":"one","function":"add","input":{"a":1,"b":2}},
		{"id":"two","function":"flaky","input":{"a":"${steps.one.output.sum}","b":10}},
		{"id":"three","function":"add-node","input":{"a":"${steps.two.output.sum}","b":100}}]}`
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", p).status)
	r := f.do(t, "POST", "/v1/pipelines/redrive/runs", `{}`)
	require.Equal(t, 500, r.status, r.raw)
	failed := r.body["id"].(string)
	oneExec := stepsByID(t, r.body)["one"]["execution_id"]
	calls := f.runner.calls.Load()

	rr := f.do(t, "POST", "/v1/runs/"+failed+"/retry", ``)
	require.Equal(t, 202, rr.status, rr.raw)
	loc := rr.header.Get("Location")
	require.NotEqual(t, "/v1/runs/"+failed, loc)
	w := f.do(t, "GET", loc+"?wait=5s", "")
	require.Equal(t, "succeeded", w.body["status"], w.raw)
	require.Equal(t, map[string]any{"sum": float64(113)}, w.body["output"])
	require.Equal(t, failed, w.body["retry_of"])
	steps := stepsByID(t, w.body)
	// Step one was not run again: its recorded output and execution are reused.
	require.Equal(t, oneExec, steps["one"]["execution_id"])
	require.EqualValues(t, 2, f.runner.calls.Load()-calls, "only two and three ran")
	var n int
	rows := f.query(t, `SELECT count(*) FROM request_logs WHERE run_id = $1`, w.body["id"])
	require.True(t, rows.Next())
	require.NoError(t, rows.Scan(&n))
	require.Equal(t, 2, n)

	// Retrying from a named step reruns it and what follows.
	rr = f.do(t, "POST", "/v1/runs/"+w.body["id"].(string)+"/retry", `{"from_step":"three"}`)
	require.Equal(t, 202, rr.status, rr.raw)
	w = f.do(t, "GET", rr.header.Get("Location")+"?wait=5s", "")
	require.Equal(t, "succeeded", w.body["status"], w.raw)
	require.EqualValues(t, 3, f.runner.calls.Load()-calls)
}

func TestSlowSyncRunIsHandedOver(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	f := newFixture(t, runs, coreOption(func(c *core.Config) { c.SyncPipelineMax = 40 * time.Millisecond }))
	f.functions(t)
	steps := make([]string, 8)
	for i := range steps {
		steps[i] = fmt.Sprintf(`{"id":"s%d","function":"nap","input":{"a":%d,"b":1}}`, i, i)
	}
	p := `{"name":"slow","steps":[` + strings.Join(steps, ",") + `]}`
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", p).status)
	calls := f.runner.calls.Load()
	r := f.do(t, "POST", "/v1/pipelines/slow/runs", `{}`)
	require.Equal(t, 202, r.status, r.raw)
	require.Equal(t, "async", r.body["mode"])
	id := r.body["id"].(string)
	require.Equal(t, "/v1/runs/"+id, r.header.Get("Location"))
	recorded := 0
	for _, s := range stepsByID(t, r.body) {
		if s["status"] == "succeeded" {
			recorded++
		}
	}
	require.Greater(t, recorded, 0, "the steps finished before the hand-over are recorded")
	require.Less(t, recorded, 8)

	w := f.do(t, "GET", "/v1/runs/"+id+"?wait=5s", "")
	require.Equal(t, "succeeded", w.body["status"], w.raw)
	require.Equal(t, map[string]any{"sum": float64(8)}, w.body["output"])
	// Every step ran exactly once across the sync part and the workflow.
	require.EqualValues(t, 8, f.runner.calls.Load()-calls)
	require.EqualValues(t, 1, runs.starts.Load())
}

func TestSyncRunOfADeadAPIIsSweptOver(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	f := newFixture(t, runs, coreOption(func(c *core.Config) { c.SyncPipelineMax = time.Second }))
	f.functions(t)
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", threeSteps).status)
	r := f.do(t, "POST", "/v1/pipelines/chain/runs", `{"a":1}`)
	require.Equal(t, 200, r.status, r.raw)
	// A sync run whose api died after its first call: the row says running, one
	// execution of it is recorded, nothing else.
	rows := f.query(t, `WITH old AS (SELECT * FROM runs WHERE id = $1)
		INSERT INTO runs (id, tenant, pipeline, version, sha256, mode, status, input, options, created_at, started_at)
		SELECT '0193a5c4-8e1f-7c2a-9d3b-4f5e6a7b8c9d', tenant, pipeline, version, sha256, 'sync', 'running', input, options,
			now() - interval '1 minute', now() - interval '1 minute' FROM old RETURNING id`, r.body["id"])
	require.True(t, rows.Next())
	rows.Close()
	calls := f.runner.calls.Load()
	dead := "0193a5c4-8e1f-7c2a-9d3b-4f5e6a7b8c9d"
	require.Equal(t, "running", f.do(t, "GET", "/v1/runs/"+dead, "").body["status"])
	n, err := runs.svcSweep(t, f)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	w := f.do(t, "GET", "/v1/runs/"+dead+"?wait=5s", "")
	require.Equal(t, "succeeded", w.body["status"], w.raw)
	require.Equal(t, "async", w.body["mode"])
	require.Equal(t, map[string]any{"total": float64(112)}, w.body["output"])
	require.EqualValues(t, 3, f.runner.calls.Load()-calls)
	// Swept once: a second sweep finds nothing.
	n, err = runs.svcSweep(t, f)
	require.NoError(t, err)
	require.Equal(t, 0, n)
}

func (l *localRuns) svcSweep(t *testing.T, _ *fixture) (int, error) {
	t.Helper()
	return l.svc.SweepRuns(context.Background(), 30*time.Second, 100)
}

func TestRunIdempotencyKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.functions(t)
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", threeSteps).status)
	calls := f.runner.calls.Load()
	a := f.do(t, "POST", "/v1/pipelines/chain/runs", `{"a":1}`, "Idempotency-Key", "k1")
	require.Equal(t, 200, a.status, a.raw)
	b := f.do(t, "POST", "/v1/pipelines/chain/runs", `{"a":1}`, "Idempotency-Key", "k1")
	require.Equal(t, 200, b.status, b.raw)
	require.Equal(t, a.body["id"], b.body["id"])
	require.Equal(t, "true", b.header.Get("Idempotent-Replayed"))
	require.EqualValues(t, 3, f.runner.calls.Load()-calls)
	c := f.do(t, "POST", "/v1/pipelines/chain/runs", `{"a":2}`, "Idempotency-Key", "k1")
	require.Equal(t, 422, c.status, c.raw)
}

func TestTenantsCannotReachEachOthersPipelines(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	f := newFixture(t, runs, withAuth(ratelimit.Config{}))
	keyA, keyB := f.tenant(t, "alpha"), f.tenant(t, "beta")
	f.functions(t, bearer(keyA)...)
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", threeSteps, bearer(keyA)...).status)
	r := f.do(t, "POST", "/v1/pipelines/chain/runs", `{"a":1}`, bearer(keyA)...)
	require.Equal(t, 200, r.status, r.raw)
	id := r.body["id"].(string)

	// B's functions do not exist for A's pipeline names, nor A's for B's.
	b := f.do(t, "POST", "/v1/pipelines", threeSteps, bearer(keyB)...)
	require.Equal(t, 422, b.status, b.raw)
	require.Contains(t, b.body["detail"], `unknown function "add"`)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/pipelines/chain", ""},
		{"PUT", "/v1/pipelines/chain", threeSteps},
		{"DELETE", "/v1/pipelines/chain", ""},
		{"GET", "/v1/pipelines/chain/versions", ""},
		{"GET", "/v1/pipelines/chain/versions/1", ""},
		{"POST", "/v1/pipelines/chain/runs", `{}`},
		{"GET", "/v1/runs/" + id, ""},
		{"DELETE", "/v1/runs/" + id, ""},
		{"POST", "/v1/runs/" + id + "/signals/go", `{}`},
		{"POST", "/v1/runs/" + id + "/retry", `{"from_step":"two"}`},
	} {
		r := f.do(t, c.method, c.path, c.body, bearer(keyB)...)
		require.Equal(t, 404, r.status, "%s %s as tenant B: %s", c.method, c.path, r.raw)
	}
	require.Empty(t, f.do(t, "GET", "/v1/pipelines", "", bearer(keyB)...).body["pipelines"])
	require.Empty(t, f.do(t, "GET", "/v1/runs", "", bearer(keyB)...).body["runs"])
	require.Equal(t, 200, f.do(t, "GET", "/v1/runs/"+id, "", bearer(keyA)...).status)
}

// A sync run handed over while the durable side is unreachable — as if its api died
// between recording the hand-over and starting the workflow — loses nothing: it stays
// queued with its finished steps and calls, and the sweeper starts it.
func TestHandedOverRunWithoutWorkflowIsSwept(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	f := newFixture(t, runs, coreOption(func(c *core.Config) { c.SyncPipelineMax = 40 * time.Millisecond }))
	f.functions(t)
	steps := make([]string, 8)
	for i := range steps {
		steps[i] = fmt.Sprintf(`{"id":"s%d","function":"nap","input":{"a":%d,"b":1}}`, i, i)
	}
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", `{"name":"slow","steps":[`+strings.Join(steps, ",")+`]}`).status)
	runs.down.Store(true)
	calls := f.runner.calls.Load()
	r := f.do(t, "POST", "/v1/pipelines/slow/runs", `{}`)
	require.Equal(t, 202, r.status, r.raw)
	id := r.body["id"].(string)
	require.Equal(t, "queued", f.do(t, "GET", "/v1/runs/"+id, "").body["status"])
	ran := f.runner.calls.Load() - calls
	require.Greater(t, ran, int64(0))

	runs.down.Store(false)
	n, err := runs.svc.SweepRuns(context.Background(), 0, 100)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	w := f.do(t, "GET", "/v1/runs/"+id+"?wait=5s", "")
	require.Equal(t, "succeeded", w.body["status"], w.raw)
	require.Equal(t, map[string]any{"sum": float64(8)}, w.body["output"])
	require.EqualValues(t, 8, f.runner.calls.Load()-calls, "no step ran twice")
}

// The same pipeline — map, if, catch, parallel, templates — gives the same outcome run
// sync (in-memory runner) and durably (the step operations over PostgreSQL).
func TestSyncAndDurableRunsAgree(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	f := newFixture(t, runs)
	f.functions(t)
	p := `{"name":"agree","steps":[
		{"id":"first","function":"add","input":{"a":"${input.a}","b":0}},
		{"id":"each","map":{"items":"input.xs","max_concurrency":2,"step":{"function":"add-node","input":{"a":"${item}","b":"${index}"}}}},
		{"id":"big","if":"steps.first.output.sum > 100","function":"add","input":{"a":1000,"b":0}},
		{"id":"risky","function":"fail","catch":"recover"},
		{"id":"skipped_by_catch","function":"add"},
		{"id":"recover","function":"add"},
		{"id":"fan","parallel":{
			"left":[{"id":"l1","function":"add","input":{"a":"${size(steps.each.output)}","b":1}}],
			"right":[{"id":"r1","function":"add-node","input":{"a":2,"b":2}},{"id":"r2","function":"add","input":{"a":"${steps.r1.output.sum}","b":2}}]}}],
		"output":{"fan":"${steps.fan.output}","each":"${steps.each.output}","recovered":"${steps.recover.status}"}}`
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", p).status)
	in := `{"a":5,"xs":[10,20,30]}`
	s := f.do(t, "POST", "/v1/pipelines/agree/runs", in)
	require.Equal(t, 200, s.status, s.raw)
	a := f.do(t, "POST", "/v1/pipelines/agree/runs", in, "Prefer", "respond-async")
	require.Equal(t, 202, a.status, a.raw)
	a = f.do(t, "GET", a.header.Get("Location")+"?wait=5s", "")
	require.Equal(t, "succeeded", a.body["status"], a.raw)
	require.Equal(t, s.body["output"], a.body["output"])
	ss, as := stepsByID(t, s.body), stepsByID(t, a.body)
	require.Len(t, as, len(ss))
	for id, st := range ss {
		require.Equal(t, st["status"], as[id]["status"], id)
		require.Equal(t, st["output"], as[id]["output"], id)
		require.Equal(t, st["items"], as[id]["items"], id)
	}
	require.Equal(t, "skipped", as["skipped_by_catch"]["status"])
	require.Equal(t, "succeeded", as["recover"]["status"])
}

// Durable runs count against the tenant's cap on async work (with its async executions:
// store's TestRunsAndExecutionsShareTheAsyncCap); a keyed async run is started once.
func TestDurableRunsCountAgainstTheAsyncCap(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	f := newFixture(t, runs, coreOption(func(c *core.Config) { c.AsyncPerTenant = 1 }))
	f.functions(t)
	p := `{"name":"gate","steps":[{"id":"approve","wait_for":{"signal":"go","timeout_ms":60000}}]}`
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", p).status)
	a := f.do(t, "POST", "/v1/pipelines/gate/runs", `{}`, "Idempotency-Key", "once")
	require.Equal(t, 202, a.status, a.raw)
	b := f.do(t, "POST", "/v1/pipelines/gate/runs", `{}`, "Idempotency-Key", "once")
	require.Equal(t, 202, b.status, b.raw)
	require.Equal(t, a.body["id"], b.body["id"])
	require.Equal(t, "true", b.header.Get("Idempotent-Replayed"))
	require.EqualValues(t, 1, runs.starts.Load())

	r := f.do(t, "POST", "/v1/pipelines/gate/runs", `{}`)
	require.Equal(t, 429, r.status, r.raw)
	require.NotEmpty(t, r.header.Get("Retry-After"))
	require.Equal(t, 1, f.count(t, "runs"))

	id := a.body["id"].(string)
	require.Eventually(t, func() bool {
		return f.do(t, "GET", "/v1/runs/"+id, "").body["status"] == "waiting"
	}, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 202, f.do(t, "POST", "/v1/runs/"+id+"/signals/go", `"ok"`).status)
	require.Equal(t, "succeeded", f.do(t, "GET", "/v1/runs/"+id+"?wait=5s", "").body["status"])
	// Finished, it no longer counts.
	require.Equal(t, 202, f.do(t, "POST", "/v1/pipelines/gate/runs", `{}`).status)
}

// An async run whose workflow cannot be started is answered 503 and recorded failed, and
// so is the delivery of the callback it asked for: nothing will ever be delivered.
func TestUnstartedRunFailsItsCallback(t *testing.T) {
	t.Parallel()
	runs := newLocalRuns()
	f := newFixture(t, runs)
	f.functions(t)
	require.Equal(t, 201, f.do(t, "POST", "/v1/pipelines", `{"name":"one","steps":[{"id":"a","function":"add","input":{"a":1,"b":2}}]}`).status)
	runs.down.Store(true)
	r := f.do(t, "POST", "/v1/pipelines/one/runs", `{}`, "Prefer", "respond-async", "X-Callback-Url", "https://hooks.example.com/done")
	require.Equal(t, 503, r.status, r.raw)
	list := f.do(t, "GET", "/v1/runs?pipeline=one", "")
	require.Equal(t, 200, list.status, list.raw)
	rs := list.body["runs"].([]any)
	require.Len(t, rs, 1)
	run := rs[0].(map[string]any)
	require.Equal(t, "failed", run["status"])
	cb, ok := run["callback"].(map[string]any)
	require.True(t, ok, "the run's envelope has its callback: %v", run)
	require.Equal(t, "failed", cb["state"], "%v", cb)
}
