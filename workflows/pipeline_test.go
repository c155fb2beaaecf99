package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/workflows"
)

// fakeRuns is the core's run operations in memory (activities.Runs): a MemRunner holds
// the run's payloads and evaluates its expressions, as the core does over PostgreSQL.
type fakeRuns struct {
	t    *testing.T
	def  []byte
	prog *pipeline.Compiled
	opts pipeline.RunOptions
	mem  *pipeline.MemRunner

	mu        sync.Mutex
	calls     []pipeline.CallSpec
	settled   map[string]pipeline.StepRecord
	settles   map[string]int
	finished  []pipeline.RunOutcome
	output    json.RawMessage
	waiting   []string // "+signal" / "-signal"
	running   int
	payloads  map[string]json.RawMessage // signal → payload (stored before SignalRun)
	platform  map[string]int             // function → platform faults left to answer
	onCall    func(ctx context.Context, spec pipeline.CallSpec)
	timeoutMS map[string]int
	records   pipeline.RunStatus // the status FinishRun records instead of the outcome's
}

func newFakeRuns(t *testing.T, def, input string) *fakeRuns {
	t.Helper()
	d, err := pipeline.Parse([]byte(def))
	require.NoError(t, err)
	prog, err := pipeline.Compile(d)
	require.NoError(t, err)
	canon, err := d.Canonical()
	require.NoError(t, err)
	f := &fakeRuns{t: t, def: canon, prog: prog, settled: map[string]pipeline.StepRecord{}, settles: map[string]int{},
		payloads: map[string]json.RawMessage{}, platform: map[string]int{}}
	f.mem = pipeline.NewMemRunner(prog, pipeline.MemOptions{RunID: "r1", Input: json.RawMessage(input), Caller: handlers})
	return f
}

// handlers are the fake functions.
func handlers(ctx context.Context, c pipeline.FunctionCall) (pipeline.Outcome, error) {
	in, err := pipeline.DecodeJSON(c.Input)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	okv := func(v any) (pipeline.Outcome, error) {
		b, err := pipeline.AppendJSON(nil, v)
		return pipeline.Outcome{Status: pipeline.CallSucceeded, Output: b}, err
	}
	switch c.Function {
	case "echo":
		return okv(in)
	case "add1", "double", "square":
		m, _ := in.(map[string]any)
		n, _ := m["n"].(int64)
		switch c.Function {
		case "add1":
			n++
		case "double":
			n *= 2
		default:
			n *= n
		}
		return okv(map[string]any{"n": n})
	case "fail":
		return pipeline.Outcome{Status: pipeline.CallFailed, Error: &pipeline.Error{Type: "ValueError", Message: "boom"}}, nil
	case "slow":
		return pipeline.Outcome{Status: pipeline.CallTimeout}, nil
	case "flaky": // fails its first two attempts
		if c.Attempt < 3 {
			return pipeline.Outcome{Status: pipeline.CallFailed, Error: &pipeline.Error{Type: "IOError", Message: fmt.Sprintf("attempt %d", c.Attempt)}}, nil
		}
		return okv(map[string]any{"attempt": c.Attempt})
	case "block":
		<-ctx.Done()
		return pipeline.Outcome{}, ctx.Err()
	}
	return pipeline.Outcome{}, fmt.Errorf("no function %q", c.Function)
}

func (f *fakeRuns) PlanRun(_ context.Context, runID string) (activities.Plan, error) {
	return activities.Plan{Tenant: "default", RunID: runID, Pipeline: "p", Version: 1, Definition: f.def, Options: f.opts,
		FunctionTimeoutsMS: f.timeoutMS}, nil
}

func (f *fakeRuns) CallStep(ctx context.Context, _ string, spec pipeline.CallSpec) (pipeline.CallResult, error) {
	f.mu.Lock()
	f.calls = append(f.calls, spec)
	hook := f.onCall
	fault := f.platform[spec.Function] > 0
	if fault {
		f.platform[spec.Function]--
	}
	f.mu.Unlock()
	if hook != nil {
		hook(ctx, spec)
	}
	if fault {
		return pipeline.CallResult{}, faultUnavailable
	}
	return f.mem.Call(ctx, spec)
}

