package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lambda-microservice/lambda/internal/cli/client"
	"github.com/lambda-microservice/lambda/internal/cli/ui"
)

func (a *app) invokeCmd() *cobra.Command {
	var (
		data, language, idemKey, callback string
		version                           int
		async, wait                       bool
	)
	c := &cobra.Command{
		Use:   "invoke NAME",
		Short: "Run a function and print its result",
		Long: `Run a function with an event and print its result (the function's stdout and stderr
go to standard error). By default the call is synchronous, on the fast path; --async
starts a durable execution and prints its id, --async --wait also waits for it
(with a spinner on a terminal). The Language-Title header is the function's language,
looked up first, unless --language gives it.` + exitCodesHelp,
		Example: `  lambda invoke add --data '{"a": 2, "b": 40}'
  lambda invoke add --data @event.json --version 1
  echo '{"n": 12}' | lambda invoke square-rs --data -
  lambda invoke slow-add --async --wait --idempotency-key order-42 --data '{"a":40,"b":2}'`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeFunctions,
	}
	f := c.Flags()
	f.StringVarP(&data, "data", "d", "", "the event: JSON, @FILE, or - for standard input (default: null)")
	f.IntVar(&version, "version", 0, "run this version (default: the latest)")
	f.BoolVar(&async, "async", false, "run durably (Prefer: respond-async) and print the execution id")
	f.BoolVar(&wait, "wait", false, "with --async: wait for the execution to finish and print its result")
	f.StringVar(&idemKey, "idempotency-key", "", "the same key (24 h) gives the same execution, never a second run")
	f.StringVar(&language, "language", "", "the Language-Title header (default: the function's language)")
	f.StringVar(&callback, "callback-url", "", "with --async: POST the finished envelope there (X-Callback-Url)")
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		event, err := a.readData(data, c.Flags().Changed("data"))
		if err != nil {
			return err
		}
		if c.Flags().Changed("version") && version < 1 {
			return usagef("--version must be 1 or more, got %d", version)
		}
		if wait && !async {
			return usagef("--wait goes with --async (a sync call always waits)")
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		if language == "" {
			fn, err := cl.GetFunction(ctx, args[0])
			if err != nil {
				return err
			}
			language = fn.Language
		}
		e, err := cl.Invoke(ctx, args[0], event, client.InvokeOptions{Language: language, Version: version,
			Async: async, IdempotencyKey: idemKey, CallbackURL: callback})
		if err != nil {
			return err
		}
		if async && !wait && !e.Finished() {
			if ok, err := a.structured(e); ok {
				return err
			}
			a.printf("%s\n", e.ID)
			a.eprintf("%s; watch it with: lambda exec watch %s\n", e.Status, e.ID)
			return nil
		}
		if !e.Finished() {
			if e.Function == "" {
				e.Function, e.Version = args[0], version // for the live view until the first poll
			}
			if e, err = a.watchExecution(ctx, cl, e); err != nil {
				return err
			}
		}
		return a.printResult(e)
	})
	return c
}

// readData reads --data: JSON, @FILE or - (standard input); not given is a null event.
// Anything that is not JSON is a usage error, before anything is sent.
func (a *app) readData(data string, given bool) (json.RawMessage, error) {
	if !given {
		return nil, nil
	}
	raw := []byte(data)
	var err error
	switch {
	case data == "-":
		if raw, err = io.ReadAll(a.opts.In); err != nil {
			return nil, usagef("--data -: %v", err)
		}
	case strings.HasPrefix(data, "@"):
		raw, err = os.ReadFile(data[1:])
		if errors.Is(err, fs.ErrNotExist) {
			return nil, usagef("--data %s: no such file", data)
		}
		if err != nil {
			return nil, usagef("--data %s: %v", data, err)
		}
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, usagef("--data is not valid JSON: %v", err)
	}
	return json.RawMessage(strings.TrimSpace(string(raw))), nil
}

// watchExecution waits for an execution to finish, showing its progress on standard error.
func (a *app) watchExecution(ctx context.Context, cl *client.Client, e client.Execution) (client.Execution, error) {
	return ui.Watch(ctx, a.opts.Err, a.tty(a.opts.Err), ui.ExecView{Styles: a.errStyles()}, e,
		func(ctx context.Context, update func(client.Execution)) (client.Execution, error) {
			return cl.WaitExecution(ctx, e.ID, a.pollEvery(), update)
		})
}

// printResult prints a finished execution as a call's answer: the result on standard
// output; the function's stdout, stderr and a status line on standard error. An
// execution that did not succeed is a failedError.
func (a *app) printResult(e client.Execution) error {
	if ok, err := a.structured(e); ok {
		if err != nil {
			return err
		}
		return executionFailed(e)
	}
	a.eprintf("%s%s", block(e.Stdout), block(e.Stderr))
	if e.Error != nil && e.Error.Stack != "" {
		a.eprintf("%s\n", strings.TrimRight(e.Error.Stack, "\n"))
	}
	if e.Status == client.StatusSucceeded {
		a.printf("%s\n", ui.Indent(e.Result))
	}
	s := a.errStyles()
	line := fmt.Sprintf("%s %s", ui.FunctionVersion(e.Function, e.Version), s.Status(e.Status))
	if e.DurationMS > 0 {
		line += " in " + ui.Millis(e.DurationMS)
	}
	if e.Cached {
		line += " (cached)"
	}
	if e.Replayed {
		line += " (replayed)"
	}
	a.eprintf("%s %s\n", line, s.Faint(e.ID))
	return executionFailed(e)
}

// block is text ending with a newline, or nothing when empty.
func block(text string) string {
	if text == "" || strings.HasSuffix(text, "\n") {
		return text
	}
	return text + "\n"
}

// executionFailed is nil for a succeeded execution, else its failedError.
func executionFailed(e client.Execution) error {
	if e.Status == client.StatusSucceeded {
		return nil
	}
	reason := ""
	if e.Error != nil {
		reason = strings.TrimPrefix(e.Error.Type+": "+e.Error.Message, ": ")
	}
	return &failedError{what: "execution", id: e.ID, status: e.Status, reason: reason}
}
