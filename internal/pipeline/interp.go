package pipeline

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Interpreter runs one pipeline run over a runner. It is deterministic given the
// runner's answers: it never blocks, spawns, reads a clock or iterates a map on its own;
// its state (statuses, attempts, execution ids, errors) is small and guarded by a mutex
// that is never held across a runner call.
type Interpreter[C Context] struct {
	r    Runner[C]
	p    *Compiled
	opts RunOptions

	mu       sync.Mutex
	st       []StepState
	stopped  bool
	timedOut bool
	done     bool
	fault    error
}

// New prepares a run of p over r; seeds are applied now (Snapshot shows them).
func New[C Context](r Runner[C], p *Compiled, opts RunOptions) *Interpreter[C] {
	if opts.MaxItems <= 0 {
		opts.MaxItems = DefaultMaxItems
	}
	it := &Interpreter[C]{r: r, p: p, opts: opts, st: make([]StepState, len(p.all))}
	for i, s := range p.all {
		it.st[i] = StepState{ID: s.ID, Status: StepPending}
		if seed, ok := opts.Seed[s.ID]; ok && s.ID != "" {
			switch seed.Status {
			case StepSucceeded, StepFailed, StepSkipped:
				it.st[i] = StepState{
					ID: s.ID, Status: seed.Status, Attempts: seed.Attempts, ExecutionID: seed.ExecutionID,
					Error: seed.Error, Items: seed.Items, StartedAt: seed.StartedAt, FinishedAt: seed.FinishedAt,
					Seeded: true,
				}
			}
		}
	}
	return it
}

// Run runs p over r: New(r, p, opts).Run(ctx).
func Run[C Context](ctx C, r Runner[C], p *Compiled, opts RunOptions) RunResult {
	return New(r, p, opts).Run(ctx)
}

// Snapshot is every step's current state in Compiled.Steps order. Safe to call while the
// run is going (a Temporal query handler, the handover of a stopped run).
func (it *Interpreter[C]) Snapshot() []StepState {
	it.mu.Lock()
	defer it.mu.Unlock()
	out := make([]StepState, len(it.st))
	copy(out, it.st)
	for i := range out {
		if out[i].Items != nil {
			c := *out[i].Items
			out[i].Items = &c
		}
	}
	return out
}

// flow says how a step (or a list of steps) ended besides succeeding or failing.
type flow int

const (
	flowOn     flow = iota // carry on: the step is final (see fail)
	flowStop               // ErrStop: launch nothing more, record nothing
	flowCancel             // the context was canceled: in-flight steps are settled canceled
	flowFault              // the runner could not record (it.fault): the run fails
)

// Run runs the pipeline to its end and records it with Finish (unless stopped).
func (it *Interpreter[C]) Run(ctx C) RunResult {
	var (
		last Source
		fail *Error
		fl   flow
	)
	if ms := it.p.def.TimeoutMS; ms > 0 {
		runCtx, cancel := it.r.WithCancel(ctx)
		// Two branches: the steps, and a timer that cancels them. Whichever ends first
		// cancels the other; only the timer firing first marks the run timed out.
		_ = it.r.Fork(runCtx, 2, 2, func(c C, i int) error {
			if i == 0 {
				last, fail, fl = it.runList(c, it.p.top, Source{})
				it.mu.Lock()
				it.done = true
				it.mu.Unlock()
				cancel()
				return nil
			}
			if err := it.r.Sleep(c, time.Duration(ms)*time.Millisecond); err == nil {
				it.mu.Lock()
				fire := !it.done
				it.timedOut = fire
				it.mu.Unlock()
				if fire {
					cancel()
				}
			}
			return nil
		})
		cancel()
	} else {
		last, fail, fl = it.runList(ctx, it.p.top, Source{})
	}

	it.mu.Lock()
	timedOut, fault := it.timedOut, it.fault
	it.mu.Unlock()
	var out RunOutcome
	switch {
	case fl == flowStop:
		return RunResult{Stopped: true}
	case fl == flowCancel && timedOut:
		out = RunOutcome{Status: RunFailed, Error: &Error{Type: ErrTypeRunTimeout,
			Message: fmt.Sprintf("the run did not finish within its timeout_ms (%d ms)", it.p.def.TimeoutMS)}}
	case fl == flowCancel:
		out = RunOutcome{Status: RunCanceled, Error: &Error{Type: ErrTypeCanceled, Message: "the run was canceled"}}
	case fl == flowFault:
		out = RunOutcome{Status: RunFailed, Error: &Error{Type: ErrTypePlatform, Message: fault.Error()}}
	case fail != nil:
		out = RunOutcome{Status: RunFailed, Error: fail}
	default:
		out = RunOutcome{Status: RunSucceeded, OutputFrom: last}
	}
	fctx := ctx
	if ctx.Err() != nil {
		fctx = it.r.Detached(ctx)
	}
	res := RunResult{Status: out.Status, Error: out.Error, OutputFrom: out.OutputFrom}
	if err := it.r.Finish(fctx, out); err != nil {
		res.Err = err
	} else if fault != nil {
		res.Err = fault
	}
	return res
}

