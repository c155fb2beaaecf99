package cli

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lambda-microservice/lambda/internal/cli/client"
	"github.com/lambda-microservice/lambda/internal/cli/source"
	"github.com/lambda-microservice/lambda/internal/cli/ui"
)

var overlaps = []string{"skip", "buffer_one", "allow_all", "cancel_other"}

func (a *app) scheduleCmd() *cobra.Command {
	return group("schedule", "Run functions and pipelines on a schedule",
		a.scheduleCreateCmd(), a.scheduleListCmd(), a.scheduleGetCmd(),
		a.schedulePauseCmd(true), a.schedulePauseCmd(false),
		a.scheduleTriggerCmd(), a.scheduleRunsCmd(), a.scheduleRemoveCmd())
}

func (a *app) scheduleCreateCmd() *cobra.Command {
	var (
		s     client.Schedule
		every time.Duration
		data  string
	)
	c := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a schedule that starts a function or a pipeline",
		Long: `Create a schedule that starts a function (--function) or a pipeline (--pipeline) with
--data as its input, on cron expressions (--cron, repeatable, in --timezone) or every
interval (--every). --overlap says what happens when the previous start is still running.` + exitCodesHelp,
		Example: `  lambda schedule create nightly --pipeline etl --cron "0 3 * * *" --timezone Europe/Paris
  lambda schedule create reports --function report --cron "0 9 * * 1-5" --cron "0 12 * * 6"
  lambda schedule create ping --function add --every 30s --data '{"a":1,"b":2}' --paused`,
		Args: args(cobra.ExactArgs(1)),
	}
	f := c.Flags()
	f.StringVar(&s.Target.Function, "function", "", "the function to invoke")
	f.StringVar(&s.Target.Pipeline, "pipeline", "", "the pipeline to run")
	f.StringArrayVar((*[]string)(&s.Cron), "cron", nil, `a cron expression, e.g. "*/5 * * * *" (repeatable: it starts at each one's times)`)
	f.DurationVar(&every, "every", 0, "an interval, e.g. 30s or 1h")
	f.StringVar(&s.Timezone, "timezone", "", "IANA timezone of the cron expression (default UTC)")
	f.StringVarP(&data, "data", "d", "", "the input of each start: JSON, @FILE, or - for standard input")
	f.StringVar(&s.Overlap, "overlap", "", "skip, buffer_one, allow_all or cancel_other (default: the platform's)")
	f.BoolVar(&s.Paused, "paused", false, "create it paused")
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		s.Name = args[0]
		if !source.NameRE.MatchString(s.Name) {
			return usagef("invalid schedule name %q: want ^[a-z][a-z0-9-]{0,62}$", s.Name)
		}
		if (s.Target.Function == "") == (s.Target.Pipeline == "") {
			return usagef("give one of --function or --pipeline")
		}
		if (len(s.Cron) == 0) == (every == 0) {
			return usagef("give one of --cron or --every")
		}
		if every < 0 || every%time.Millisecond != 0 {
			return usagef("--every must be a positive whole number of milliseconds, got %s", every)
		}
		s.IntervalMS = every.Milliseconds()
		if s.Overlap != "" && !slices.Contains(overlaps, s.Overlap) {
			return usagef("unknown --overlap %q: want skip, buffer_one, allow_all or cancel_other", s.Overlap)
		}
		var err error
		if s.Input, err = a.readData(data, c.Flags().Changed("data")); err != nil {
			return err
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		out, err := cl.CreateSchedule(ctx, s)
		if err != nil {
			return err
		}
		if ok, err := a.structured(out); ok {
			return err
		}
		a.printf("created schedule %s\n", out.Name)
		return nil
	})
	return c
}

// scheduleRows are a table's rows for schedules.
func (a *app) scheduleRows(ss []client.Schedule) [][]string {
	st := a.outStyles()
	rows := make([][]string, 0, len(ss))
	for _, s := range ss {
		rows = append(rows, []string{s.Name, scheduleTarget(s), scheduleWhen(s), a.scheduleState(st, s), ui.Time(s.NextRunAt)})
	}
	return rows
}

// scheduleTarget is "function add" or "pipeline etl".
func scheduleTarget(s client.Schedule) string {
	if s.Target.Pipeline != "" {
		return "pipeline " + s.Target.Pipeline
	}
	return "function " + s.Target.Function
}

// scheduleWhen is every cron expression ("; " between them) with the timezone, or the
// interval: "0 9 * * 1-5; 0 12 * * 6 (Europe/Paris)", "every 30s".
func scheduleWhen(s client.Schedule) string {
	if len(s.Cron) == 0 {
		return "every " + ui.Millis(float64(s.IntervalMS))
	}
	when := strings.Join(s.Cron, "; ")
	if s.Timezone != "" {
		when += " (" + s.Timezone + ")"
	}
	return when
}

func (a *app) scheduleState(st ui.Styles, s client.Schedule) string {
	if s.Paused {
		return st.Status("paused")
	}
	return "active"
}

var scheduleHeaders = []string{"NAME", "TARGET", "WHEN", "STATE", "NEXT"}

func (a *app) scheduleListCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List schedules",
		Long:    "List the schedules of your tenant." + exitCodesHelp,
		Example: `  lambda schedule ls`,
		Args:    args(cobra.NoArgs),
	}
	c.RunE = a.run(func(ctx context.Context, _ []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		ss, err := cl.ListSchedules(ctx)
		if err != nil {
			return err
		}
		if ok, err := a.structured(map[string]any{"schedules": ss}); ok {
			return err
		}
		a.printf("%s", a.outStyles().Table(scheduleHeaders, a.scheduleRows(ss)))
		return nil
	})
	return c
}

