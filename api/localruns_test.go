package api_test

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// localRuns stands in for the Temporal side of pipeline runs (core.RunDurable) in the
// API's tests: it runs the one interpreter in a goroutine over the core's step operations
// (RunPlan, CallStep, EvalStep, SettleStep, MarkWaiting, FinishRun) against the real
// PostgreSQL state, as the workflow's activities do. Durability across processes is the
// workflow's, tested with it.
type localRuns struct {
	svc *core.Service

	mu      sync.Mutex
	running map[string]*localRun
	starts  atomic.Int64
	// hold, when set, keeps started runs from running until it is closed.
	hold chan struct{}
	// down makes StartRun fail as an unreachable Temporal does.
	down atomic.Bool
}

type localRun struct {
	it      atomic.Pointer[pipeline.Interpreter[context.Context]] // once its plan is loaded
	cancel  context.CancelFunc
	signals map[string]chan struct{}
	done    chan struct{}
}

func newLocalRuns() *localRuns { return &localRuns{running: map[string]*localRun{}} }

func (l *localRuns) StartRun(_ context.Context, x core.RunStart) error {
	if l.down.Load() {
		return fault.New(fault.Unavailable, "temporal unreachable")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.running[x.RunID]; ok {
		return nil // a repeat joins
	}
	l.starts.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	run := &localRun{cancel: cancel, signals: map[string]chan struct{}{}, done: make(chan struct{})}
	l.running[x.RunID] = run
	go func() {
		defer close(run.done)
		if l.hold != nil {
			<-l.hold
		}
		plan, err := l.svc.RunPlan(ctx, x.RunID)
		if err != nil {
			return
		}
		_ = l.svc.MarkRunning(ctx, x.RunID)
		r := &stepRunner{MemRunner: pipeline.NewMemRunner(plan.Compiled, pipeline.MemOptions{}), l: l, svc: l.svc,
			runID: x.RunID, run: run}
		it := pipeline.New[context.Context](r, plan.Compiled, plan.Options)
		run.it.Store(it)
		it.Run(ctx)
	}()
	return nil
}

// LiveSteps answers the interpreter's snapshot, as the workflow's "steps" query does;
// a run with no interpreter yet (or gone) is not answered.
func (l *localRuns) LiveSteps(ctx context.Context, runID string) ([]pipeline.StepState, error) {
	l.mu.Lock()
	run := l.running[runID]
	l.mu.Unlock()
	if run == nil || run.it.Load() == nil {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return run.it.Load().Snapshot(), nil
}

func (l *localRuns) signal(runID, name string) (chan struct{}, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	run, ok := l.running[runID]
	if !ok {
		return nil, false
	}
	ch := run.signals[name]
	if ch == nil {
		ch = make(chan struct{}, 16)
		run.signals[name] = ch
	}
	return ch, true
}

func (l *localRuns) SignalRun(_ context.Context, runID, signal string) error {
	ch, ok := l.signal(runID, signal)
	if !ok {
		return fault.New(fault.NotFound, "no run %s", runID)
	}
	ch <- struct{}{}
	return nil
}

func (l *localRuns) CancelRun(_ context.Context, runID string) error {
	l.mu.Lock()
	run, ok := l.running[runID]
	l.mu.Unlock()
	if !ok {
		return fault.New(fault.NotFound, "no run %s", runID)
	}
	select {
	case <-run.done:
		return fault.New(fault.NotFound, "run %s has ended", runID)
	default:
	}
	run.cancel()
	return nil
}

// stepRunner is the interpreter's runner over the core's step operations; the in-memory
// runner lends it concurrency, timers and contexts.
type stepRunner struct {
	*pipeline.MemRunner
	l     *localRuns
	svc   *core.Service
	runID string
	run   *localRun
}

func (r *stepRunner) Call(ctx context.Context, spec pipeline.CallSpec) (pipeline.CallResult, error) {
	return r.svc.CallStep(ctx, r.runID, spec)
}

func (r *stepRunner) Eval(ctx context.Context, spec pipeline.EvalSpec) (pipeline.EvalResult, error) {
	return r.svc.EvalStep(ctx, r.runID, spec)
}

func (r *stepRunner) Settle(ctx context.Context, rec pipeline.StepRecord) error {
	return r.svc.SettleStep(ctx, r.runID, rec)
}

func (r *stepRunner) Finish(ctx context.Context, out pipeline.RunOutcome) error {
	_, err := r.svc.FinishRun(context.WithoutCancel(ctx), r.runID, out)
	return err
}

func (r *stepRunner) Wait(ctx context.Context, spec pipeline.WaitSpec) (bool, error) {
	ch, _ := r.l.signal(r.runID, spec.Signal)
	if err := r.svc.MarkWaiting(ctx, r.runID, spec, true); err != nil {
		return false, err
	}
	defer func() { _ = r.svc.MarkWaiting(context.WithoutCancel(ctx), r.runID, spec, false) }()
	t := time.NewTimer(spec.Timeout)
	defer t.Stop()
	select {
	case <-ch:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// StartCallback accepts a callback delivery and delivers nothing (the worker's tests
// deliver for real).
func (l *localRuns) StartCallback(context.Context, core.CallbackStart) error { return nil }
