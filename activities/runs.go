package activities

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// Runs is what the activities of a pipeline run need from the core: the step operations
// over the run's PostgreSQL state (claim check). Every one of them is idempotent, since
// Temporal may repeat any activity after a worker crash.
type Runs interface {
	// PlanRun loads the run's pinned definition and options.
	PlanRun(ctx context.Context, runID string) (Plan, error)
	// StartPlanRun is MarkRunning and PlanRun in one operation.
	StartPlanRun(ctx context.Context, runID string) (Plan, error)
	CallStep(ctx context.Context, runID string, spec pipeline.CallSpec) (pipeline.CallResult, error)
	// CallAndSettleStep is CallStep that also settles a function step (not a map item)
	// succeeded, in the execution's commit, when the call succeeded (settled).
	CallAndSettleStep(ctx context.Context, runID string, spec pipeline.CallSpec, started time.Time) (pipeline.CallResult, bool, error)
	EvalStep(ctx context.Context, runID string, spec pipeline.EvalSpec) (pipeline.EvalResult, error)
	SettleStep(ctx context.Context, runID string, rec pipeline.StepRecord) error
	MarkWaiting(ctx context.Context, runID string, spec pipeline.WaitSpec, waiting bool) error
	MarkRunning(ctx context.Context, runID string) error
	// FinishRun returns the run's final status as recorded: out.Status, or failed when
	// the output does not render, or the status an earlier call recorded.
	FinishRun(ctx context.Context, runID string, out pipeline.RunOutcome) (pipeline.RunStatus, error)
}

// Plan is what a run's workflow needs to interpret it: the pinned definition (canonical
// JSON, compiled in the workflow), the run's options and, per function, the timeout of
// the version it runs (it chooses a local or a heartbeating activity). No payloads.
type Plan struct {
	Tenant     string              `json:"tenant"`
	RunID      string              `json:"run_id"`
	Pipeline   string              `json:"pipeline"`
	Version    int                 `json:"version"`
	Definition json.RawMessage     `json:"definition"`
	SHA256     string              `json:"sha256,omitempty"`
	Options    pipeline.RunOptions `json:"options"`
	TimeoutMS  int                 `json:"timeout_ms,omitempty"`
	// FunctionTimeoutsMS: FunctionKey(name, version) → that version's timeout.
	FunctionTimeoutsMS map[string]int `json:"function_timeouts_ms,omitempty"`
}

// CallStepInput is one attempt of a function step or of one map item.
type CallStepInput struct {
	RunID string            `json:"run_id"`
	Spec  pipeline.CallSpec `json:"spec"`
	// SettleStartedAt, when set (a function step, not a map item), asks the call to
	// settle the step succeeded if it succeeds, started at this time, in the execution's
	// commit (CallStepResult.Settled).
	SettleStartedAt *time.Time `json:"settle_started_at,omitempty"`
}

// CallStepResult is a call's outcome, and whether it settled its step.
type CallStepResult struct {
	pipeline.CallResult
	Settled bool `json:"settled,omitempty"`
}

// EvalStepInput asks for a step's if or a map's items.
type EvalStepInput struct {
	RunID string            `json:"run_id"`
	Spec  pipeline.EvalSpec `json:"spec"`
}

// SettleStepInput records a step final.
type SettleStepInput struct {
	RunID  string              `json:"run_id"`
	Record pipeline.StepRecord `json:"record"`
}

// MarkWaitingInput marks a wait_for step waiting (or no longer).
type MarkWaitingInput struct {
	RunID   string            `json:"run_id"`
	Spec    pipeline.WaitSpec `json:"spec"`
	Waiting bool              `json:"waiting"`
}

// FinishRunInput records a run's end.
type FinishRunInput struct {
	RunID   string              `json:"run_id"`
	Outcome pipeline.RunOutcome `json:"outcome"`
}

// WithRuns gives a the core's run operations (without them the run activities answer a
// non-retryable "unavailable" error). A function, not a method: every exported method of
// Activities is an activity.
func WithRuns(a *Activities, r Runs) *Activities {
	a.runs = r
	return a
}

