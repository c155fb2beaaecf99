package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/store"
)

// RunDurable runs pipeline runs durably; the Temporal side implements it
// (workflows.Starter): one workflow "run-"+RunID of type RunPipeline per run.
type RunDurable interface {
	// StartRun starts the run's workflow; a repeat joins the one already started.
	StartRun(ctx context.Context, x RunStart) error
	// SignalRun signals a run; the payload is already stored in PostgreSQL by the core.
	SignalRun(ctx context.Context, runID, signal string) error
	// CancelRun cancels a run's workflow: fault.NotFound when the workflow is gone.
	CancelRun(ctx context.Context, runID string) error
}

// RunStart is a run as the core hands it to RunDurable: references only, the input and
// every step's output stay in PostgreSQL (claim check).
type RunStart struct {
	Tenant, RunID, Pipeline string
	Version                 int
	CallbackURL             string
}

// RunRequest is a pipeline run as the transports ask for it.
type RunRequest struct {
	Tenant         string
	Pipeline       string
	Version        int // 0 = latest
	Input          json.RawMessage
	Async          bool // Prefer: respond-async
	IdempotencyKey string
	// CallbackURL (X-Callback-Url) receives the finished run, signed; the run is async.
	CallbackURL string
	// Schedule names the schedule that started the run (set by StartScheduled only).
	Schedule string
}

// Run modes.
const (
	ModeSync  = "sync"
	ModeAsync = "async"
)

// syncRecordAfter is how long a sync run without an Idempotency-Key runs before its row
// is written: shorter runs are recorded once, when they end.
const syncRecordAfter = time.Second

// executionModePipeline is the mode of an execution a pipeline step made: neither the
// sweeper of async executions nor the tenant's async cap counts it (its run is counted).
const executionModePipeline = "pipeline"

func errRunsOff() error {
	return fault.New(fault.Unavailable, "durable (async) pipeline runs are not enabled on this server")
}

