package cli

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lambda-microservice/lambda/internal/cli/client"
	"github.com/lambda-microservice/lambda/internal/cli/ui"
)

func (a *app) sessionCmd() *cobra.Command {
	return group("session", "Run code cells in an interpreter that keeps its state",
		a.sessionNewCmd(), a.sessionExecCmd(), a.sessionGetCmd(), a.sessionRemoveCmd())
}

func (a *app) sessionNewCmd() *cobra.Command {
	var language string
	c := &cobra.Command{
		Use:     "new",
		Short:   "Start a session and print its id",
		Long:    "Start a session: a warm interpreter of its own whose state persists across cells, until removed or idle." + exitCodesHelp,
		Example: `  s=$(lambda session new --language python)`,
		Args:    args(cobra.NoArgs),
	}
	c.Flags().StringVar(&language, "language", "python", "the session's language")
	c.RunE = a.run(func(ctx context.Context, _ []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		s, err := cl.CreateSession(ctx, language)
		if err != nil {
			return err
		}
		if ok, err := a.structured(s); ok {
			return err
		}
		a.printf("%s\n", s.ID)
		return nil
	})
	return c
}

func (a *app) sessionExecCmd() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "exec ID [CODE|-]",
		Short: "Run a cell in a session",
		Long: `Run a cell — CODE, standard input (-), or --file — in a session and print the value of
its trailing expression; its stdout and stderr go to standard error.` + exitCodesHelp,
		Example: `  lambda session exec "$s" 'x = 40'
  lambda session exec "$s" 'x + 2'
  lambda session exec "$s" --file cell.py`,
		Args: args(cobra.RangeArgs(1, 2)),
	}
	c.Flags().StringVarP(&file, "file", "f", "", "read the cell from this file")
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		code, err := a.cellSource(args[1:], file)
		if err != nil {
			return err
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		cell, err := cl.RunCell(ctx, args[0], code)
		if err != nil {
			return err
		}
		failed := error(nil)
		if cell.Error != nil {
			failed = &failedError{what: "cell in session", id: args[0], status: client.StatusFailed,
				reason: strings.TrimPrefix(cell.Error.Type+": "+cell.Error.Message, ": ")}
		}
		if ok, err := a.structured(cell); ok {
			if err != nil {
				return err
			}
			return failed
		}
		a.eprintf("%s%s", block(cell.Stdout), block(cell.Stderr))
		if cell.Replayed {
			a.eprintf("(the session's state was rebuilt by replaying its cells)\n")
		}
		if cell.Error != nil {
			if cell.Error.Stack != "" {
				a.eprintf("%s\n", strings.TrimRight(cell.Error.Stack, "\n"))
			}
			return failed
		}
		if len(cell.Result) > 0 && string(cell.Result) != "null" {
			a.printf("%s\n", ui.Indent(cell.Result))
		}
		return nil
	})
	return c
}

// cellSource is a cell's code: the argument, standard input for "-", or the file.
func (a *app) cellSource(args []string, file string) (string, error) {
	switch {
	case file != "" && len(args) > 0:
		return "", usagef("give the code or --file, not both")
	case file != "":
		raw, err := os.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			return "", usagef("%s: no such file", file)
		}
		if err != nil {
			return "", usageError{err}
		}
		return string(raw), nil
	case len(args) == 0:
		return "", usagef("give the cell's code, - for standard input, or --file")
	case args[0] == "-":
		raw, err := io.ReadAll(a.opts.In)
		if err != nil {
			return "", usageError{err}
		}
		return string(raw), nil
	}
	return args[0], nil
}

func (a *app) sessionGetCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "get ID",
		Short:   "Show a session and its cells",
		Long:    "Show a session and the cells it ran." + exitCodesHelp,
		Example: `  lambda session get "$s" -o yaml`,
		Args:    args(cobra.ExactArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		s, err := cl.GetSession(ctx, args[0])
		if err != nil {
			return err
		}
		if ok, err := a.structured(s); ok {
			return err
		}
		st := a.outStyles()
		a.printf("%s", st.Fields([][]string{{"id:", s.ID}, {"language:", s.Language},
			{"created:", ui.Time(s.CreatedAt)}, {"expires:", ui.Time(s.ExpiresAt)}}))
		rows := make([][]string, 0, len(s.Cells))
		for i, c := range s.Cells {
			firstLine, _, _ := strings.Cut(c.Source, "\n")
			rows = append(rows, []string{strconv.Itoa(i + 1), st.Status(c.Status), ui.Millis(c.DurationMS), firstLine})
		}
		a.printf("\n%s", st.Table([]string{"CELL", "STATUS", "DURATION", "SOURCE"}, rows))
		return nil
	})
	return c
}

func (a *app) sessionRemoveCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "rm ID...",
		Aliases: []string{"delete"},
		Short:   "End sessions and free their interpreters",
		Long:    "End sessions and free their interpreters." + exitCodesHelp,
		Example: `  lambda session rm "$s"`,
		Args:    args(cobra.MinimumNArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		for _, id := range args {
			if err := cl.DeleteSession(ctx, id); err != nil {
				return err
			}
			a.printf("ended session %s\n", id)
		}
		return nil
	})
	return c
}
