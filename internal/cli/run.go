package cli

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/lambda-microservice/lambda/internal/cli/client"
	"github.com/lambda-microservice/lambda/internal/cli/ui"
)

func (a *app) runCmd() *cobra.Command {
	var (
		data, idemKey, callback string
		version                 int
		async, wait             bool
	)
	c := &cobra.Command{
		Use:   "run PIPELINE",
		Short: "Run a pipeline, and manage runs",
		Long: `Run a pipeline with an input and print the run: its steps (status, attempts,
duration) and its output. By default it waits for the end: a sync run answers at
once, and a run the platform makes durable (a pipeline that sleeps or waits for a
signal) is followed with a live table of its steps on a terminal, a line per change
otherwise. --async prints the run's id instead; --async --wait follows it.
The subcommands below take precedence: a pipeline named get, ls, watch, signal,
cancel or retry cannot be run with this command.` + exitCodesHelp,
		Example: `  lambda run etl --data '{"url": "https://example.com"}'
  lambda run approve --async
  lambda run approve --async --wait --idempotency-key order-42`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completePipelines,
	}
	f := c.Flags()
	f.StringVarP(&data, "data", "d", "", "the run's input: JSON, @FILE, or - for standard input (default: null)")
	f.IntVar(&version, "version", 0, "run this version (default: the latest)")
	f.BoolVar(&async, "async", false, "start a durable run and print its id")
	f.BoolVar(&wait, "wait", false, "with --async: follow the run to its end")
	f.StringVar(&idemKey, "idempotency-key", "", "the same key (24 h) gives the same run, never a second one")
	f.StringVar(&callback, "callback-url", "", "POST the finished run there (X-Callback-Url)")
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		input, err := a.readData(data, c.Flags().Changed("data"))
		if err != nil {
			return err
		}
		if c.Flags().Changed("version") && version < 1 {
			return usagef("--version must be 1 or more, got %d", version)
		}
		if wait && !async {
			return usagef("--wait goes with --async (without --async, run waits)")
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		r, err := cl.StartRun(ctx, args[0], input, client.RunOptions{Version: version, Async: async,
			IdempotencyKey: idemKey, CallbackURL: callback})
		if err != nil {
			return err
		}
		if async && !wait && !r.Finished() {
			if ok, err := a.structured(r); ok {
				return err
			}
			a.printf("%s\n", r.ID)
			a.eprintf("%s; watch it with: lambda run watch %s\n", r.Status, r.ID)
			return nil
		}
		return a.finishRun(ctx, cl, r)
	})
	c.AddCommand(a.runGetCmd(), a.runListCmd(), a.runWatchCmd(), a.runSignalCmd(), a.runCancelCmd(), a.runRetryCmd())
	return c
}

// finishRun follows r to its end unless it has ended, then prints it; a run that did
// not succeed is a failedError.
func (a *app) finishRun(ctx context.Context, cl *client.Client, r client.Run) error {
	var err error
	if !r.Finished() {
		r, err = ui.Watch(ctx, a.opts.Err, a.tty(a.opts.Err), ui.RunView{Styles: a.errStyles()}, r,
			func(ctx context.Context, update func(client.Run)) (client.Run, error) {
				return cl.WaitRun(ctx, r.ID, a.pollEvery(), update)
			})
		if err != nil {
			return err
		}
	}
	if ok, err := a.structured(r); ok {
		if err != nil {
			return err
		}
		return runFailed(r)
	}
	a.printRun(r)
	return runFailed(r)
}

// printRun prints a run on standard output: a status line, its steps, its output or error.
func (a *app) printRun(r client.Run) {
	s := a.outStyles()
	line := "run " + ui.FunctionVersion(r.Pipeline, r.Version) + " " + s.Status(r.Status)
	if r.CreatedAt != nil && r.FinishedAt != nil {
		line += " in " + ui.Duration(r.FinishedAt.Sub(*r.CreatedAt))
	}
	a.printf("%s %s\n", line, s.Faint(r.ID))
	if len(r.Steps) > 0 {
		a.printf("%s", s.Steps(r.Steps, a.opts.Now()))
	}
	if r.Error != nil {
		msg := r.Error.Message
		if r.Error.Step != "" {
			msg = "step " + r.Error.Step + ": " + msg
		}
		a.printf("%s %s\n", s.Bold("error:"), msg)
	}
	if r.Status == client.StatusSucceeded {
		a.printf("%s\n%s\n", s.Bold("output:"), ui.Indent(r.Output))
	}
}

func runFailed(r client.Run) error {
	if r.Status == client.StatusSucceeded {
		return nil
	}
	reason := ""
	if r.Error != nil {
		reason = r.Error.Message
		if r.Error.Step != "" {
			reason = "step " + r.Error.Step + ": " + reason
		}
	}
	return &failedError{what: "run", id: r.ID, status: r.Status, reason: reason}
}

func (a *app) runGetCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "get ID",
		Short:   "Show a run: its steps, output or error",
		Long:    "Show a run as it is now: status, steps, output or error. Exit code 0 whatever the run's status." + exitCodesHelp,
		Example: `  lambda run get 0193a5c4-8e1f-7c2a-9d3b-4f5e6a7b8c9d -o json`,
		Args:    args(cobra.ExactArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		r, err := cl.GetRun(ctx, args[0], 0)
		if err != nil {
			return err
		}
		if ok, err := a.structured(r); ok {
			return err
		}
		a.printRun(r)
		return nil
	})
	return c
}