// StartRun runs a pipeline. A pipeline without sleep or wait steps runs sync unless
// req.Async: in this process, on the fast path, each function call through the
// invocation core; the run, its calls and its steps are recorded, and the finished run
// returned.
// Others are recorded queued and started durably (RunDurable). A sync run that outlives
// SyncPipelineMax is handed over: its finished steps are recorded and a workflow seeded
// with them continues it; the run is returned queued (mode async). With an
// Idempotency-Key already used it returns that key's run (replayed) and runs nothing.
func (s *Service) StartRun(ctx context.Context, req RunRequest) (store.Run, bool, error) {
	if err := s.validCallback(req.CallbackURL); err != nil {
		return store.Run{}, false, err
	}
	pv, err := s.pipelineVersion(ctx, req.Tenant, req.Pipeline, req.Version)
	if err != nil {
		return store.Run{}, false, err
	}
	comp, err := s.compiled(req.Tenant, pv.SHA256, pv.Definition)
	if err != nil {
		return store.Run{}, false, err
	}
	async := req.Async || comp.HasWaits() || req.CallbackURL != "" || req.Schedule != ""
	if async && s.runs == nil {
		return store.Run{}, false, errRunsOff()
	}
	input := req.Input
	if len(input) == 0 {
		input = json.RawMessage("null")
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	r := store.Run{ID: NewExecutionID(), Tenant: req.Tenant, Pipeline: pv.Name, Version: pv.Version, SHA256: pv.SHA256,
		Mode: ModeSync, Status: store.StatusRunning, Input: input, Output: json.RawMessage("null"), CreatedAt: now,
		StartedAt: &now, Key: req.IdempotencyKey, Callback: req.CallbackURL,
		Options: store.RunOptions{Versions: s.latestVersions(ctx, req.Tenant, comp)}, Schedule: req.Schedule}
	a := store.Admission{Origin: origin(req.Schedule, req.CallbackURL)}
	if async {
		r.Mode, r.Status, r.StartedAt = ModeAsync, store.StatusQueued, nil
		a.MaxOpen = s.cfg.AsyncPerTenant
	}
	if req.IdempotencyKey != "" {
		a.Key, a.KeyTTL = req.IdempotencyKey, s.cfg.IdempotencyTTL
		mode := ModeSync
		if req.Async {
			mode = ModeAsync
		}
		a.RequestHash = requestHash("run-"+mode, pv.Name, req.Version, "", input)
	}
	// A sync run without a key is recorded when it ends (one commit), or once it has run
	// for syncRecordAfter (the sweeper can then hand it over should this api die).
	if async || req.IdempotencyKey != "" {
		owner, created, err := s.store.InsertRun(ctx, &r, a)
		if err != nil {
			return store.Run{}, false, err
		}
		if !created {
			prev, err := s.replayRun(ctx, req.Tenant, owner, req.IdempotencyKey)
			return prev, err == nil, err
		}
	}
	if async && req.Schedule != "" {
		// A scheduled run: its workflow is started by the schedule's, as a child.
		return r, false, nil
	}
	if async {
		if r.Callback != "" {
			r.CallbackState = &store.CallbackState{State: store.CallbackPending, URL: r.Callback}
		}
		if err := s.runs.StartRun(ctx, runStart(r)); err != nil && errors.Is(err, ErrStartUncertain) {
			// As for an execution (StartExecution): the workflow may run; the run stays
			// queued with its key claimed and the sweeper starts it unless it started.
			s.log.Warn("durable start uncertain; the sweeper finishes it", logging.Err(err), zap.String("run.id", r.ID))
		} else if err != nil {
			s.log.Error("start durable run", logging.Err(err), zap.String("run.id", r.ID))
			s.failUnstarted(r.ID, r.Callback != "")
			s.release(req.Tenant, req.IdempotencyKey, r.ID)
			return store.Run{}, false, fault.Wrap(fault.Unavailable, err, "the durable execution service (Temporal) is unavailable")
		}
		r.Steps = s.envelopeSteps(comp, nil)
		return r, false, nil
	}
	// The run goes on to its end (or its hand-over) and is recorded even when its caller
	// goes away.
	return s.runSync(context.WithoutCancel(ctx), r, comp)
}

func runStart(r store.Run) RunStart {
	return RunStart{Tenant: r.Tenant, RunID: r.ID, Pipeline: r.Pipeline, Version: r.Version, CallbackURL: r.Callback}
}

// latestVersions resolves the latest version of every function a pipeline calls without
// a pinned version, once at run start: every call of the run, and of a workflow that
// continues it, runs the same version. A function that cannot be resolved is left out
// (its step fails when it runs).
func (s *Service) latestVersions(ctx context.Context, tenant string, comp *pipeline.Compiled) map[string]int {
	var out map[string]int
	for _, st := range comp.Steps() {
		if st.Call == nil || st.Call.Version > 0 {
			continue
		}
		if _, ok := out[st.Call.Function]; ok {
			continue
		}
		v, err := s.version(ctx, tenant, st.Call.Function, 0)
		if err != nil {
			continue
		}
		if out == nil {
			out = map[string]int{}
		}
		out[st.Call.Function] = v.Version
	}
	return out
}

// replayRun returns the run an Idempotency-Key started; a sync run still running is
// waited for up to SyncPipelineMax (it ends or is handed over by then).
func (s *Service) replayRun(ctx context.Context, tenant, id, key string) (store.Run, error) {
	deadline := time.Now().Add(s.cfg.SyncPipelineMax + s.cfg.RuntimeCallSlack)
	poll := 10 * time.Millisecond
	for {
		r, err := s.GetRun(ctx, tenant, id)
		if fault.Is(err, fault.NotFound) {
			return store.Run{}, inProgress(key)
		}
		if err != nil || r.Mode != ModeSync || store.RunFinished(r.Status) || time.Now().After(deadline) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return store.Run{}, ctx.Err()
		case <-time.After(poll):
		}
		poll = min(2*poll, 250*time.Millisecond)
	}
}

