package cli

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func scheduleJSON(name string, paused bool) map[string]any {
	s := map[string]any{"name": name, "target": map[string]string{"pipeline": "etl"}, "cron": "0 3 * * *",
		"timezone": "Europe/Paris", "overlap": "skip", "paused": paused, "next_run_at": "2026-12-02T02:00:00Z"}
	switch name {
	case "ping":
		s = map[string]any{"name": "ping", "target": map[string]string{"function": "add"}, "interval_ms": 30000, "paused": paused}
	case "reports":
		// Several cron expressions come as a list, with the details a get answers.
		s = map[string]any{"name": "reports", "id": "sched-default-reports", "target": map[string]string{"function": "report"},
			"cron": []string{"0 9 * * 1-5", "0 12 * * 6"}, "timezone": "Europe/Paris", "input": map[string]int{"days": 7},
			"overlap": "skip", "paused": paused, "next_run_at": "2026-12-02T08:00:00Z",
			"next_runs":      []string{"2026-12-02T08:00:00Z", "2026-12-03T08:00:00Z"},
			"recent_actions": []any{map[string]string{"scheduled_at": "2026-12-01T08:00:00Z", "started_at": "2026-12-01T08:00:00.1Z", "workflow_id": "sched-default-reports-2026-12-01T08:00:00Z"}},
			"actions":        1, "created_at": "2026-11-30T09:00:00Z"}
	}
	return s
}

func TestScheduleCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		golden    string
		args      []string
		wantCalls []string
		wantBody  string
	}{
		{golden: "schedule_create_cron",
			args:      []string{"schedule", "create", "nightly", "--pipeline", "etl", "--cron", "0 3 * * *", "--timezone", "Europe/Paris", "--overlap", "skip"},
			wantCalls: []string{"POST /v1/schedules"},
			wantBody:  `{"name":"nightly","target":{"pipeline":"etl"},"cron":"0 3 * * *","timezone":"Europe/Paris","overlap":"skip","paused":false}`},
		{golden: "schedule_create_every",
			args:      []string{"schedule", "create", "ping", "--function", "add", "--every", "30s", "--data", `{"a":1,"b":2}`, "--paused"},
			wantCalls: []string{"POST /v1/schedules"},
			wantBody:  `{"name":"ping","target":{"function":"add"},"interval_ms":30000,"input":{"a":1,"b":2},"paused":true}`},
		{golden: "schedule_create_crons",
			args:      []string{"schedule", "create", "reports", "--function", "report", "--cron", "0 9 * * 1-5", "--cron", "0 12 * * 6"},
			wantCalls: []string{"POST /v1/schedules"},
			wantBody:  `{"name":"reports","target":{"function":"report"},"cron":["0 9 * * 1-5","0 12 * * 6"],"paused":false}`},
		{golden: "schedule_ls", args: []string{"schedule", "ls"}, wantCalls: []string{"GET /v1/schedules"}},
		{golden: "schedule_get_json", args: []string{"schedule", "get", "nightly", "-o", "json"}, wantCalls: []string{"GET /v1/schedules/nightly"}},
		{golden: "schedule_get", args: []string{"schedule", "get", "reports"}, wantCalls: []string{"GET /v1/schedules/reports"}},
		{golden: "schedule_get_crons_json", args: []string{"schedule", "get", "reports", "-o", "json"}, wantCalls: []string{"GET /v1/schedules/reports"}},
		{golden: "schedule_get_every", args: []string{"schedule", "get", "ping"}, wantCalls: []string{"GET /v1/schedules/ping"}},
		{golden: "schedule_pause", args: []string{"schedule", "pause", "nightly"},
			wantCalls: []string{"PATCH /v1/schedules/nightly"}, wantBody: `{"paused":true}`},
		{golden: "schedule_resume", args: []string{"schedule", "resume", "nightly"},
			wantCalls: []string{"PATCH /v1/schedules/nightly"}, wantBody: `{"paused":false}`},
		{golden: "schedule_trigger", args: []string{"schedule", "trigger", "nightly"}, wantCalls: []string{"POST /v1/schedules/nightly/trigger"}},
		{golden: "schedule_runs", args: []string{"schedule", "runs", "nightly"}, wantCalls: []string{"GET /v1/schedules/nightly/runs"}},
		{golden: "schedule_rm", args: []string{"schedule", "rm", "nightly"}, wantCalls: []string{"DELETE /v1/schedules/nightly"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			f := newFake(t).
				on("POST /v1/schedules", func(w http.ResponseWriter, r *http.Request) {
					body, _ := io.ReadAll(r.Body)
					name := "nightly"
					for _, n := range []string{"ping", "reports"} {
						if strings.Contains(string(body), `"`+n+`"`) {
							name = n
						}
					}
					reply(201, scheduleJSON(name, false))(w, r)
				}).
				on("GET /v1/schedules", reply(200, map[string]any{"schedules": []any{scheduleJSON("nightly", false), scheduleJSON("ping", true),
					scheduleJSON("reports", false)}})).
				on("GET /v1/schedules/nightly", reply(200, scheduleJSON("nightly", false))).
				on("GET /v1/schedules/reports", reply(200, scheduleJSON("reports", false))).
				on("GET /v1/schedules/ping", reply(200, scheduleJSON("ping", true))).
				on("PATCH /v1/schedules/nightly", func(w http.ResponseWriter, r *http.Request) {
					reply(200, scheduleJSON("nightly", contains(r, "true")))(w, r)
				}).
				on("POST /v1/schedules/nightly/trigger", reply(202, nil)).
				on("GET /v1/schedules/nightly/runs", reply(200, map[string]any{"runs": []any{
					map[string]any{"started_at": "2026-12-01T02:00:00.02Z", "run_id": runID, "status": "succeeded"},
					map[string]any{"started_at": "2026-11-30T02:00:00.02Z", "execution_id": execID, "status": "failed"},
				}})).
				on("DELETE /v1/schedules/nightly", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
			r := on(f).run(t, tt.args...)
			checkGolden(t, tt.golden, r.golden())
			require.Equal(t, tt.wantCalls, f.lines())
			if tt.wantBody != "" {
				require.JSONEq(t, tt.wantBody, f.received()[0].Body)
			}
		})
	}
}

