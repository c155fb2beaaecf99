package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/cli/client"
)

func TestLogin(t *testing.T) {
	t.Parallel()
	f := newFake(t).on("GET /v1/functions", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer lmk_secret" {
			problem(401, "urn:lambda:problem:unauthorized", "invalid API key")(w, r)
			return
		}
		reply(200, map[string]any{"functions": []any{}})(w, r)
	})
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")

	// A wrong key is refused by the platform: nothing is saved.
	r := cli{configDir: dir, env: env{}}.run(t, "login", f.URL, "--token", "wrong")
	require.Equal(t, ExitPlatform, r.code)
	require.Equal(t, "error: invalid API key (401)\n", r.stderr)
	require.NoFileExists(t, path)

	// The key from standard input, saved with mode 0600 to the named profile.
	r = cli{configDir: dir, env: env{}, stdin: "lmk_secret\n"}.run(t, "login", f.URL, "--profile", "dev")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, fmt.Sprintf("logged in to %s as profile \"dev\" (saved in %s)\n", f.URL, path), r.stdout)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("current: dev\nprofiles:\n  dev:\n    api: %s\n    token: lmk_secret\n", f.URL), string(raw))

	// Later commands use the current profile with no environment at all...
	r = cli{configDir: dir, env: env{}}.run(t, "fn", "ls", "-o", "json")
	require.Equal(t, 0, r.code, r.stderr)
	calls := f.received()
	require.Equal(t, "Bearer lmk_secret", calls[len(calls)-1].Header.Get("Authorization"))

	// ...and LAMBDA_TOKEN overrides its key.
	r = cli{configDir: dir, env: env{"LAMBDA_TOKEN": "other"}}.run(t, "fn", "ls")
	require.Equal(t, ExitPlatform, r.code)
	calls = f.received()
	require.Equal(t, "Bearer other", calls[len(calls)-1].Header.Get("Authorization"))

	// An unknown profile is a usage error; nothing is sent.
	n := len(f.received())
	r = cli{configDir: dir, env: env{}}.run(t, "fn", "ls", "--profile", "prod")
	require.Equal(t, ExitUsage, r.code)
	require.Equal(t, "error: unknown profile \"prod\" (profiles: dev)\n", r.stderr)
	r = cli{configDir: dir, env: env{"LAMBDA_PROFILE": "prod"}}.run(t, "fn", "ls")
	require.Equal(t, ExitUsage, r.code)
	require.Len(t, f.received(), n)
}

func TestBadInputSendsNothing(t *testing.T) {
	t.Parallel()
	dir := writeFiles(t, map[string]string{
		"add.py": "x = 1\n", "notes.txt": "hello\n", "2fa.py": "x\n", "bad.json": "{", "flow.toml": "x",
		"py/add.py": "x\n", "py/requirements.txt": "-r other.txt\n",
		"rs/sq.rs": "x\n", "rs/Cargo.toml": "[dependencies]\nlocal = { path = \"../x\" }\n",
	})
	p := func(name string) string { return filepath.Join(dir, name) }
	tests := []struct {
		name    string
		args    []string
		env     env // nil: the fake's address and a token
		wantErr string
	}{
		{"unknown extension", []string{"fn", "deploy", p("notes.txt")}, nil, `unknown extension ".txt"`},
		{"missing file", []string{"fn", "deploy", p("nope.py")}, nil, "nope.py: no such file"},
		{"no name from file", []string{"fn", "deploy", p("2fa.py")}, nil, "give --name"},
		{"bad --name", []string{"fn", "deploy", p("add.py"), "--name", "Add_1"}, nil, `invalid name "Add_1"`},
		{"bad --env", []string{"fn", "deploy", p("add.py"), "--env", "NOEQUALS"}, nil, "want KEY=VALUE"},
		{"bad --timeout", []string{"fn", "deploy", p("add.py"), "--timeout", "soon"}, nil, `invalid argument "soon"`},
		{"bad requirements", []string{"fn", "deploy", p("py/add.py")}, nil, "requirements.txt: line 1"},
		{"path dependency", []string{"fn", "deploy", p("rs/sq.rs")}, nil, `dependency "local"`},
		{"malformed --data", []string{"invoke", "add", "--data", "{a: 1}"}, nil, "--data is not valid JSON"},
		{"malformed --data file", []string{"invoke", "add", "--data", "@" + p("bad.json")}, nil, "--data is not valid JSON"},
		{"missing --data file", []string{"invoke", "add", "--data", "@" + p("none.json")}, nil, "no such file"},
		{"wait without async", []string{"invoke", "add", "--wait"}, nil, "--wait goes with --async"},
		{"bad --version", []string{"invoke", "add", "--version", "0"}, nil, "--version must be 1 or more"},
		{"unknown profile", []string{"fn", "ls", "--profile", "nope"}, env{}, `unknown profile "nope"`},
		{"not logged in", []string{"fn", "ls"}, env{}, "not logged in"},
		{"bad API URL", []string{"fn", "ls"}, env{"LAMBDA_API": "127.0.0.1:8000", "LAMBDA_TOKEN": "t"}, "invalid API URL"},
		{"unknown output", []string{"fn", "ls", "-o", "xml"}, nil, `unknown output format "xml"`},
		{"unknown flag", []string{"fn", "ls", "--nope"}, nil, "unknown flag: --nope"},
		{"extra argument", []string{"fn", "get", "a", "b"}, nil, "accepts 1 arg(s), received 2"},
		{"missing argument", []string{"invoke"}, nil, "accepts 1 arg(s), received 0"},
		{"unknown subcommand", []string{"fn", "deploi", "x"}, nil, `unknown command "deploi" for "lambda fn"`},
		{"unknown shell", []string{"completion", "tcsh"}, nil, `invalid argument "tcsh"`},
		{"pipeline extension", []string{"pipeline", "deploy", p("flow.toml")}, nil, `unknown extension ".toml"`},
		{"pipeline not an object", []string{"pipeline", "deploy", p("bad.json")}, nil, "want a pipeline definition"},
		{"schedule two targets", []string{"schedule", "create", "s", "--function", "a", "--pipeline", "b", "--cron", "* * * * *"}, nil, "one of --function or --pipeline"},
		{"schedule no timing", []string{"schedule", "create", "s", "--function", "a"}, nil, "one of --cron or --every"},
		{"schedule overlap", []string{"schedule", "create", "s", "--function", "a", "--every", "1m", "--overlap", "queue"}, nil, `unknown --overlap "queue"`},
		{"limit", []string{"exec", "ls", "--limit", "0"}, nil, "--limit must be between 1 and 500"},
		{"session code and file", []string{"session", "exec", "s", "x", "--file", p("add.py")}, nil, "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			c := on(f)
			if tt.env != nil {
				c.env = tt.env
			}
			r := c.run(t, tt.args...)
			require.Equal(t, ExitUsage, r.code, "stderr: %s", r.stderr)
			require.True(t, strings.HasPrefix(r.stderr, "error: "), r.stderr)
			require.Contains(t, r.stderr, tt.wantErr)
			require.Equal(t, 1, strings.Count(r.stderr, "\n"), "one line: %q", r.stderr)
			require.Empty(t, r.stdout)
			require.Empty(t, f.received(), "nothing may be sent")
		})
	}
}

