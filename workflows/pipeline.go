package workflows

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/pipeline"
)

// Names of a pipeline run's workflow, its chunk child and its query.
const (
	RunWorkflowName   = "RunPipeline"
	ChunkWorkflowName = "RunPipelineChunk"
	StepsQuery        = "steps"
)

// SearchPipeline is the pipeline a run belongs to, for the Temporal Web UI.
var SearchPipeline = temporal.NewSearchAttributeKeyKeyword("LambdaPipeline")

// Map chunking (defaults of RunRef.ChunkThreshold and ChunkItems): a map over more than
// ChunkThreshold items runs its items' first attempts in child workflows of ChunkItems
// items each, one chunk at a time, so the run's history grows by a few events per chunk
// instead of one per item (and each child's by one per item of its chunk). Retries of
// failed items run in the run itself.
const (
	ChunkThreshold = 1000
	ChunkItems     = 500
)

// RunWorkflowID is the workflow ID of pipeline run id.
func RunWorkflowID(id string) string { return "run-" + id }

// RunRef is RunPipeline's input: references and settings, never payloads.
type RunRef struct {
	RunID    string `json:"run_id"`
	Tenant   string `json:"tenant"`
	Pipeline string `json:"pipeline"`
	Version  int    `json:"version"`
	// HeartbeatTimeout is a heartbeating step call's heartbeat timeout.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	// MaxAttempts bounds a step call's retries of platform faults.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// LocalInvokeMax: a call whose function's timeout is at most this runs as a local
	// activity, a longer one as a heartbeating activity (0: always the activity).
	LocalInvokeMax time.Duration `json:"local_invoke_max,omitempty"`
	// ChunkThreshold and ChunkItems override the map chunking defaults (0: default).
	ChunkThreshold int `json:"chunk_threshold,omitempty"`
	ChunkItems     int `json:"chunk_items,omitempty"`
}

func (ref RunRef) chunking() (threshold, items int) {
	threshold, items = ref.ChunkThreshold, ref.ChunkItems
	if threshold <= 0 {
		threshold = ChunkThreshold
	}
	if items <= 0 {
		items = ChunkItems
	}
	return threshold, items
}

// RunOutcome is RunPipeline's result: the status and error summary (the output is in
// PostgreSQL, GET /v1/runs/{id}).
type RunOutcome struct {
	Status string          `json:"status"`
	Error  *pipeline.Error `json:"error,omitempty"`
}

// RunMemo is what the Temporal UI shows for each run.
func RunMemo(ref RunRef) map[string]any {
	return map[string]any{"pipeline": ref.Pipeline, "version": ref.Version, "tenant": ref.Tenant, "run_id": ref.RunID}
}

// compiled caches compiled definitions by the sha256 of their canonical JSON: a
// definition is immutable, so compiling it again (a replay, another run of the same
// version) gives the same program.
var compiled sync.Map // [32]byte → *pipeline.Compiled

func compileDefinition(def []byte) (*pipeline.Compiled, error) {
	key := sha256.Sum256(def)
	if c, ok := compiled.Load(key); ok {
		return c.(*pipeline.Compiled), nil
	}
	d, err := pipeline.Parse(def)
	if err != nil {
		return nil, err
	}
	c, err := pipeline.Compile(d)
	if err != nil {
		return nil, err
	}
	compiled.Store(key, c)
	return c, nil
}

