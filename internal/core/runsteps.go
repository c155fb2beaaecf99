package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/store"
)

// The step operations of a durable run: the async runner of the interpreter calls them
// (as activities), naming the run by its id. State lives in PostgreSQL (claim check):
// the run's input, the item lists of its map steps, every call's execution row, every
// settled step's output, the signals received. Each operation is idempotent — Temporal
// may repeat any of them after a worker crash.

// RunPlan is what a durable run's interpreter starts with.
type RunPlan struct {
	Tenant, RunID, Pipeline string
	Version                 int
	Compiled                *pipeline.Compiled  // compiled pinned definition
	Options                 pipeline.RunOptions // Seed (handover/retry), Versions (functions' latest at run start)
	TimeoutMS               int
}

// RunPlan loads a run's plan: its pinned definition compiled, the functions' versions
// resolved at its start, and its steps already recorded final as seeds (a sync run
// handed over, a retried run's earlier steps, or steps settled before a restart).
func (s *Service) RunPlan(ctx context.Context, runID string) (RunPlan, error) {
	r, err := s.store.LoadRun(ctx, runID)
	if err != nil {
		return RunPlan{}, err
	}
	return s.runPlan(ctx, r)
}

// StartRunPlan is MarkRunning and RunPlan in one operation (one round trip for the
// run's row and its move to running, one commit).
func (s *Service) StartRunPlan(ctx context.Context, runID string) (RunPlan, error) {
	r, err := s.store.LoadRunMarkingRunning(ctx, runID)
	if err != nil {
		return RunPlan{}, err
	}
	return s.runPlan(ctx, r)
}

func (s *Service) runPlan(ctx context.Context, r store.Run) (RunPlan, error) {
	comp, err := s.compiledOf(ctx, r.Tenant, r.SHA256)
	if err != nil {
		return RunPlan{}, err
	}
	steps, err := s.store.RunSteps(ctx, r.ID)
	if err != nil {
		return RunPlan{}, err
	}
	var seed map[string]pipeline.SeededStep
	for _, st := range steps {
		switch pipeline.StepStatus(st.Status) {
		case pipeline.StepSucceeded, pipeline.StepFailed, pipeline.StepSkipped:
		default:
			continue
		}
		if seed == nil {
			seed = map[string]pipeline.SeededStep{}
		}
		ss := pipeline.SeededStep{Status: pipeline.StepStatus(st.Status), Attempts: st.Attempts,
			ExecutionID: st.ExecutionID, Error: st.Error, Items: st.Items}
		if st.StartedAt != nil {
			ss.StartedAt = *st.StartedAt
		}
		if st.FinishedAt != nil {
			ss.FinishedAt = *st.FinishedAt
		}
		seed[st.ID] = ss
	}
	return RunPlan{Tenant: r.Tenant, RunID: r.ID, Pipeline: r.Pipeline, Version: r.Version, Compiled: comp,
		Options:   pipeline.RunOptions{Seed: seed, Versions: r.Options.Versions},
		TimeoutMS: comp.Definition().TimeoutMS}, nil
}

// runState is a run's recorded state, for rendering inputs and outputs and evaluating
// expressions.
type runState struct {
	run   store.Run // without Input until input() loads it
	comp  *pipeline.Compiled
	steps map[string]store.RunStep
	// loadInput reads the run's input (input() calls it once, when an expression or a
	// source needs it).
	loadInput func() (json.RawMessage, error)
}

// input is the run's input, read on first use.
func (rs *runState) input() (json.RawMessage, error) {
	if rs.run.Input == nil && rs.loadInput != nil {
		in, err := rs.loadInput()
		if err != nil {
			return nil, err
		}
		rs.run.Input = in
	}
	return rs.run.Input, nil
}

// runHeads caches the immutable part of runs the step operations work on (tenant,
// pinned definition): a step operation then starts without reading the run's row.
type runHeads struct {
	mu sync.Mutex
	m  map[string]store.Run
}

const runHeadsMax = 10_000

func (s *Service) runHead(ctx context.Context, runID string) (store.Run, *pipeline.Compiled, error) {
	s.heads.mu.Lock()
	r, ok := s.heads.m[runID]
	s.heads.mu.Unlock()
	if !ok {
		full, err := s.store.LoadRunHead(ctx, runID)
		if err != nil {
			return store.Run{}, nil, err
		}
		r = store.Run{ID: full.ID, Tenant: full.Tenant, Pipeline: full.Pipeline, Version: full.Version, SHA256: full.SHA256}
		s.heads.mu.Lock()
		if s.heads.m == nil || len(s.heads.m) >= runHeadsMax {
			s.heads.m = make(map[string]store.Run)
		}
		s.heads.m[runID] = r
		s.heads.mu.Unlock()
	}
	comp, err := s.compiledOf(ctx, r.Tenant, r.SHA256)
	if err != nil {
		return store.Run{}, nil, err
	}
	return r, comp, nil
}