// failUnstarted records a run whose workflow could not be started as failed, and its
// callback, when it asked for one, failed too: nothing will be delivered.
func (s *Service) failUnstarted(runID string, callback bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := s.store.FinishRun(ctx, runID, store.StatusFailed, nil, &pipeline.Error{Type: "Unavailable",
		Message: "the durable execution service was unavailable; nothing ran"}, time.Now().UTC()); err != nil {
		s.log.Warn("record unstarted run", logging.Err(err), zap.String("run.id", runID))
	}
	if callback {
		// The caller was answered 503: nothing will be delivered.
		if err := s.store.RecordCallbackAttempt(ctx, runID, 0, 0, store.CallbackFailed, "the run never started"); err != nil {
			s.log.Warn("record unstarted callback", logging.Err(err), zap.String("run.id", runID))
		}
	}
}

// runSync runs a recorded sync run in this process with the in-memory runner, each call
// through the invocation core, and records its steps and outcome — or hands it over to a
// workflow once it has run for SyncPipelineMax.
func (s *Service) runSync(ctx context.Context, r store.Run, comp *pipeline.Compiled) (store.Run, bool, error) {
	var stop atomic.Bool
	if s.runs != nil && s.cfg.SyncPipelineMax > 0 {
		t := time.AfterFunc(s.cfg.SyncPipelineMax, func() { stop.Store(true) })
		defer t.Stop()
	}
	running := r // the timer's own copy: r changes when the run ends
	after := syncRecordAfter
	if half := s.cfg.SyncPipelineMax / 2; half > 0 && half < after {
		after = half // recorded before a hand-over
	}
	record := time.AfterFunc(after, func() {
		if err := s.store.RecordRunning(ctx, &running); err != nil {
			s.log.Warn("record a running sync run", logging.Err(err), zap.String("run.id", r.ID))
		}
	})
	defer record.Stop()
	// The run's executions are written with its outcome (or its hand-over), in one
	// transaction, instead of one commit per call.
	var (
		mu    sync.Mutex
		execs []*store.Execution
	)
	collect := func(_ context.Context, e *store.Execution) error {
		mu.Lock()
		execs = append(execs, e)
		mu.Unlock()
		return nil
	}
	caller := func(ctx context.Context, c pipeline.FunctionCall) (pipeline.Outcome, error) {
		if stop.Load() {
			return pipeline.Outcome{}, pipeline.ErrStop
		}
		return s.callFunction(ctx, &r, c, true, collect)
	}
	m := pipeline.NewMemRunner(comp, pipeline.MemOptions{RunOptions: pipeline.RunOptions{Versions: r.Options.Versions},
		RunID: r.ID, Input: r.Input, Caller: caller})
	res := m.Run(ctx)
	record.Stop()
	steps := memSteps(m.Steps())
	s.countSteps(comp, steps)
	if res.Stopped {
		return s.handOver(ctx, r, steps, execs)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	r.FinishedAt = &now
	r.Status, r.Output, r.Error = string(res.Status), res.Output, res.Error
	if res.Err != nil {
		r.Status, r.Output = store.StatusFailed, nil
		r.Error = &pipeline.Error{Type: pipeline.ErrTypePlatform, Message: "the run could not be recorded: " + res.Err.Error()}
	}
	if r.Status != store.StatusSucceeded {
		r.Output = nil
	}
	if err := s.store.FinishSyncRun(ctx, &r, steps, execs); err != nil {
		s.countRun(ModeSync, "error")
		return store.Run{}, false, err
	}
	if r.Output == nil {
		r.Output = json.RawMessage("null")
	}
	s.countRun(ModeSync, r.Status)
	r.Steps = s.envelopeSteps(comp, steps)
	return r, false, nil
}

// handOver makes a sync run that outlived SyncPipelineMax a durable one: its finished
// steps are recorded, then a workflow continues it seeded with them (RunPlan). Calls in
// flight when it stopped have returned by then: their executions are recorded with the
// steps, and the workflow reuses them (same ids) instead of calling again.
func (s *Service) handOver(ctx context.Context, r store.Run, steps []store.RunStep, execs []*store.Execution) (store.Run, bool, error) {
	moved, err := s.store.HandOver(ctx, &r, steps, execs)
	if err != nil {
		return store.Run{}, false, err
	}
	if moved {
		if err := s.runs.StartRun(ctx, runStart(r)); err != nil {
			// The run stays queued: the sweeper starts it.
			s.log.Warn("start handed-over run; the sweeper retries", logging.Err(err), zap.String("run.id", r.ID))
		}
		s.countRun("handover", "handed_over")
	}
	out, err := s.GetRun(ctx, r.Tenant, r.ID)
	return out, false, err
}

// memSteps converts the in-memory runner's settled steps into step rows.
func memSteps(ms []pipeline.MemStep) []store.RunStep {
	out := make([]store.RunStep, 0, len(ms))
	for _, m := range ms {
		out = append(out, stepRow(m.StepRecord, m.Output))
	}
	return out
}

func stepRow(rec pipeline.StepRecord, output json.RawMessage) store.RunStep {
	st := store.RunStep{ID: rec.StepID, Status: string(rec.Status), Attempts: rec.Attempts, ExecutionID: rec.ExecutionID,
		Output: output, Error: rec.Error, Items: rec.Items}
	// PostgreSQL keeps microseconds: the answer shows what is stored.
	if !rec.StartedAt.IsZero() {
		t := rec.StartedAt.UTC().Truncate(time.Microsecond)
		st.StartedAt = &t
	}
	if !rec.FinishedAt.IsZero() {
		t := rec.FinishedAt.UTC().Truncate(time.Microsecond)
		st.FinishedAt = &t
	}
	if len(st.Output) == 0 {
		st.Output = json.RawMessage("null")
	}
	return st
}

// callFunction runs one call of a pipeline step through the invocation core and has
// record record it as an execution of the run's step. A function that no longer exists
// fails the call; an error is a platform fault.
func (s *Service) callFunction(ctx context.Context, r *store.Run, c pipeline.FunctionCall, sync bool,
	record func(context.Context, *store.Execution) error) (pipeline.Outcome, error) {
	version := c.Version
	v, err := s.version(ctx, r.Tenant, c.Function, version)
	if fault.Is(err, fault.NotFound) {
		return pipeline.Outcome{Status: pipeline.CallFailed, Error: &pipeline.Error{Type: "FunctionNotFound",
			Message: fault.Detail(err)}}, nil
	}
	if err != nil {
		return pipeline.Outcome{}, err
	}
	rt, ok := s.reg.Lookup(v.Language)
	if !ok {
		return pipeline.Outcome{}, fault.New(fault.Unavailable, "no runtime for %s", v.Language)
	}
	timeout := time.Duration(v.TimeoutMS) * time.Millisecond
	if c.TimeoutMS > 0 {
		timeout = time.Duration(c.TimeoutMS) * time.Millisecond
	}
	if sync {
		timeout = min(timeout, s.cfg.SyncTimeoutMax)
	}
	input := c.Input
	if len(input) == 0 {
		input = json.RawMessage("null")
	}
	start := time.Now()
	e := store.Execution{ID: c.ExecutionID, Tenant: r.Tenant, Function: v.Name, Version: v.Version, Language: v.Language,
		LanguageTitle: rt.Title, Mode: executionModePipeline, Payload: input, CreatedAt: start.UTC(), RunID: r.ID,
		StepID: c.StepID}
	if err := s.execute(ctx, v, rt, &e, timeout); err != nil {
		s.m.Invocations.WithLabelValues(rt.Title, "pipeline", "error").Inc()
		return pipeline.Outcome{}, err
	}
	e.Attempts = max(c.Attempt, 1)
	if err := record(ctx, &e); err != nil {
		return pipeline.Outcome{}, err
	}
	s.m.Invocations.WithLabelValues(rt.Title, "pipeline", e.Status).Inc()
	s.m.Duration.WithLabelValues(rt.Title, "pipeline").Observe(time.Since(start).Seconds())
	return outcomeOf(e), nil
}

// outcomeOf is a recorded execution as a call's outcome.
func outcomeOf(e store.Execution) pipeline.Outcome {
	o := pipeline.Outcome{Status: pipeline.CallStatus(e.Status), Output: e.Result, DurationMS: e.DurationMS}
	if e.Status == store.StatusCanceled {
		o.Status = pipeline.CallFailed
	}
	if e.Error != nil {
		o.Error = &pipeline.Error{Type: e.Error.Type, Message: e.Error.Message}
	}
	return o
}

// envelopeSteps lists every step of the definition (nested ones included, in definition
// order) with its recorded state; a step with none is pending.
func (s *Service) envelopeSteps(comp *pipeline.Compiled, recorded []store.RunStep) []store.RunStep {
	byID := make(map[string]store.RunStep, len(recorded))
	for _, st := range recorded {
		byID[st.ID] = st
	}
	out := make([]store.RunStep, 0, len(comp.Steps()))
	for _, cs := range comp.Steps() {
		if cs.ID == "" {
			continue
		}
		st, ok := byID[cs.ID]
		if !ok {
			st = store.RunStep{ID: cs.ID, Status: string(pipeline.StepPending), Output: json.RawMessage("null")}
		}
		out = append(out, st)
	}
	return out
}

// GetRun returns a tenant's run with its steps.
func (s *Service) GetRun(ctx context.Context, tenant, id string) (store.Run, error) {
	return s.getRun(ctx, tenant, id, false)
}

// GetRunView is GetRun with the run's schedule and callback (what the runs API shows),
// read in the same round trip.
func (s *Service) GetRunView(ctx context.Context, tenant, id string) (store.Run, error) {
	return s.getRun(ctx, tenant, id, true)
}

// RunStatus is the status of a tenant's run: what a long-poll reads while it waits.
func (s *Service) RunStatus(ctx context.Context, tenant, id string) (string, error) {
	return s.store.RunStatus(ctx, tenant, id)
}

func (s *Service) getRun(ctx context.Context, tenant, id string, annotate bool) (store.Run, error) {
	r, steps, err := s.store.GetRunWithSteps(ctx, tenant, id, annotate)
	if err != nil {
		return store.Run{}, err
	}
	comp, err := s.compiledOf(ctx, r.Tenant, r.SHA256)
	if err != nil {
		return store.Run{}, err
	}
	r.Steps = s.envelopeSteps(comp, steps)
	return r, nil
}

// SignalRun stores a signal's payload for a run waiting for it and signals its workflow.
// Conflict when the run is not waiting for that signal (or has finished).
func (s *Service) SignalRun(ctx context.Context, tenant, id, signal string, payload json.RawMessage) error {
	r, err := s.store.GetRun(ctx, tenant, id)
	if err != nil {
		return err
	}
	if store.RunFinished(r.Status) {
		return fault.New(fault.Conflict, "run %s has already finished (%s)", id, r.Status)
	}
	if s.runs == nil || r.Mode != ModeAsync {
		return fault.New(fault.Conflict, "run %s is not waiting for signal %q", id, signal)
	}
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	if err := s.store.AddSignal(ctx, r.ID, signal, payload); err != nil {
		return err
	}
	if err := s.runs.SignalRun(ctx, r.ID, signal); err != nil {
		if fault.Is(err, fault.NotFound) {
			return fault.New(fault.Conflict, "run %s has already finished", id)
		}
		return fault.Wrap(fault.Unavailable, err, "the durable execution service (Temporal) is unavailable")
	}
	return nil
}

// CancelRun asks a queued, running or waiting async run to stop: its workflow cancels
// the steps in flight and records the run canceled. Conflict when it has finished (or is
// a sync run, which ends within SyncPipelineMax).
func (s *Service) CancelRun(ctx context.Context, tenant, id string) error {
	r, err := s.store.GetRun(ctx, tenant, id)
	if err != nil {
		return err
	}
	if store.RunFinished(r.Status) {
		return fault.New(fault.Conflict, "run %s has already finished (%s)", id, r.Status)
	}
	if r.Mode != ModeAsync || s.runs == nil {
		return fault.New(fault.Conflict, "run %s is a sync run; it ends (or is handed over) within %s", id, s.cfg.SyncPipelineMax)
	}
	err = s.runs.CancelRun(ctx, r.ID)
	switch {
	case err == nil:
		return nil
	case fault.Is(err, fault.NotFound):
		// No workflow: it never started (or ended without recording the run).
		_, recorded, ferr := s.store.FinishRun(ctx, r.ID, store.StatusCanceled, nil,
			&pipeline.Error{Type: pipeline.ErrTypeCanceled, Message: "the run was canceled"}, time.Now().UTC())
		if ferr != nil {
			return ferr
		}
		if !recorded {
			return fault.New(fault.Conflict, "run %s has already finished", id)
		}
		s.countRun(ModeAsync, store.StatusCanceled)
		if err := s.notifyRun(ctx, r.ID); err != nil {
			s.log.Warn("start run callback", logging.Err(err), zap.String("run.id", r.ID))
		}
		return nil
	default:
		return fault.Wrap(fault.Unavailable, err, "the durable execution service (Temporal) is unavailable")
	}
}

// RetryRun starts a new async run of a finished run's pipeline version and input, seeded
// with the steps recorded before its failed step (or before fromStep): those steps'
// handlers do not run again. Conflict when the run has not finished, or succeeded and
// no fromStep is named.
func (s *Service) RetryRun(ctx context.Context, tenant, id, fromStep string) (store.Run, error) {
	old, err := s.store.GetRun(ctx, tenant, id)
	if err != nil {
		return store.Run{}, err
	}
	if !store.RunFinished(old.Status) {
		return store.Run{}, fault.New(fault.Conflict, "run %s has not finished (%s); cancel it first", id, old.Status)
	}
	comp, err := s.compiledOf(ctx, old.Tenant, old.SHA256)
	if err != nil {
		return store.Run{}, err
	}
	steps, err := s.store.RunSteps(ctx, old.ID)
	if err != nil {
		return store.Run{}, err
	}
	byID := make(map[string]store.RunStep, len(steps))
	for _, st := range steps {
		byID[st.ID] = st
	}
	var cut *pipeline.CompiledStep
	switch {
	case fromStep != "":
		if cut = comp.Step(fromStep); cut == nil {
			return store.Run{}, invalid("pipeline %s v%d has no step %q", old.Pipeline, old.Version, fromStep)
		}
	case old.Status == store.StatusSucceeded:
		return store.Run{}, fault.New(fault.Conflict, "run %s succeeded; name the step to retry from (from_step)", id)
	case old.Error != nil && old.Error.Step != "" && comp.Step(old.Error.Step) != nil:
		cut = comp.Step(old.Error.Step)
	default:
		for _, cs := range comp.Steps() {
			if st, ok := byID[cs.ID]; !ok || (st.Status != string(pipeline.StepSucceeded) && st.Status != string(pipeline.StepSkipped)) {
				cut = cs
				break
			}
		}
	}
	ancestors := map[string]bool{}
	if cut != nil {
		for p := cut.Parent; p != ""; p = comp.Step(p).Parent {
			ancestors[p] = true
		}
	}
	var seeds []store.RunStep
	for _, cs := range comp.Steps() {
		if cut != nil && cs.Index >= cut.Index {
			break
		}
		st, ok := byID[cs.ID]
		if !ok || ancestors[cs.ID] {
			continue
		}
		switch pipeline.StepStatus(st.Status) {
		case pipeline.StepSucceeded, pipeline.StepFailed, pipeline.StepSkipped:
			seeds = append(seeds, st)
		}
	}
	if s.runs == nil {
		return store.Run{}, errRunsOff()
	}
	r := store.Run{ID: NewExecutionID(), Tenant: old.Tenant, Pipeline: old.Pipeline, Version: old.Version, SHA256: old.SHA256,
		Mode: ModeAsync, Status: store.StatusQueued, Input: old.Input, Output: json.RawMessage("null"),
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond), Options: old.Options, Callback: old.Callback, RetryOf: old.ID, Steps: seeds}
	// A retry reports to the callback URL its run asked for, with a delivery of its own.
	if _, _, err := s.store.InsertRun(ctx, &r, store.Admission{MaxOpen: s.cfg.AsyncPerTenant,
		Origin: origin("", r.Callback)}); err != nil {
		return store.Run{}, err
	}
	if err := s.runs.StartRun(ctx, runStart(r)); err != nil {
		s.failUnstarted(r.ID, r.Callback != "")
		return store.Run{}, fault.Wrap(fault.Unavailable, err, "the durable execution service (Temporal) is unavailable")
	}
	r.Steps = s.envelopeSteps(comp, seeds)
	return r, nil
}

