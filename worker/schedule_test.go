package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

// startsOf is the number of executions and runs a schedule started.
func (p *platform) startsOf(c *core.Service, name string) []core.ScheduleRun {
	p.t.Helper()
	runs, err := c.ScheduleRuns(context.Background(), p.tenant, name)
	require.NoError(p.t, err)
	return runs
}

func (p *platform) waitStarts(c *core.Service, name string, n int, within time.Duration) []core.ScheduleRun {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		runs := p.startsOf(c, name)
		if len(runs) >= n {
			return runs
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("schedule %s started %d, want %d within %s", name, len(runs), n, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSchedules runs schedules on the real stack: an every-second schedule fires and
// records executions naming it, pause stops it, trigger fires once while paused, delete
// removes it; a pipeline target records runs; bad definitions are refused with nothing
// created; another tenant sees none of it.
func TestSchedules(t *testing.T) {
	p := newPlatform(t, "sched")
	c := p.fullCore("")
	p.startWorker()
	p.register("add", 3000, 0)
	p.registerPipeline(c, `{"name":"flow","steps":[{"id":"s1","function":"add","input":{"A":"${input.A}","B":1}}]}`)
	ctx := context.Background()

	sc, err := c.CreateSchedule(ctx, p.tenant, core.ScheduleSpec{Name: "tick", Target: core.ScheduleTarget{Function: "add"},
		IntervalMS: 1000, Input: json.RawMessage(`{"A":1,"B":2}`)})
	require.NoError(t, err)
	require.Equal(t, "sched-default-tick", sc.ID)
	require.Equal(t, "skip", sc.Overlap)
	require.NotNil(t, sc.NextRunAt)

	runs := p.waitStarts(c, "tick", 2, 20*time.Second)
	e := p.wait(runs[len(runs)-1].ExecutionID, 20*time.Second)
	require.Equal(t, store.StatusSucceeded, e.Status)
	require.JSONEq(t, "3", string(e.Result))
	require.Equal(t, "async", e.Mode)
	es := []store.Execution{e}
	require.NoError(t, p.store.AnnotateExecutions(ctx, es))
	require.Equal(t, "tick", es[0].Schedule, "the envelope names its schedule")

	got, err := c.GetSchedule(ctx, p.tenant, "tick")
	require.NoError(t, err)
	require.NotEmpty(t, got.RecentActions)
	require.GreaterOrEqual(t, got.Actions, int64(2))

	// Pause: no more starts (one may be in flight when the pause lands).
	paused, err := c.PauseSchedule(ctx, p.tenant, "tick", true)
	require.NoError(t, err)
	require.True(t, paused.Paused)
	require.Nil(t, paused.NextRunAt)
	time.Sleep(1500 * time.Millisecond)
	before := len(p.startsOf(c, "tick"))
	time.Sleep(2500 * time.Millisecond)
	require.Equal(t, before, len(p.startsOf(c, "tick")), "a paused schedule starts nothing")

	// Trigger fires once, paused or not.
	require.NoError(t, c.TriggerSchedule(ctx, p.tenant, "tick"))
	p.waitStarts(c, "tick", before+1, 15*time.Second)
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, before+1, len(p.startsOf(c, "tick")))

	// Resume.
	resumed, err := c.PauseSchedule(ctx, p.tenant, "tick", false)
	require.NoError(t, err)
	require.False(t, resumed.Paused)
	p.waitStarts(c, "tick", before+2, 15*time.Second)

	// A pipeline target: runs naming the schedule.
	_, err = c.CreateSchedule(ctx, p.tenant, core.ScheduleSpec{Name: "flowly", Target: core.ScheduleTarget{Pipeline: "flow"},
		IntervalMS: 1000, Input: json.RawMessage(`{"A":41}`)})
	require.NoError(t, err)
	fr := p.waitStarts(c, "flowly", 1, 20*time.Second)
	require.NotEmpty(t, fr[0].RunID)
	r := p.waitRun(c, fr[0].RunID, 30*time.Second)
	require.Equal(t, store.StatusSucceeded, r.Status, "%+v", r.Error)
	require.JSONEq(t, "42", string(r.Output))

	// Bad definitions: 4xx, nothing created.
	for name, spec := range map[string]core.ScheduleSpec{
		"bad-cron":    {Name: "x1", Target: core.ScheduleTarget{Function: "add"}, Cron: core.Crons{"61 * * * *"}},
		"bad-cron2":   {Name: "x2", Target: core.ScheduleTarget{Function: "add"}, Cron: core.Crons{"not a cron"}},
		"timezone":    {Name: "x3", Target: core.ScheduleTarget{Function: "add"}, Cron: core.Crons{"0 3 * * *"}, Timezone: "Mars/Olympus"},
		"target":      {Name: "x4", Target: core.ScheduleTarget{Function: "nope"}, IntervalMS: 1000},
		"pipeline":    {Name: "x5", Target: core.ScheduleTarget{Pipeline: "nope"}, IntervalMS: 1000},
		"both":        {Name: "x6", Target: core.ScheduleTarget{Function: "add"}, IntervalMS: 1000, Cron: core.Crons{"* * * * *"}},
		"overlap":     {Name: "x7", Target: core.ScheduleTarget{Function: "add"}, IntervalMS: 1000, Overlap: "sometimes"},
		"name in use": {Name: "tick", Target: core.ScheduleTarget{Function: "add"}, IntervalMS: 5000},
	} {
		_, err := c.CreateSchedule(ctx, p.tenant, spec)
		require.Error(t, err, name)
		k := fault.KindOf(err)
		require.Contains(t, []fault.Kind{fault.Invalid, fault.Unprocessable, fault.Conflict}, k, "%s: %v", name, err)
		if spec.Name != "tick" {
			_, gerr := c.GetSchedule(ctx, p.tenant, spec.Name)
			require.True(t, fault.Is(gerr, fault.NotFound), name)
			_, derr := p.client.ScheduleClient().GetHandle(ctx, core.ScheduleID(p.tenant, spec.Name)).Describe(ctx)
			require.Error(t, derr, "%s: no Temporal schedule", name)
		}
	}

	// Another tenant sees none of it.
	other, err := c.ListSchedules(ctx, "other")
	require.NoError(t, err)
	require.Empty(t, other)
	_, err = c.GetSchedule(ctx, "other", "tick")
	require.True(t, fault.Is(err, fault.NotFound))
	require.True(t, fault.Is(c.DeleteSchedule(ctx, "other", "tick"), fault.NotFound))
	require.True(t, fault.Is(c.TriggerSchedule(ctx, "other", "tick"), fault.NotFound))
	_, err = c.ScheduleRuns(ctx, "other", "tick")
	require.True(t, fault.Is(err, fault.NotFound))
	_, err = c.PauseSchedule(ctx, "other", "tick", true)
	require.True(t, fault.Is(err, fault.NotFound))

	list, err := c.ListSchedules(ctx, p.tenant)
	require.NoError(t, err)
	require.Len(t, list, 2)

	// Delete: gone from the list and from Temporal; what it started stays.
	require.NoError(t, c.DeleteSchedule(ctx, p.tenant, "tick"))
	require.NoError(t, c.DeleteSchedule(ctx, p.tenant, "flowly"))
	_, err = c.GetSchedule(ctx, p.tenant, "tick")
	require.True(t, fault.Is(err, fault.NotFound))
	_, err = p.client.ScheduleClient().GetHandle(ctx, core.ScheduleID(p.tenant, "tick")).Describe(ctx)
	require.Error(t, err)
	_, err = c.ScheduleRuns(ctx, p.tenant, "tick")
	require.True(t, fault.Is(err, fault.NotFound))
	require.Equal(t, 1, p.query(`SELECT count(*) FROM request_logs WHERE id = $1`, e.ID), "what it started stays")
}

// TestScheduleTimezoneAndOverlap: a cron schedule in America/New_York fires at noon
// local time on both sides of the 2027 DST change (Temporal's next action times); an
// every-second schedule of a 3 s function with overlap skip never runs two at once, with
// cancel_other cancels the running one; a scheduled execution can be canceled.
func TestScheduleTimezoneAndOverlap(t *testing.T) {
	p := newPlatform(t, "sched")
	p.tenant = "tz"
	c := p.fullCore("")
	p.startWorker()
	p.register("slow", 10_000, 0)
	ctx := context.Background()

	sc, err := c.CreateSchedule(ctx, p.tenant, core.ScheduleSpec{Name: "noon", Target: core.ScheduleTarget{Function: "slow"},
		Cron: core.Crons{"0 12 13,15 3 *"}, Timezone: "America/New_York", Paused: true})
	require.NoError(t, err)
	require.True(t, sc.Paused)
	require.GreaterOrEqual(t, len(sc.NextRuns), 2)
	want := []time.Time{time.Date(2027, 3, 13, 17, 0, 0, 0, time.UTC), time.Date(2027, 3, 15, 16, 0, 0, 0, time.UTC)}
	for i, w := range want {
		require.True(t, w.Equal(sc.NextRuns[i]), "next run %d: %s, want %s (EST then EDT)", i, sc.NextRuns[i].UTC(), w)
	}

	_, err = c.CreateSchedule(ctx, p.tenant, core.ScheduleSpec{Name: "busy", Target: core.ScheduleTarget{Function: "slow"},
		IntervalMS: 1000, Overlap: "skip", Input: json.RawMessage(`{"sleep_ms":3000}`)})
	require.NoError(t, err)
	p.waitStarts(c, "busy", 1, 15*time.Second)
	time.Sleep(4500 * time.Millisecond)
	_, err = c.PauseSchedule(ctx, p.tenant, "busy", true)
	require.NoError(t, err)
	starts := p.startsOf(c, "busy")

	// cancel_other: each start cancels the running one. A function whose timeout puts its
	// runtime call in a heartbeating activity sees the cancel at once and is recorded
	// canceled; the starts keep to the interval instead of waiting for each run.
	p.register("slower", 20_000, 0)
	_, err = c.CreateSchedule(ctx, p.tenant, core.ScheduleSpec{Name: "eager", Target: core.ScheduleTarget{Function: "slower"},
		IntervalMS: 1000, Overlap: "cancel_other", Input: json.RawMessage(`{"sleep_ms":5000}`)})
	require.NoError(t, err)
	p.waitStarts(c, "eager", 3, 10*time.Second)
	_, err = c.PauseSchedule(ctx, p.tenant, "eager", true)
	require.NoError(t, err)
	canceled := 0
	for _, st := range p.startsOf(c, "eager") {
		if p.wait(st.ExecutionID, 20*time.Second).Status == store.StatusCanceled {
			canceled++
		}
	}
	require.GreaterOrEqual(t, canceled, 2, "cancel_other cancels the running execution")

	// A scheduled execution is an ordinary one: canceled like any other.
	_, err = c.CreateSchedule(ctx, p.tenant, core.ScheduleSpec{Name: "long", Target: core.ScheduleTarget{Function: "slower"},
		Cron: core.Crons{"0 0 1 1 *"}, Input: json.RawMessage(`{"sleep_ms":8000}`)})
	require.NoError(t, err)
	require.NoError(t, c.TriggerSchedule(ctx, p.tenant, "long"))
	long := p.waitStarts(c, "long", 1, 15*time.Second)[0]
	require.Eventually(t, func() bool {
		e, err := p.store.GetExecution(ctx, p.tenant, long.ExecutionID, false)
		return err == nil && e.Status == store.StatusRunning
	}, 15*time.Second, 50*time.Millisecond)
	require.NoError(t, c.CancelExecution(ctx, p.tenant, long.ExecutionID))
	require.Equal(t, store.StatusCanceled, p.wait(long.ExecutionID, 15*time.Second).Status)
	got, err := c.GetSchedule(ctx, p.tenant, "long")
	require.NoError(t, err)
	require.Len(t, got.RecentActions, 1, "the trigger")
	require.LessOrEqual(t, len(starts), 3, "skip: about one start per 3 s run, not one per second")
	// No two executions overlapped: each started after the previous one finished.
	var prevEnd time.Time
	for i := len(starts) - 1; i >= 0; i-- {
		e := p.wait(starts[i].ExecutionID, 20*time.Second)
		require.Equal(t, store.StatusSucceeded, e.Status)
		require.False(t, e.CreatedAt.Before(prevEnd), "execution %d started before the previous one finished", i)
		prevEnd = *e.FinishedAt
	}
}
