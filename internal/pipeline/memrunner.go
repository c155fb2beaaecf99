package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// FunctionCall is one call a MemRunner asks its Caller to make.
type FunctionCall struct {
	RunID       string
	ExecutionID string
	StepID      string
	Item        int // map item index; -1 for a function step
	Attempt     int
	Function    string
	Version     int             // 0 = latest
	Input       json.RawMessage // read-only: it may be shared with the run or the compiled pipeline
	TimeoutMS   int             // 0 = the function's own
}

// Outcome is a call's result. A Go error from the Caller instead is a platform fault it
// already retried (the step fails with PlatformError), or ctx's cancellation, or ErrStop.
type Outcome struct {
	Status     CallStatus
	Output     json.RawMessage // succeeded: the handler's result (nil = null)
	Error      *Error          // failed or timeout
	DurationMS float64
}

// Caller calls a function: on the sync path, the platform's invocation core.
type Caller func(ctx context.Context, c FunctionCall) (Outcome, error)

// MemOptions configure a MemRunner.
type MemOptions struct {
	RunOptions
	RunID  string
	Input  json.RawMessage // the run's input (nil = null)
	Caller Caller          // required
	// ExecutionID names a call's execution; default StepExecutionID.
	ExecutionID func(runID, stepID string, item int) string
	// SeedOutputs are the outputs of the steps in RunOptions.Seed.
	SeedOutputs map[string]json.RawMessage
	// Clock is the runner's clock; default time.Now.
	Clock func() time.Time
}

// MemRunner runs one run in memory over context.Context: goroutines for Fork, real
// timers for Sleep and Wait, the run's payloads in memory, expressions evaluated with the
// compiled programs. The sync path uses it with the invocation core as its Caller.
// Create one per run.
type MemRunner struct {
	p     *Compiled
	o     MemOptions
	it    *Interpreter[context.Context]
	clock func() time.Time

	mu       sync.Mutex
	steps    []memStep
	input    any
	inputOK  bool
	vars     map[string]any // steps variable; rebuilt after a referenced step settles
	varsOK   bool
	waiters  map[string][]*waiter
	result   MemResult
	finished bool
}

type memStep struct {
	settled bool
	rec     StepRecord
	output  json.RawMessage // once settled
	value   any             // decoded output, when some expression may read it
	// varEntry is StepVar(...) of a settled step that some expression may read.
	varEntry map[string]any
	callOut  json.RawMessage // a function step's successful call
	items    []any
	itemOut  []json.RawMessage
	payload  json.RawMessage // a wait's signal
}

type waiter struct {
	ch chan json.RawMessage
}

// MemResult is a finished (or stopped) in-memory run.
type MemResult struct {
	Status  RunStatus
	Output  json.RawMessage
	Error   *Error
	Stopped bool
	Err     error // a runner fault (RunResult.Err)
}

// MemStep is one step's record and output.
type MemStep struct {
	StepRecord
	Output json.RawMessage
}

