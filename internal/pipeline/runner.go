package pipeline

import (
	"encoding/json"
	"time"
)

// Context is what the interpreter needs of a runner's context: whether it was canceled.
// context.Context and Temporal's workflow.Context both satisfy it.
type Context interface {
	Err() error
}

// Runner is what the interpreter drives: every blocking operation, all concurrency and
// every payload go through it, so the interpreter itself stays deterministic (it can run
// inside a Temporal workflow function) and holds only control-flow state.
//
// Errors: a Go error from any method is, in this order of precedence, ErrStop (stop the
// run, see ErrStop), a cancellation (detected as ctx.Err() != nil after the call: the step
// is settled canceled), or a platform fault the runner already retried and gave up on
// (the step fails with type PlatformError; from Settle and Finish it is reported in
// RunResult.Err and, for Settle, fails the run). User-level failures are results, not
// errors: CallResult.Status, EvalResult.Error.
type Runner[C Context] interface {
	// Call runs one attempt of a function step or of one map item: it renders the input
	// (the step's template; else for a map item the item; else the output of InputFrom),
	// calls the function and records the execution. It never returns the output.
	Call(ctx C, spec CallSpec) (CallResult, error)
	// Eval evaluates a step's if (→ Bool) or a map's items (→ Count; the runner keeps the
	// items for the calls) against the run's state.
	Eval(ctx C, spec EvalSpec) (EvalResult, error)
	// Settle records a step final, with where its output comes from.
	Settle(ctx C, rec StepRecord) error
	// Sleep blocks for d (a sleep step, or a retry's backoff).
	Sleep(ctx C, d time.Duration) error
	// Wait blocks until the signal arrives for this step (received, the runner keeps the
	// payload) or the timeout passes. The run is "waiting" while at least one Wait is in
	// progress: a runner marks it there (search attribute, run row), counting concurrent
	// waits of parallel branches.
	Wait(ctx C, spec WaitSpec) (received bool, err error)
	// Fork calls fn(ctx_i, i) for i in [0, n), at most limit at once. The first fn to
	// return an error cancels the others' contexts (and fn is not called for indexes not
	// started yet); Fork returns after every started fn has returned, with that first
	// error (or its own, e.g. ctx canceled before anything started).
	Fork(ctx C, n, limit int, fn func(ctx C, i int) error) error
	// WithCancel derives a context canceled by the returned function or with ctx.
	WithCancel(ctx C) (C, func())
	// Detached derives a context that is not canceled with ctx, for recording after a
	// cancel.
	Detached(ctx C) C
	// Now is the runner's clock (workflow.Now under Temporal).
	Now(ctx C) time.Time
	// Finish records the run's outcome; the runner renders the pipeline's output (the
	// output template, else the output of OutputFrom) and, when that rendering fails,
	// records the run failed with an ExpressionError instead.
	Finish(ctx C, out RunOutcome) error
}

// StepStatus is a step's status.
type StepStatus string

// Step statuses; Final ones are what Settle records.
const (
	StepPending   StepStatus = "pending"
	StepRunning   StepStatus = "running"
	StepWaiting   StepStatus = "waiting" // a wait_for step waiting for its signal
	StepSucceeded StepStatus = "succeeded"
	StepFailed    StepStatus = "failed"
	StepSkipped   StepStatus = "skipped"
	StepCanceled  StepStatus = "canceled"
)

// Final reports whether the status is a settled one.
func (s StepStatus) Final() bool {
	switch s {
	case StepSucceeded, StepFailed, StepSkipped, StepCanceled:
		return true
	}
	return false
}

// RunStatus is a run's final status (queued, running and waiting are the runner's).
type RunStatus string

// Run statuses.
const (
	RunQueued    RunStatus = "queued"
	RunRunning   RunStatus = "running"
	RunWaiting   RunStatus = "waiting"
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunCanceled  RunStatus = "canceled"
)

// CallStatus is the outcome of one function call.
type CallStatus string

// Call outcomes.
const (
	CallSucceeded CallStatus = "succeeded"
	CallFailed    CallStatus = "failed" // the handler raised, or the input could not be rendered
	CallTimeout   CallStatus = "timeout"
)

// Source says where a default input (or the default output) comes from.
type Source struct {
	// Step is the step whose output it is; "" is the run's input.
	Step string `json:"step,omitempty"`
	// Error: Step failed and the run continued past it through its catch; the value is
	// {"error": {"type","message"}, "step": Step}.
	Error bool `json:"error,omitempty"`
}

// CallSpec is one attempt of a function step (Item -1) or of one map item.
type CallSpec struct {
	StepID    string
	Item      int // map item index; -1 for a function step
	Attempt   int // 1-based
	Function  string
	Version   int // the pinned version, else RunOptions.Versions[Function], else 0 (latest)
	TimeoutMS int // 0 = the function's own
	// InputFrom is the default input of a function step without an input template: the
	// previous step that ran in its list (skipped and sleep steps are transparent), the
	// enclosing parallel step's input for a branch's first step, the run's input when none.
	InputFrom Source
}

