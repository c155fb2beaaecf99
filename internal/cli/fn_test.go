package cli

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFnDeploy(t *testing.T) {
	t.Parallel()
	const py = "def handler(event, context):\n    return event\n"
	tests := []struct {
		name  string
		files map[string]string
		file  string
		args  []string
		// put is the PUT's answer; post, when set, the POST's after a 404.
		put, post http.HandlerFunc
		wantOut   string
		wantCalls []string
		// wantBody is the JSON of the last request's body.
		wantBody string
	}{
		{
			name:    "creates with requirements",
			files:   map[string]string{"add.py": py, "requirements.txt": "# deps\nrequests==2.31.0\nnumpy >= 1.26  # math\n\nsix\n"},
			file:    "add.py",
			put:     problem(404, "urn:lambda:problem:not_found", `function "add" not found`),
			post:    reply(201, fnJSON("add", "python", 1)),
			wantOut: "created add v1\n", wantCalls: []string{"PUT /v1/functions/add", "POST /v1/functions"},
			wantBody: `{"name":"add","language":"python","source":` + jsonString(py) +
				`,"dependencies":{"numpy":">=1.26","requests":"==2.31.0","six":"*"}}`,
		},
		{
			name:    "updates with settings",
			files:   map[string]string{"Hello_World.mjs": "export const handler = async (e) => e;\n", "package.json": `{"dependencies":{"is-number":"^7.0.0"},"devDependencies":{"jest":"29"}}`},
			file:    "Hello_World.mjs",
			args:    []string{"--env", "A=1", "--env", "B=x=y", "--timeout", "30s", "--memory", "256", "--cache-ttl", "1m"},
			put:     reply(201, fnJSON("hello-world", "node", 2)),
			wantOut: "updated hello-world v2\n", wantCalls: []string{"PUT /v1/functions/hello-world"},
			wantBody: `{"name":"hello-world","language":"node","source":"export const handler = async (e) =\u003e e;\n","timeout_ms":30000,"memory_mb":256,"cache_ttl_s":60,"env":{"A":"1","B":"x=y"},"dependencies":{"is-number":"^7.0.0"}}`,
		},
		{
			name:    "unchanged rust with cargo and overrides",
			files:   map[string]string{"sq.txt": "fn handler() {}\n", "Cargo.toml": "[package]\nname = \"x\"\n[dependencies]\nitoa = \"1\"\nregex = { version = \"1.10\", default-features = false }\n"},
			file:    "sq.txt",
			args:    []string{"--language", "rust", "--name", "square"},
			put:     reply(200, fnJSON("square", "rust", 4)),
			wantOut: "unchanged square v4\n", wantCalls: []string{"PUT /v1/functions/square"},
			wantBody: `{"name":"square","language":"rust","source":"fn handler() {}\n","dependencies":{"itoa":"1","regex":"1.10"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t).on("PUT /v1/functions/{name}", tt.put)
			if tt.post != nil {
				f.on("POST /v1/functions", tt.post)
			}
			dir := writeFiles(t, tt.files)
			r := on(f).run(t, append([]string{"fn", "deploy", filepath.Join(dir, tt.file)}, tt.args...)...)
			require.Equal(t, 0, r.code, r.stderr)
			require.Equal(t, tt.wantOut, r.stdout)
			require.Equal(t, tt.wantCalls, f.lines())
			calls := f.received()
			last := calls[len(calls)-1]
			require.JSONEq(t, tt.wantBody, last.Body)
			require.Equal(t, "Bearer tok", last.Header.Get("Authorization"))
			require.Equal(t, "application/json", last.Header.Get("Content-Type"))
			// The PUT sends the same registration as the POST.
			require.JSONEq(t, tt.wantBody, calls[0].Body)
		})
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestFnDeployJSONOutput(t *testing.T) {
	t.Parallel()
	f := newFake(t).on("PUT /v1/functions/{name}", reply(201, fnJSON("add", "python", 2)))
	dir := writeFiles(t, map[string]string{"add.py": "x = 1\n"})
	r := on(f).run(t, "fn", "deploy", filepath.Join(dir, "add.py"), "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &got))
	require.Equal(t, "add", got["name"])
	require.EqualValues(t, 2, got["version"])
}

func TestFnCommands(t *testing.T) {
	t.Parallel()
	v1 := fnJSON("add", "python", 1)
	v1["source"] = "def handler(event, context):\n    return 1\n"
	v1["env"] = map[string]string{"B": "2", "A": "1"}
	tests := []struct {
		golden    string
		args      []string
		wantCalls []string
	}{
		{"fn_ls", []string{"fn", "ls"}, []string{"GET /v1/functions"}},
		{"fn_ls_json", []string{"fn", "ls", "-o", "json"}, []string{"GET /v1/functions"}},
		{"fn_ls_yaml", []string{"fn", "list", "-o", "yaml"}, []string{"GET /v1/functions"}},
		{"fn_get", []string{"fn", "get", "add"}, []string{"GET /v1/functions/add"}},
		{"fn_get_source", []string{"fn", "get", "add", "--version", "1", "--source"}, []string{"GET /v1/functions/add/versions/1"}},
		{"fn_versions", []string{"fn", "versions", "add"}, []string{"GET /v1/functions/add/versions"}},
		{"fn_rm", []string{"fn", "rm", "add", "hello-js"}, []string{"DELETE /v1/functions/add", "DELETE /v1/functions/hello-js"}},
		{"fn_get_missing", []string{"fn", "get", "nope"}, []string{"GET /v1/functions/nope"}},
		{"fn_get_missing_verbose", []string{"fn", "get", "nope", "-v"}, []string{"GET /v1/functions/nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			f := newFake(t).
				on("GET /v1/functions", reply(200, map[string]any{"functions": []any{fnJSON("add", "python", 2), fnJSON("hello-js", "node", 1)}})).
				on("GET /v1/functions/add", reply(200, fnJSON("add", "python", 2))).
				on("GET /v1/functions/nope", problem(404, "urn:lambda:problem:not_found", `function "nope" not found`)).
				on("GET /v1/functions/add/versions", reply(200, map[string]any{"versions": []any{fnJSON("add", "python", 1), fnJSON("add", "python", 2)}})).
				on("GET /v1/functions/add/versions/1", reply(200, v1)).
				on("DELETE /v1/functions/{name}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(204) })
			r := on(f).run(t, tt.args...)
			checkGolden(t, tt.golden, r.golden())
			require.Equal(t, tt.wantCalls, f.lines())
		})
	}
}