// loadState is a run's state for a step operation: its pinned definition, its input on
// first use, and its steps when withSteps.
func (s *Service) loadState(ctx context.Context, runID string, withSteps bool) (*runState, error) {
	r, comp, err := s.runHead(ctx, runID)
	if err != nil {
		return nil, err
	}
	st := &runState{run: r, comp: comp, loadInput: func() (json.RawMessage, error) { return s.store.RunInput(ctx, runID) }}
	if withSteps {
		steps, err := s.store.RunSteps(ctx, r.ID)
		if err != nil {
			return nil, err
		}
		st.steps = make(map[string]store.RunStep, len(steps))
		for _, x := range steps {
			st.steps[x.ID] = x
		}
	}
	return st, nil
}

// vars are the variables of an expression over the recorded state.
func (rs *runState) vars(item any, index int) (*pipeline.Vars, error) {
	v := &pipeline.Vars{Item: item, Index: int64(index)}
	if rs.comp.UsesInput() {
		raw, err := rs.input()
		if err != nil {
			return nil, err
		}
		if raw != nil {
			in, err := pipeline.DecodeJSON(raw)
			if err != nil {
				return nil, fmt.Errorf("run input: %w", err)
			}
			v.Input = in
		}
	}
	v.Steps = map[string]any{}
	for _, cs := range rs.comp.Steps() {
		if cs.ID == "" || !rs.comp.Referenced(cs.ID) {
			continue
		}
		st, ok := rs.steps[cs.ID]
		if !ok || !pipeline.StepStatus(st.Status).Final() {
			v.Steps[cs.ID] = pipeline.StepVar(pipeline.StepPending, nil, nil)
			continue
		}
		out, err := pipeline.DecodeJSON(st.Output)
		if err != nil {
			return nil, fmt.Errorf("output of step %q: %w", cs.ID, err)
		}
		v.Steps[cs.ID] = pipeline.StepVar(pipeline.StepStatus(st.Status), out, st.Error)
	}
	return v, nil
}

// source is the value a pipeline.Source names.
func (rs *runState) source(src pipeline.Source) (json.RawMessage, error) {
	if src.Step == "" {
		return rs.input()
	}
	st := rs.steps[src.Step]
	if src.Error {
		e := st.Error
		if e == nil {
			e = &pipeline.Error{}
		}
		type errObj struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		}
		return json.Marshal(struct {
			Error errObj `json:"error"`
			Step  string `json:"step"`
		}{errObj{e.Message, e.Type}, src.Step})
	}
	if len(st.Output) == 0 {
		return json.RawMessage("null"), nil
	}
	return st.Output, nil
}

// exprFailure turns an expression's evaluation error into the step's error.
func exprFailure(err error, where string) (*pipeline.Error, error) {
	var xe *pipeline.ExprError
	if errors.As(err, &xe) {
		xe.Where = where
		return xe.StepError(), nil
	}
	return nil, err
}

// CallStep runs one attempt of a function step (or of one map item) of a durable run:
// it renders the input from the recorded state, runs the function through the
// invocation core and records the execution (its id pipeline.StepExecutionID, with the
// run, the step and the attempt). An attempt already recorded final is returned as
// recorded and its handler not run again. A Go error is a platform fault (retryable); a
// handler's failure or timeout is the result's Status.
func (s *Service) CallStep(ctx context.Context, runID string, spec pipeline.CallSpec) (pipeline.CallResult, error) {
	res, _, err := s.callStep(ctx, runID, spec, nil)
	return res, err
}

// CallAndSettleStep is CallStep for a function step (not a map item) that also settles
// the step when the call succeeded — the interpreter settles a function step succeeded
// as soon as a call of it succeeds —: the step's row (succeeded, this attempt, started at
// started, the execution's result as its output) commits with the execution row.
// settled reports that it did; then the runner need not Settle the step.
func (s *Service) CallAndSettleStep(ctx context.Context, runID string, spec pipeline.CallSpec, started time.Time) (res pipeline.CallResult, settled bool, err error) {
	if spec.Item >= 0 {
		res, err := s.CallStep(ctx, runID, spec)
		return res, false, err
	}
	return s.callStep(ctx, runID, spec, &started)
}

