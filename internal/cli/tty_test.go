package cli

import (
	"context"
	"errors"
	"io"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"
)

// runInPTY runs the CLI with standard output and error on a pseudo-terminal, as a
// user's shell would, and returns everything the terminal received.
func runInPTY(t *testing.T, e env, args ...string) (string, int) {
	t.Helper()
	return runInPTYFor(t, 20*time.Second, e, args...)
}

// runInPTYFor is runInPTY interrupted (its context canceled) after d.
func runInPTYFor(t *testing.T, d time.Duration, e env, args ...string) (string, int) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	require.NoError(t, err)
	defer ptmx.Close()
	require.NoError(t, pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}))
	var out syncBuffer
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, err := io.Copy(&out, ptmx)
		if err != nil && !errors.Is(err, syscall.EIO) { // EIO: the terminal side closed
			t.Errorf("read the terminal: %v", err)
		}
	}()
	root := &cobra.Command{Use: "lambda", SilenceErrors: true, SilenceUsage: true}
	Mount(root, Options{In: strings.NewReader(""), Out: tty, Err: tty, Getenv: e.get, ConfigDir: t.TempDir()})
	root.SetArgs(args)
	ctx, cancel := context.WithCancel(context.Background())
	defer time.AfterFunc(d, cancel).Stop() // as Ctrl-C does through signal.NotifyContext
	code := Execute(ctx, root, tty)
	require.NoError(t, tty.Close())
	<-copied
	return out.String(), code
}

func TestTTYExecutionSpinner(t *testing.T) {
	t.Parallel()
	for _, noColor := range []bool{false, true} {
		t.Run(map[bool]string{false: "colour", true: "NO_COLOR"}[noColor], func(t *testing.T) {
			t.Parallel()
			running := reply(200, execJSON("running", map[string]any{"mode": "async"}))
			f := newFake(t).
				on("GET /v1/executions/{id}", sequence(reply(200, execJSON("queued", nil)), running, running, running,
					reply(200, execJSON("succeeded", map[string]any{"mode": "async", "result": map[string]int{"sum": 42}, "stdout": "adding\n"}))))
			e := on(f).env
			e["TERM"] = "xterm-256color"
			if noColor {
				e["NO_COLOR"] = "1"
			}
			got, code := runInPTY(t, e, "exec", "watch", execID)
			require.Equal(t, 0, code, got)

			// Progress: the spinner line with the status while it runs, polled on a
			// short long-poll so the view follows.
			require.Contains(t, got, "add v1 ")
			require.Contains(t, got, "running")
			require.Regexp(t, `[⣾⣽⣻⢿⡿⣟⣯⣷] add v1 .*running`, got)
			require.Contains(t, f.lines(), "GET /v1/executions/"+execID+"?wait=1s")
			require.NotContains(t, got, "execution "+execID+" running", "no plain lines on a terminal")

			// The final state, printed once after the live view is erased.
			require.Equal(t, 1, strings.Count(got, `"sum": 42`), got)
			require.Equal(t, 1, strings.Count(got, "succeeded"), "the live view never shows the final state: %q", got)
			require.Equal(t, 1, strings.Count(got, "adding"), got)
			final := got[strings.LastIndex(got, "adding"):]
			if noColor {
				require.NotContains(t, final, "\x1b[32m", "no colour with NO_COLOR")
				require.NotRegexp(t, `\x1b\[[0-9;]*m`, got, "no SGR sequence at all with NO_COLOR, live view included")
			} else {
				require.Contains(t, final, "\x1b[32msucceeded", "status coloured on a terminal")
			}
		})
	}
}

func TestTTYRunStepTable(t *testing.T) {
	t.Parallel()
	f := newFake(t).
		on("POST /v1/pipelines/etl/runs", reply(202, map[string]string{"id": runID, "status": "queued"}, "Location", "/v1/runs/"+runID)).
		on("GET /v1/runs/{id}", sequence(reply(200, runRunning), reply(200, runRunning), reply(200, runWaiting),
			reply(200, runWaiting), reply(200, runSucceeded)))
	e := on(f).env
	e["TERM"] = "xterm-256color"
	got, code := runInPTY(t, e, "run", "etl", "--async", "--wait")
	require.Equal(t, 0, code, got)

	// The live table: the run's line and a row per step with status, attempts and a
	// running duration, updated as the steps move.
	require.Regexp(t, `[⣾⣽⣻⢿⡿⣟⣯⣷] run etl v2 .*running`, got)
	require.Contains(t, got, "STEP")
	require.Contains(t, got, "ATTEMPTS")
	require.Regexp(t, `squares\s+\S*running\S*\s+4/10`, got)
	require.Regexp(t, `approve\s+\S*waiting`, got)

	// The final state, once.
	require.Equal(t, 1, strings.Count(got, "output:"), got)
	require.Equal(t, 1, strings.Count(got, `"sum": 385`), got)
	require.Equal(t, 1, strings.Count(got, "total "), "the last step appears only in the final table: %q", got)
}

func TestTTYInterrupted(t *testing.T) {
	t.Parallel()
	f := newFake(t).on("GET /v1/executions/{id}", reply(200, execJSON("running", nil)))
	e := on(f).env
	e["TERM"] = "xterm-256color"
	start := time.Now()
	got, code := runInPTYFor(t, 700*time.Millisecond, e, "exec", "watch", execID)
	require.Equal(t, ExitSignal, code, got)
	require.Less(t, time.Since(start), 5*time.Second, "the watch stops with its context")
	require.Contains(t, got, "running")
	require.True(t, strings.HasSuffix(got, "error: interrupted\r\n"), "%q", got)
}
