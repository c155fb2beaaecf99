package pipeline

import (
	"encoding/json"
	"fmt"
	"regexp"

	"cel.dev/cel-go/cel"
)

// Bounds that are part of the contract (not operator limits).
const (
	MaxAttempts         = 10
	MaxInitialInterval  = 3_600_000 // ms
	MaxBackoff          = 10.0
	MaxMapConcurrency   = 1000
	MaxSleepMS          = 30 * 24 * 3600 * 1000 // 30 days
	MaxWaitMS           = MaxSleepMS
	MaxDescriptionBytes = 4096
)

var (
	idRe       = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	signalRe   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	nameRe     = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	idPattern  = idRe.String()
	sigPattern = signalRe.String()
)

// Compiled is a definition ready to run: structure resolved and every expression and
// template compiled once. It is immutable and safe for concurrent use by any number of
// runs (the sync path caches it by sha256).
type Compiled struct {
	def       *Definition
	top       []*CompiledStep
	all       []*CompiledStep
	byID      map[string]*CompiledStep
	output    *Template
	refs      map[string]bool
	allRefs   bool
	usesInput bool
	hasWaits  bool
}

// CompiledStep is one step of a Compiled pipeline.
type CompiledStep struct {
	ID     string
	Index  int // position in Compiled.Steps(): depth-first definition order, branches sorted
	Kind   StepKind
	Def    *Step
	Parent string // the parallel step whose branch holds this step; "" at the top level
	Branch string

	If             *Expr
	Items          *Expr         // map
	Call           *FunctionSpec // a function step's call, or a map's item step
	Input          *Template     // Call's input template; nil = the default input
	MaxConcurrency int           // map, default applied
	Branches       []CompiledBranch

	pos   int // position in its step list
	catch int // position of the catch target in the same list, -1 without catch
	retry retryPolicy
}

// StepRefs is what the step's expressions (if, items, input) may read of steps: the
// outputs a runner must load to evaluate them (see Expr.StepRefs); input reports whether
// they read the run's input.
func (s *CompiledStep) StepRefs() (ids []string, all, input bool) {
	exprs := []*Expr{s.If, s.Items}
	if s.Input != nil {
		exprs = append(exprs, s.Input.exprs...)
	}
	for _, e := range exprs {
		input = input || (e != nil && e.usesInput)
	}
	ids, all = unionRefs(exprs)
	return ids, all, input
}

// CompiledBranch is one branch of a parallel step.
type CompiledBranch struct {
	Name  string
	Steps []*CompiledStep
}

type retryPolicy struct {
	maxAttempts int
	initialMS   int
	backoff     float64
}

// Definition is the definition the pipeline was compiled from (do not modify it).
func (p *Compiled) Definition() *Definition { return p.def }

// Steps are every step, nested ones included, in depth-first definition order.
func (p *Compiled) Steps() []*CompiledStep { return p.all }

// Step is the step with that id, or nil.
func (p *Compiled) Step(id string) *CompiledStep { return p.byID[id] }

// Output is the pipeline's output template, nil when the output is the last step's.
func (p *Compiled) Output() *Template { return p.output }

// Referenced reports whether some expression may read steps.<id>: a runner decodes (or
// loads) only the outputs of referenced steps for evaluation.
func (p *Compiled) Referenced(id string) bool { return p.allRefs || p.refs[id] }

// UsesInput reports whether some expression reads the run's input.
func (p *Compiled) UsesInput() bool { return p.usesInput }

// HasWaits reports whether the pipeline sleeps or waits for a signal (never runs sync).
func (p *Compiled) HasWaits() bool { return p.hasWaits }

// Compile compiles a definition for running. It checks what running needs (ids unique,
// kinds, catch targets, expressions compile and reference visible steps, contract
// bounds) but not the catalog or the operator's limits, which Validate checks at
// registration; a definition Validate accepted always compiles.
func Compile(d *Definition) (*Compiled, error) {
	k, err := newCompiler(d, nil)
	if err != nil {
		return nil, err
	}
	k.run()
	if err := k.p.err(); err != nil {
		return nil, err
	}
	return k.c, nil
}

