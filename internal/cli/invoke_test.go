package cli

import (
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestInvoke(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{"event.json": `{"a": 2, "b": 40}`})
	succeeded := execJSON("succeeded", map[string]any{"result": map[string]int{"sum": 42}, "stdout": "adding {'a': 2, 'b': 40}\n"})
	failed := execJSON("failed", map[string]any{"error": map[string]string{"type": "ZeroDivisionError",
		"message": "division by zero", "stack": "Traceback (most recent call last):\n  File \"add.py\", line 2\nZeroDivisionError: division by zero\n"},
		"stderr": "warn\n"})
	queued := map[string]string{"id": execID, "status": "queued"}
	tests := []struct {
		golden    string
		args      []string
		stdin     string
		invoke    http.HandlerFunc
		wantCalls []string
		// wantHeader are headers the invoke request must carry.
		wantHeader map[string]string
		wantBody   string
	}{
		{
			golden: "invoke_sync", args: []string{"invoke", "add", "--data", `{"a": 2, "b": 40}`},
			invoke:     reply(200, succeeded),
			wantCalls:  []string{"GET /v1/functions/add", "POST /v1/functions/add/invoke"},
			wantHeader: map[string]string{"Language-Title": "python", "Prefer": "", "Idempotency-Key": ""},
			wantBody:   `{"a": 2, "b": 40}`,
		},
		{
			golden: "invoke_sync_json", args: []string{"invoke", "add", "-d", "@" + filepath.Join(dir, "event.json"), "-o", "json", "--language", "py", "--version", "1"},
			invoke:     reply(200, succeeded),
			wantCalls:  []string{"POST /v1/functions/add/invoke?version=1"},
			wantHeader: map[string]string{"Language-Title": "py"},
			wantBody:   `{"a": 2, "b": 40}`,
		},
		{
			golden: "invoke_failed", args: []string{"invoke", "add", "--data", "-"}, stdin: `{"a": 1, "b": 0}`,
			invoke:    reply(500, failed),
			wantCalls: []string{"GET /v1/functions/add", "POST /v1/functions/add/invoke"},
			wantBody:  `{"a": 1, "b": 0}`,
		},
		{
			golden: "invoke_no_data", args: []string{"invoke", "add"},
			invoke:    reply(200, succeeded),
			wantCalls: []string{"GET /v1/functions/add", "POST /v1/functions/add/invoke"},
			wantBody:  ``,
		},
		{
			golden: "invoke_async", args: []string{"invoke", "add", "--async", "--idempotency-key", "order-42", "--data", "{}"},
			invoke:     reply(202, queued, "Location", "/v1/executions/"+execID),
			wantCalls:  []string{"GET /v1/functions/add", "POST /v1/functions/add/invoke"},
			wantHeader: map[string]string{"Prefer": "respond-async", "Idempotency-Key": "order-42"},
			wantBody:   `{}`,
		},
		{
			golden: "invoke_async_wait", args: []string{"invoke", "add", "--async", "--wait", "--data", "{}"},
			invoke: reply(202, queued, "Location", "/v1/executions/"+execID),
			wantCalls: []string{"GET /v1/functions/add", "POST /v1/functions/add/invoke",
				"GET /v1/executions/" + execID + "?wait=30s", "GET /v1/executions/" + execID + "?wait=30s"},
			wantHeader: map[string]string{"Prefer": "respond-async"},
			wantBody:   `{}`,
		},
		{
			golden: "invoke_platform_error", args: []string{"invoke", "add", "--data", "1"},
			invoke:    problem(503, "urn:lambda:problem:unavailable", "runtime python is not ready"),
			wantCalls: []string{"GET /v1/functions/add", "POST /v1/functions/add/invoke"},
			wantBody:  `1`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			f := newFake(t).
				on("GET /v1/functions/add", reply(200, fnJSON("add", "python", 1))).
				on("POST /v1/functions/add/invoke", tt.invoke).
				on("GET /v1/executions/{id}", sequence(
					reply(200, execJSON("running", map[string]any{"mode": "async"})),
					reply(200, execJSON("succeeded", map[string]any{"mode": "async", "result": 42}))))
			c := on(f)
			c.stdin = tt.stdin
			r := c.run(t, tt.args...)
			checkGolden(t, tt.golden, r.golden())
			require.Equal(t, tt.wantCalls, f.lines())
			var inv call
			for _, c := range f.received() {
				if c.Method == http.MethodPost {
					inv = c
				}
			}
			for k, v := range tt.wantHeader {
				require.Equal(t, v, inv.Header.Get(k), k)
			}
			require.Equal(t, tt.wantBody, inv.Body)
		})
	}
}

func TestExecCommands(t *testing.T) {
	t.Parallel()
	failed := execJSON("failed", map[string]any{"mode": "async", "attempts": 2, "stdout": "a\nb\n", "stderr": "oops",
		"error": map[string]string{"type": "ValueError", "message": "bad", "stack": "Traceback\nValueError: bad"}})
	tests := []struct {
		golden    string
		args      []string
		wantCalls []string
	}{
		{"exec_ls", []string{"exec", "ls", "--function", "add", "--status", "failed", "--limit", "2"},
			[]string{"GET /v1/executions?function=add&limit=2&status=failed"}},
		{"exec_ls_json", []string{"exec", "ls", "-o", "json"}, []string{"GET /v1/executions?limit=20"}},
		{"exec_get", []string{"exec", "get", execID}, []string{"GET /v1/executions/" + execID}},
		{"exec_watch_failed", []string{"exec", "watch", execID},
			[]string{"GET /v1/executions/" + execID, "GET /v1/executions/" + execID + "?wait=30s"}},
		{"exec_cancel", []string{"exec", "cancel", execID}, []string{"DELETE /v1/executions/" + execID}},
		{"exec_cancel_finished", []string{"exec", "cancel", "done"}, []string{"DELETE /v1/executions/done"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			f := newFake(t).
				on("GET /v1/executions", reply(200, map[string]any{"executions": []any{
					execJSON("succeeded", nil), failed}, "next_cursor": "eyJ0IjoiMjAyNiJ9"})).
				on("GET /v1/executions/{id}", sequence(reply(200, execJSON("running", nil)), reply(200, failed))).
				on("DELETE /v1/executions/"+execID, reply(202, map[string]string{"id": execID, "status": "canceling"})).
				on("DELETE /v1/executions/done", problem(409, "urn:lambda:problem:conflict", "execution done has finished"))
			if tt.golden == "exec_get" {
				f.on("GET /v1/executions/"+execID, reply(200, failed))
			}
			r := on(f).run(t, tt.args...)
			checkGolden(t, tt.golden, r.golden())
			require.Equal(t, tt.wantCalls, f.lines())
		})
	}
}