// contains reports whether the request's body contains s.
func contains(r *http.Request, s string) bool {
	body, _ := io.ReadAll(r.Body)
	return strings.Contains(string(body), s)
}

func TestSessionCommands(t *testing.T) {
	t.Parallel()
	const sid = "sess-1"
	tests := []struct {
		golden    string
		args      []string
		stdin     string
		wantCalls []string
		wantBody  string
	}{
		{golden: "session_new", args: []string{"session", "new", "--language", "node"},
			wantCalls: []string{"POST /v1/sessions"}, wantBody: `{"language":"node"}`},
		{golden: "session_exec", args: []string{"session", "exec", sid, "x + 2"},
			wantCalls: []string{"POST /v1/sessions/sess-1/cells"}, wantBody: `{"source":"x + 2"}`},
		{golden: "session_exec_stdin_error", args: []string{"session", "exec", sid, "-"}, stdin: "1/0\n",
			wantCalls: []string{"POST /v1/sessions/sess-1/cells"}, wantBody: `{"source":"1/0\n"}`},
		{golden: "session_get", args: []string{"session", "get", sid}, wantCalls: []string{"GET /v1/sessions/sess-1"}},
		{golden: "session_rm", args: []string{"session", "rm", sid}, wantCalls: []string{"DELETE /v1/sessions/sess-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			f := newFake(t).
				on("POST /v1/sessions", reply(201, map[string]any{"id": sid, "language": "node", "created_at": "2026-12-01T10:00:00Z"})).
				on("POST /v1/sessions/sess-1/cells", func(w http.ResponseWriter, r *http.Request) {
					if contains(r, "1/0") {
						reply(500, map[string]any{"status": "failed", "result": nil, "stdout": "",
							"error": map[string]string{"type": "ZeroDivisionError", "message": "division by zero"}})(w, r)
						return
					}
					reply(200, map[string]any{"status": "succeeded", "result": 42, "stdout": "hi\n", "duration_ms": 0.4})(w, r)
				}).
				on("GET /v1/sessions/sess-1", reply(200, map[string]any{"id": sid, "language": "python", "created_at": "2026-12-01T10:00:00Z",
					"cells": []any{
						map[string]any{"source": "x = 40", "status": "succeeded", "duration_ms": 0.3, "result": nil},
						map[string]any{"source": "def f():\n    return x", "status": "succeeded", "duration_ms": 0.2, "result": nil},
					}})).
				on("DELETE /v1/sessions/sess-1", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
			c := on(f)
			c.stdin = tt.stdin
			r := c.run(t, tt.args...)
			checkGolden(t, tt.golden, r.golden())
			require.Equal(t, tt.wantCalls, f.lines())
			if tt.wantBody != "" {
				require.JSONEq(t, tt.wantBody, f.received()[0].Body)
			}
		})
	}
}
