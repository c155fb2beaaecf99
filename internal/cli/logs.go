package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lambda-microservice/lambda/internal/cli/client"
	"github.com/lambda-microservice/lambda/internal/cli/ui"
)

func (a *app) logsCmd() *cobra.Command {
	var (
		limit    int
		follow   bool
		interval time.Duration
	)
	c := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print the stdout and stderr of a function's recent executions",
		Long: `Print the stdout and stderr of a function's recent finished executions, oldest first,
each under a header line (time, version, status, duration, id); stderr lines are
prefixed "stderr: ". --follow keeps printing new executions as they finish, until
interrupted. -o json prints one envelope per line.` + exitCodesHelp,
		Example: `  lambda logs add
  lambda logs add --limit 50 --follow`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeFunctions,
	}
	c.Flags().IntVar(&limit, "limit", 10, "how many recent executions to print first (1-500)")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing executions as they finish")
	c.Flags().DurationVar(&interval, "interval", time.Second, "with --follow: how often to look for new executions")
	_ = c.Flags().MarkHidden("interval")
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		if limit < 1 || limit > 500 {
			return usagef("--limit must be between 1 and 500, got %d", limit)
		}
		if interval <= 0 {
			return usagef("--interval must be positive")
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		t := &tail{a: a, cl: cl, function: args[0], printed: map[string]time.Time{}, pending: map[string]time.Time{}}
		page, err := cl.ListExecutions(ctx, client.ExecutionFilter{Function: args[0], Limit: limit})
		if err != nil {
			return err
		}
		if err := t.take(page.Executions); err != nil {
			return err
		}
		if !follow {
			return nil
		}
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil // interrupted: following ends there
			case <-tick.C:
			}
			if err := t.poll(ctx); err != nil {
				if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
					return nil
				}
				return err
			}
		}
	})
	return c
}

// tail prints a function's executions once each, in the order they were created,
// when they have finished.
type tail struct {
	a        *app
	cl       *client.Client
	function string
	printed  map[string]time.Time // id → created_at, of those printed
	pending  map[string]time.Time // id → created_at, of those seen unfinished
	newest   time.Time            // the newest created_at seen
}

// pageLimit and maxPages bound one poll: enough for ~1,000 new executions a second.
const (
	pageLimit = 100
	maxPages  = 10
)

// poll reads the list, newest first, back to the oldest execution that may still need
// printing (the oldest pending, else the newest seen), paging with the cursor.
func (t *tail) poll(ctx context.Context) error {
	boundary := t.newest
	for _, c := range t.pending {
		if c.Before(boundary) {
			boundary = c
		}
	}
	var seen []client.Execution
	f := client.ExecutionFilter{Function: t.function, Limit: pageLimit}
	for range maxPages {
		page, err := t.cl.ListExecutions(ctx, f)
		if err != nil {
			return err
		}
		done := page.NextCursor == ""
		for _, e := range page.Executions {
			if created(e).Before(boundary) {
				done = true
				break
			}
			seen = append(seen, e)
		}
		if done {
			break
		}
		f.Cursor = page.NextCursor
	}
	// Forget what is older than anything that can come back.
	for id, c := range t.printed {
		if c.Before(boundary) {
			delete(t.printed, id)
		}
	}
	return t.take(seen)
}

// take prints the finished executions among es not printed yet, oldest first, and
// remembers the unfinished ones.
func (t *tail) take(es []client.Execution) error {
	es = slices.Clone(es)
	slices.SortStableFunc(es, func(x, y client.Execution) int { return created(x).Compare(created(y)) })
	for _, e := range es {
		c := created(e)
		if c.After(t.newest) {
			t.newest = c
		}
		if _, done := t.printed[e.ID]; done {
			continue
		}
		if !e.Finished() {
			t.pending[e.ID] = c
			continue
		}
		delete(t.pending, e.ID)
		t.printed[e.ID] = c
		if err := t.print(e); err != nil {
			return err
		}
	}
	return nil
}

func (t *tail) print(e client.Execution) error {
	a := t.a
	switch a.output {
	case "json":
		raw, err := json.Marshal(e)
		if err != nil {
			return err
		}
		a.printf("%s\n", raw)
		return nil
	case "yaml":
		a.printf("---\n")
		return ui.YAML(a.opts.Out, e)
	}
	s := a.outStyles()
	a.printf("%s\n", s.Faint(fmt.Sprintf("--- %s %s %s %s %s", ui.Time(e.CreatedAt), ui.FunctionVersion(e.Function, e.Version),
		e.Status, ui.Millis(e.DurationMS), e.ID)))
	for _, l := range lines(e.Stdout) {
		a.printf("%s\n", l)
	}
	for _, l := range lines(e.Stderr) {
		a.printf("%s %s\n", s.Faint("stderr:"), l)
	}
	if e.Error != nil {
		a.printf("%s %s: %s\n", s.Faint("error:"), e.Error.Type, e.Error.Message)
	}
	return nil
}

func created(e client.Execution) time.Time {
	if e.CreatedAt == nil {
		return time.Time{}
	}
	return *e.CreatedAt
}

func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
