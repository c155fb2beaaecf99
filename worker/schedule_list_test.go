package worker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/workflows"
)

// stalledDescribes is the real Temporal schedules side whose describes of the schedules
// named stalled-* never answer (Temporal overloaded): each waits for its caller to give up.
type stalledDescribes struct {
	*workflows.Starter
	calls chan string
}

func (s stalledDescribes) DescribeSchedule(ctx context.Context, tenant, name string) (core.ScheduleInfo, error) {
	s.calls <- name
	if strings.HasPrefix(name, "stalled-") {
		<-ctx.Done()
		return core.ScheduleInfo{}, ctx.Err()
	}
	return s.Starter.DescribeSchedule(ctx, tenant, name)
}

// The list of schedules answers from what PostgreSQL records when Temporal does not
// describe some of them in time: the list is whole, those carry their recorded fields
// with live false, the others Temporal's next run times; the describes run in parallel.
func TestScheduleListWhileTemporalStalls(t *testing.T) {
	p := newPlatform(t, "sched")
	c := p.fullCore("")
	p.register("add", 3000, 0)
	ctx := context.Background()
	names := []string{"ok-a", "stalled-b", "stalled-c", "stalled-d", "stalled-e", "ok-f"}
	for _, n := range names {
		_, err := c.CreateSchedule(ctx, p.tenant, core.ScheduleSpec{Name: n, Target: core.ScheduleTarget{Function: "add"},
			Cron: core.Crons{"0 0 1 1 *"}, Overlap: "buffer_one", Input: json.RawMessage(`{"A":1,"B":2}`)})
		require.NoError(t, err)
	}

	st := workflows.NewStarter(workflows.StarterConfig{StartTimeout: 5 * time.Second}, p.client, p.ns)
	slow := stalledDescribes{Starter: st, calls: make(chan string, 100)}
	stalled := core.New(core.Config{}, core.Deps{Store: p.store, Schedules: slow, Log: p.log})
	start := time.Now()
	list, err := stalled.ListSchedules(ctx, p.tenant)
	took := time.Since(start)
	require.NoError(t, err)
	require.Less(t, took, 3*time.Second, "four stalled describes wait in parallel, not one after the other")
	require.Len(t, slow.calls, len(names))
	require.Len(t, list, len(names), "the whole list")
	for _, sc := range list {
		require.Equal(t, "buffer_one", sc.Overlap, sc.Name)
		require.Equal(t, core.Crons{"0 0 1 1 *"}, sc.Cron, sc.Name)
		require.NotZero(t, sc.CreatedAt, sc.Name)
		require.NotNil(t, sc.Live, sc.Name)
		if strings.HasPrefix(sc.Name, "stalled-") {
			require.False(t, *sc.Live, sc.Name)
			require.Empty(t, sc.NextRuns, sc.Name)
			require.Nil(t, sc.NextRunAt, sc.Name)
			continue
		}
		require.True(t, *sc.Live, sc.Name)
		require.NotEmpty(t, sc.NextRuns, sc.Name)
		require.Equal(t, 1, sc.NextRuns[0].UTC().Day(), sc.Name)
	}
	t.Logf("list of %d with %d stalled describes: %s", len(list), 4, took)

	// One schedule, as a list shows it: a stalled describe leaves its recorded fields
	// (live false) within the describe's bound; a described one has no live field.
	start = time.Now()
	one, err := stalled.GetSchedule(ctx, p.tenant, "stalled-b")
	require.NoError(t, err)
	require.Less(t, time.Since(start), 4*time.Second)
	require.NotNil(t, one.Live)
	require.False(t, *one.Live)
	require.Equal(t, core.Crons{"0 0 1 1 *"}, one.Cron)
	require.Empty(t, one.NextRuns)
	paused, err := stalled.PauseSchedule(ctx, p.tenant, "stalled-c", true)
	require.NoError(t, err, "the pause took effect; only the describe after it stalled")
	require.True(t, paused.Paused, "what was just set")
	one, err = stalled.GetSchedule(ctx, p.tenant, "ok-a")
	require.NoError(t, err)
	require.Nil(t, one.Live)
	require.NotEmpty(t, one.NextRuns)
}