// runList runs a list of steps from its first, following catches. It returns the source
// of the default input after the list (the last step that ran), or the error of a step
// that failed without catch.
func (it *Interpreter[C]) runList(ctx C, steps []*CompiledStep, from Source) (Source, *Error, flow) {
	for i := 0; i < len(steps); {
		s := steps[i]
		fail, transparent, fl := it.runStep(ctx, s, from)
		if fl != flowOn {
			return from, nil, fl
		}
		if fail == nil {
			if !transparent {
				from = Source{Step: s.ID}
			}
			i++
			continue
		}
		if s.catch < 0 {
			return from, fail, flowOn
		}
		for _, skipped := range steps[i+1 : s.catch] {
			if fl := it.skip(ctx, skipped); fl != flowOn {
				return from, nil, fl
			}
		}
		from = Source{Step: s.ID, Error: true}
		i = s.catch
	}
	return from, nil, flowOn
}

// skip settles a step jumped over by a catch (a seeded one stays as it was).
func (it *Interpreter[C]) skip(ctx C, s *CompiledStep) flow {
	if it.seeded(s) {
		return flowOn
	}
	now := it.r.Now(ctx)
	it.mu.Lock()
	st := &it.st[s.Index]
	st.StartedAt = now
	it.mu.Unlock()
	return it.settle(ctx, s, StepSkipped, nil, OutputRef{Kind: OutputNone}, now)
}

func (it *Interpreter[C]) seeded(s *CompiledStep) bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.st[s.Index].Seeded
}

// runStep runs one step to its end. transparent: it produced no value (skipped, sleep),
// so the next step's default input is this step's.
func (it *Interpreter[C]) runStep(ctx C, s *CompiledStep, from Source) (fail *Error, transparent bool, fl flow) {
	it.mu.Lock()
	st := it.st[s.Index]
	stopped := it.stopped
	it.mu.Unlock()
	if st.Seeded {
		switch st.Status {
		case StepFailed:
			e := Error{Type: ErrTypePlatform, Message: "failed"}
			if st.Error != nil {
				e = *st.Error
			}
			if e.Step == "" {
				e.Step = s.ID
			}
			return &e, false, flowOn
		case StepSkipped:
			return nil, true, flowOn
		}
		return nil, s.Kind == KindSleep, flowOn
	}
	if stopped {
		return nil, false, flowStop
	}
	if ctx.Err() != nil {
		return nil, false, flowCancel
	}
	start := it.r.Now(ctx)
	it.mu.Lock()
	it.st[s.Index].Status = StepRunning
	it.st[s.Index].StartedAt = start
	it.mu.Unlock()

	if s.If != nil {
		res, err := it.r.Eval(ctx, EvalSpec{StepID: s.ID, Kind: EvalIf})
		if err != nil {
			return it.runnerError(ctx, s, err)
		}
		if res.Error != nil {
			return it.failStep(ctx, s, res.Error, OutputRef{Kind: OutputNone})
		}
		if !res.Bool {
			return nil, true, it.settle(ctx, s, StepSkipped, nil, OutputRef{Kind: OutputNone}, time.Time{})
		}
	}
	switch s.Kind {
	case KindFunction:
		return it.runFunction(ctx, s, from)
	case KindMap:
		return it.runMap(ctx, s, from)
	case KindParallel:
		return it.runParallel(ctx, s, from)
	case KindSleep:
		if err := it.r.Sleep(ctx, time.Duration(s.Def.SleepMS)*time.Millisecond); err != nil {
			return it.runnerError(ctx, s, err)
		}
		return nil, true, it.settle(ctx, s, StepSucceeded, nil, OutputRef{Kind: OutputNone}, time.Time{})
	case KindWait:
		return it.runWait(ctx, s)
	}
	return it.failStep(ctx, s, &Error{Type: ErrTypePlatform, Message: "step has no kind"}, OutputRef{Kind: OutputNone})
}