// RunPipeline interprets one pipeline run (DESIGN.md §9): it loads the run's plan, then
// runs the pipeline package's interpreter over a Temporal runner — function calls and
// every read or write of the run's state are activities over the PostgreSQL claim
// check, sleeps and signal timeouts are timers, signals are Temporal signals, branches
// and map items are coroutines. The query "steps" answers the interpreter's snapshot.
func RunPipeline(ctx workflow.Context, ref RunRef) (RunOutcome, error) {
	// "fused-step-records": the run is marked running with its plan's load (one local
	// activity, StartRunPlan), and a function step's call settles the step when it
	// succeeds, in the execution's commit (no SettleStep of its own). Runs started
	// before replay their old shape: RunPlan, MarkRunning, a SettleStep after each call.
	fused := workflow.GetVersion(ctx, "fused-step-records", workflow.DefaultVersion, 1) != workflow.DefaultVersion
	var plan activities.Plan
	planAct, planWhat := a.RunPlan, "load run plan"
	if fused {
		planAct, planWhat = a.StartRunPlan, "start run: load its plan, mark it running"
	}
	err := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, localOptions(planWhat)),
		planAct, ref.RunID).Get(ctx, &plan)
	if err != nil {
		return RunOutcome{}, err
	}
	r := &runner{ref: ref, plan: plan, fused: fused}
	c, err := compileDefinition(plan.Definition)
	if err != nil {
		out := pipeline.RunOutcome{Status: pipeline.RunFailed,
			Error: &pipeline.Error{Type: pipeline.ErrTypePlatform, Message: "the pinned definition does not compile: " + err.Error()}}
		if ferr := r.Finish(ctx, out); ferr != nil {
			return RunOutcome{}, ferr
		}
		return runEnd(r.outcome(out.Status, out.Error))
	}
	it := pipeline.New[workflow.Context](r, c, plan.Options)
	if err := workflow.SetQueryHandler(ctx, StepsQuery, func() ([]pipeline.StepState, error) {
		return it.Snapshot(), nil
	}); err != nil {
		return RunOutcome{}, err
	}
	if !fused {
		if err := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, localOptions("mark running")),
			a.MarkRunning, ref.RunID).Get(ctx, nil); err != nil && ctx.Err() == nil {
			return RunOutcome{}, err
		}
	}
	if fused {
		// LambdaStatus "running" is upserted only once the run outlasts its first workflow
		// task's local activities (ensureRunning): a run that ends within them goes from
		// queued to its final status, and a running status upserted with the final one in
		// the same task completion would never be seen (one visibility write less per run).
		r.start = workflow.Now(ctx)
	} else {
		upsertStatus(ctx, string(pipeline.RunRunning))
	}
	res := it.Run(ctx)
	if res.Err != nil {
		// A step or the outcome could not be recorded (PostgreSQL down past every retry).
		return RunOutcome{}, res.Err
	}
	return runEnd(r.outcome(res.Status, res.Error))
}

// outcome is the workflow's outcome: the status FinishRun recorded, which may differ
// from the interpreter's (the run's error is then in PostgreSQL).
func (r *runner) outcome(status pipeline.RunStatus, e *pipeline.Error) RunOutcome {
	if r.final != "" && r.final != status {
		status, e = r.final, &pipeline.Error{Type: pipeline.ErrTypePlatform,
			Message: "the run was recorded " + string(r.final) + " (its error: GET /v1/runs/" + r.ref.RunID + ")"}
	}
	return RunOutcome{Status: string(status), Error: e}
}

// runEnd ends the workflow in the state matching the run's: completed, failed or
// canceled.
func runEnd(out RunOutcome) (RunOutcome, error) {
	switch pipeline.RunStatus(out.Status) {
	case pipeline.RunSucceeded:
		return out, nil
	case pipeline.RunCanceled:
		return out, temporal.NewCanceledError(out)
	}
	msg := "run failed"
	if out.Error != nil {
		msg = out.Error.Error()
	}
	return out, temporal.NewNonRetryableApplicationError(msg, "RunFailed", nil, out)
}

// runner is the Temporal runner of the interpreter: pipeline.Runner[workflow.Context].
// Workflow code is single-threaded (coroutines switch only where they block), so its
// fields need no lock.
type runner struct {
	ref   RunRef
	plan  activities.Plan
	waits int                // wait_for steps waiting now
	final pipeline.RunStatus // the final status FinishRun recorded

	// items: a map step's item count (from Eval), for the chunk decision.
	items  map[string]int
	chunks map[string]*chunker

	// fused ("fused-step-records"): a function step's successful call settles it.
	// started: a function step's first call's time (the step row's started_at);
	// settledBy: the steps their call settled, with the execution that did.
	fused     bool
	started   map[string]time.Time
	settledBy map[string]string
	// start: when the run started running; statusUp: LambdaStatus "running" upserted.
	start    time.Time
	statusUp bool
}

// RunningStatusAfter: a fused run whose local activities have taken this long upserts
// LambdaStatus "running" before its next one (its workflow task may be completed
// before the run ends: the SDK's workflow task heartbeat, at 80 % of its 10 s timeout).
const RunningStatusAfter = 2 * time.Second