// settledRow is the row of a function step whose call attempt succeeded.
func settledRow(spec pipeline.CallSpec, execID string, started time.Time, finished time.Time) store.RunStep {
	return stepRow(pipeline.StepRecord{StepID: spec.StepID, Status: pipeline.StepSucceeded, Attempts: spec.Attempt,
		ExecutionID: execID, StartedAt: started, FinishedAt: finished,
		Output: pipeline.OutputRef{Kind: pipeline.OutputCall, ExecutionID: execID}}, nil)
}

func (s *Service) callStep(ctx context.Context, runID string, spec pipeline.CallSpec, settleFrom *time.Time) (pipeline.CallResult, bool, error) {
	execID := pipeline.StepExecutionID(runID, spec.StepID, spec.Item)
	// The run without its input: callInput reads only what the call's input needs (a
	// map over a large input would read it once per item otherwise).
	rs, err := s.loadState(ctx, runID, false)
	if err != nil {
		return pipeline.CallResult{}, false, err
	}
	cs := rs.comp.Step(spec.StepID)
	if cs == nil {
		return pipeline.CallResult{}, false, fmt.Errorf("call step: run %s has no step %q", runID, spec.StepID)
	}
	// One round trip: the call's execution (a repeat finds it recorded) and what its
	// input reads.
	want := callWant(rs, cs, spec, execID)
	reads, err := s.store.ReadForCall(ctx, want)
	if err != nil {
		return pipeline.CallResult{}, false, err
	}
	switch prev := reads.Prev; {
	case prev != nil && store.Finished(prev.Status) && prev.Attempts >= spec.Attempt:
		// A repeat (the activity retried, or replayed after a worker crash): the call
		// is recorded; so is its step when it was settled with it (the upsert never
		// rewrites a final row).
		o := outcomeOf(*prev)
		res := pipeline.CallResult{Status: o.Status, ExecutionID: execID, Error: o.Error, DurationMS: o.DurationMS}
		if settleFrom == nil || o.Status != pipeline.CallSucceeded {
			return res, false, nil
		}
		fin := time.Now()
		if prev.FinishedAt != nil {
			fin = *prev.FinishedAt
		}
		if err := s.store.SaveCallStep(ctx, runID, settledRow(spec, execID, *settleFrom, fin), execID); err != nil {
			return pipeline.CallResult{}, false, err
		}
		return res, true, nil
	}
	input, fail, err := callInput(ctx, rs, cs, spec, want, reads)
	if err != nil {
		return pipeline.CallResult{}, false, err
	}
	if fail != nil {
		return pipeline.CallResult{Status: pipeline.CallFailed, ExecutionID: execID, Error: fail}, false, nil
	}
	record := s.logs.Write
	var settled *store.RunStep
	if settleFrom != nil {
		record = func(ctx context.Context, e *store.Execution) error {
			if e.Status != store.StatusSucceeded {
				return s.logs.Write(ctx, e)
			}
			row := settledRow(spec, execID, *settleFrom, time.Now())
			if err := s.logs.WriteWithStep(ctx, e, runID, row); err != nil {
				return err
			}
			settled = &row
			return nil
		}
	}
	out, err := s.callFunction(ctx, &rs.run, pipeline.FunctionCall{RunID: runID, ExecutionID: execID, StepID: spec.StepID,
		Item: spec.Item, Attempt: spec.Attempt, Function: spec.Function, Version: spec.Version, Input: input,
		TimeoutMS: spec.TimeoutMS}, false, record)
	if err != nil {
		return pipeline.CallResult{ExecutionID: execID}, false, err
	}
	if settled != nil {
		s.countStep(rs.comp, *settled)
	}
	return pipeline.CallResult{Status: out.Status, ExecutionID: execID, Error: out.Error, DurationMS: out.DurationMS}, settled != nil, nil
}

// callWant is what a call's input reads besides its execution: a map item's item, the
// run's input if the input uses it, the steps it references.
func callWant(rs *runState, cs *pipeline.CompiledStep, spec pipeline.CallSpec, execID string) store.CallWant {
	w := store.CallWant{Tenant: rs.run.Tenant, RunID: rs.run.ID, StepID: spec.StepID, ExecutionID: execID, Item: spec.Item}
	switch {
	case cs.Input != nil && !cs.Input.Literal():
		w.Input = cs.Input.UsesInput()
		w.Steps, w.AllSteps = cs.Input.StepRefs()
	case cs.Input == nil && spec.Item < 0:
		w.Input = spec.InputFrom.Step == ""
		if spec.InputFrom.Step != "" {
			w.Steps = []string{spec.InputFrom.Step}
		}
	}
	return w
}

