package cli

import (
	"context"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lambda-microservice/lambda/internal/cli/client"
	"github.com/lambda-microservice/lambda/internal/cli/ui"
)

func (a *app) execCmd() *cobra.Command {
	return group("exec", "List, inspect, watch and cancel executions",
		a.execListCmd(), a.execGetCmd(), a.execWatchCmd(), a.execCancelCmd())
}

func (a *app) execListCmd() *cobra.Command {
	var f client.ExecutionFilter
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List executions, newest first",
		Long:    "List executions, newest first; --cursor continues where the previous page ended." + exitCodesHelp,
		Example: `  lambda exec ls --function add --status failed --limit 5
  lambda exec ls -o json | jq -r '.executions[].id'`,
		Args: args(cobra.NoArgs),
	}
	c.Flags().StringVar(&f.Function, "function", "", "only this function's")
	c.Flags().StringVar(&f.Status, "status", "", "only this status: queued, running, succeeded, failed, timeout, canceled")
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
		page, err := cl.ListExecutions(ctx, f)
		if err != nil {
			return err
		}
		if ok, err := a.structured(page); ok {
			return err
		}
		s := a.outStyles()
		rows := make([][]string, 0, len(page.Executions))
		for _, e := range page.Executions {
			rows = append(rows, []string{e.ID, ui.FunctionVersion(e.Function, e.Version), e.Mode, s.Status(e.Status),
				ui.Millis(e.DurationMS), ui.Time(e.CreatedAt)})
		}
		a.printf("%s", s.Table([]string{"ID", "FUNCTION", "MODE", "STATUS", "DURATION", "CREATED"}, rows))
		if page.NextCursor != "" {
			a.eprintf("more: lambda exec ls --cursor %s\n", page.NextCursor)
		}
		return nil
	})
	return c
}

func (a *app) execGetCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "get ID",
		Short:   "Show one execution: status, result, error, stdout and stderr",
		Long:    "Show one execution's envelope: status, result, error, stdout and stderr." + exitCodesHelp,
		Example: `  lambda exec get 0193a5c4-8e1f-7c2a-9d3b-4f5e6a7b8c9d -o yaml`,
		Args:    args(cobra.ExactArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		e, err := cl.GetExecution(ctx, args[0], 0)
		if err != nil {
			return err
		}
		if ok, err := a.structured(e); ok {
			return err
		}
		a.printExecution(e)
		return nil
	})
	return c
}

// printExecution prints an execution in full on standard output.
func (a *app) printExecution(e client.Execution) {
	s := a.outStyles()
	rows := [][]string{
		{"id:", e.ID}, {"function:", ui.FunctionVersion(e.Function, e.Version)}, {"language:", e.Language},
		{"mode:", e.Mode}, {"status:", s.Status(e.Status)}, {"attempts:", strconv.Itoa(e.Attempts)},
		{"duration:", ui.Millis(e.DurationMS)}, {"cached:", strconv.FormatBool(e.Cached)},
		{"created:", ui.Time(e.CreatedAt)}, {"finished:", ui.Time(e.FinishedAt)},
	}
	if e.RunID != "" {
		rows = append(rows, []string{"run:", e.RunID + " step " + e.StepID})
	}
	a.printf("%s", s.Fields(rows))
	if e.Finished() && e.Status == client.StatusSucceeded {
		a.printf("%s\n%s\n", s.Bold("result:"), ui.Indent(e.Result))
	}
	if e.Error != nil {
		a.printf("%s\n%s: %s\n", s.Bold("error:"), e.Error.Type, e.Error.Message)
		if e.Error.Stack != "" {
			a.printf("%s\n", strings.TrimRight(e.Error.Stack, "\n"))
		}
	}
	for _, out := range []struct{ name, text string }{{"stdout:", e.Stdout}, {"stderr:", e.Stderr}} {
		if out.text != "" {
			a.printf("%s\n%s", s.Bold(out.name), block(out.text))
		}
	}
	if e.Truncated {
		a.printf("%s\n", s.Faint("(output truncated)"))
	}
}

func (a *app) execWatchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "watch ID",
		Short: "Wait for an execution to finish and print its result",
		Long: `Wait for an execution to finish (a spinner with its status and the elapsed time on a
terminal, a line per status change otherwise), then print its result as invoke does.` + exitCodesHelp,
		Example: `  id=$(lambda invoke slow-add --async --data '{"a":1,"b":2}')
  lambda exec watch "$id"`,
		Args: args(cobra.ExactArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		e, err := cl.GetExecution(ctx, args[0], 0)
		if err == nil && !e.Finished() {
			e, err = a.watchExecution(ctx, cl, e)
		}
		if err != nil {
			return err
		}
		return a.printResult(e)
	})
	return c
}

func (a *app) execCancelCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "cancel ID",
		Short:   "Cancel a queued or running async execution",
		Long:    "Cancel a queued or running async execution; a finished one is a 409." + exitCodesHelp,
		Example: `  lambda exec cancel 0193a5c4-8e1f-7c2a-9d3b-4f5e6a7b8c9d`,
		Args:    args(cobra.ExactArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		if err := cl.CancelExecution(ctx, args[0]); err != nil {
			return err
		}
		a.printf("canceling %s\n", args[0])
		return nil
	})
	return c
}