// ensureRunning upserts LambdaStatus "running" once, before the run waits on something
// that ends its workflow task (a timer, an activity, a child workflow), or when long is
// set and the run has been running longer than RunningStatusAfter. Runs of the old
// shape upserted it at their start.
func (r *runner) ensureRunning(ctx workflow.Context, long bool) {
	if !r.fused || r.statusUp || (long && workflow.Now(ctx).Sub(r.start) < RunningStatusAfter) {
		return
	}
	r.statusUp = true
	upsertStatus(ctx, string(pipeline.RunRunning))
}

var _ pipeline.Runner[workflow.Context] = (*runner)(nil)

// callTimeoutMS is the timeout of a call: the step's own, else its function's.
func (r *runner) callTimeoutMS(spec pipeline.CallSpec) int {
	if spec.TimeoutMS > 0 {
		return spec.TimeoutMS
	}
	if t := r.plan.FunctionTimeoutsMS[activities.FunctionKey(spec.Function, spec.Version)]; t > 0 {
		return t
	}
	return DefaultStepTimeoutMS
}

// DefaultStepTimeoutMS is a call's timeout when neither the step nor the plan gives the
// function's (the platform's default function timeout).
const DefaultStepTimeoutMS = 3000

func (r *runner) callRetry() *temporal.RetryPolicy {
	attempts := r.ref.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	return &temporal.RetryPolicy{
		InitialInterval:    200 * time.Millisecond,
		BackoffCoefficient: 2,
		MaximumInterval:    10 * time.Second,
		MaximumAttempts:    int32(attempts),
	}
}

// StepSummary is the summary of a step call's activity in the Temporal UI.
func StepSummary(spec pipeline.CallSpec) string {
	v := "latest"
	if spec.Version > 0 {
		v = fmt.Sprintf("v%d", spec.Version)
	}
	s := fmt.Sprintf("step %s: %s %s", spec.StepID, spec.Function, v)
	if spec.Item >= 0 {
		s += fmt.Sprintf(" (item %d)", spec.Item)
	}
	return s
}

// callStep runs one attempt: a local activity when the call's timeout is at most
// LocalInvokeMax, else a regular activity that heartbeats.
// localCall reports whether a call with this timeout runs as a local activity.
func (r *runner) localCall(timeoutMS int) bool {
	return r.ref.LocalInvokeMax > 0 && time.Duration(timeoutMS)*time.Millisecond <= r.ref.LocalInvokeMax
}

func callStep(ctx workflow.Context, ref RunRef, timeoutMS int, retry *temporal.RetryPolicy, spec pipeline.CallSpec, settleFrom *time.Time) workflow.Future {
	in := activities.CallStepInput{RunID: ref.RunID, Spec: spec, SettleStartedAt: settleFrom}
	stc := time.Duration(timeoutMS)*time.Millisecond + InvokeMargin
	if ref.LocalInvokeMax > 0 && time.Duration(timeoutMS)*time.Millisecond <= ref.LocalInvokeMax {
		return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: stc, RetryPolicy: retry, Summary: StepSummary(spec),
		}), a.CallStep, in)
	}
	hb := ref.HeartbeatTimeout
	if hb <= 0 {
		hb = DefaultHeartbeatTimeout
	}
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: stc, HeartbeatTimeout: hb, RetryPolicy: retry, Summary: StepSummary(spec),
	}), a.CallStep, in)
}

// Call implements pipeline.Runner.
func (r *runner) Call(ctx workflow.Context, spec pipeline.CallSpec) (pipeline.CallResult, error) {
	r.ensureRunning(ctx, r.localCall(r.callTimeoutMS(spec)))
	if threshold, _ := r.ref.chunking(); spec.Item >= 0 && spec.Attempt == 1 && r.items[spec.StepID] > threshold {
		return r.chunkCall(ctx, spec)
	}
	var settleFrom *time.Time
	if r.fused && spec.Item < 0 {
		if r.started == nil {
			r.started, r.settledBy = map[string]time.Time{}, map[string]string{}
		}
		if _, ok := r.started[spec.StepID]; !ok || spec.Attempt == 1 {
			r.started[spec.StepID] = workflow.Now(ctx)
		}
		t := r.started[spec.StepID]
		settleFrom = &t
	}
	var res activities.CallStepResult
	err := callStep(ctx, r.ref, r.callTimeoutMS(spec), r.callRetry(), spec, settleFrom).Get(ctx, &res)
	if err == nil && res.Settled {
		r.settledBy[spec.StepID] = res.ExecutionID
	}
	return res.CallResult, err
}

