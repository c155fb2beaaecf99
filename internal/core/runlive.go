package core

import (
	"context"
	"time"

	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/store"
)

// RunLive answers what a durable run's workflow is doing now: the interpreter's step
// states (the workflow's "steps" query, workflows.Starter). Queries are not recorded in
// the workflow's history; they cost a round trip to Temporal and a workflow task.
type RunLive interface {
	LiveSteps(ctx context.Context, runID string) ([]pipeline.StepState, error)
}

// DefaultLiveStepsTimeout bounds the "steps" query when Config.LiveStepsTimeout is 0.
const DefaultLiveStepsTimeout = 300 * time.Millisecond

// StepSleeping is the envelope status of a sleep step in flight (live state only; its
// Until says when it wakes up). Recorded, a sleep step is succeeded once it has slept.
const StepSleeping = "sleeping"

// WithLiveSteps merges the live state of a durable run in flight over its recorded
// steps (r as GetRun answers it): a step recorded final keeps its recorded state; one
// the workflow is running shows running (or sleeping, with Until) with its attempt and
// start time. The query waits at most Config.LiveStepsTimeout; a workflow that does not
// answer in time (Temporal slow or down, no worker polling) leaves the recorded steps,
// with r.Live false. A final or sync run is answered as it is, with no query.
func (s *Service) WithLiveSteps(ctx context.Context, r store.Run) store.Run {
	live, ok := s.runs.(RunLive)
	if !ok || r.Mode != ModeAsync || store.RunFinished(r.Status) || r.Status == store.StatusQueued {
		return r
	}
	timeout := s.cfg.LiveStepsTimeout
	if timeout <= 0 {
		timeout = DefaultLiveStepsTimeout
	}
	qctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	states, err := live.LiveSteps(qctx, r.ID)
	answered := err == nil
	r.Live = &answered
	if err != nil {
		return r
	}
	comp, err := s.compiledOf(ctx, r.Tenant, r.SHA256)
	if err != nil {
		f := false
		r.Live = &f
		return r
	}
	r.Steps = mergeLiveSteps(comp, r.Steps, states)
	return r
}

// mergeLiveSteps lays the workflow's step states over the recorded envelope steps: a
// recorded final row wins; otherwise a live step gives its status, attempt, start time,
// execution and item counts, and a running sleep step is sleeping until its start plus
// its sleep_ms. A step the workflow has settled after the rows were read shows its final
// status with no output yet (outputs are only in the rows).
func mergeLiveSteps(comp *pipeline.Compiled, steps []store.RunStep, states []pipeline.StepState) []store.RunStep {
	byID := make(map[string]pipeline.StepState, len(states))
	for _, st := range states {
		if st.ID != "" {
			byID[st.ID] = st
		}
	}
	kinds := make(map[string]*pipeline.CompiledStep, len(comp.Steps()))
	for _, cs := range comp.Steps() {
		if cs.ID != "" {
			kinds[cs.ID] = cs
		}
	}
	out := make([]store.RunStep, len(steps))
	for i, rec := range steps {
		out[i] = rec
		st, ok := byID[rec.ID]
		if !ok || pipeline.StepStatus(rec.Status).Final() || st.Status == pipeline.StepPending {
			continue
		}
		m := &out[i]
		if st.Attempts > m.Attempts {
			m.Attempts = st.Attempts
		}
		if m.StartedAt == nil && !st.StartedAt.IsZero() {
			t := st.StartedAt
			m.StartedAt = &t
		}
		if m.ExecutionID == "" {
			m.ExecutionID = st.ExecutionID
		}
		if st.Items != nil {
			c := *st.Items
			m.Items = &c
		}
		m.Status = string(st.Status)
		if st.Status.Final() {
			// Settled by the workflow, its row not read yet (the read of the rows came
			// before the query): final as the workflow says, its output comes with its row.
			if !st.FinishedAt.IsZero() {
				t := st.FinishedAt
				m.FinishedAt = &t
			}
			continue
		}
		if cs := kinds[rec.ID]; cs != nil && cs.Kind == pipeline.KindSleep && st.Status == pipeline.StepRunning &&
			!st.StartedAt.IsZero() {
			m.Status = StepSleeping
			until := st.StartedAt.Add(time.Duration(cs.Def.SleepMS) * time.Millisecond)
			m.Until = &until
		}
	}
	return out
}