// callInput renders a call's input from what ReadForCall read (want): the step's
// template, else a map item's item, else the default input. fail is an input
// expression's failure.
func callInput(ctx context.Context, rs *runState, cs *pipeline.CompiledStep, spec pipeline.CallSpec, want store.CallWant, reads store.CallReads) (json.RawMessage, *pipeline.Error, error) {
	rs.loadInput = nil // vars leaves input unset unless it was read
	if want.Input {
		rs.run.Input = reads.Input
	}
	if want.AllSteps || len(want.Steps) > 0 {
		rs.steps = make(map[string]store.RunStep, len(reads.Steps))
		for _, x := range reads.Steps {
			rs.steps[x.ID] = x
		}
	}
	switch {
	case cs.Input != nil:
		var itemVal any
		if spec.Item >= 0 {
			v, err := pipeline.DecodeJSON(reads.Item)
			if err != nil {
				return nil, nil, err
			}
			itemVal = v
		}
		vars, err := rs.vars(itemVal, spec.Item)
		if err != nil {
			return nil, nil, err
		}
		in, err := cs.Input.Render(ctx, vars, nil)
		if err != nil {
			fail, err := exprFailure(err, "input")
			return nil, fail, err
		}
		return in, nil, nil
	case spec.Item >= 0:
		return reads.Item, nil, nil
	default:
		in, err := rs.source(spec.InputFrom)
		return in, nil, err
	}
}

// EvalStep evaluates a step's if, or a map's items (stored for the item calls), against
// the run's recorded state. An expression's failure is the result's Error.
func (s *Service) EvalStep(ctx context.Context, runID string, spec pipeline.EvalSpec) (pipeline.EvalResult, error) {
	rs, err := s.loadState(ctx, runID, true)
	if err != nil {
		return pipeline.EvalResult{}, err
	}
	cs := rs.comp.Step(spec.StepID)
	if cs == nil {
		return pipeline.EvalResult{}, fmt.Errorf("eval step: run %s has no step %q", runID, spec.StepID)
	}
	vars, err := rs.vars(nil, -1)
	if err != nil {
		return pipeline.EvalResult{}, err
	}
	switch spec.Kind {
	case pipeline.EvalIf:
		if cs.If == nil {
			return pipeline.EvalResult{Bool: true}, nil
		}
		b, err := cs.If.EvalBool(ctx, vars)
		if err != nil {
			fail, err := exprFailure(err, "if")
			return pipeline.EvalResult{Error: fail}, err
		}
		return pipeline.EvalResult{Bool: b}, nil
	case pipeline.EvalItems:
		if cs.Items == nil {
			return pipeline.EvalResult{}, fmt.Errorf("eval step: step %q has no items", spec.StepID)
		}
		items, err := cs.Items.EvalList(ctx, vars)
		if err != nil {
			fail, err := exprFailure(err, "map.items")
			return pipeline.EvalResult{Error: fail}, err
		}
		raw, err := pipeline.AppendJSON(nil, items)
		if err != nil {
			return pipeline.EvalResult{}, err
		}
		if err := s.store.SaveItems(ctx, runID, spec.StepID, raw); err != nil {
			return pipeline.EvalResult{}, err
		}
		return pipeline.EvalResult{Count: len(items)}, nil
	}
	return pipeline.EvalResult{}, fmt.Errorf("eval step: unknown kind %q", spec.Kind)
}