type funcUse struct {
	loc, prefix string
	name        string
	version     int
}

type compiler struct {
	d          *Definition
	p          *problems
	limits     *Limits
	c          *Compiled
	base, item *cel.Env
	allIDs     map[string]bool
	funcs      []funcUse
	exprs      []*Expr
}

func newCompiler(d *Definition, limits *Limits) (*compiler, error) {
	base, item, err := envs()
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	k := &compiler{
		d: d, p: &problems{}, limits: limits, base: base, item: item,
		c:      &Compiled{def: d, byID: map[string]*CompiledStep{}, refs: map[string]bool{}, hasWaits: d.HasWaits()},
		allIDs: map[string]bool{},
	}
	walkSteps(d.Steps, func(s *Step) {
		if s.ID != "" {
			k.allIDs[s.ID] = true
		}
	})
	return k, nil
}

func (k *compiler) run() {
	d := k.d
	if d.TimeoutMS < 0 {
		k.p.add("", "timeout_ms", "timeout_ms must be positive (omit it for no run timeout)")
	}
	if len(d.Description) > MaxDescriptionBytes {
		k.p.add("", "description", "description is %d bytes long; the limit is %d", len(d.Description), MaxDescriptionBytes)
	}
	if len(d.Steps) == 0 {
		k.p.add("", "steps", "a pipeline needs at least one step")
	}
	k.c.top = k.seq(d.Steps, "steps", "", "", map[string]bool{}, 1)
	if d.Output != nil {
		k.c.output = k.template(k.base, d.Output, "", "output", k.allIDs)
	}
	for _, e := range k.exprs {
		k.c.allRefs = k.c.allRefs || e.allSteps
		k.c.usesInput = k.c.usesInput || e.usesInput
		for _, id := range e.refs {
			k.c.refs[id] = true
		}
	}
}

func (k *compiler) seq(steps []Step, path, parent, branch string, visible map[string]bool, depth int) []*CompiledStep {
	pos := map[string]int{}
	for i := range steps {
		if id := steps[i].ID; id != "" {
			if _, dup := pos[id]; !dup {
				pos[id] = i
			}
		}
	}
	vis := make(map[string]bool, len(visible)+len(steps))
	for id := range visible {
		vis[id] = true
	}
	out := make([]*CompiledStep, len(steps))
	for i := range steps {
		s := &steps[i]
		loc := s.ID
		if loc == "" {
			loc = fmt.Sprintf("%s[%d]", path, i)
		}
		cs := k.step(s, loc, parent, branch, vis, depth)
		cs.pos = i
		out[i] = cs
		if s.Catch != "" {
			j, ok := pos[s.Catch]
			switch {
			case !k.allIDs[s.Catch]:
				k.p.add(loc, "catch", "catch target %q is not a step", s.Catch)
			case !ok:
				k.p.add(loc, "catch", "catch target %q is not in the same step list; a catch continues at a later step of its own list", s.Catch)
			case j == i:
				k.p.add(loc, "catch", "catch target %q is the step itself; a catch continues at a later step", s.Catch)
			case j < i:
				k.p.add(loc, "catch", "catch target %q comes before the step; a catch only jumps forward, so every run ends", s.Catch)
			default:
				cs.catch = j
			}
		}
		walkSteps(steps[i:i+1], func(n *Step) {
			if n.ID != "" {
				vis[n.ID] = true
			}
		})
	}
	return out
}