func (a *app) runListCmd() *cobra.Command {
	var f client.RunFilter
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List runs, newest first",
		Long:    "List pipeline runs, newest first; --cursor continues where the previous page ended." + exitCodesHelp,
		Example: `  lambda run ls --pipeline etl --status waiting`,
		Args:    args(cobra.NoArgs),
	}
	c.Flags().StringVar(&f.Pipeline, "pipeline", "", "only this pipeline's")
	c.Flags().StringVar(&f.Status, "status", "", "only this status: queued, running, waiting, succeeded, failed, canceled")
	c.Flags().IntVar(&f.Limit, "limit", 20, "how many (1-500)")
	c.Flags().StringVar(&f.Cursor, "cursor", "", "continue after a previous page")
	c.RunE = a.run(func(ctx context.Context, _ []string) error {
		if f.Limit < 1 || f.Limit > 500 {
			return usagef("--limit must be between 1 and 500, got %d", f.Limit)
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		page, err := cl.ListRuns(ctx, f)
		if err != nil {
			return err
		}
		if ok, err := a.structured(page); ok {
			return err
		}
		s := a.outStyles()
		rows := make([][]string, 0, len(page.Runs))
		for _, r := range page.Runs {
			dur := "-"
			if r.CreatedAt != nil && r.FinishedAt != nil {
				dur = ui.Duration(r.FinishedAt.Sub(*r.CreatedAt))
			}
			rows = append(rows, []string{r.ID, ui.FunctionVersion(r.Pipeline, r.Version), r.Mode, s.Status(r.Status), dur, ui.Time(r.CreatedAt)})
		}
		a.printf("%s", s.Table([]string{"ID", "PIPELINE", "MODE", "STATUS", "DURATION", "CREATED"}, rows))
		if page.NextCursor != "" {
			a.eprintf("more: lambda run ls --cursor %s\n", page.NextCursor)
		}
		return nil
	})
	return c
}

func (a *app) runWatchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a run to its end",
		Long: `Follow a run to its end — a live table of its steps (status, attempts, duration) on
a terminal, a line per change otherwise — then print it.` + exitCodesHelp,
		Example: `  lambda run watch "$(lambda run approve --async)"`,
		Args:    args(cobra.ExactArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		r, err := cl.GetRun(ctx, args[0], 0)
		if err != nil {
			return err
		}
		return a.finishRun(ctx, cl, r)
	})
	return c
}

func (a *app) runSignalCmd() *cobra.Command {
	var data string
	c := &cobra.Command{
		Use:     "signal ID NAME",
		Short:   "Send a signal to a run waiting for it",
		Long:    "Send a named signal, with --data as its payload, to a run waiting for it (409 when it is not)." + exitCodesHelp,
		Example: `  lambda run signal 0193a5c4-8e1f-7c2a-9d3b-4f5e6a7b8c9d approve --data '{"by": "ada"}'`,
		Args:    args(cobra.ExactArgs(2)),
	}
	c.Flags().StringVarP(&data, "data", "d", "", "the payload: JSON, @FILE, or - for standard input (default: null)")
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		payload, err := a.readData(data, c.Flags().Changed("data"))
		if err != nil {
			return err
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		if err := cl.SignalRun(ctx, args[0], args[1], payload); err != nil {
			return err
		}
		a.printf("signaled %s to run %s\n", args[1], args[0])
		return nil
	})
	return c
}

func (a *app) runCancelCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "cancel ID",
		Short:   "Cancel a run",
		Long:    "Cancel a queued, running or waiting run; a finished one is a 409." + exitCodesHelp,
		Example: `  lambda run cancel 0193a5c4-8e1f-7c2a-9d3b-4f5e6a7b8c9d`,
		Args:    args(cobra.ExactArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		if err := cl.CancelRun(ctx, args[0]); err != nil {
			return err
		}
		a.printf("canceling run %s\n", args[0])
		return nil
	})
	return c
}

func (a *app) runRetryCmd() *cobra.Command {
	var fromStep string
	var wait bool
	c := &cobra.Command{
		Use:   "retry ID",
		Short: "Run a failed run again from its failed step",
		Long: `Start a new run from a failed run's failed step (or --from-step), reusing the outputs
recorded before it; prints the new run's id, or with --wait follows it to its end.` + exitCodesHelp,
		Example: `  lambda run retry 0193a5c4-8e1f-7c2a-9d3b-4f5e6a7b8c9d --from-step load --wait`,
		Args:    args(cobra.ExactArgs(1)),
	}
	c.Flags().StringVar(&fromStep, "from-step", "", "the step to start from (default: the failed one)")
	c.Flags().BoolVar(&wait, "wait", false, "follow the new run to its end")
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		r, err := cl.RetryRun(ctx, args[0], fromStep)
		if err != nil {
			return err
		}
		if wait {
			return a.finishRun(ctx, cl, r)
		}
		if ok, err := a.structured(r); ok {
			return err
		}
		a.printf("%s\n", r.ID)
		a.eprintf("%s; watch it with: lambda run watch %s\n", r.Status, r.ID)
		return nil
	})
	return c
}
