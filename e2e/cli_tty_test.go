package e2e

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/require"
)

// ptyRun runs bin/lambda on a pseudo-terminal (standard input, output and error) with
// env (KEY=VALUE) and returns everything the terminal received and the exit code. The
// terminal answers a cursor position query as a real one does (the terminal libraries
// ask it once at start, after their background colour query, which this one ignores).
func (u *cliUser) ptyRun(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := u.command(ctx, args, env...)
	cmd.Stdin = nil
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	require.NoError(t, err)
	defer ptmx.Close()
	var out strings.Builder
	answered := 0
	buf := make([]byte, 4096)
	for {
		n, err := ptmx.Read(buf)
		out.Write(buf[:n])
		if q := strings.Count(out.String(), "\x1b[6n"); q > answered {
			answered = q
			_, _ = ptmx.Write([]byte("\x1b[1;1R"))
		}
		if err != nil { // EIO: the command exited and the terminal closed
			if !errors.Is(err, syscall.EIO) && !errors.Is(err, io.EOF) {
				t.Fatalf("read the terminal: %v", err)
			}
			break
		}
	}
	err = cmd.Wait()
	var exit interface{ ExitCode() int }
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("lambda %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// colours is a terminal's environment with colours allowed.
var colours = []string{"NO_COLOR=", "TERM=xterm-256color"}

// ansi matches terminal escape sequences: CSI (colours, cursor moves) and OSC queries.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)`)

// stripANSI is what the terminal received without its escape sequences, "\r\n" as "\n".
func stripANSI(s string) string {
	return strings.ReplaceAll(ansi.ReplaceAllString(s, ""), "\r\n", "\n")
}

// spinnerFrame is a frame of the spinner (bubbles' Dot).
const spinnerFrame = `[⣾⣽⣻⢿⡿⣟⣯⣷]`

// TestCLITerminal: on a terminal, waits show live progress — a spinner with the status
// and elapsed time for an execution, a table of steps for a run — erased at the end,
// and the final state is printed once, in colour.
func TestCLITerminal(t *testing.T) {
	t.Parallel()
	u := newCLIUser(t, "cli-tty")
	dir := writeFiles(t, map[string]string{
		"nap.py": "import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return {'slept': event.get('sleep', 0)}\n",
		"napping.yaml": "steps:\n  - id: rest\n    sleep_ms: 1500\n" +
			"  - id: work\n    function: nap\n    input: {sleep: 2}\n",
	})
	r := u.run(t, "fn", "deploy", filepath.Join(dir, "nap.py"), "--timeout", "1m")
	require.Equal(t, 0, r.code, r.stderr)

	t.Run("execution spinner", func(t *testing.T) {
		t.Parallel()
		got, code := u.ptyRun(t, colours, "invoke", "nap", "--async", "--wait", "-d", `{"sleep": 3}`)
		require.Equal(t, 0, code, got)
		require.Regexp(t, spinnerFrame+` nap v1 .*running.* \d+\.\ds`, got, "the live line: status and elapsed time")
		require.Regexp(t, `(?s)`+spinnerFrame+`.*`+spinnerFrame, got, "redrawn")
		require.NotContains(t, got, "execution ", "no plain status lines on a terminal")
		require.Equal(t, 1, strings.Count(got, `"slept": 3`), "the result once: %q", got)
		require.Equal(t, 1, strings.Count(got, "succeeded"), "the final state once, never in the live line: %q", got)
		require.Contains(t, got, "\x1b[32msucceeded", "in colour on a terminal")
	})

	t.Run("run step table", func(t *testing.T) {
		t.Parallel()
		servedOrSkip(t, "/v1/pipelines", "pipelines")
		r := u.run(t, "pipeline", "deploy", filepath.Join(dir, "napping.yaml"))
		require.Equal(t, 0, r.code, r.stderr)
		got, code := u.ptyRun(t, colours, "run", "napping", "--async", "--wait")
		require.Equal(t, 0, code, got)
		text := stripANSI(got)
		end := strings.Index(text, "run napping v1 succeeded")
		require.Positive(t, end, text)
		live := text[:end]
		require.Regexp(t, spinnerFrame+` run napping v1 (queued|running) +\d+\.\ds`, live)
		require.Regexp(t, `STEP +STATUS +ATTEMPTS +DURATION`, live, "the live table of steps")
		require.Regexp(t, `rest +(running|succeeded) `, live, "the sleeping step, live")
		require.Regexp(t, `work +(pending|running) `, live, "the calling step, live")
		require.Equal(t, 1, strings.Count(got, "output:"), got)
		require.Equal(t, 1, strings.Count(got, "run napping v1 \x1b[32msucceeded"), "the final state once, in colour: %q", got)
		require.Regexp(t, `(?m)^work +succeeded +1 +\S+\s*$`, text[end:])
	})

	t.Run("NO_COLOR", func(t *testing.T) {
		t.Parallel()
		got, code := u.ptyRun(t, []string{"NO_COLOR=1", "TERM=xterm-256color"}, "invoke", "nap", "--async", "--wait", "-d", `{"sleep": 1}`)
		require.Equal(t, 0, code, got)
		require.Contains(t, got, `"slept": 1`)
		require.Regexp(t, spinnerFrame+` nap v1 `, got, "still a spinner")
		require.NotRegexp(t, `\x1b\[[0-9;]*m`, got, "no colours with NO_COLOR")
	})
}