// runnerError turns a runner's Go error in step s into how the step ends.
func (it *Interpreter[C]) runnerError(ctx C, s *CompiledStep, err error) (*Error, bool, flow) {
	switch it.classify(ctx, err) {
	case flowStop:
		return nil, false, flowStop
	case flowCancel:
		return nil, false, it.cancelStep(ctx, s)
	}
	return it.failStep(ctx, s, &Error{Type: ErrTypePlatform, Message: err.Error()}, OutputRef{Kind: OutputNone})
}

// classify says what a runner's error means: stop, cancel, or (flowOn) a platform fault.
func (it *Interpreter[C]) classify(ctx C, err error) flow {
	if errors.Is(err, ErrStop) {
		it.mu.Lock()
		it.stopped = true
		it.mu.Unlock()
		return flowStop
	}
	if ctx.Err() != nil {
		return flowCancel
	}
	return flowOn
}

func (it *Interpreter[C]) failStep(ctx C, s *CompiledStep, e *Error, out OutputRef) (*Error, bool, flow) {
	if e.Step == "" {
		c := *e
		c.Step = s.ID
		e = &c
	}
	return e, false, it.settle(ctx, s, StepFailed, e, out, time.Time{})
}

// cancelStep settles s canceled, through a detached context (ctx is canceled), and
// returns flowCancel (or what recording it gave).
func (it *Interpreter[C]) cancelStep(ctx C, s *CompiledStep) flow {
	if fl := it.settle(it.r.Detached(ctx), s, StepCanceled, &Error{Type: ErrTypeCanceled, Message: "canceled"}, OutputRef{Kind: OutputNone}, time.Time{}); fl != flowOn {
		return fl
	}
	return flowCancel
}

// settle records s final. finished zero means now.
func (it *Interpreter[C]) settle(ctx C, s *CompiledStep, status StepStatus, e *Error, out OutputRef, finished time.Time) flow {
	if finished.IsZero() {
		finished = it.r.Now(ctx)
	}
	it.mu.Lock()
	st := &it.st[s.Index]
	st.Status, st.Error, st.FinishedAt = status, e, finished
	if st.StartedAt.IsZero() {
		st.StartedAt = finished
	}
	rec := StepRecord{
		StepID: s.ID, Status: status, Attempts: st.Attempts, ExecutionID: st.ExecutionID, Error: e,
		StartedAt: st.StartedAt, FinishedAt: finished, Output: out,
	}
	if st.Items != nil {
		c := *st.Items
		rec.Items = &c
	}
	it.mu.Unlock()
	err := it.r.Settle(ctx, rec)
	if err != nil && !errors.Is(err, ErrStop) && ctx.Err() != nil {
		err = it.r.Settle(it.r.Detached(ctx), rec)
	}
	if err == nil {
		return flowOn
	}
	if errors.Is(err, ErrStop) {
		it.mu.Lock()
		it.stopped = true
		it.mu.Unlock()
		return flowStop
	}
	it.mu.Lock()
	if it.fault == nil {
		it.fault = fmt.Errorf("recording step %q: %w", s.ID, err)
	}
	it.mu.Unlock()
	return flowFault
}

func (it *Interpreter[C]) isStopped() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.stopped
}