var faultUnavailable = fault.New(fault.Unavailable, "runtime runtime-python unavailable")

func (f *fakeRuns) StartPlanRun(ctx context.Context, runID string) (activities.Plan, error) {
	if err := f.MarkRunning(ctx, runID); err != nil {
		return activities.Plan{}, err
	}
	return f.PlanRun(ctx, runID)
}

// CallAndSettleStep settles a function step whose call succeeded as the core does: the
// record the interpreter would settle, through SettleStep (counted in settles).
func (f *fakeRuns) CallAndSettleStep(ctx context.Context, runID string, spec pipeline.CallSpec, started time.Time) (pipeline.CallResult, bool, error) {
	res, err := f.CallStep(ctx, runID, spec)
	if err != nil || res.Status != pipeline.CallSucceeded || spec.Item >= 0 {
		return res, false, err
	}
	err = f.SettleStep(ctx, runID, pipeline.StepRecord{StepID: spec.StepID, Status: pipeline.StepSucceeded,
		Attempts: spec.Attempt, ExecutionID: res.ExecutionID, StartedAt: started, FinishedAt: started,
		Output: pipeline.OutputRef{Kind: pipeline.OutputCall, ExecutionID: res.ExecutionID}})
	return res, err == nil, err
}

func (f *fakeRuns) EvalStep(ctx context.Context, _ string, spec pipeline.EvalSpec) (pipeline.EvalResult, error) {
	return f.mem.Eval(ctx, spec)
}

func (f *fakeRuns) SettleStep(ctx context.Context, _ string, rec pipeline.StepRecord) error {
	f.mu.Lock()
	f.settled[rec.StepID] = rec
	f.settles[rec.StepID]++
	if rec.Output.Kind == pipeline.OutputSignal {
		rec.Output = pipeline.OutputRef{Kind: pipeline.OutputLiteral, Literal: f.payloads[f.prog.Step(rec.StepID).Def.WaitFor.Signal]}
	}
	f.mu.Unlock()
	return f.mem.Settle(ctx, rec)
}

func (f *fakeRuns) MarkWaiting(_ context.Context, _ string, spec pipeline.WaitSpec, waiting bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	sign := "-"
	if waiting {
		sign = "+"
	}
	f.waiting = append(f.waiting, sign+spec.Signal)
	return nil
}

func (f *fakeRuns) MarkRunning(context.Context, string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running++
	return nil
}

func (f *fakeRuns) FinishRun(_ context.Context, _ string, out pipeline.RunOutcome) (pipeline.RunStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finished = append(f.finished, out)
	if f.records != "" {
		return f.records, nil
	}
	if out.Status == pipeline.RunSucceeded {
		f.output = json.RawMessage("null")
		if out.OutputFrom.Step != "" {
			f.output, _ = f.mem.StepOutput(out.OutputFrom.Step)
		}
	}
	return out.Status, nil
}