func (k *compiler) step(s *Step, loc, parent, branch string, vis map[string]bool, depth int) *CompiledStep {
	cs := &CompiledStep{ID: s.ID, Index: len(k.c.all), Kind: s.Kind(), Def: s, Parent: parent, Branch: branch, catch: -1}
	k.c.all = append(k.c.all, cs)
	switch {
	case s.ID == "":
		k.p.add(loc, "id", "id is required")
	case !idRe.MatchString(s.ID):
		k.p.add(loc, "id", "id %q must match %s", s.ID, idPattern)
	case k.c.byID[s.ID] != nil:
		k.p.add(loc, "id", "id %q is used by more than one step; step ids are unique in the whole pipeline, branches included", s.ID)
	default:
		k.c.byID[s.ID] = cs
	}
	if s.If != "" {
		cs.If = k.expr(k.base, s.If, boolValue, loc, "if", vis)
	}
	if s.Catch != "" && cs.Kind != KindFunction && cs.Kind != KindMap && cs.Kind != KindParallel && cs.Kind != "" {
		k.p.add(loc, "catch", "catch is only allowed on function, map and parallel steps")
	}
	if cs.Kind != KindFunction && cs.Kind != "" {
		f := s.FunctionSpec
		if f.Version != 0 || f.Input != nil || f.TimeoutMS != 0 || f.Retry != nil {
			k.p.add(loc, "", "version, input, timeout_ms and retry are only allowed on a function step")
		}
	}
	switch cs.Kind {
	case "":
		k.p.add(loc, "", "a step needs exactly one of function, map, parallel, sleep_ms or wait_for")
	case KindFunction:
		cs.Call = &s.FunctionSpec
		cs.Input, cs.retry = k.function(cs.Call, loc, "", k.base, vis)
	case KindMap:
		m := s.Map
		cs.Items = k.expr(k.base, m.Items, listValue, loc, "map.items", vis)
		cs.MaxConcurrency = m.MaxConcurrency
		switch {
		case m.MaxConcurrency == 0:
			cs.MaxConcurrency = DefaultMaxConcurrency
		case m.MaxConcurrency < 1 || m.MaxConcurrency > MaxMapConcurrency:
			k.p.add(loc, "map.max_concurrency", "map.max_concurrency must be between 1 and %d", MaxMapConcurrency)
		}
		if m.Step.Function == "" {
			k.p.add(loc, "map.step.function", "map.step.function must name a registered function")
		}
		cs.Call = &m.Step
		cs.Input, cs.retry = k.function(cs.Call, loc, "map.step.", k.item, vis)
	case KindParallel:
		if len(s.Parallel) == 0 {
			k.p.add(loc, "parallel", "parallel needs at least one branch")
		}
		if k.limits != nil && depth+1 > k.limits.MaxDepth {
			k.p.add(loc, "parallel", "parallel steps are nested more than %d deep", k.limits.MaxDepth-1)
		}
		for _, name := range s.Branches() {
			steps := s.Parallel[name]
			if !idRe.MatchString(name) {
				k.p.add(loc, "parallel."+name, "branch name %q must match %s", name, idPattern)
			}
			if len(steps) == 0 {
				k.p.add(loc, "parallel."+name, "branch %q needs at least one step", name)
			}
			cs.Branches = append(cs.Branches, CompiledBranch{
				Name:  name,
				Steps: k.seq(steps, loc+".parallel."+name, s.ID, name, vis, depth+1),
			})
		}
	case KindSleep:
		if s.SleepMS < 1 || s.SleepMS > MaxSleepMS {
			k.p.add(loc, "sleep_ms", "sleep_ms must be between 1 and %d (30 days)", MaxSleepMS)
		}
	case KindWait:
		w := s.WaitFor
		if !signalRe.MatchString(w.Signal) {
			k.p.add(loc, "wait_for.signal", "wait_for.signal %q must match %s", w.Signal, sigPattern)
		}
		if w.TimeoutMS < 1 || w.TimeoutMS > MaxWaitMS {
			k.p.add(loc, "wait_for.timeout_ms", "wait_for.timeout_ms must be between 1 and %d (30 days)", MaxWaitMS)
		}
		if w.OnTimeout != nil && !json.Valid(w.OnTimeout) {
			k.p.add(loc, "wait_for.on_timeout", "wait_for.on_timeout must be JSON")
		}
	}
	return cs
}