// SettleStep records a step final: it materialises the step's output from the recorded
// state (a call's result, a map's item results in order, a parallel's branches, the
// signal a wait took, a literal) and upserts its row; a final row is never rewritten.
func (s *Service) SettleStep(ctx context.Context, runID string, rec pipeline.StepRecord) error {
	if rec.Output.Kind == pipeline.OutputCall {
		// A function step: its output is its execution's result, copied in the upsert.
		_, comp, err := s.runHead(ctx, runID)
		if err != nil {
			return err
		}
		if comp.Step(rec.StepID) == nil {
			return fmt.Errorf("settle step: run %s has no step %q", runID, rec.StepID)
		}
		row := stepRow(rec, nil)
		if err := s.store.SaveCallStep(ctx, runID, row, rec.Output.ExecutionID); err != nil {
			return err
		}
		s.countStep(comp, row)
		return nil
	}
	rs, err := s.loadState(ctx, runID, rec.Output.Kind == pipeline.OutputBranches)
	if err != nil {
		return err
	}
	cs := rs.comp.Step(rec.StepID)
	if cs == nil {
		return fmt.Errorf("settle step: run %s has no step %q", runID, rec.StepID)
	}
	out := json.RawMessage("null")
	switch rec.Output.Kind {
	case pipeline.OutputCall:
		res, err := s.store.ExecutionResults(ctx, []string{rec.Output.ExecutionID})
		if err != nil {
			return err
		}
		if r, ok := res[rec.Output.ExecutionID]; ok {
			out = r
		}
	case pipeline.OutputItems:
		ids := make([]string, rec.Output.Count)
		for i := range ids {
			ids[i] = pipeline.StepExecutionID(runID, rec.StepID, i)
		}
		res, err := s.store.ExecutionResults(ctx, ids)
		if err != nil {
			return err
		}
		buf := []byte{'['}
		for i, id := range ids {
			if i > 0 {
				buf = append(buf, ',')
			}
			if r, ok := res[id]; ok {
				buf = append(buf, r...)
			} else {
				buf = append(buf, "null"...)
			}
		}
		out = append(buf, ']')
	case pipeline.OutputBranches:
		obj := make(map[string]json.RawMessage, len(rec.Output.Branches))
		for _, b := range rec.Output.Branches {
			v, err := rs.source(b.From)
			if err != nil {
				return err
			}
			obj[b.Name] = v
		}
		if out, err = json.Marshal(obj); err != nil {
			return err
		}
	case pipeline.OutputSignal:
		if cs.Def == nil || cs.Def.WaitFor == nil {
			return fmt.Errorf("settle step: step %q waits for no signal", rec.StepID)
		}
		if out, err = s.store.TakeSignal(ctx, runID, rec.StepID, cs.Def.WaitFor.Signal); err != nil {
			return err
		}
	case pipeline.OutputLiteral:
		if len(rec.Output.Literal) > 0 {
			out = rec.Output.Literal
		}
	}
	row := stepRow(rec, out)
	if err := s.store.SaveSteps(ctx, runID, []store.RunStep{row}); err != nil {
		return err
	}
	s.countStep(rs.comp, row)
	return nil
}

// MarkWaiting records a wait_for step waiting for its signal (or no longer waiting), and
// the run waiting while any of its steps waits; SignalRun's Conflict check reads it.
func (s *Service) MarkWaiting(ctx context.Context, runID string, spec pipeline.WaitSpec, waiting bool) error {
	return s.store.SetWaiting(ctx, runID, spec.StepID, spec.Signal, waiting)
}

// MarkRunning moves a queued run to running (started_at).
func (s *Service) MarkRunning(ctx context.Context, runID string) error {
	return s.store.MarkRunRunning(ctx, runID)
}

// FinishRun records a run's outcome once (a final status is never rewritten): a
// succeeded run's output is rendered from the pipeline's output template, else taken
// from out.OutputFrom; an output that cannot be rendered fails the run with an
// ExpressionError. Its commit wakes the long-polls of the run.
func (s *Service) FinishRun(ctx context.Context, runID string, out pipeline.RunOutcome) (pipeline.RunStatus, error) {
	status, e := string(out.Status), out.Error
	var output json.RawMessage
	if out.Status == pipeline.RunSucceeded {
		rs, err := s.loadState(ctx, runID, true)
		if err != nil {
			return "", err
		}
		if t := rs.comp.Output(); t != nil {
			vars, err := rs.vars(nil, -1)
			if err != nil {
				return "", err
			}
			b, err := t.Render(ctx, vars, nil)
			if err != nil {
				fail, err := exprFailure(err, "output")
				if err != nil {
					return "", err
				}
				status, e = string(pipeline.RunFailed), fail
			}
			output = b
		} else if output, err = rs.source(out.OutputFrom); err != nil {
			return "", err
		}
	}
	if status != string(pipeline.RunSucceeded) {
		output = nil
	}
	final, recorded, err := s.store.FinishRun(ctx, runID, status, output, e, time.Now().UTC())
	if err != nil {
		return "", err
	}
	if recorded {
		s.countRun(ModeAsync, status)
	}
	if err := s.notifyRun(ctx, runID); err != nil {
		return "", err
	}
	return pipeline.RunStatus(final), nil
}