// Eval implements pipeline.Runner.
func (r *runner) Eval(ctx workflow.Context, spec pipeline.EvalSpec) (pipeline.EvalResult, error) {
	r.ensureRunning(ctx, true)
	var res pipeline.EvalResult
	err := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx,
		localOptions(fmt.Sprintf("step %s: %s", spec.StepID, spec.Kind))),
		a.EvalStep, activities.EvalStepInput{RunID: r.ref.RunID, Spec: spec}).Get(ctx, &res)
	if err == nil && spec.Kind == pipeline.EvalItems && res.Error == nil {
		if r.items == nil {
			r.items = map[string]int{}
		}
		r.items[spec.StepID] = res.Count
	}
	return res, err
}

// Settle implements pipeline.Runner.
func (r *runner) Settle(ctx workflow.Context, rec pipeline.StepRecord) error {
	if r.fused && rec.Status == pipeline.StepSucceeded && rec.Output.Kind == pipeline.OutputCall &&
		rec.Output.ExecutionID != "" && r.settledBy[rec.StepID] == rec.Output.ExecutionID {
		return nil // its call recorded it
	}
	return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx,
		localOptions(fmt.Sprintf("step %s: %s", rec.StepID, rec.Status))),
		a.SettleStep, activities.SettleStepInput{RunID: r.ref.RunID, Record: rec}).Get(ctx, nil)
}

// Sleep implements pipeline.Runner: a durable timer.
func (r *runner) Sleep(ctx workflow.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	r.ensureRunning(ctx, false)
	return workflow.Sleep(ctx, d)
}

// Wait implements pipeline.Runner: the run's Temporal signal named after the wait's
// signal (its payload is already in PostgreSQL), or the timeout's timer, whichever comes
// first. The step and the run are marked waiting meanwhile (LambdaStatus too).
func (r *runner) Wait(ctx workflow.Context, spec pipeline.WaitSpec) (bool, error) {
	if err := r.markWaiting(ctx, spec, true); err != nil {
		return false, err
	}
	r.waits++
	if r.waits == 1 {
		upsertStatus(ctx, string(pipeline.RunWaiting))
	}
	ch := workflow.GetSignalChannel(ctx, spec.Signal)
	tctx, cancelTimer := workflow.WithCancel(ctx)
	timer := workflow.NewTimerWithOptions(tctx, spec.Timeout, workflow.TimerOptions{Summary: "step " + spec.StepID + ": wait for " + spec.Signal})
	var (
		received bool
		werr     error
	)
	sel := workflow.NewSelector(ctx)
	sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) {
		c.ReceiveAsync(nil)
		received = true
	})
	sel.AddFuture(timer, func(f workflow.Future) { werr = f.Get(ctx, nil) })
	sel.Select(ctx)
	cancelTimer()

	mctx := ctx
	if ctx.Err() != nil {
		mctx, _ = workflow.NewDisconnectedContext(ctx)
	}
	merr := r.markWaiting(mctx, spec, false)
	r.waits--
	if r.waits == 0 {
		upsertStatus(mctx, string(pipeline.RunRunning))
		r.statusUp = true
	}
	if !received && werr == nil && ch.ReceiveAsync(nil) {
		// The signal was accepted (its payload stored) before the step stopped waiting.
		received = true
	}
	switch {
	case received:
		return true, merr
	case werr != nil:
		return false, werr
	}
	return false, merr
}

func (r *runner) markWaiting(ctx workflow.Context, spec pipeline.WaitSpec, waiting bool) error {
	what := "waiting for " + spec.Signal
	if !waiting {
		what = "done waiting for " + spec.Signal
	}
	return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, localOptions("step "+spec.StepID+": "+what)),
		a.MarkWaiting, activities.MarkWaitingInput{RunID: r.ref.RunID, Spec: spec, Waiting: waiting}).Get(ctx, nil)
}