func (a *Activities) runOps() (Runs, error) {
	if a.runs == nil {
		return nil, temporal.NewNonRetryableApplicationError("pipeline runs are not configured in this worker", fault.Unavailable.String(), nil)
	}
	return a.runs, nil
}

// RunPlan loads a run's plan.
func (a *Activities) RunPlan(ctx context.Context, runID string) (_ Plan, err error) {
	defer a.track("RunPlan")(&err)
	r, err := a.runOps()
	if err != nil {
		return Plan{}, err
	}
	p, err := r.PlanRun(ctx, runID)
	return p, classify("run plan", err)
}

// StartRunPlan moves the run to running and loads its plan: MarkRunning and RunPlan in one
// local activity and one commit.
func (a *Activities) StartRunPlan(ctx context.Context, runID string) (_ Plan, err error) {
	defer a.track("StartRunPlan")(&err)
	r, err := a.runOps()
	if err != nil {
		return Plan{}, err
	}
	p, err := r.StartPlanRun(ctx, runID)
	return p, classify("start run plan", err)
}

// CallStep runs one attempt of a step's function (core: render the input from recorded
// state, invoke, record the execution and the output). The handler's failure or timeout
// is a result (CallResult.Status), never an error, so Temporal never retries it: the
// interpreter applies the step's own retry policy. A Go error is a platform fault and
// retries under the activity's RetryPolicy. Run as a regular activity it heartbeats while
// the call runs, so a dead worker is noticed by the heartbeat timeout and a cancel of the
// run reaches it.
func (a *Activities) CallStep(ctx context.Context, in CallStepInput) (_ CallStepResult, err error) {
	defer a.track("CallStep")(&err)
	r, err := a.runOps()
	if err != nil {
		return CallStepResult{}, err
	}
	call := func() (CallStepResult, error) {
		if in.SettleStartedAt != nil {
			res, settled, err := r.CallAndSettleStep(ctx, in.RunID, in.Spec, *in.SettleStartedAt)
			return CallStepResult{CallResult: res, Settled: settled}, err
		}
		res, err := r.CallStep(ctx, in.RunID, in.Spec)
		return CallStepResult{CallResult: res}, err
	}
	if !activity.IsActivity(ctx) || activity.GetInfo(ctx).IsLocalActivity {
		res, err := call()
		return res, classify("call step", err)
	}
	info := activity.GetInfo(ctx)
	every := a.cfg.HeartbeatEvery
	if hb := info.HeartbeatTimeout; hb > 0 && hb/3 < every {
		every = max(hb/3, 50*time.Millisecond)
	}
	hbCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, in.Spec.Attempt)
			}
		}
	}()
	res, err := call()
	stop()
	<-done
	if err != nil && ctx.Err() != nil {
		return CallStepResult{}, ctx.Err()
	}
	return res, classify("call step", err)
}

// EvalStep evaluates a step's if or a map's items (the core keeps the items).
func (a *Activities) EvalStep(ctx context.Context, in EvalStepInput) (_ pipeline.EvalResult, err error) {
	defer a.track("EvalStep")(&err)
	r, err := a.runOps()
	if err != nil {
		return pipeline.EvalResult{}, err
	}
	res, err := r.EvalStep(ctx, in.RunID, in.Spec)
	return res, classify("eval step", err)
}

// SettleStep records a step final, its output materialised from recorded state.
func (a *Activities) SettleStep(ctx context.Context, in SettleStepInput) (err error) {
	defer a.track("SettleStep")(&err)
	r, err := a.runOps()
	if err != nil {
		return err
	}
	return classify("settle step", r.SettleStep(ctx, in.RunID, in.Record))
}

// MarkWaiting marks a wait_for step (and the run) waiting for its signal, or no longer.
func (a *Activities) MarkWaiting(ctx context.Context, in MarkWaitingInput) (err error) {
	defer a.track("MarkWaiting")(&err)
	r, err := a.runOps()
	if err != nil {
		return err
	}
	return classify("mark waiting", r.MarkWaiting(ctx, in.RunID, in.Spec, in.Waiting))
}

// MarkRunning moves the run from queued to running.
func (a *Activities) MarkRunning(ctx context.Context, runID string) (err error) {
	defer a.track("MarkRunning")(&err)
	r, err := a.runOps()
	if err != nil {
		return err
	}
	return classify("mark running", r.MarkRunning(ctx, runID))
}