// NewMemRunner prepares a run of p.
func NewMemRunner(p *Compiled, o MemOptions) *MemRunner {
	if o.ExecutionID == nil {
		o.ExecutionID = StepExecutionID
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	m := &MemRunner{p: p, o: o, clock: o.Clock, steps: make([]memStep, len(p.all))}
	for id, seed := range o.Seed {
		s := p.Step(id)
		if s == nil || !(seed.Status == StepSucceeded || seed.Status == StepFailed || seed.Status == StepSkipped) {
			continue
		}
		out := o.SeedOutputs[id]
		if len(out) == 0 {
			out = json.RawMessage("null")
		}
		ms := &m.steps[s.Index]
		ms.settled, ms.output = true, out
		ms.rec = StepRecord{StepID: id, Status: seed.Status, Attempts: seed.Attempts, ExecutionID: seed.ExecutionID,
			Error: seed.Error, Items: seed.Items, StartedAt: seed.StartedAt, FinishedAt: seed.FinishedAt}
		if p.Referenced(id) {
			ms.value, _ = DecodeJSON(out)
			ms.varEntry = StepVar(seed.Status, ms.value, seed.Error)
		}
	}
	m.it = New[context.Context](m, p, o.RunOptions)
	return m
}

// Run runs the pipeline and returns its result.
func (m *MemRunner) Run(ctx context.Context) MemResult {
	res := m.it.Run(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	if res.Stopped {
		return MemResult{Stopped: true}
	}
	r := m.result
	if res.Err != nil {
		r.Err = res.Err
	}
	return r
}

// Snapshot is the interpreter's view of the steps (safe while running).
func (m *MemRunner) Snapshot() []StepState { return m.it.Snapshot() }

// Steps are the settled steps with their outputs, in definition order.
func (m *MemRunner) Steps() []MemStep {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []MemStep
	for i := range m.steps {
		if ms := &m.steps[i]; ms.settled {
			out = append(out, MemStep{StepRecord: ms.rec, Output: ms.output})
		}
	}
	return out
}

// StepOutput is a settled step's output.
func (m *MemRunner) StepOutput(id string) (json.RawMessage, bool) {
	s := m.p.Step(id)
	if s == nil {
		return nil, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := &m.steps[s.Index]
	return ms.output, ms.settled
}

// pendingVar is steps.<id> of a step that has not settled (shared, never modified).
var pendingVar = StepVar(StepPending, nil, nil)

// ErrNotWaiting is Signal's answer when no step waits for that signal (the api's 409).
var ErrNotWaiting = errors.New("pipeline: the run is not waiting for that signal")

// Signal delivers a signal to the step waiting for it longest.
func (m *MemRunner) Signal(name string, payload json.RawMessage) error {
	if len(payload) == 0 {
		payload = json.RawMessage("null")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ws := m.waiters[name]
	if len(ws) == 0 {
		return ErrNotWaiting
	}
	w := ws[0]
	m.waiters[name] = ws[1:]
	w.ch <- payload
	return nil
}

// Waiting are the signals steps are waiting for now, sorted (repeated when several are).
func (m *MemRunner) Waiting() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for name, ws := range m.waiters {
		for range ws {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// --- Runner[context.Context] ---

// evalVars are the variables for an expression of step s (item ≥ 0: a map item).
func (m *MemRunner) evalVars(s *CompiledStep, item int) (*Vars, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := &Vars{}
	if m.p.usesInput {
		if !m.inputOK {
			in := m.o.Input
			if len(in) == 0 {
				in = json.RawMessage("null")
			}
			val, err := DecodeJSON(in)
			if err != nil {
				return nil, fmt.Errorf("run input: %w", err)
			}
			m.input, m.inputOK = val, true
		}
		v.Input = m.input
	}
	if !m.varsOK {
		m.vars = make(map[string]any, len(m.p.refs))
		for _, cs := range m.p.all {
			if cs.ID == "" || !m.p.Referenced(cs.ID) {
				continue
			}
			if ms := &m.steps[cs.Index]; ms.settled {
				m.vars[cs.ID] = ms.varEntry
			} else {
				m.vars[cs.ID] = pendingVar
			}
		}
		m.varsOK = true
	}
	v.Steps = m.vars
	if item >= 0 {
		ms := &m.steps[s.Index]
		if item < len(ms.items) {
			v.Item = ms.items[item]
		}
		v.Index = int64(item)
	}
	return v, nil
}

// source is the value a Source names, as JSON. Caller holds m.mu.
func (m *MemRunner) source(src Source) json.RawMessage {
	if src.Step == "" {
		if len(m.o.Input) == 0 {
			return json.RawMessage("null")
		}
		return m.o.Input
	}
	s := m.p.Step(src.Step)
	if s == nil {
		return json.RawMessage("null")
	}
	ms := &m.steps[s.Index]
	if src.Error {
		e := ms.rec.Error
		if e == nil {
			e = &Error{}
		}
		buf := append([]byte(`{"error":{"message":`), appendString(nil, e.Message)...)
		buf = append(buf, `,"type":`...)
		buf = appendString(buf, e.Type)
		buf = append(buf, `},"step":`...)
		buf = appendString(buf, src.Step)
		return append(buf, '}')
	}
	if len(ms.output) == 0 {
		return json.RawMessage("null")
	}
	return ms.output
}

// Call implements Runner.
func (m *MemRunner) Call(ctx context.Context, spec CallSpec) (CallResult, error) {
	s := m.p.Step(spec.StepID)
	if s == nil {
		return CallResult{}, fmt.Errorf("no step %q", spec.StepID)
	}
	var input json.RawMessage
	switch {
	case s.Input != nil && s.Input.lit != nil:
		input = s.Input.lit
	case s.Input != nil:
		vars, err := m.evalVars(s, spec.Item)
		if err != nil {
			return CallResult{}, err
		}
		input, err = s.Input.Render(ctx, vars, nil)
		if err != nil {
			var xe *ExprError
			if errors.As(err, &xe) {
				xe.Where = "input"
				return CallResult{Status: CallFailed, Error: xe.StepError()}, nil
			}
			return CallResult{}, err
		}
	case spec.Item >= 0:
		m.mu.Lock()
		ms := &m.steps[s.Index]
		var item any
		if spec.Item < len(ms.items) {
			item = ms.items[spec.Item]
		}
		m.mu.Unlock()
		var err error
		if input, err = AppendJSON(nil, item); err != nil {
			return CallResult{}, err
		}
	default:
		m.mu.Lock()
		input = m.source(spec.InputFrom)
		m.mu.Unlock()
	}
	execID := m.o.ExecutionID(m.o.RunID, spec.StepID, spec.Item)
	out, err := m.o.Caller(ctx, FunctionCall{
		RunID: m.o.RunID, ExecutionID: execID, StepID: spec.StepID, Item: spec.Item, Attempt: spec.Attempt,
		Function: spec.Function, Version: spec.Version, Input: input, TimeoutMS: spec.TimeoutMS,
	})
	if err != nil {
		return CallResult{ExecutionID: execID}, err
	}
	if out.Status == CallSucceeded {
		o := out.Output
		if len(o) == 0 {
			o = json.RawMessage("null")
		}
		m.mu.Lock()
		ms := &m.steps[s.Index]
		if spec.Item < 0 {
			ms.callOut = o
		} else if spec.Item < len(ms.itemOut) {
			ms.itemOut[spec.Item] = o
		}
		m.mu.Unlock()
	}
	return CallResult{Status: out.Status, ExecutionID: execID, Error: out.Error, DurationMS: out.DurationMS}, nil
}

// Eval implements Runner.
func (m *MemRunner) Eval(ctx context.Context, spec EvalSpec) (EvalResult, error) {
	s := m.p.Step(spec.StepID)
	if s == nil {
		return EvalResult{}, fmt.Errorf("no step %q", spec.StepID)
	}
	vars, err := m.evalVars(s, -1)
	if err != nil {
		return EvalResult{}, err
	}
	exprErr := func(err error, where string) (EvalResult, error) {
		var xe *ExprError
		if errors.As(err, &xe) {
			xe.Where = where
			return EvalResult{Error: xe.StepError()}, nil
		}
		return EvalResult{}, err
	}
	switch spec.Kind {
	case EvalIf:
		if s.If == nil {
			return EvalResult{Bool: true}, nil
		}
		b, err := s.If.EvalBool(ctx, vars)
		if err != nil {
			return exprErr(err, "if")
		}
		return EvalResult{Bool: b}, nil
	case EvalItems:
		if s.Items == nil {
			return EvalResult{}, fmt.Errorf("step %q has no items", spec.StepID)
		}
		items, err := s.Items.EvalList(ctx, vars)
		if err != nil {
			return exprErr(err, "map.items")
		}
		m.mu.Lock()
		ms := &m.steps[s.Index]
		ms.items = items
		ms.itemOut = make([]json.RawMessage, len(items))
		m.mu.Unlock()
		return EvalResult{Count: len(items)}, nil
	}
	return EvalResult{}, fmt.Errorf("unknown eval kind %q", spec.Kind)
}

// Settle implements Runner.
func (m *MemRunner) Settle(_ context.Context, rec StepRecord) error {
	s := m.p.Step(rec.StepID)
	if s == nil {
		return fmt.Errorf("no step %q", rec.StepID)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := &m.steps[s.Index]
	var out json.RawMessage
	switch rec.Output.Kind {
	case OutputCall:
		out = ms.callOut
	case OutputItems:
		buf := make([]byte, 0, 2+16*len(ms.itemOut))
		buf = append(buf, '[')
		for i, o := range ms.itemOut {
			if i > 0 {
				buf = append(buf, ',')
			}
			if len(o) == 0 {
				o = json.RawMessage("null")
			}
			buf = append(buf, o...)
		}
		out = append(buf, ']')
	case OutputBranches:
		buf := []byte{'{'}
		for i, b := range rec.Output.Branches {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, b.Name)
			buf = append(buf, ':')
			buf = append(buf, m.source(b.From)...)
		}
		out = append(buf, '}')
	case OutputSignal:
		out = ms.payload
	case OutputLiteral:
		out = rec.Output.Literal
	}
	if len(out) == 0 {
		out = json.RawMessage("null")
	}
	ms.settled, ms.rec, ms.output = true, rec, out
	ms.callOut, ms.items, ms.itemOut = nil, nil, nil
	if m.p.Referenced(rec.StepID) {
		v, err := DecodeJSON(out)
		if err != nil {
			return fmt.Errorf("output of step %q: %w", rec.StepID, err)
		}
		ms.value, ms.varEntry = v, StepVar(rec.Status, v, rec.Error)
		m.varsOK = false
	}
	return nil
}

// Sleep implements Runner.
func (m *MemRunner) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait implements Runner.
func (m *MemRunner) Wait(ctx context.Context, spec WaitSpec) (bool, error) {
	w := &waiter{ch: make(chan json.RawMessage, 1)}
	m.mu.Lock()
	if m.waiters == nil {
		m.waiters = map[string][]*waiter{}
	}
	m.waiters[spec.Signal] = append(m.waiters[spec.Signal], w)
	m.mu.Unlock()
	t := time.NewTimer(spec.Timeout)
	defer t.Stop()
	var err error
	select {
	case p := <-w.ch:
		return true, m.received(spec.StepID, p)
	case <-t.C:
	case <-ctx.Done():
		err = ctx.Err()
	}
	// Unregister; a signal delivered meanwhile still counts (Signal said it was taken).
	m.mu.Lock()
	ws := m.waiters[spec.Signal]
	for i, x := range ws {
		if x == w {
			m.waiters[spec.Signal] = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(m.waiters[spec.Signal]) == 0 {
		delete(m.waiters, spec.Signal)
	}
	m.mu.Unlock()
	select {
	case p := <-w.ch:
		return true, m.received(spec.StepID, p)
	default:
	}
	return false, err
}

func (m *MemRunner) received(stepID string, payload json.RawMessage) error {
	s := m.p.Step(stepID)
	m.mu.Lock()
	m.steps[s.Index].payload = payload
	m.mu.Unlock()
	return nil
}

// Fork implements Runner: limit goroutines (the calling one among them) take indexes in
// order; the first error cancels the others' context and stops new indexes.
func (m *MemRunner) Fork(ctx context.Context, n, limit int, fn func(context.Context, int) error) error {
	if n <= 0 {
		return nil
	}
	if limit <= 0 || limit > n {
		limit = n
	}
	if limit == 1 {
		for i := 0; i < n; i++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(ctx, i); err != nil {
				return err
			}
		}
		return nil
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next  atomic.Int64
		once  sync.Once
		first error
		wg    sync.WaitGroup
	)
	worker := func() {
		for cctx.Err() == nil {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			if err := fn(cctx, i); err != nil {
				once.Do(func() {
					first = err
					cancel()
				})
			}
		}
	}
	for w := 1; w < limit; w++ {
		wg.Go(worker)
	}
	worker()
	wg.Wait()
	return first
}

// WithCancel implements Runner.
func (m *MemRunner) WithCancel(ctx context.Context) (context.Context, func()) {
	c, cancel := context.WithCancel(ctx)
	return c, cancel
}

// Detached implements Runner.
func (m *MemRunner) Detached(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// Now implements Runner.
func (m *MemRunner) Now(context.Context) time.Time { return m.clock() }

// Finish implements Runner: it renders the output.
func (m *MemRunner) Finish(ctx context.Context, out RunOutcome) error {
	res := MemResult{Status: out.Status, Error: out.Error}
	if out.Status == RunSucceeded {
		if t := m.p.output; t != nil {
			vars, err := m.evalVars(nil, -1)
			if err != nil {
				return err
			}
			b, err := t.Render(ctx, vars, nil)
			var xe *ExprError
			switch {
			case errors.As(err, &xe):
				xe.Where = "output"
				res = MemResult{Status: RunFailed, Error: xe.StepError()}
			case err != nil:
				return err
			default:
				res.Output = b
			}
		} else {
			m.mu.Lock()
			res.Output = m.source(out.OutputFrom)
			m.mu.Unlock()
		}
	}
	m.mu.Lock()
	m.result, m.finished = res, true
	m.mu.Unlock()
	return nil
}