// Fork implements pipeline.Runner: coroutines, at most limit at once (all at once for a
// chunked map, whose chunks bound how many calls run).
func (r *runner) Fork(ctx workflow.Context, n, limit int, fn func(workflow.Context, int) error) error {
	if n <= 0 {
		return nil
	}
	if threshold, _ := r.ref.chunking(); limit <= 0 || limit > n || n > threshold {
		limit = n
	}
	cctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	var (
		first                      error
		running, started, finished int
	)
	for i := 0; i < n; i++ {
		if running >= limit {
			if err := workflow.Await(cctx, func() bool { return running < limit }); err != nil {
				break
			}
		}
		if cctx.Err() != nil {
			break
		}
		running++
		started++
		workflow.Go(cctx, func(c workflow.Context) {
			err := fn(c, i)
			running--
			finished++
			if err != nil && first == nil {
				first = err
				cancel()
			}
		})
	}
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	_ = workflow.Await(dctx, func() bool { return finished == started })
	if first == nil && started < n {
		first = cctx.Err()
		if first == nil {
			first = workflow.ErrCanceled
		}
	}
	return first
}

// WithCancel implements pipeline.Runner.
func (r *runner) WithCancel(ctx workflow.Context) (workflow.Context, func()) {
	c, cancel := workflow.WithCancel(ctx)
	return c, func() { cancel() }
}

// Detached implements pipeline.Runner.
func (r *runner) Detached(ctx workflow.Context) workflow.Context {
	c, _ := workflow.NewDisconnectedContext(ctx)
	return c
}

// Now implements pipeline.Runner.
func (r *runner) Now(ctx workflow.Context) time.Time { return workflow.Now(ctx) }

// Finish implements pipeline.Runner: FinishRun through a disconnected context (a
// canceled run is still recorded), retried through a long PostgreSQL outage. The status
// upserted (and the workflow's outcome) is the one FinishRun recorded: an output that
// does not render fails a succeeded run, and a status recorded earlier stays. Runs
// started before FinishRun answered it replay their old shape ("finish-recorded-status").
func (r *runner) Finish(ctx workflow.Context, out pipeline.RunOutcome) error {
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	opts := localOptions("finish run: " + string(out.Status))
	opts.RetryPolicy, opts.ScheduleToCloseTimeout = persistRetry, 30*time.Minute
	recorded := workflow.GetVersion(dctx, "finish-recorded-status", workflow.DefaultVersion, 1) != workflow.DefaultVersion
	var res activities.FinishRunResult
	f := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(dctx, opts),
		a.FinishRun, activities.FinishRunInput{RunID: r.ref.RunID, Outcome: out})
	var err error
	if recorded {
		err = f.Get(dctx, &res)
	} else {
		err = f.Get(dctx, nil)
	}
	if err != nil {
		return err
	}
	status := out.Status
	if res.Status != "" {
		status = res.Status
	}
	r.final = status
	upsertStatus(dctx, string(status))
	return nil
}

// --- map chunks ---

// ChunkRef is RunPipelineChunk's input: the first attempts of items [From, To) of a map
// step, at most Concurrency at once.
type ChunkRef struct {
	Run         RunRef            `json:"run"`
	Spec        pipeline.CallSpec `json:"spec"` // Item and Attempt are set per item
	From        int               `json:"from"`
	To          int               `json:"to"`
	Concurrency int               `json:"concurrency"`
	TimeoutMS   int               `json:"timeout_ms"`
}

// ChunkItem is one item's call outcome, without its payload.
type ChunkItem struct {
	Status pipeline.CallStatus `json:"s"`
	Error  *pipeline.Error     `json:"e,omitempty"`
}

// ChunkResult lists the outcomes of a chunk's items in item order.
type ChunkResult struct {
	Items []ChunkItem `json:"items"`
}

// chunker runs a chunked map step's items: it collects the items' first calls and
// runs them a chunk at a time in a child workflow.
type chunker struct {
	n        int
	returned int // calls that got their outcome
	pending  map[int]workflow.Settable
	futures  map[int]workflow.Future
}

func (r *runner) chunkCall(ctx workflow.Context, spec pipeline.CallSpec) (pipeline.CallResult, error) {
	r.ensureRunning(ctx, false)
	if r.chunks == nil {
		r.chunks = map[string]*chunker{}
	}
	ch := r.chunks[spec.StepID]
	if ch == nil {
		ch = &chunker{n: r.items[spec.StepID], pending: map[int]workflow.Settable{}, futures: map[int]workflow.Future{}}
		r.chunks[spec.StepID] = ch
		s := spec
		workflow.Go(ctx, func(c workflow.Context) { r.runChunks(c, ch, s) })
	}
	f, set := workflow.NewFuture(ctx)
	ch.pending[spec.Item] = set
	ch.futures[spec.Item] = f
	if err := workflow.Await(ctx, f.IsReady); err != nil {
		return pipeline.CallResult{}, err
	}
	var it ChunkItem
	err := f.Get(ctx, &it)
	ch.returned++
	if err != nil {
		return pipeline.CallResult{}, err
	}
	return pipeline.CallResult{Status: it.Status, Error: it.Error}, nil
}