func TestUnreachablePlatform(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	r := cli{env: env{"LAMBDA_API": "http://" + addr, "LAMBDA_TOKEN": "t"}}.run(t, "fn", "ls")
	require.Equal(t, ExitPlatform, r.code)
	require.True(t, strings.HasPrefix(r.stderr, "error: cannot reach the platform at http://"+addr+": "), r.stderr)
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			t.Parallel()
			r := cli{env: env{}}.run(t, "completion", shell)
			require.Equal(t, 0, r.code, r.stderr)
			require.Contains(t, r.stdout, "lambda")
			require.Contains(t, r.stdout, shell)
		})
	}
	// Function names complete from the platform.
	f := newFake(t).on("GET /v1/functions", reply(200, map[string]any{"functions": []any{fnJSON("add", "python", 1)}}))
	r := on(f).run(t, cobra.ShellCompRequestCmd, "invoke", "")
	require.Equal(t, 0, r.code, r.stderr)
	require.True(t, strings.HasPrefix(r.stdout, "add\tpython\n"), r.stdout)
}

func TestEveryCommandIsGroupedAndHasAnExample(t *testing.T) {
	t.Parallel()
	root := &cobra.Command{Use: "lambda"}
	Mount(root, Options{})
	require.True(t, root.ContainsGroup(GroupID))
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Runnable() && c.HasParent() && !c.HasSubCommands() {
			require.NotEmpty(t, c.Example, "%s has no example", c.CommandPath())
			require.Contains(t, c.Long, "Exit codes:", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	for _, c := range root.Commands() {
		if c.Name() == "help" {
			continue
		}
		require.Equal(t, GroupID, c.GroupID, c.Name())
		walk(c)
	}
	var help strings.Builder
	root.SetOut(&help)
	root.SetArgs([]string{"--help"})
	require.NoError(t, root.Execute())
	require.Contains(t, help.String(), "User commands:\n  completion")
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want int
	}{
		{nil, 0},
		{usagef("bad"), 2},
		{fmt.Errorf("wrapped: %w", usageError{errors.New("x")}), 2},
		{errors.New(`unknown command "x" for "lambda"`), 2},
		{errors.New("unknown shorthand flag: 'z' in -z"), 2},
		{&failedError{what: "execution", id: "1", status: "timeout"}, 1},
		{verboseError{&failedError{what: "run", id: "1", status: "failed"}}, 1},
		{&client.Error{Status: 404}, 3},
		{verboseError{&client.Error{Status: 503}}, 3},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, 3},
		{context.Canceled, 130},
		{errors.New("disk full"), 1},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, ExitCode(tt.err), "%v", tt.err)
	}
}
