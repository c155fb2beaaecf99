package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lambda-microservice/lambda/internal/cli/client"
)

// Exit codes, as each command's help documents them.
const (
	ExitOK       = 0   // the command did what it was asked; an execution or run succeeded
	ExitFailed   = 1   // the execution or run failed, timed out or was canceled
	ExitUsage    = 2   // bad flags or arguments, unreadable or malformed input, unknown profile: nothing was sent
	ExitPlatform = 3   // the platform answered with an error, or could not be reached
	ExitSignal   = 130 // interrupted (Ctrl-C) while waiting
)

// exitCodesHelp is appended to every command's long help.
const exitCodesHelp = "\n\n" + ExitCodesHelp

// ExitCodesHelp documents the exit codes, for the root's help (every user command's
// help ends with it too).
const ExitCodesHelp = `Exit codes: 0 ok; 1 the execution or run failed or timed out; 2 usage (bad flags,
input or profile; nothing sent); 3 platform or network error; 130 interrupted (Ctrl-C).`

// usageError is a mistake in what the user gave: nothing was sent.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// failedError is an execution, run or cell that ended other than succeeded.
type failedError struct {
	what, id, status, reason string
}

func (e *failedError) Error() string {
	msg := fmt.Sprintf("%s %s %s", e.what, e.id, e.status)
	if e.reason != "" {
		msg += ": " + e.reason
	}
	return msg
}

// verboseError marks an error of a command run with -v: PrintError says more.
type verboseError struct{ err error }

func (e verboseError) Error() string { return e.err.Error() }
func (e verboseError) Unwrap() error { return e.err }

// cobraUsage are the beginnings of cobra's own errors about arguments and flags (the
// root's, which these commands do not wrap).
var cobraUsage = []string{"unknown command", "unknown flag", "unknown shorthand flag", "invalid argument",
	"flag needs an argument", "required flag", "accepts ", "requires at least", "if any flags in the group"}

// ExitCode is the process exit code for what a command returned: 0 ok, 1 an execution
// or run failed or timed out, 2 usage (nothing sent), 3 platform or network error,
// 130 interrupted; any other error is 1.
func ExitCode(err error) int {
	var (
		usage  usageError
		failed *failedError
		api    *client.Error
		urlErr *url.Error
		netErr net.Error
	)
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &usage):
		return ExitUsage
	case errors.As(err, &failed):
		return ExitFailed
	case errors.Is(err, context.Canceled):
		return ExitSignal
	case errors.As(err, &api), errors.As(err, &urlErr), errors.As(err, &netErr):
		return ExitPlatform
	}
	for _, p := range cobraUsage {
		if strings.HasPrefix(err.Error(), p) {
			return ExitUsage
		}
	}
	return ExitFailed
}

// PrintError writes err as one line, `error: function "x" not found (404)`; for a
// command run with -v, a platform error also gets its request id and request.
func PrintError(w io.Writer, err error) {
	if err == nil {
		return
	}
	var urlErr *url.Error
	msg := err.Error()
	if errors.Is(err, context.Canceled) {
		msg = "interrupted"
	} else if errors.As(err, &urlErr) {
		msg = fmt.Sprintf("cannot reach the platform at %s: %v", hostOf(urlErr.URL), urlErr.Err)
	}
	fmt.Fprintf(w, "error: %s\n", msg)
	var v verboseError
	var api *client.Error
	if errors.As(err, &v) && errors.As(err, &api) {
		fmt.Fprintf(w, "  request: %s %s\n  request id: %s\n  type: %s\n", api.Method, api.Path, orDash(api.RequestID), orDash(api.Type))
	}
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Execute runs root and returns the exit code, printing any error with PrintError:
// what a main needs besides building root (`os.Exit(cli.Execute(ctx, root, os.Stderr))`).
func Execute(ctx context.Context, root *cobra.Command, stderr io.Writer) int {
	err := root.ExecuteContext(ctx)
	PrintError(stderr, err)
	return ExitCode(err)
}