// CallResult is the outcome of one call; the output stays with the runner.
type CallResult struct {
	Status      CallStatus
	ExecutionID string
	Error       *Error // when not succeeded; nil gets a default
	DurationMS  float64
}

// EvalKind says which expression of a step Eval evaluates.
type EvalKind string

// Eval kinds.
const (
	EvalIf    EvalKind = "if"
	EvalItems EvalKind = "items"
)

// EvalSpec asks for a step's if or a map's items.
type EvalSpec struct {
	StepID string
	Kind   EvalKind
}

// EvalResult is an evaluation's outcome. Error (type ExpressionError) fails the step.
type EvalResult struct {
	Bool  bool // if
	Count int  // items: how many
	Error *Error
}

// WaitSpec is a wait_for step waiting.
type WaitSpec struct {
	StepID  string
	Signal  string
	Timeout time.Duration
}

// OutputKind says how a runner materialises a settled step's output.
type OutputKind string

// Output kinds.
const (
	// OutputNone: null (failed, canceled, skipped and sleep steps).
	OutputNone OutputKind = "none"
	// OutputCall: the output of the step's successful call, execution ExecutionID.
	OutputCall OutputKind = "call"
	// OutputItems: the list of the map's Count item outputs, in item order.
	OutputItems OutputKind = "items"
	// OutputBranches: {branch: the value of From} for each of Branches.
	OutputBranches OutputKind = "branches"
	// OutputSignal: the payload of the signal Wait received for this step.
	OutputSignal OutputKind = "signal"
	// OutputLiteral: Literal (a wait's on_timeout value).
	OutputLiteral OutputKind = "literal"
)

// OutputRef tells a runner how to materialise a step's output without the interpreter
// holding it.
type OutputRef struct {
	Kind        OutputKind
	ExecutionID string
	Count       int
	Branches    []BranchOutput // sorted by name
	Literal     json.RawMessage
}

// BranchOutput is one branch of a parallel step's output: the output of the last step
// that ran in it (or its error object after a catch), or, when none ran, the parallel
// step's own input.
type BranchOutput struct {
	Name string
	From Source
}

// ItemCounts are a map step's item counts.
type ItemCounts struct {
	Total     int `json:"total"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// StepRecord is a step settled.
type StepRecord struct {
	StepID      string
	Status      StepStatus // succeeded, failed, skipped or canceled
	Attempts    int        // calls made (a map: over all its items)
	ExecutionID string     // a function step's last call
	Error       *Error
	Items       *ItemCounts // map steps
	StartedAt   time.Time
	FinishedAt  time.Time
	Output      OutputRef
}

// RunOutcome is a run's end.
type RunOutcome struct {
	Status     RunStatus // succeeded, failed or canceled
	Error      *Error
	OutputFrom Source // succeeded: the default output (the last step that ran)
}

// SeededStep is a step taken as final without running it: retry-from-step reuses the
// steps recorded before the failed one; a sync run handed over to a workflow reuses what
// it finished. Status must be succeeded, failed or skipped (others are ignored: the step
// runs). A composite step is seeded only when it finished as a whole; steps inside a
// parallel branch can be seeded one by one. The runner must have the seeded outputs.
type SeededStep struct {
	Status      StepStatus
	Attempts    int
	ExecutionID string
	Error       *Error
	Items       *ItemCounts
	StartedAt   time.Time
	FinishedAt  time.Time
}

// RunOptions are one run's options.
type RunOptions struct {
	Seed map[string]SeededStep
	// Versions are the latest versions resolved at run start, by function name, for steps
	// without a pinned version (absent: 0, the runner resolves).
	Versions map[string]int
	// MaxItems bounds a map's items (default DefaultMaxItems); more fails the step
	// (ItemsLimit).
	MaxItems int
}

// DefaultMaxItems is RunOptions.MaxItems's default.
const DefaultMaxItems = 100_000

// RunResult is what Run returns.
type RunResult struct {
	Status     RunStatus // "" when Stopped
	Error      *Error
	OutputFrom Source
	// Stopped: a runner returned ErrStop; nothing was finished, Snapshot has the state.
	Stopped bool
	// Err is a runner error from Settle or Finish (the run may not be recorded).
	Err error
}

// StepState is a step's state as Snapshot shows it.
type StepState struct {
	ID          string      `json:"id"`
	Status      StepStatus  `json:"status"`
	Attempts    int         `json:"attempts"`
	ExecutionID string      `json:"execution_id,omitempty"`
	Error       *Error      `json:"error,omitempty"`
	Items       *ItemCounts `json:"items,omitempty"`
	StartedAt   time.Time   `json:"started_at,omitzero"`
	FinishedAt  time.Time   `json:"finished_at,omitzero"`
	Seeded      bool        `json:"seeded,omitempty"`
}