// runChunks runs the chunks one after the other; the step's max_concurrency applies
// within each.
func (r *runner) runChunks(ctx workflow.Context, ch *chunker, spec pipeline.CallSpec) {
	limit := 10
	if s := r.planStep(spec.StepID); s != nil && s.MaxConcurrency > 0 {
		limit = s.MaxConcurrency
	}
	_, size := r.ref.chunking()
	for from := 0; from < ch.n; from += size {
		to := min(from+size, ch.n)
		if err := workflow.Await(ctx, func() bool {
			for i := from; i < to; i++ {
				if ch.pending[i] == nil {
					return false
				}
			}
			return true
		}); err != nil {
			r.failChunk(ch, from, ch.n, err)
			return
		}
		cs := spec
		cs.Item, cs.Attempt = -1, 1
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:    fmt.Sprintf("%s-%s-%d", RunWorkflowID(r.ref.RunID), spec.StepID, from/size),
			StaticSummary: fmt.Sprintf("step %s: items %d-%d", spec.StepID, from, to-1),
		})
		var res ChunkResult
		err := workflow.ExecuteChildWorkflow(cctx, ChunkWorkflowName, ChunkRef{Run: r.ref, Spec: cs, From: from, To: to,
			Concurrency: limit, TimeoutMS: r.callTimeoutMS(spec)}).Get(ctx, &res)
		if err == nil && len(res.Items) != to-from {
			err = fmt.Errorf("chunk %d-%d answered %d items", from, to-1, len(res.Items))
		}
		if err != nil {
			r.failChunk(ch, from, ch.n, err)
			return
		}
		for i := from; i < to; i++ {
			ch.pending[i].SetValue(res.Items[i-from])
		}
		// Let the items take their outcomes first: a failed one cancels the step (ctx)
		// before the next chunk starts.
		if err := workflow.Await(ctx, func() bool { return ch.returned >= to }); err != nil {
			r.failChunk(ch, to, ch.n, err)
			return
		}
	}
}

func (r *runner) failChunk(ch *chunker, from, to int, err error) {
	for i := from; i < to; i++ {
		if s := ch.pending[i]; s != nil && !ch.futures[i].IsReady() {
			s.SetError(err)
		}
	}
}

// planStep is the compiled step id of the run's definition.
func (r *runner) planStep(id string) *pipeline.CompiledStep {
	c, err := compileDefinition(r.plan.Definition)
	if err != nil {
		return nil
	}
	return c.Step(id)
}

// RunPipelineChunk runs the first attempts of a chunk of a map step's items, at most
// Concurrency at once, and answers their outcomes in item order. A platform fault that
// outlived the call's retries is the item's failure (PlatformError).
func RunPipelineChunk(ctx workflow.Context, ref ChunkRef) (ChunkResult, error) {
	n := ref.To - ref.From
	out := ChunkResult{Items: make([]ChunkItem, n)}
	r := &runner{ref: ref.Run}
	retry := r.callRetry()
	err := r.Fork(ctx, n, ref.Concurrency, func(c workflow.Context, i int) error {
		spec := ref.Spec
		spec.Item, spec.Attempt = ref.From+i, 1
		var res pipeline.CallResult
		if err := callStep(c, ref.Run, ref.TimeoutMS, retry, spec, nil).Get(c, &res); err != nil {
			if c.Err() != nil {
				return err
			}
			out.Items[i] = ChunkItem{Status: pipeline.CallFailed, Error: &pipeline.Error{Type: pipeline.ErrTypePlatform, Message: err.Error()}}
			return nil
		}
		out.Items[i] = ChunkItem{Status: res.Status, Error: res.Error}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return ChunkResult{}, temporal.NewCanceledError()
	}
	if err != nil && !errors.Is(err, workflow.ErrCanceled) {
		return ChunkResult{}, err
	}
	return out, nil
}