// RunInspector tells the state of a run's workflow (workflows.Starter). With it, SweepRuns
// also fails async runs whose workflow ended without recording them (an operator
// terminated it) or is gone.
type RunInspector interface {
	RunWorkflowState(ctx context.Context, runID string) (RunState, error)
}

// SweepRuns makes runs whole that a crash left behind, created more than olderThan ago,
// at most limit of them:
//   - with a RunInspector, an async run whose workflow is closed or gone (and that is
//     not queued with no workflow) is failed with ErrAbandoned;
//   - an async run still queued: its workflow is started (a repeat joins the one that
//     started meanwhile);
//   - a sync run still running after SyncPipelineMax as well: its api died mid-run, and
//     it is handed over to a workflow, which reuses the calls it recorded.
func (s *Service) SweepRuns(ctx context.Context, olderThan time.Duration, limit int) (int, error) {
	if s.runs == nil {
		return 0, errRunsOff()
	}
	open, err := s.store.OpenRuns(ctx, time.Now().Add(-olderThan), limit)
	if err != nil {
		return 0, err
	}
	ins, inspect := s.runs.(RunInspector)
	n := 0
	for _, o := range open {
		switch {
		case o.Mode == ModeAsync && inspect:
			state, err := ins.RunWorkflowState(ctx, o.ID)
			if err != nil {
				return n, fmt.Errorf("sweep: inspect run %s: %w", o.ID, err)
			}
			if state == RunOpen {
				continue
			}
			if state == RunMissing && o.Status == store.StatusQueued {
				break // never started: start it below
			}
			why := "the run's workflow ended without recording its outcome (terminated, or its last step gave up)"
			if state == RunMissing {
				why = "the run was " + o.Status + " but its workflow is gone; its steps may not have finished"
			}
			_, recorded, err := s.store.FinishRun(ctx, o.ID, store.StatusFailed, nil,
				&pipeline.Error{Type: ErrAbandoned, Message: why}, time.Now().UTC())
			if err != nil {
				return n, err
			}
			if recorded {
				n++
				s.countRun(ModeAsync, store.StatusFailed)
				s.log.Warn("sweeper failed a run", zap.String("run.id", o.ID), zap.String("reason", why))
				if err := s.notifyRun(ctx, o.ID); err != nil {
					return n, err
				}
			}
			continue
		case o.Mode == ModeAsync && o.Status == store.StatusQueued:
		case o.Mode == ModeSync && time.Since(o.CreatedAt) > olderThan+s.cfg.SyncPipelineMax:
			r, err := s.store.LoadRun(ctx, o.ID)
			if err != nil {
				return n, err
			}
			moved, err := s.store.HandOver(ctx, &r, nil, nil)
			if err != nil {
				return n, err
			}
			if !moved {
				continue
			}
			s.log.Warn("sweeper handed over a sync run its api left", zap.String("run.id", o.ID))
		default:
			continue
		}
		r, err := s.store.LoadRun(ctx, o.ID)
		if err != nil {
			return n, err
		}
		if err := s.runs.StartRun(ctx, runStart(r)); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (s *Service) countRun(mode, outcome string) {
	if s.m != nil {
		s.m.Runs.WithLabelValues(mode, outcome).Inc()
	}
}

func (s *Service) countSteps(comp *pipeline.Compiled, steps []store.RunStep) {
	for _, st := range steps {
		s.countStep(comp, st)
	}
}

func (s *Service) countStep(comp *pipeline.Compiled, st store.RunStep) {
	if s.m == nil {
		return
	}
	cs := comp.Step(st.ID)
	if cs == nil {
		return
	}
	s.m.Steps.WithLabelValues(string(cs.Kind), st.Status).Inc()
	if st.StartedAt != nil && st.FinishedAt != nil {
		s.m.StepDuration.WithLabelValues(string(cs.Kind)).Observe(st.FinishedAt.Sub(*st.StartedAt).Seconds())
	}
}
