package console

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// fakeAPI answers the /v1 routes the console calls with canned data in the shapes of
// DESIGN.md §3, §9, §11 and the stats endpoint, so the browser test can walk the pages
// without the platform. It checks the bearer key like the real api.
type fakeAPI struct {
	key string

	mu        sync.Mutex
	runPolls  int
	signaled  bool
	cellIndex int
	vars      map[string]bool
}

const (
	fakeV1 = "def handler(event, context):\n    return event[\"a\"] + event[\"b\"]\n"
	fakeV2 = "def handler(event, context):\n    print(\"adding\", event)\n    return {\"sum\": event[\"a\"] + event[\"b\"]}\n"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func problem(w http.ResponseWriter, status int, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": title, "status": status, "detail": detail})
}

func (f *fakeAPI) routes() http.Handler {
	now := time.Now().UTC()
	ts := func(ago time.Duration) string { return now.Add(-ago).Format(time.RFC3339Nano) }
	fn := map[string]any{"name": "add", "language": "python", "version": 2, "sha256": strings.Repeat("ab", 32),
		"timeout_ms": 3000, "memory_mb": 128, "cache_ttl_s": 0, "created_at": ts(time.Minute)}
	version := func(v int, src string) map[string]any {
		return map[string]any{"name": "add", "language": "python", "version": v, "sha256": fmt.Sprintf("%064d", v),
			"source": src, "timeout_ms": 3000, "memory_mb": 128, "created_at": ts(time.Duration(3-v) * time.Hour)}
	}
	exec := func(id, mode string) map[string]any {
		return map[string]any{"id": id, "function": "add", "version": 2, "language": "python", "mode": mode,
			"status": "succeeded", "result": map[string]any{"sum": 42}, "error": nil, "stdout": "adding {'a': 2, 'b': 40}\n",
			"stderr": "", "duration_ms": 1.7, "cached": false, "attempts": 1, "created_at": ts(time.Second), "finished_at": ts(0)}
	}
	pipeline := map[string]any{"name": "approval", "version": 1, "sha256": strings.Repeat("cd", 32), "created_at": ts(time.Hour),
		"steps": []any{
			map[string]any{"id": "first", "function": "add"},
			map[string]any{"id": "fan", "parallel": map[string]any{
				"left":  []any{map[string]any{"id": "left", "function": "add"}},
				"right": []any{map[string]any{"id": "right", "function": "add"}, map[string]any{"id": "pause", "sleep_ms": 1000}},
			}},
			map[string]any{"id": "approve", "wait_for": map[string]any{"signal": "approve", "timeout_ms": 60000}},
			map[string]any{"id": "last", "function": "add", "catch": "cleanup"},
			map[string]any{"id": "cleanup", "function": "add", "if": "false"},
		}}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/functions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"functions": []any{fn}})
	})
	mux.HandleFunc("POST /v1/functions", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Name string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Name == "add" {
			problem(w, 409, "Conflict", `function "add" already exists; PUT /v1/functions/add adds a version`)
			return
		}
		writeJSON(w, 201, map[string]any{"name": req.Name, "language": "node", "version": 1})
	})
	mux.HandleFunc("GET /v1/functions/add", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, fn) })
	mux.HandleFunc("GET /v1/functions/add/versions", func(w http.ResponseWriter, r *http.Request) {
		a, b := version(1, ""), version(2, "")
		delete(a, "source")
		delete(b, "source")
		writeJSON(w, 200, map[string]any{"versions": []any{a, b}})
	})
	mux.HandleFunc("GET /v1/functions/add/versions/{v}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("v") {
		case "1":
			writeJSON(w, 200, version(1, fakeV1))
		case "2":
			writeJSON(w, 200, version(2, fakeV2))
		default:
			problem(w, 404, "Not Found", "no version "+r.PathValue("v"))
		}
	})
	mux.HandleFunc("POST /v1/functions/add/invoke", func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Language-Title"), "python") {
			problem(w, 400, "Bad Request", "Language-Title must name python")
			return
		}
		var ev map[string]any
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			problem(w, 400, "Bad Request", "the event is not JSON")
			return
		}
		if r.Header.Get("Prefer") == "respond-async" {
			w.Header().Set("Location", "/v1/executions/e-async")
			writeJSON(w, 202, map[string]any{"id": "e-async", "status": "queued"})
			return
		}
		writeJSON(w, 200, exec("e-sync", "sync"))
	})
	mux.HandleFunc("GET /v1/executions", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"executions": []any{exec("e-async", "async"), exec("e-sync", "sync")}})
	})
	mux.HandleFunc("GET /v1/executions/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		mode := "sync"
		if id == "e-async" {
			mode = "async"
		}
		writeJSON(w, 200, exec(id, mode))
	})
	mux.HandleFunc("GET /v1/stats/functions/add", func(w http.ResponseWriter, r *http.Request) {
		var series []any
		start := now.Truncate(time.Minute).Add(-59 * time.Minute)
		for i := range 60 {
			calls := 60 + 30*(i%7)
			series = append(series, map[string]any{"t": start.Add(time.Duration(i) * time.Minute).Unix(), "calls": calls,
				"errors": i % 3, "p50_ms": 1.5 + float64(i%5)/10, "p99_ms": 4 + float64(i%11)})
		}
		writeJSON(w, 200, map[string]any{"function": "add", "window_s": 3600, "step_s": 60, "source": "request_logs", "series": series})
	})
	mux.HandleFunc("POST /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.vars, f.cellIndex = map[string]bool{}, 0
		f.mu.Unlock()
		writeJSON(w, 201, map[string]any{"id": "s-1", "language": "python", "created_at": ts(0)})
	})
	mux.HandleFunc("POST /v1/sessions/s-1/cells", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Source string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		defer f.mu.Unlock()
		out := map[string]any{"index": f.cellIndex, "status": "succeeded", "result": nil, "stdout": "", "stderr": "", "error": nil, "duration_ms": 0.4}
		f.cellIndex++
		switch src := strings.TrimSpace(req.Source); {
		case src == "x = 21":
			f.vars["x"] = true
		case src == `print("x is", x)` && f.vars["x"]:
			out["stdout"] = "x is 21\n"
		case src == "x * 2" && f.vars["x"]:
			out["result"] = 42
		default:
			out["status"] = "failed"
			out["error"] = map[string]any{"type": "NameError", "message": "name 'x' is not defined",
				"stack": "Traceback (most recent call last):\n  File \"<cell>\", line 1, in <module>\nNameError: name 'x' is not defined\n"}
		}
		writeJSON(w, 200, out)
	})
	mux.HandleFunc("POST /v1/sessions/s-1/promote", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Name string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		writeJSON(w, 201, map[string]any{"name": req.Name, "language": "python", "version": 1})
	})
	mux.HandleFunc("GET /v1/pipelines", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"pipelines": []any{pipeline}})
	})
	mux.HandleFunc("GET /v1/pipelines/approval", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, pipeline) })
	mux.HandleFunc("GET /v1/pipelines/approval/versions/1", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, pipeline) })
	mux.HandleFunc("GET /v1/runs", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"runs": []any{f.run(ts)}})
	})
	mux.HandleFunc("GET /v1/runs/r-1", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.runPolls++
		f.mu.Unlock()
		writeJSON(w, 200, f.run(ts))
	})
	mux.HandleFunc("POST /v1/runs/r-1/signals/{name}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		if r.PathValue("name") != "approve" || !json.Valid(body) || f.signaled {
			problem(w, 409, "Conflict", "run r-1 is not waiting for signal "+r.PathValue("name"))
			return
		}
		f.signaled = true
		w.WriteHeader(http.StatusAccepted)
	})

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+f.key {
			problem(w, 401, "Unauthorized", "a valid API key is required")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// run is r-1 as it goes: running step by step, waiting at approve, then (after the
// signal) the last step and success, with cleanup skipped.
func (f *fakeAPI) run(ts func(time.Duration) string) map[string]any {
	f.mu.Lock()
	polls, signaled := f.runPolls, f.signaled
	f.mu.Unlock()
	step := func(id, status string, out any) map[string]any {
		s := map[string]any{"id": id, "status": status, "attempts": 1, "output": out, "error": nil, "started_at": ts(time.Second)}
		if status == "succeeded" || status == "skipped" {
			s["finished_at"] = ts(0)
			s["execution_id"] = "e-sync"
		}
		return s
	}
	status := "running"
	steps := []any{step("first", "running", nil)}
	if polls >= 2 {
		steps = []any{step("first", "succeeded", 42), step("fan", "running", nil), step("left", "succeeded", 1), step("right", "running", nil)}
	}
	if polls >= 3 {
		status = "waiting"
		steps = []any{step("first", "succeeded", 42), step("fan", "succeeded", map[string]any{"left": 1, "right": nil}),
			step("left", "succeeded", 1), step("right", "succeeded", 2), step("pause", "succeeded", nil), step("approve", "waiting", nil)}
	}
	if signaled {
		status = "succeeded"
		steps = append(steps[:5:5], step("approve", "succeeded", map[string]any{"approved": true}), step("last", "succeeded", 43),
			step("cleanup", "skipped", nil))
	}
	r := map[string]any{"id": "r-1", "pipeline": "approval", "version": 1, "mode": "async", "status": status,
		"input": map[string]any{"a": 2, "b": 40}, "output": nil, "error": nil, "steps": steps, "created_at": ts(time.Minute)}
	if status == "succeeded" {
		r["output"] = 43
		r["finished_at"] = ts(0)
	}
	return r
}