func (a *app) scheduleGetCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a schedule",
		Long: `Show one schedule: its target, every cron expression (or its interval), state,
next start times, how many starts it made and the latest ones, and its input.` + exitCodesHelp,
		Example: `  lambda schedule get nightly -o yaml`,
		Args:    args(cobra.ExactArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		s, err := cl.GetSchedule(ctx, args[0])
		if err != nil {
			return err
		}
		if ok, err := a.structured(s); ok {
			return err
		}
		a.printSchedule(s)
		return nil
	})
	return c
}

// maxNextShown is how many next start times schedule get lists (the API gives more).
const maxNextShown = 5

// printSchedule prints one schedule's fields, a row per cron expression, next start
// and recent start.
func (a *app) printSchedule(s client.Schedule) {
	st := a.outStyles()
	rows := [][]string{{"name:", s.Name}}
	if s.ID != "" {
		rows = append(rows, []string{"id:", s.ID})
	}
	rows = append(rows, []string{"target:", scheduleTarget(s)})
	for _, c := range s.Cron {
		rows = append(rows, []string{"cron:", c})
	}
	if len(s.Cron) == 0 {
		rows = append(rows, []string{"every:", ui.Millis(float64(s.IntervalMS))})
	}
	tz := s.Timezone
	if tz == "" {
		tz = "UTC"
	}
	if len(s.Cron) > 0 {
		rows = append(rows, []string{"timezone:", tz})
	}
	rows = append(rows, []string{"overlap:", orDash(s.Overlap)}, []string{"state:", a.scheduleState(st, s)})
	next := s.NextRuns
	if len(next) == 0 && s.NextRunAt != nil {
		next = []time.Time{*s.NextRunAt}
	}
	for i, t := range next {
		if i == maxNextShown {
			rows = append(rows, []string{"", fmt.Sprintf("(%d more with -o json)", len(next)-i)})
			break
		}
		rows = append(rows, []string{"next:", ui.Time(&t)})
	}
	rows = append(rows, []string{"starts:", strconv.FormatInt(s.Actions, 10)})
	for _, r := range s.RecentActions {
		rows = append(rows, []string{"recent:", ui.Time(r.StartedAt) + " " + r.WorkflowID})
	}
	if s.CreatedAt != nil {
		rows = append(rows, []string{"created:", ui.Time(s.CreatedAt)})
	}
	a.printf("%s", st.Fields(rows))
	if len(s.Input) > 0 {
		a.printf("%s\n%s\n", st.Bold("input:"), ui.Indent(s.Input))
	}
}

func (a *app) schedulePauseCmd(pause bool) *cobra.Command {
	use, short, verb := "resume NAME", "Resume a paused schedule", "resumed"
	if pause {
		use, short, verb = "pause NAME", "Pause a schedule (it starts nothing until resumed)", "paused"
	}
	c := &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    short + "." + exitCodesHelp,
		Example: "  lambda schedule " + use[:len(use)-len(" NAME")] + " nightly",
		Args:    args(cobra.ExactArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		s, err := cl.SetSchedulePaused(ctx, args[0], pause)
		if err != nil {
			return err
		}
		if ok, err := a.structured(s); ok {
			return err
		}
		a.printf("%s schedule %s\n", verb, args[0])
		return nil
	})
	return c
}

func (a *app) scheduleTriggerCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "trigger NAME",
		Short:   "Start a schedule's target once, now",
		Long:    "Start a schedule's target once, now, as the schedule would (also when paused)." + exitCodesHelp,
		Example: `  lambda schedule trigger nightly`,
		Args:    args(cobra.ExactArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		if err := cl.TriggerSchedule(ctx, args[0]); err != nil {
			return err
		}
		a.printf("triggered schedule %s\n", args[0])
		return nil
	})
	return c
}

func (a *app) scheduleRunsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "runs NAME",
		Short:   "List what a schedule started recently",
		Long:    "List the executions or runs a schedule started recently." + exitCodesHelp,
		Example: `  lambda schedule runs nightly`,
		Args:    args(cobra.ExactArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		runs, err := cl.ScheduleRuns(ctx, args[0])
		if err != nil {
			return err
		}
		if ok, err := a.structured(map[string]any{"runs": runs}); ok {
			return err
		}
		s := a.outStyles()
		rows := make([][]string, 0, len(runs))
		for _, r := range runs {
			kind, id := "execution", r.ExecutionID
			if r.RunID != "" {
				kind, id = "run", r.RunID
			}
			rows = append(rows, []string{ui.Time(r.StartedAt), kind, id, s.Status(r.Status)})
		}
		a.printf("%s", s.Table([]string{"STARTED", "KIND", "ID", "STATUS"}, rows))
		return nil
	})
	return c
}

func (a *app) scheduleRemoveCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"delete"},
		Short:   "Delete schedules (what they started stays)",
		Long:    "Delete schedules; the executions and runs they started stay." + exitCodesHelp,
		Example: `  lambda schedule rm nightly ping`,
		Args:    args(cobra.MinimumNArgs(1)),
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		for _, name := range args {
			if err := cl.DeleteSchedule(ctx, name); err != nil {
				return err
			}
			a.printf("deleted schedule %s\n", name)
		}
		return nil
	})
	return c
}
