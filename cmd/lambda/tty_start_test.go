package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// Commands that print nothing styled start at once on a terminal that never answers a
// query (a serial console, some CI terminals, a pipe-backed pty): nothing asks the
// terminal for its background colour at start, which used to wait 5 s (termenv's OSC
// timeout) before every command, server commands included.
func TestCommandsDoNotWaitOnASilentTerminal(t *testing.T) {
	bin := prereq.Binary(t, "lambda")
	for _, args := range [][]string{{"--help"}, {"fn", "--help"}, {"completion", "bash"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TERM=xterm-256color", "LANG=C.UTF-8"}
			start := time.Now()
			ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
			require.NoError(t, err)
			defer ptmx.Close()
			// Read everything and answer nothing, as a terminal that does not implement
			// the queries.
			var out strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := ptmx.Read(buf)
				out.Write(buf[:n])
				if err != nil {
					require.True(t, errors.Is(err, syscall.EIO) || errors.Is(err, io.EOF), "read the terminal: %v", err)
					break
				}
			}
			require.NoError(t, cmd.Wait(), out.String())
			took := time.Since(start)
			require.Less(t, took, 3*time.Second, "lambda %s waited on the terminal", strings.Join(args, " "))
			require.NotContains(t, out.String(), "\x1b]11;?", "no background colour query")
			require.NotEmpty(t, strings.TrimSpace(out.String()))
		})
	}
}