// FinishRunResult is the run's final status as recorded (it may differ from the
// outcome asked for: an output that does not render fails the run, and a status
// recorded before stays).
type FinishRunResult struct {
	Status pipeline.RunStatus `json:"status"`
}

// FinishRun records the run's end (once: a final status is never rewritten).
func (a *Activities) FinishRun(ctx context.Context, in FinishRunInput) (_ FinishRunResult, err error) {
	defer a.track("FinishRun")(&err)
	r, err := a.runOps()
	if err != nil {
		return FinishRunResult{}, err
	}
	st, err := r.FinishRun(ctx, in.RunID, in.Outcome)
	if err != nil {
		return FinishRunResult{}, classify("finish run", err)
	}
	return FinishRunResult{Status: st}, nil
}

// FunctionKey keys Plan.FunctionTimeoutsMS: a function at the version a call names (0:
// its latest).
func FunctionKey(name string, version int) string { return name + "@" + strconv.Itoa(version) }

// CoreRuns is the core's side of durable runs (*core.Service).
type CoreRuns interface {
	RunPlan(ctx context.Context, runID string) (core.RunPlan, error)
	StartRunPlan(ctx context.Context, runID string) (core.RunPlan, error)
	CallAndSettleStep(ctx context.Context, runID string, spec pipeline.CallSpec, started time.Time) (pipeline.CallResult, bool, error)
	FunctionTimeoutMS(ctx context.Context, tenant, name string, version int) (int, error)
	CallStep(ctx context.Context, runID string, spec pipeline.CallSpec) (pipeline.CallResult, error)
	EvalStep(ctx context.Context, runID string, spec pipeline.EvalSpec) (pipeline.EvalResult, error)
	SettleStep(ctx context.Context, runID string, rec pipeline.StepRecord) error
	MarkWaiting(ctx context.Context, runID string, spec pipeline.WaitSpec, waiting bool) error
	MarkRunning(ctx context.Context, runID string) error
	FinishRun(ctx context.Context, runID string, out pipeline.RunOutcome) (pipeline.RunStatus, error)
}

// RunsOf adapts the core to Runs: the plan's compiled definition becomes its canonical
// JSON (the workflow compiles it again, deterministically) and the timeouts of the
// functions it calls are looked up.
func RunsOf(c CoreRuns) Runs { return coreRuns{c} }

type coreRuns struct{ CoreRuns }

func (c coreRuns) PlanRun(ctx context.Context, runID string) (Plan, error) {
	p, err := c.RunPlan(ctx, runID)
	if err != nil {
		return Plan{}, err
	}
	return c.plan(ctx, p)
}

func (c coreRuns) StartPlanRun(ctx context.Context, runID string) (Plan, error) {
	p, err := c.StartRunPlan(ctx, runID)
	if err != nil {
		return Plan{}, err
	}
	return c.plan(ctx, p)
}

func (c coreRuns) plan(ctx context.Context, p core.RunPlan) (Plan, error) {
	def, err := p.Compiled.Definition().Canonical()
	if err != nil {
		return Plan{}, err
	}
	sha, _ := p.Compiled.Definition().SHA256()
	timeouts := map[string]int{}
	for _, s := range p.Compiled.Steps() {
		if s.Call == nil {
			continue
		}
		v := s.Call.Version
		if v == 0 {
			v = p.Options.Versions[s.Call.Function]
		}
		key := FunctionKey(s.Call.Function, v)
		if _, ok := timeouts[key]; ok {
			continue
		}
		t, err := c.FunctionTimeoutMS(ctx, p.Tenant, s.Call.Function, v)
		if err != nil {
			if fault.Is(err, fault.NotFound) {
				continue // the call itself will say so
			}
			return Plan{}, err
		}
		timeouts[key] = t
	}
	return Plan{Tenant: p.Tenant, RunID: p.RunID, Pipeline: p.Pipeline, Version: p.Version, Definition: def, SHA256: sha,
		Options: p.Options, TimeoutMS: p.TimeoutMS, FunctionTimeoutsMS: timeouts}, nil
}