func (f *fakeRuns) callsOf(step string) []pipeline.CallSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []pipeline.CallSpec
	for _, c := range f.calls {
		if c.StepID == step {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeRuns) stepOutput(t *testing.T, id string) string {
	t.Helper()
	out, ok := f.mem.StepOutput(id)
	require.True(t, ok, "step %s settled", id)
	return string(out)
}

// pipelineEnv is a test workflow environment running RunPipeline over a fakeRuns.
type pipelineEnv struct {
	env      *testsuite.TestWorkflowEnvironment
	f        *fakeRuns
	ref      workflows.RunRef
	statuses []string
	local    map[string]int // local activities started, by type
	regular  map[string]int
	children int
}

func newPipelineEnv(t *testing.T, def, input string) *pipelineEnv {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	s.SetLogger(tlog.NewStructuredLogger(slog.New(slog.DiscardHandler)))
	p := &pipelineEnv{env: s.NewTestWorkflowEnvironment(), f: newFakeRuns(t, def, input),
		ref:   workflows.RunRef{RunID: "r1", Tenant: "default", Pipeline: "p", Version: 1, LocalInvokeMax: 10 * time.Second, MaxAttempts: 4},
		local: map[string]int{}, regular: map[string]int{}}
	acts := activities.WithRuns(activities.New(activities.Config{}, nil, nil, zap.NewNop()), p.f)
	p.env.RegisterWorkflowWithOptions(workflows.RunPipeline, workflow.RegisterOptions{Name: workflows.RunWorkflowName})
	p.env.RegisterWorkflowWithOptions(workflows.RunPipelineChunk, workflow.RegisterOptions{Name: workflows.ChunkWorkflowName})
	p.env.RegisterActivity(acts)
	p.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if v, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(workflows.SearchStatus); ok {
			p.statuses = append(p.statuses, v)
		}
	}).Return(nil).Maybe()
	var mu sync.Mutex
	p.env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		mu.Lock()
		p.local[info.ActivityType.Name]++
		mu.Unlock()
	})
	p.env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		mu.Lock()
		p.regular[info.ActivityType.Name]++
		mu.Unlock()
	})
	p.env.SetOnChildWorkflowStartedListener(func(*workflow.Info, workflow.Context, converter.EncodedValues) { p.children++ })
	return p
}

func (p *pipelineEnv) run(t *testing.T) (workflows.RunOutcome, error) {
	t.Helper()
	p.env.ExecuteWorkflow(workflows.RunWorkflowName, p.ref)
	require.True(t, p.env.IsWorkflowCompleted())
	var out workflows.RunOutcome
	err := p.env.GetWorkflowError()
	if err == nil {
		require.NoError(t, p.env.GetWorkflowResult(&out))
	}
	return out, err
}

func (p *pipelineEnv) steps(t *testing.T) map[string]pipeline.StepState {
	t.Helper()
	v, err := p.env.QueryWorkflow(workflows.StepsQuery)
	require.NoError(t, err)
	var list []pipeline.StepState
	require.NoError(t, v.Get(&list))
	out := map[string]pipeline.StepState{}
	for _, s := range list {
		out[s.ID] = s
	}
	return out
}

func TestRunPipelineSequence(t *testing.T) {
	t.Parallel()
	p := newPipelineEnv(t, `{"steps":[
	  {"id":"a","function":"add1"},
	  {"id":"b","function":"double","version":2},
	  {"id":"c","function":"add1","input":{"n":"${steps.b.output.n + input.n}"}}]}`, `{"n":1}`)
	p.f.opts = pipeline.RunOptions{Versions: map[string]int{"add1": 7}}
	out, err := p.run(t)
	require.NoError(t, err)
	require.Equal(t, workflows.RunOutcome{Status: "succeeded"}, out)
	require.JSONEq(t, `{"n":6}`, string(p.f.output), "(1+1)*2 + 1 + 1")
	require.Equal(t, []string{"succeeded"}, p.statuses, "no running status upserted in the run's only workflow task")
	require.Equal(t, 1, p.f.running)
	require.Len(t, p.f.finished, 1)
	for _, id := range []string{"a", "b", "c"} {
		require.Equal(t, 1, p.f.settles[id], "step %s recorded once", id)
		require.Equal(t, pipeline.StepSucceeded, p.f.settled[id].Status)
		require.Len(t, p.f.callsOf(id), 1)
	}
	require.Equal(t, 7, p.f.callsOf("a")[0].Version, "the version resolved at run start")
	require.Equal(t, 2, p.f.callsOf("b")[0].Version, "the pinned version")
	require.Equal(t, pipeline.Source{Step: "a"}, p.f.callsOf("b")[0].InputFrom)
	require.Equal(t, 3, p.local["CallStep"], "short functions are local activities")
	require.Zero(t, p.regular["CallStep"])
	// Each call settled its step (one commit): no SettleStep, no MarkRunning of their own.
	require.Zero(t, p.local["SettleStep"], "the calls settled their steps")
	require.Zero(t, p.local["MarkRunning"], "marked running with the plan's load")
	require.Equal(t, 1, p.local["StartRunPlan"])
	require.Equal(t, 5, sumOf(p.local), "plan, three calls, finish")
	st := p.steps(t)
	require.Equal(t, pipeline.StepSucceeded, st["c"].Status)
	require.Equal(t, 1, st["c"].Attempts)
	require.Equal(t, pipeline.StepExecutionID("r1", "c", -1), p.f.settled["c"].ExecutionID)
}