func (k *compiler) function(f *FunctionSpec, loc, prefix string, env *cel.Env, vis map[string]bool) (*Template, retryPolicy) {
	pol := retryPolicy{maxAttempts: 1}
	if f.Function != "" {
		k.funcs = append(k.funcs, funcUse{loc: loc, prefix: prefix, name: f.Function, version: f.Version})
	}
	if f.Version < 0 {
		k.p.add(loc, prefix+"version", "%sversion must be a positive version number (omit it for the latest)", prefix)
	}
	switch {
	case f.TimeoutMS < 0:
		k.p.add(loc, prefix+"timeout_ms", "%stimeout_ms must be positive (omit it for the function's own timeout)", prefix)
	case k.limits != nil && f.TimeoutMS > k.limits.MaxStepTimeoutMS:
		k.p.add(loc, prefix+"timeout_ms", "%stimeout_ms %d is above the limit of %d", prefix, f.TimeoutMS, k.limits.MaxStepTimeoutMS)
	}
	if r := f.Retry; r != nil {
		pol = retryPolicy{maxAttempts: DefaultMaxAttempts, initialMS: DefaultInitialIntervalMS, backoff: DefaultBackoff}
		if r.MaxAttempts != nil {
			pol.maxAttempts = *r.MaxAttempts
			if pol.maxAttempts < 1 || pol.maxAttempts > MaxAttempts {
				k.p.add(loc, prefix+"retry.max_attempts", "%sretry.max_attempts must be between 1 and %d", prefix, MaxAttempts)
			}
		}
		if r.InitialIntervalMS != nil {
			pol.initialMS = *r.InitialIntervalMS
			if pol.initialMS < 0 || pol.initialMS > MaxInitialInterval {
				k.p.add(loc, prefix+"retry.initial_interval_ms", "%sretry.initial_interval_ms must be between 0 and %d", prefix, MaxInitialInterval)
			}
		}
		if r.Backoff != nil {
			pol.backoff = *r.Backoff
			if !(pol.backoff >= 1 && pol.backoff <= MaxBackoff) {
				k.p.add(loc, prefix+"retry.backoff", "%sretry.backoff must be between 1 and %g", prefix, MaxBackoff)
			}
		}
	}
	var t *Template
	if f.Input != nil {
		t = k.template(env, f.Input, loc, prefix+"input", vis)
	}
	return t, pol
}

func (k *compiler) expr(env *cel.Env, src string, kind exprKind, loc, field string, vis map[string]bool) *Expr {
	e, err := compileExpr(env, src, kind)
	if err != nil {
		k.p.add(loc, field, "%s: %v", field, err)
		return nil
	}
	k.checkRefs(e, loc, field, vis)
	return e
}

func (k *compiler) template(env *cel.Env, raw json.RawMessage, loc, field string, vis map[string]bool) *Template {
	if !json.Valid(raw) {
		k.p.add(loc, field, "%s must be JSON", field)
		return nil
	}
	t, errs := compileTemplate(env, raw)
	for _, err := range errs {
		k.p.add(loc, field, "%s: %v", field, err)
	}
	if t == nil {
		return nil
	}
	for _, e := range t.exprs {
		k.checkRefs(e, loc, field, vis)
	}
	return t
}

func (k *compiler) checkRefs(e *Expr, loc, field string, vis map[string]bool) {
	k.exprs = append(k.exprs, e)
	for _, id := range e.refs {
		switch {
		case !k.allIDs[id]:
			k.p.add(loc, field, "%s: steps.%s is not a step of this pipeline", field, id)
		case !vis[id]:
			k.p.add(loc, field, "%s: steps.%s has not finished when this runs; an expression reads only the steps before it (and the pipeline's output reads any)", field, id)
		}
	}
}