// delay is the backoff before attempt n+1: initial × backoff^(n-1), capped.
func (pol retryPolicy) delay(n int) time.Duration {
	ms := float64(pol.initialMS) * math.Pow(pol.backoff, float64(n-1))
	if ms > MaxRetryIntervalMS || math.IsInf(ms, 0) || math.IsNaN(ms) {
		ms = MaxRetryIntervalMS
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// call runs the attempts of one call (a function step, or map item) under its retry
// policy. fail is the last attempt's error when it did not succeed; a runner error ends
// the attempts (fl ≠ flowOn, or fail of type PlatformError).
func (it *Interpreter[C]) call(ctx C, s *CompiledStep, item int, from Source) (execID string, attempts int, fail *Error, fl flow) {
	spec := CallSpec{
		StepID: s.ID, Item: item, Function: s.Call.Function, Version: s.Call.Version,
		TimeoutMS: s.Call.TimeoutMS, InputFrom: from,
	}
	if spec.Version == 0 {
		spec.Version = it.opts.Versions[spec.Function]
	}
	for a := 1; ; a++ {
		if it.isStopped() {
			return execID, attempts, nil, flowStop
		}
		spec.Attempt, attempts = a, a
		// Counted when launched, so Snapshot shows the attempt in flight.
		it.mu.Lock()
		it.st[s.Index].Attempts++
		it.mu.Unlock()
		res, err := it.r.Call(ctx, spec)
		if res.ExecutionID != "" && item < 0 {
			execID = res.ExecutionID
			it.mu.Lock()
			it.st[s.Index].ExecutionID = execID
			it.mu.Unlock()
		}
		if err != nil {
			if fl := it.classify(ctx, err); fl != flowOn {
				return execID, attempts, nil, fl
			}
			return execID, attempts, &Error{Type: ErrTypePlatform, Message: err.Error()}, flowOn
		}
		if res.Status == CallSucceeded {
			return execID, attempts, nil, flowOn
		}
		fail = res.Error
		if fail == nil {
			fail = &Error{Type: "Error", Message: "the function failed"}
			if res.Status == CallTimeout {
				fail = &Error{Type: ErrTypeTimeout, Message: "the function did not finish within its timeout"}
			}
		}
		if a >= s.retry.maxAttempts || fail.Type == ErrTypeExpression {
			return execID, attempts, fail, flowOn
		}
		if d := s.retry.delay(a); d > 0 {
			if err := it.r.Sleep(ctx, d); err != nil {
				if fl := it.classify(ctx, err); fl != flowOn {
					return execID, attempts, nil, fl
				}
				return execID, attempts, &Error{Type: ErrTypePlatform, Message: err.Error()}, flowOn
			}
		}
	}
}

func (it *Interpreter[C]) runFunction(ctx C, s *CompiledStep, from Source) (*Error, bool, flow) {
	execID, _, fail, fl := it.call(ctx, s, -1, from)
	switch fl {
	case flowStop:
		return nil, false, flowStop
	case flowCancel:
		return nil, false, it.cancelStep(ctx, s)
	}
	if fail != nil {
		return it.failStep(ctx, s, fail, OutputRef{Kind: OutputNone})
	}
	return nil, false, it.settle(ctx, s, StepSucceeded, nil, OutputRef{Kind: OutputCall, ExecutionID: execID}, time.Time{})
}

// errForked is what a forked fn returns to make Fork cancel its siblings; the real
// failure is kept by the interpreter.
var errForked = errors.New("pipeline: a sibling failed")

// forkEnd decides how a map or parallel step ends after Fork returned.
func (it *Interpreter[C]) forkEnd(ctx C, s *CompiledStep, ferr error, fail *Error, faulted bool, ok OutputRef) (*Error, bool, flow) {
	switch {
	case it.isStopped():
		return nil, false, flowStop
	case ctx.Err() != nil:
		return nil, false, it.cancelStep(ctx, s)
	case faulted:
		return nil, false, flowFault
	case fail != nil:
		return it.failStep(ctx, s, fail, OutputRef{Kind: OutputNone})
	case ferr != nil && !errors.Is(ferr, errForked):
		return it.runnerError(ctx, s, ferr)
	}
	return nil, false, it.settle(ctx, s, StepSucceeded, nil, ok, time.Time{})
}

func (it *Interpreter[C]) runMap(ctx C, s *CompiledStep, from Source) (*Error, bool, flow) {
	res, err := it.r.Eval(ctx, EvalSpec{StepID: s.ID, Kind: EvalItems})
	if err != nil {
		return it.runnerError(ctx, s, err)
	}
	if res.Error != nil {
		return it.failStep(ctx, s, res.Error, OutputRef{Kind: OutputNone})
	}
	n := res.Count
	it.mu.Lock()
	it.st[s.Index].Items = &ItemCounts{Total: n}
	it.mu.Unlock()
	if n > it.opts.MaxItems {
		return it.failStep(ctx, s, &Error{Type: ErrTypeItemsLimit,
			Message: fmt.Sprintf("map.items gave %d items; the limit is %d", n, it.opts.MaxItems)}, OutputRef{Kind: OutputNone})
	}
	var (
		fail    *Error
		faulted bool
	)
	ferr := error(nil)
	if n > 0 {
		ferr = it.r.Fork(ctx, n, s.MaxConcurrency, func(c C, i int) error {
			_, _, ifail, fl := it.call(c, s, i, from)
			switch fl {
			case flowStop, flowCancel:
				return nil // stop: let the others finish their calls; cancel: already canceling
			case flowFault:
				it.mu.Lock()
				faulted = true
				it.mu.Unlock()
				return errForked
			}
			it.mu.Lock()
			defer it.mu.Unlock()
			if ifail != nil {
				it.st[s.Index].Items.Failed++
				if fail == nil {
					fail = &Error{Type: ifail.Type, Message: fmt.Sprintf("item %d: %s", i, ifail.Message), Step: s.ID}
				}
				return errForked
			}
			it.st[s.Index].Items.Succeeded++
			return nil
		})
	}
	it.mu.Lock()
	f, fa := fail, faulted
	it.mu.Unlock()
	return it.forkEnd(ctx, s, ferr, f, fa, OutputRef{Kind: OutputItems, Count: n})
}

func (it *Interpreter[C]) runParallel(ctx C, s *CompiledStep, from Source) (*Error, bool, flow) {
	n := len(s.Branches)
	lasts := make([]Source, n)
	var (
		fail    *Error
		faulted bool
	)
	ferr := it.r.Fork(ctx, n, n, func(c C, i int) error {
		last, bfail, fl := it.runList(c, s.Branches[i].Steps, from)
		switch fl {
		case flowStop, flowCancel:
			return nil
		case flowFault:
			it.mu.Lock()
			faulted = true
			it.mu.Unlock()
			return errForked
		}
		it.mu.Lock()
		defer it.mu.Unlock()
		if bfail != nil {
			if fail == nil {
				fail = bfail
			}
			return errForked
		}
		lasts[i] = last
		return nil
	})
	it.mu.Lock()
	f, fa := fail, faulted
	out := OutputRef{Kind: OutputBranches, Branches: make([]BranchOutput, n)}
	for i, b := range s.Branches {
		out.Branches[i] = BranchOutput{Name: b.Name, From: lasts[i]}
	}
	it.mu.Unlock()
	return it.forkEnd(ctx, s, ferr, f, fa, out)
}

func (it *Interpreter[C]) runWait(ctx C, s *CompiledStep) (*Error, bool, flow) {
	w := s.Def.WaitFor
	it.mu.Lock()
	it.st[s.Index].Status = StepWaiting
	it.mu.Unlock()
	received, err := it.r.Wait(ctx, WaitSpec{StepID: s.ID, Signal: w.Signal, Timeout: time.Duration(w.TimeoutMS) * time.Millisecond})
	if err != nil {
		return it.runnerError(ctx, s, err)
	}
	switch {
	case received:
		return nil, false, it.settle(ctx, s, StepSucceeded, nil, OutputRef{Kind: OutputSignal}, time.Time{})
	case w.OnTimeout != nil:
		return nil, false, it.settle(ctx, s, StepSucceeded, nil, OutputRef{Kind: OutputLiteral, Literal: w.OnTimeout}, time.Time{})
	}
	return it.failStep(ctx, s, &Error{Type: ErrTypeWaitTimeout,
		Message: fmt.Sprintf("no %q signal within %d ms", w.Signal, w.TimeoutMS)}, OutputRef{Kind: OutputNone})
}