func sumOf(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// A step whose calls fail is settled failed by its own SettleStep, after its last
// attempt; a step whose call succeeds after a failed attempt is settled by that call.
func TestRunPipelineFusedSettleOnlyOnSuccess(t *testing.T) {
	t.Parallel()
	p := newPipelineEnv(t, `{"steps":[
	  {"id":"a","function":"flaky","retry":{"max_attempts":3,"initial_interval_ms":1}},
	  {"id":"b","function":"fail","retry":{"max_attempts":2,"initial_interval_ms":1}}]}`, `{}`)
	_, err := p.run(t)
	require.Error(t, err)
	require.Len(t, p.f.callsOf("a"), 3)
	require.Len(t, p.f.callsOf("b"), 2)
	require.Equal(t, pipeline.StepSucceeded, p.f.settled["a"].Status)
	require.Equal(t, 3, p.f.settled["a"].Attempts, "settled by its third call")
	require.Equal(t, pipeline.StepFailed, p.f.settled["b"].Status)
	require.Equal(t, 1, p.f.settles["a"])
	require.Equal(t, 1, p.f.settles["b"])
	require.Equal(t, 1, p.local["SettleStep"], "only the failed step's own")
}

func TestRunPipelineLongFunctionHeartbeats(t *testing.T) {
	t.Parallel()
	p := newPipelineEnv(t, `{"steps":[{"id":"a","function":"add1"},{"id":"b","function":"add1","timeout_ms":60000}]}`, `{"n":1}`)
	p.f.timeoutMS = map[string]int{activities.FunctionKey("add1", 0): 20_000}
	p.ref.HeartbeatTimeout = time.Second
	out, err := p.run(t)
	require.NoError(t, err)
	require.Equal(t, "succeeded", out.Status)
	require.Equal(t, 2, p.regular["CallStep"], "timeouts above LocalInvokeMax run as heartbeating activities")
	require.Zero(t, p.local["CallStep"])
	require.JSONEq(t, `{"n":3}`, string(p.f.output))
}

func TestRunPipelineEveryStepKind(t *testing.T) {
	t.Parallel()
	p := newPipelineEnv(t, `{"steps":[
	  {"id":"start","function":"echo"},
	  {"id":"skipme","function":"fail","if":"input.n > 100"},
	  {"id":"m","map":{"items":"input.list","max_concurrency":2,"step":{"function":"square","input":{"n":"${item}"}}}},
	  {"id":"par","parallel":{"x":[{"id":"x1","function":"add1","input":{"n":"${input.n}"}}],"y":[{"id":"y1","function":"double"},{"id":"y2","function":"add1"}]}},
	  {"id":"nap","sleep_ms":60000},
	  {"id":"approve","wait_for":{"signal":"approval","timeout_ms":3600000}},
	  {"id":"last","function":"echo","input":{"m":"${steps.m.output}","par":"${steps.par.output}","ok":"${steps.approve.output.ok}","skipped":"${steps.skipme.status}"}}]}`,
		`{"n":3,"list":[1,2,3,4]}`)
	p.f.payloads["approval"] = json.RawMessage(`{"ok":true}`)
	var statusesAtSignal []string
	p.env.RegisterDelayedCallback(func() {
		statusesAtSignal = append([]string(nil), p.statuses...)
		p.env.SignalWorkflow("approval", nil)
	}, 10*time.Minute)
	out, err := p.run(t)
	require.NoError(t, err)
	require.Equal(t, "succeeded", out.Status)
	require.JSONEq(t, `{"m":[{"n":1},{"n":4},{"n":9},{"n":16}],"par":{"x":{"n":4},"y":{"n":1}},"ok":true,"skipped":"skipped"}`, string(p.f.output))
	require.Equal(t, pipeline.StepSkipped, p.f.settled["skipme"].Status)
	require.Empty(t, p.f.callsOf("skipme"))
	require.Equal(t, &pipeline.ItemCounts{Total: 4, Succeeded: 4}, p.f.settled["m"].Items)
	require.Len(t, p.f.callsOf("m"), 4)
	require.Equal(t, pipeline.StepSucceeded, p.f.settled["nap"].Status)
	require.GreaterOrEqual(t, p.f.settled["nap"].FinishedAt.Sub(p.f.settled["nap"].StartedAt), time.Minute, "a durable timer")
	require.Equal(t, []string{"+approval", "-approval"}, p.f.waiting)
	require.Equal(t, []string{"running", "waiting"}, statusesAtSignal)
	require.Equal(t, []string{"running", "waiting", "running", "succeeded"}, p.statuses)
	require.Zero(t, p.children, "a small map runs in the run's own workflow")
}

func TestRunPipelineRetries(t *testing.T) {
	t.Parallel()
	t.Run("handler failures follow the step's retry policy", func(t *testing.T) {
		t.Parallel()
		p := newPipelineEnv(t, `{"steps":[{"id":"a","function":"flaky","retry":{"max_attempts":3,"initial_interval_ms":1000,"backoff":2}}]}`, `{}`)
		out, err := p.run(t)
		require.NoError(t, err)
		require.Equal(t, "succeeded", out.Status)
		calls := p.f.callsOf("a")
		require.Len(t, calls, 3)
		for i, c := range calls {
			require.Equal(t, i+1, c.Attempt, "one activity per attempt, numbered by the interpreter")
		}
		require.Equal(t, 3, p.f.settled["a"].Attempts)
		require.JSONEq(t, `{"attempt":3}`, string(p.f.output))
		require.Equal(t, []string{"running", "succeeded"}, p.statuses, "running before the backoff's timer")
	})
	t.Run("a handler failure is never retried by Temporal", func(t *testing.T) {
		t.Parallel()
		p := newPipelineEnv(t, `{"steps":[{"id":"a","function":"fail"},{"id":"b","function":"echo"}]}`, `{}`)
		out, err := p.run(t)
		require.Error(t, err)
		var appErr *temporal.ApplicationError
		require.ErrorAs(t, err, &appErr)
		require.Equal(t, "RunFailed", appErr.Type())
		require.Len(t, p.f.callsOf("a"), 1)
		require.Empty(t, p.f.callsOf("b"))
		require.Equal(t, pipeline.RunFailed, p.f.finished[0].Status)
		require.Equal(t, &pipeline.Error{Type: "ValueError", Message: "boom", Step: "a"}, p.f.finished[0].Error)
		require.Equal(t, []string{"failed"}, p.statuses)
		_ = out
	})
	t.Run("a handler timeout is a result", func(t *testing.T) {
		t.Parallel()
		p := newPipelineEnv(t, `{"steps":[{"id":"a","function":"slow","retry":{"max_attempts":2,"initial_interval_ms":10}}]}`, `{}`)
		_, err := p.run(t)
		require.Error(t, err)
		require.Len(t, p.f.callsOf("a"), 2, "the step's policy, not Temporal's")
		require.Equal(t, pipeline.ErrTypeTimeout, p.f.finished[0].Error.Type)
	})
	t.Run("platform faults are retried by the activity", func(t *testing.T) {
		t.Parallel()
		p := newPipelineEnv(t, `{"steps":[{"id":"a","function":"add1"}]}`, `{"n":1}`)
		p.f.platform["add1"] = 2
		out, err := p.run(t)
		require.NoError(t, err)
		require.Equal(t, "succeeded", out.Status)
		calls := p.f.callsOf("a")
		require.Len(t, calls, 3)
		for _, c := range calls {
			require.Equal(t, 1, c.Attempt, "the same attempt, retried by Temporal")
		}
		require.Equal(t, 1, p.f.settled["a"].Attempts)
	})
	t.Run("platform faults past the activity's attempts fail the step", func(t *testing.T) {
		t.Parallel()
		p := newPipelineEnv(t, `{"steps":[{"id":"a","function":"add1","retry":{"max_attempts":3}}]}`, `{"n":1}`)
		p.f.platform["add1"] = 100
		_, err := p.run(t)
		require.Error(t, err)
		require.Len(t, p.f.callsOf("a"), p.ref.MaxAttempts, "a platform fault is not retried by the step's policy")
		require.Equal(t, pipeline.ErrTypePlatform, p.f.finished[0].Error.Type)
	})
}

func TestRunPipelineCatch(t *testing.T) {
	t.Parallel()
	p := newPipelineEnv(t, `{"steps":[
	  {"id":"a","function":"echo"},
	  {"id":"b","function":"fail","catch":"d"},
	  {"id":"c","function":"echo"},
	  {"id":"d","function":"echo"}]}`, `{"n":1}`)
	out, err := p.run(t)
	require.NoError(t, err)
	require.Equal(t, "succeeded", out.Status)
	require.Equal(t, pipeline.StepFailed, p.f.settled["b"].Status)
	require.Equal(t, pipeline.StepSkipped, p.f.settled["c"].Status)
	require.JSONEq(t, `{"error":{"type":"ValueError","message":"boom"},"step":"b"}`, string(p.f.output))
}

func TestRunPipelineCancelDuringMap(t *testing.T) {
	t.Parallel()
	p := newPipelineEnv(t, `{"steps":[
	  {"id":"m","map":{"items":"input","max_concurrency":3,"step":{"function":"block"}}},
	  {"id":"after","function":"echo"}]}`, `[1,2,3,4,5,6,7,8,9,10]`)
	var once sync.Once
	started := make(chan struct{}, 10)
	p.f.onCall = func(ctx context.Context, spec pipeline.CallSpec) {
		started <- struct{}{}
		if len(started) == 3 {
			once.Do(func() { go p.env.CancelWorkflow() })
		}
	}
	_, err := p.run(t)
	require.Error(t, err)
	var canceled *temporal.CanceledError
	require.ErrorAs(t, err, &canceled)
	require.Len(t, p.f.callsOf("m"), 3, "no item starts after the cancel")
	require.Empty(t, p.f.callsOf("after"))
	require.Equal(t, pipeline.StepCanceled, p.f.settled["m"].Status)
	require.Len(t, p.f.finished, 1)
	require.Equal(t, pipeline.RunCanceled, p.f.finished[0].Status)
	require.Equal(t, "canceled", p.statuses[len(p.statuses)-1])
}

func TestRunPipelineSignalTimeout(t *testing.T) {
	t.Parallel()
	t.Run("with on_timeout", func(t *testing.T) {
		t.Parallel()
		p := newPipelineEnv(t, `{"steps":[{"id":"w","wait_for":{"signal":"go","timeout_ms":60000,"on_timeout":{"default":true}}},{"id":"e","function":"echo"}]}`, `{}`)
		out, err := p.run(t)
		require.NoError(t, err)
		require.Equal(t, "succeeded", out.Status)
		require.JSONEq(t, `{"default":true}`, string(p.f.output))
		require.Equal(t, []string{"+go", "-go"}, p.f.waiting)
	})
	t.Run("without on_timeout", func(t *testing.T) {
		t.Parallel()
		p := newPipelineEnv(t, `{"steps":[{"id":"w","wait_for":{"signal":"go","timeout_ms":60000}},{"id":"e","function":"echo"}]}`, `{}`)
		_, err := p.run(t)
		require.Error(t, err)
		require.Equal(t, pipeline.ErrTypeWaitTimeout, p.f.finished[0].Error.Type)
		require.Empty(t, p.f.callsOf("e"))
		require.Equal(t, []string{"waiting", "running", "failed"}, p.statuses, "waiting is the first status the run shows")
	})
	t.Run("the signal before the timeout", func(t *testing.T) {
		t.Parallel()
		p := newPipelineEnv(t, `{"steps":[{"id":"w","wait_for":{"signal":"go","timeout_ms":60000}}]}`, `{}`)
		p.f.payloads["go"] = json.RawMessage(`"yes"`)
		p.env.RegisterDelayedCallback(func() { p.env.SignalWorkflow("go", nil) }, 59*time.Second)
		_, err := p.run(t)
		require.NoError(t, err)
		require.JSONEq(t, `"yes"`, string(p.f.output))
	})
}

func TestRunPipelineLargeMapRunsInChunks(t *testing.T) {
	t.Parallel()
	const n = 53
	list := make([]int, n)
	for i := range list {
		list[i] = i
	}
	input, _ := json.Marshal(map[string]any{"list": list})
	p := newPipelineEnv(t, `{"steps":[{"id":"m","map":{"items":"input.list","max_concurrency":4,"step":{"function":"echo"}}}]}`, string(input))
	p.ref.ChunkThreshold, p.ref.ChunkItems = 20, 10
	out, err := p.run(t)
	require.NoError(t, err)
	require.Equal(t, "succeeded", out.Status)
	require.Equal(t, 6, p.children, "one child workflow per chunk of items")
	calls := p.f.callsOf("m")
	require.Len(t, calls, n)
	items := make([]int, 0, n)
	for _, c := range calls {
		items = append(items, c.Item)
	}
	sort.Ints(items)
	for i, it := range items {
		require.Equal(t, i, it, "every item called once")
	}
	var got []int
	require.NoError(t, json.Unmarshal(p.f.output, &got))
	require.Equal(t, list, got, "outputs in item order")
	require.Equal(t, &pipeline.ItemCounts{Total: n, Succeeded: n}, p.f.settled["m"].Items)
	require.Zero(t, p.local["CallStep"]-n, "each item called once, in its chunk")

	// At the threshold, the map runs in the run itself.
	p = newPipelineEnv(t, `{"steps":[{"id":"m","map":{"items":"input.list","step":{"function":"echo"}}}]}`, string(input))
	p.ref.ChunkThreshold, p.ref.ChunkItems = n, 10
	_, err = p.run(t)
	require.NoError(t, err)
	require.Zero(t, p.children)
}

func TestRunPipelineLargeMapFailures(t *testing.T) {
	t.Parallel()
	input, _ := json.Marshal(make([]int, 25))
	t.Run("retried in the run", func(t *testing.T) {
		t.Parallel()
		p := newPipelineEnv(t, `{"steps":[{"id":"m","map":{"items":"input","step":{"function":"flaky","retry":{"max_attempts":3,"initial_interval_ms":10}}}}]}`, string(input))
		p.ref.ChunkThreshold, p.ref.ChunkItems = 20, 10
		out, err := p.run(t)
		require.NoError(t, err)
		require.Equal(t, "succeeded", out.Status)
		attempts := map[int]int{}
		for _, c := range p.f.callsOf("m") {
			attempts[c.Attempt]++
		}
		require.Equal(t, map[int]int{1: 25, 2: 25, 3: 25}, attempts, "first attempts in the chunks, the retries in the run")
		require.Equal(t, 3, p.children)
	})
	t.Run("the first failure fails the step", func(t *testing.T) {
		t.Parallel()
		p := newPipelineEnv(t, `{"steps":[{"id":"m","map":{"items":"input","step":{"function":"fail"}}}]}`, string(input))
		p.ref.ChunkThreshold, p.ref.ChunkItems = 20, 10
		_, err := p.run(t)
		require.Error(t, err)
		require.Equal(t, pipeline.RunFailed, p.f.finished[0].Status)
		require.Equal(t, "ValueError", p.f.finished[0].Error.Type)
		require.Contains(t, p.f.finished[0].Error.Message, "item 0: boom")
		require.Len(t, p.f.callsOf("m"), 10, "the next chunks do not start")
		require.Equal(t, 1, p.children)
	})
}

func TestRunPipelinePlanErrorIsNotRecorded(t *testing.T) {
	t.Parallel()
	p := newPipelineEnv(t, `{"steps":[{"id":"a","function":"echo"}]}`, `{}`)
	p.env.OnActivity("StartRunPlan", mock.Anything, mock.Anything).Return(activities.Plan{},
		temporal.NewNonRetryableApplicationError("run plan: run not found", "not_found", errors.New("no run")))
	_, err := p.run(t)
	require.Error(t, err)
	require.Empty(t, p.f.finished)
}

func TestStepSummary(t *testing.T) {
	t.Parallel()
	require.Equal(t, "step a: resize v3", workflows.StepSummary(pipeline.CallSpec{StepID: "a", Function: "resize", Version: 3, Item: -1}))
	require.Equal(t, "step m: resize v3 (item 7)", workflows.StepSummary(pipeline.CallSpec{StepID: "m", Function: "resize", Version: 3, Item: 7}))
}

func TestRunPipelineTimeout(t *testing.T) {
	t.Parallel()
	p := newPipelineEnv(t, `{"timeout_ms":5000,"steps":[{"id":"a","function":"echo"},{"id":"w","wait_for":{"signal":"never","timeout_ms":60000}}]}`, `{}`)
	_, err := p.run(t)
	require.Error(t, err)
	require.Equal(t, pipeline.RunFailed, p.f.finished[0].Status)
	require.Equal(t, pipeline.ErrTypeRunTimeout, p.f.finished[0].Error.Type)
	require.Equal(t, pipeline.StepCanceled, p.f.settled["w"].Status, "the step in flight is canceled by the run's timer")
	require.Equal(t, []string{"+never", "-never"}, p.f.waiting, "no longer waiting once canceled")
	require.Equal(t, "failed", p.statuses[len(p.statuses)-1])
}

func TestRunPipelineParallelFailureCancelsTheOtherBranch(t *testing.T) {
	t.Parallel()
	p := newPipelineEnv(t, `{"steps":[{"id":"par","parallel":{
	  "a":[{"id":"a1","function":"fail"}],
	  "b":[{"id":"b1","sleep_ms":60000},{"id":"b2","function":"echo"}]}}]}`, `{}`)
	_, err := p.run(t)
	require.Error(t, err)
	require.Equal(t, &pipeline.Error{Type: "ValueError", Message: "boom", Step: "a1"}, p.f.finished[0].Error)
	require.Equal(t, pipeline.StepCanceled, p.f.settled["b1"].Status)
	require.Empty(t, p.f.callsOf("b2"))
	require.Equal(t, pipeline.StepFailed, p.f.settled["par"].Status)
}

func TestRunPipelineUpsertsTheStatusFinishRunRecorded(t *testing.T) {
	t.Parallel()
	// The output template does not render: the core records the run failed though the
	// interpreter finished it succeeded. LambdaStatus and the workflow say failed too.
	p := newPipelineEnv(t, `{"steps":[{"id":"a","function":"add1"}]}`, `{"n":1}`)
	p.f.records = pipeline.RunFailed
	_, err := p.run(t)
	require.Error(t, err)
	var app *temporal.ApplicationError
	require.ErrorAs(t, err, &app)
	require.Equal(t, "RunFailed", app.Type())
	require.Equal(t, []string{"failed"}, p.statuses)
	require.Len(t, p.f.finished, 1)
	require.Equal(t, pipeline.RunSucceeded, p.f.finished[0].Status)
}
