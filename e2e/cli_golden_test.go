package e2e

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var updateGolden = flag.Bool("update", false, "rewrite e2e/testdata/*.golden with this run's output")

// masks replace what differs from run to run (ids, times, durations) with placeholders;
// then runs of spaces are one, so that table columns do not move with them.
var masks = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "<id>"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`), "<time>"},
	{regexp.MustCompile(`\b\d+(\.\d+)?(µs|ms)\b|\b\d+\.\d+s\b`), "<dur>"},
	{regexp.MustCompile(`("?duration_ms"?): [0-9.e+-]+`), "$1: <n>"},
	{regexp.MustCompile(`--cursor \S+`), "--cursor <cursor>"},
	{regexp.MustCompile(` {2,}`), "  "},
}

func mask(s string) string {
	for _, m := range masks {
		s = m.re.ReplaceAllString(s, m.with)
	}
	return s
}

// TestCLIPlainOutput: what the CLI prints when its output is not a terminal is stable,
// plain text — a session of commands (files given by relative path) compared with
// e2e/testdata/cli_plain.golden once ids, times and durations are masked (go test
// -run TestCLIPlainOutput -update rewrites it).
func TestCLIPlainOutput(t *testing.T) {
	t.Parallel()
	servedOrSkip(t, "/v1/pipelines", "pipelines")
	servedOrSkip(t, "/v1/schedules", "schedules")
	u := newCLIUser(t, "cli-golden")
	for name, content := range map[string]string{
		"sum.py": "def handler(event, context):\n    print('adding', event)\n    return {'sum': event['a'] + event['b']}\n",
		"twice.yaml": "description: adds, then adds again\nsteps:\n" +
			"  - id: once\n    function: sum\n    input: {a: \"${input.a}\", b: 1}\n" +
			"  - id: again\n    function: sum\n    input: {a: \"${steps.once.output.sum}\", b: 1}\n" +
			"output: \"${steps.again.output.sum}\"\n",
	} {
		require.NoError(t, os.WriteFile(filepath.Join(u.home, name), []byte(content), 0o644))
	}
	var session strings.Builder
	for _, args := range [][]string{
		{"fn", "deploy", "sum.py", "--timeout", "10s", "--memory", "128"},
		{"fn", "deploy", "sum.py", "--timeout", "10s", "--memory", "128"},
		{"invoke", "sum", "--data", `{"a": 2, "b": 40}`},
		{"invoke", "sum", "--data", `{"a": 2, "b": 40}`, "-o", "yaml"},
		{"fn", "ls"},
		{"fn", "versions", "sum"},
		{"fn", "get", "sum"},
		{"exec", "ls", "--function", "sum", "--limit", "1"},
		{"pipeline", "deploy", "twice.yaml"},
		{"pipeline", "ls"},
		{"pipeline", "get", "twice"},
		{"run", "twice", "--data", `{"a": 1}`},
		{"schedule", "create", "nightly", "--function", "sum", "--cron", "0 3 * * *", "--cron", "30 9 * * 6",
			"--timezone", "Europe/Paris", "--data", `{"a": 1, "b": 2}`, "--paused"},
		{"schedule", "ls"},
		{"schedule", "get", "nightly"},
		{"fn", "get", "nothing"},
		{"invoke", "sum", "--data", `{"a": `},
		{"fn", "deploy", "twice.yaml"},
	} {
		r := u.run(t, args...)
		fmt.Fprintf(&session, "$ lambda %s\n-- stdout --\n%s-- stderr --\n%s-- exit %d --\n\n", quoteArgs(args), r.stdout, r.stderr, r.code)
	}
	got := mask(session.String())
	path := filepath.Join("testdata", "cli_plain.golden")
	if *updateGolden {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, string(want), got, "the plain output changed (go test -run TestCLIPlainOutput -update rewrites %s)", path)
}

// quoteArgs is args as a shell line.
func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " {}\"*") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
