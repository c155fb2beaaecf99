package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// handler is a fake function.
type handler func(ctx context.Context, c FunctionCall, in any) (Outcome, error)

// funcs is a fake platform: named handlers, and a log of every call.
type funcs struct {
	handlers map[string]handler
	mu       sync.Mutex
	calls    []FunctionCall
}

func newFuncs(extra map[string]handler) *funcs {
	f := &funcs{handlers: map[string]handler{
		"echo": func(_ context.Context, _ FunctionCall, in any) (Outcome, error) { return ok(in), nil },
		"double": func(_ context.Context, _ FunctionCall, in any) (Outcome, error) {
			n := in.(map[string]any)["n"].(int64)
			return ok(map[string]any{"n": n * 2}), nil
		},
		"add1": func(_ context.Context, _ FunctionCall, in any) (Outcome, error) {
			n := in.(map[string]any)["n"].(int64)
			return ok(map[string]any{"n": n + 1}), nil
		},
		"fail": func(context.Context, FunctionCall, any) (Outcome, error) {
			return Outcome{Status: CallFailed, Error: &Error{Type: "ValueError", Message: "boom"}}, nil
		},
		"block": func(ctx context.Context, _ FunctionCall, _ any) (Outcome, error) {
			<-ctx.Done()
			return Outcome{}, ctx.Err()
		},
	}}
	for k, v := range extra {
		f.handlers[k] = v
	}
	return f
}

func ok(v any) Outcome {
	b, err := AppendJSON(nil, v)
	if err != nil {
		panic(err)
	}
	return Outcome{Status: CallSucceeded, Output: b, DurationMS: 0.1}
}

func (f *funcs) call(ctx context.Context, c FunctionCall) (Outcome, error) {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	h, found := f.handlers[c.Function]
	if !found {
		return Outcome{}, fmt.Errorf("no function %q", c.Function)
	}
	in, err := DecodeJSON(c.Input)
	if err != nil {
		return Outcome{}, err
	}
	return h(ctx, c, in)
}

// callsOf are the calls made for a step, in order.
func (f *funcs) callsOf(step string) []FunctionCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []FunctionCall
	for _, c := range f.calls {
		if c.StepID == step {
			out = append(out, c)
		}
	}
	return out
}

func (f *funcs) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type run struct {
	m   *MemRunner
	f   *funcs
	res MemResult
}

func startRun(t *testing.T, src, input string, f *funcs, opts MemOptions) *MemRunner {
	t.Helper()
	p := mustCompile(t, src)
	opts.Input = json.RawMessage(input)
	opts.Caller = f.call
	if opts.RunID == "" {
		opts.RunID = "run-1"
	}
	return NewMemRunner(p, opts)
}

func runPipeline(t *testing.T, src, input string, f *funcs) run {
	t.Helper()
	m := startRun(t, src, input, f, MemOptions{})
	return run{m: m, f: f, res: m.Run(context.Background())}
}

func (r run) step(t *testing.T, id string) MemStep {
	t.Helper()
	for _, s := range r.m.Steps() {
		if s.StepID == id {
			return s
		}
	}
	require.Failf(t, "step not settled", "%s", id)
	return MemStep{}
}

func (r run) status(t *testing.T, id string) StepStatus {
	t.Helper()
	for _, s := range r.m.Snapshot() {
		if s.ID == id {
			return s.Status
		}
	}
	require.Failf(t, "no step", "%s", id)
	return ""
}

func TestRunFunctionChain(t *testing.T) {
	t.Parallel()
	r := runPipeline(t, `{"steps":[
	  {"id":"a","function":"echo"},
	  {"id":"b","function":"double"},
	  {"id":"c","function":"add1","input":{"n":"${steps.b.output.n + input.n}"}},
	  {"id":"d","function":"echo"}]}`, `{"n":5}`, newFuncs(nil))
	require.Equal(t, RunSucceeded, r.res.Status, "%+v", r.res)
	require.JSONEq(t, `{"n":16}`, string(r.res.Output), "the last step's output")
	require.JSONEq(t, `{"n":5}`, string(r.f.callsOf("a")[0].Input), "the first step gets the run's input")
	require.JSONEq(t, `{"n":5}`, string(r.f.callsOf("b")[0].Input), "then the previous step's output")
	require.JSONEq(t, `{"n":15}`, string(r.f.callsOf("c")[0].Input), "or its template")
	require.JSONEq(t, `{"n":16}`, string(r.f.callsOf("d")[0].Input))
	for _, id := range []string{"a", "b", "c", "d"} {
		s := r.step(t, id)
		require.Equal(t, StepSucceeded, s.Status)
		require.Equal(t, 1, s.Attempts)
		require.Equal(t, StepExecutionID("run-1", id, -1), s.ExecutionID)
		require.Equal(t, s.ExecutionID, r.f.callsOf(id)[0].ExecutionID)
		require.False(t, s.StartedAt.IsZero())
		require.False(t, s.FinishedAt.Before(s.StartedAt))
	}
	require.JSONEq(t, `{"n":10}`, string(r.step(t, "b").Output))
}

func TestRunOutputTemplateAndVersions(t *testing.T) {
	t.Parallel()
	f := newFuncs(nil)
	m := startRun(t, `{"output":{"first":"${steps.a.output}","in":"${input}","lit":[1,2]},"steps":[
	  {"id":"a","function":"echo","input":{"k":"v"}},
	  {"id":"b","function":"echo","version":7}]}`, `3`, f, MemOptions{RunOptions: RunOptions{Versions: map[string]int{"echo": 4}}})
	res := m.Run(context.Background())
	require.Equal(t, RunSucceeded, res.Status)
	require.JSONEq(t, `{"first":{"k":"v"},"in":3,"lit":[1,2]}`, string(res.Output))
	require.Equal(t, 4, f.callsOf("a")[0].Version, "latest resolved at run start")
	require.Equal(t, 7, f.callsOf("b")[0].Version, "pinned")

	f = newFuncs(nil)
	m = startRun(t, `{"output":"${steps.a.output.missing}","steps":[{"id":"a","function":"echo"}]}`, `{}`, f, MemOptions{})
	res = m.Run(context.Background())
	require.Equal(t, RunFailed, res.Status)
	require.Equal(t, ErrTypeExpression, res.Error.Type)
	require.Contains(t, res.Error.Message, "output:")
}

func TestRunIfSkippedIsTransparent(t *testing.T) {
	t.Parallel()
	r := runPipeline(t, `{"steps":[
	  {"id":"a","function":"double"},
	  {"id":"b","function":"add1","if":"steps.a.output.n > 100"},
	  {"id":"c","function":"echo","if":"steps.b.status == 'skipped' && steps.b.output == null"}]}`, `{"n":1}`, newFuncs(nil))
	require.Equal(t, RunSucceeded, r.res.Status, "%+v", r.res)
	require.Equal(t, StepSkipped, r.step(t, "b").Status)
	require.JSONEq(t, `null`, string(r.step(t, "b").Output))
	require.Empty(t, r.f.callsOf("b"))
	require.JSONEq(t, `{"n":2}`, string(r.f.callsOf("c")[0].Input), "a skipped step passes its input through")

	// A skipped last step: the run's output is the last step that ran.
	r = runPipeline(t, `{"steps":[{"id":"a","function":"double"},{"id":"b","function":"add1","if":"false"}]}`, `{"n":1}`, newFuncs(nil))
	require.JSONEq(t, `{"n":2}`, string(r.res.Output))
}

func TestRunRetries(t *testing.T) {
	t.Parallel()
	flaky := func(_ context.Context, c FunctionCall, _ any) (Outcome, error) {
		if c.Attempt < 3 {
			return Outcome{Status: CallFailed, Error: &Error{Type: "Flaky", Message: fmt.Sprintf("attempt %d", c.Attempt)}}, nil
		}
		return ok(map[string]any{"attempt": c.Attempt}), nil
	}
	timeout := func(context.Context, FunctionCall, any) (Outcome, error) {
		return Outcome{Status: CallTimeout}, nil
	}
	platform := func(context.Context, FunctionCall, any) (Outcome, error) {
		return Outcome{}, errors.New("runtime unreachable")
	}
	tests := []struct {
		name, step string
		attempts   int
		status     RunStatus
		errType    string
	}{
		{"retries then success", `{"id":"a","function":"flaky","retry":{"max_attempts":3,"initial_interval_ms":1,"backoff":2}}`, 3, RunSucceeded, ""},
		{"retries exhausted", `{"id":"a","function":"flaky","retry":{"max_attempts":2,"initial_interval_ms":0}}`, 2, RunFailed, "Flaky"},
		{"failure without policy not retried", `{"id":"a","function":"fail"}`, 1, RunFailed, "ValueError"},
		{"timeout retried", `{"id":"a","function":"timeout","retry":{"max_attempts":2,"initial_interval_ms":0}}`, 2, RunFailed, ErrTypeTimeout},
		{"platform error not retried", `{"id":"a","function":"platform","retry":{"max_attempts":5,"initial_interval_ms":0}}`, 1, RunFailed, ErrTypePlatform},
		{"input expression error not retried", `{"id":"a","function":"echo","input":"${input.nope}","retry":{"max_attempts":5,"initial_interval_ms":0}}`, 1, RunFailed, ErrTypeExpression},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFuncs(map[string]handler{"flaky": flaky, "timeout": timeout, "platform": platform})
			r := runPipeline(t, `{"steps":[`+tc.step+`]}`, `{}`, f)
			require.Equal(t, tc.status, r.res.Status, "%+v", r.res.Error)
			s := r.step(t, "a")
			require.Equal(t, tc.attempts, s.Attempts)
			if tc.errType != "" {
				require.Equal(t, tc.errType, r.res.Error.Type)
				require.Equal(t, "a", r.res.Error.Step)
				require.Equal(t, tc.errType, s.Error.Type)
			}
			if tc.errType != ErrTypeExpression {
				calls := f.callsOf("a")
				require.Len(t, calls, tc.attempts)
				for i, c := range calls {
					require.Equal(t, i+1, c.Attempt)
					require.Equal(t, calls[0].ExecutionID, c.ExecutionID, "attempts of one execution")
				}
			}
		})
	}
}

func TestRetryBackoff(t *testing.T) {
	t.Parallel()
	pol := retryPolicy{maxAttempts: 10, initialMS: 100, backoff: 3}
	require.Equal(t, 100*time.Millisecond, pol.delay(1))
	require.Equal(t, 300*time.Millisecond, pol.delay(2))
	require.Equal(t, 900*time.Millisecond, pol.delay(3))
	pol = retryPolicy{maxAttempts: 10, initialMS: 3_600_000, backoff: 10}
	require.Equal(t, time.Hour, pol.delay(9), "capped")
}

func TestRunCatch(t *testing.T) {
	t.Parallel()
	r := runPipeline(t, `{"steps":[
	  {"id":"a","function":"echo"},
	  {"id":"b","function":"fail","catch":"e"},
	  {"id":"c","function":"echo"},
	  {"id":"d","parallel":{"x":[{"id":"dx","function":"echo"}]}},
	  {"id":"e","function":"echo"},
	  {"id":"f","function":"echo","input":{"why":"${steps.b.error.message}","c":"${steps.c.status}"}}]}`, `{"n":1}`, newFuncs(nil))
	require.Equal(t, RunSucceeded, r.res.Status, "%+v", r.res)
	require.Equal(t, StepFailed, r.step(t, "b").Status)
	require.Equal(t, StepSkipped, r.step(t, "c").Status)
	require.Equal(t, StepSkipped, r.step(t, "d").Status)
	require.Equal(t, StepPending, r.status(t, "dx"), "a step inside a skipped parallel is never reached")
	require.Empty(t, r.f.callsOf("c"))
	require.JSONEq(t, `{"error":{"type":"ValueError","message":"boom"},"step":"b"}`, string(r.f.callsOf("e")[0].Input),
		"the catch target's default input is the error object")
	require.JSONEq(t, `{"why":"boom","c":"skipped"}`, string(r.res.Output))

	// An if that fails to evaluate fails its step, and catch applies.
	r = runPipeline(t, `{"steps":[{"id":"a","function":"echo","if":"input.nope","catch":"b"},{"id":"b","function":"echo"}]}`, `{}`, newFuncs(nil))
	require.Equal(t, RunSucceeded, r.res.Status)
	require.Equal(t, ErrTypeExpression, r.step(t, "a").Error.Type)
	require.Contains(t, r.step(t, "a").Error.Message, `if: "input.nope": no such key: nope`)

	// A catch inside a branch.
	r = runPipeline(t, `{"steps":[{"id":"p","parallel":{"x":[{"id":"x1","function":"fail","catch":"x2"},{"id":"x2","function":"echo"}]}}]}`, `{}`, newFuncs(nil))
	require.Equal(t, RunSucceeded, r.res.Status)
	require.JSONEq(t, `{"x":{"error":{"message":"boom","type":"ValueError"},"step":"x1"}}`, string(r.res.Output))
}

func TestRunFailureStopsTheRun(t *testing.T) {
	t.Parallel()
	r := runPipeline(t, `{"steps":[{"id":"a","function":"fail"},{"id":"b","function":"echo"}]}`, `{}`, newFuncs(nil))
	require.Equal(t, RunFailed, r.res.Status)
	require.Equal(t, &Error{Type: "ValueError", Message: "boom", Step: "a"}, r.res.Error)
	require.Equal(t, StepPending, r.status(t, "b"), "never reached")
	require.Nil(t, r.res.Output)
}

// concurrency counts concurrent calls.
type concurrency struct {
	now, max atomic.Int64
}

func (c *concurrency) handler(d time.Duration) handler {
	return func(ctx context.Context, call FunctionCall, in any) (Outcome, error) {
		n := c.now.Add(1)
		defer c.now.Add(-1)
		for {
			m := c.max.Load()
			if n <= m || c.max.CompareAndSwap(m, n) {
				break
			}
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		}
		return ok(map[string]any{"item": in, "index": call.Item}), nil
	}
}

func TestRunMap(t *testing.T) {
	t.Parallel()
	var c concurrency
	f := newFuncs(map[string]handler{"work": c.handler(3 * time.Millisecond)})
	r := runPipeline(t, `{"steps":[{"id":"m","map":{"items":"input.list","max_concurrency":3,"step":{"function":"work"}}}]}`,
		`{"list":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19]}`, f)
	require.Equal(t, RunSucceeded, r.res.Status, "%+v", r.res)
	var out []map[string]int
	require.NoError(t, json.Unmarshal(r.res.Output, &out))
	require.Len(t, out, 20)
	for i, o := range out {
		require.Equal(t, map[string]int{"item": i, "index": i}, o, "output in item order")
	}
	require.LessOrEqual(t, c.max.Load(), int64(3), "max_concurrency is never exceeded")
	require.Equal(t, int64(3), c.max.Load(), "and is used")
	s := r.step(t, "m")
	require.Equal(t, &ItemCounts{Total: 20, Succeeded: 20}, s.Items)
	require.Equal(t, 20, s.Attempts)
	ids := map[string]bool{}
	for _, call := range f.callsOf("m") {
		require.Equal(t, StepExecutionID("run-1", "m", call.Item), call.ExecutionID)
		ids[call.ExecutionID] = true
	}
	require.Len(t, ids, 20, "one execution per item")
}

func TestRunMapTemplatesAndEdges(t *testing.T) {
	t.Parallel()
	r := runPipeline(t, `{"steps":[
	  {"id":"a","function":"echo"},
	  {"id":"m","map":{"items":"steps.a.output.map(x, x * 10)","step":{"function":"echo","input":{"v":"${item}","i":"${index}","n":"${size(steps.a.output)}"}}}},
	  {"id":"e","map":{"items":"[]","step":{"function":"echo"}}},
	  {"id":"last","function":"echo","input":{"m":"${steps.m.output}","e":"${steps.e.output}"}}]}`, `[1,2]`, newFuncs(nil))
	require.Equal(t, RunSucceeded, r.res.Status, "%+v", r.res)
	require.JSONEq(t, `{"m":[{"v":10,"i":0,"n":2},{"v":20,"i":1,"n":2}],"e":[]}`, string(r.res.Output))

	r = runPipeline(t, `{"steps":[{"id":"m","map":{"items":"input","step":{"function":"echo"}}}]}`, `{"not":"a list"}`, newFuncs(nil))
	require.Equal(t, RunFailed, r.res.Status)
	require.Equal(t, ErrTypeExpression, r.res.Error.Type)
	require.Contains(t, r.res.Error.Message, "must give a list, gave map")

	f := newFuncs(nil)
	m := startRun(t, `{"steps":[{"id":"m","map":{"items":"input","step":{"function":"echo"}}}]}`, `[1,2,3]`, f,
		MemOptions{RunOptions: RunOptions{MaxItems: 2}})
	res := m.Run(context.Background())
	require.Equal(t, RunFailed, res.Status)
	require.Equal(t, ErrTypeItemsLimit, res.Error.Type)
	require.Zero(t, f.count())
}

func TestRunMapFailureCancelsTheRest(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 100)
	f := newFuncs(map[string]handler{"work": func(ctx context.Context, c FunctionCall, in any) (Outcome, error) {
		started <- struct{}{}
		if in.(int64) == 2 {
			// Fail only once the others are in flight.
			for range 4 {
				<-started
			}
			return Outcome{Status: CallFailed, Error: &Error{Type: "ValueError", Message: "bad item"}}, nil
		}
		<-ctx.Done()
		return Outcome{}, ctx.Err()
	}})
	r := runPipeline(t, `{"steps":[{"id":"m","map":{"items":"input","max_concurrency":4,"step":{"function":"work"}}},{"id":"after","function":"echo"}]}`,
		`[0,1,2,3,4,5,6,7,8,9]`, f)
	require.Equal(t, RunFailed, r.res.Status)
	require.Equal(t, &Error{Type: "ValueError", Message: "item 2: bad item", Step: "m"}, r.res.Error)
	s := r.step(t, "m")
	require.Equal(t, StepFailed, s.Status)
	require.Equal(t, 10, s.Items.Total)
	require.Equal(t, 1, s.Items.Failed)
	require.Equal(t, 0, s.Items.Succeeded)
	require.Equal(t, 4, f.count(), "the items not started are never called")
	require.Equal(t, StepPending, r.status(t, "after"))
}

func TestRunParallel(t *testing.T) {
	t.Parallel()
	r := runPipeline(t, `{"steps":[
	  {"id":"a","function":"echo"},
	  {"id":"p","parallel":{
	     "right":[{"id":"r1","function":"double"},{"id":"r2","function":"add1"}],
	     "left":[{"id":"l1","function":"add1","input":{"n":"${steps.a.output.n * 100}"}}],
	     "none":[{"id":"n1","function":"add1","if":"false"}]}},
	  {"id":"z","function":"echo","input":{"p":"${steps.p.output}","r2":"${steps.r2.output.n}"}}]}`, `{"n":1}`, newFuncs(nil))
	require.Equal(t, RunSucceeded, r.res.Status, "%+v", r.res)
	require.JSONEq(t, `{"left":{"n":101},"none":{"n":1},"right":{"n":3}}`, string(r.step(t, "p").Output),
		"each branch's last output; a branch where nothing ran passes the parallel step's input")
	require.JSONEq(t, `{"p":{"left":{"n":101},"none":{"n":1},"right":{"n":3}},"r2":3}`, string(r.res.Output))
	require.JSONEq(t, `{"n":1}`, string(r.f.callsOf("r1")[0].Input), "a branch's first step gets the parallel step's input")
}

func TestRunParallelFailure(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	f := newFuncs(map[string]handler{
		"waitthenfail": func(context.Context, FunctionCall, any) (Outcome, error) {
			<-started
			return Outcome{Status: CallFailed, Error: &Error{Type: "ValueError", Message: "nope"}}, nil
		},
		"slowblock": func(ctx context.Context, _ FunctionCall, _ any) (Outcome, error) {
			close(started)
			<-ctx.Done()
			return Outcome{}, ctx.Err()
		},
	})
	r := runPipeline(t, `{"steps":[{"id":"p","catch":"c","parallel":{
	    "a":[{"id":"a1","function":"echo"},{"id":"a2","function":"waitthenfail"},{"id":"a3","function":"echo"}],
	    "b":[{"id":"b1","function":"slowblock"},{"id":"b2","function":"echo"}]}},
	  {"id":"c","function":"echo"}]}`, `{}`, f)
	require.Equal(t, RunSucceeded, r.res.Status, "caught")
	p := r.step(t, "p")
	require.Equal(t, StepFailed, p.Status)
	require.Equal(t, &Error{Type: "ValueError", Message: "nope", Step: "a2"}, p.Error, "the innermost failed step is named")
	require.Equal(t, StepCanceled, r.step(t, "b1").Status, "the other branch is canceled")
	require.Equal(t, StepPending, r.status(t, "b2"))
	require.Equal(t, StepPending, r.status(t, "a3"))
	require.JSONEq(t, `{"error":{"type":"ValueError","message":"nope"},"step":"p"}`, string(f.callsOf("c")[0].Input))
}

func TestRunSleep(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := runPipeline(t, `{"steps":[{"id":"a","function":"double"},{"id":"s","sleep_ms":30},{"id":"b","function":"echo"}]}`, `{"n":2}`, newFuncs(nil))
	require.Equal(t, RunSucceeded, r.res.Status)
	require.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond)
	require.JSONEq(t, `{"n":4}`, string(r.f.callsOf("b")[0].Input), "a sleep passes its input through")
	require.JSONEq(t, `null`, string(r.step(t, "s").Output))
	s := r.step(t, "s")
	require.GreaterOrEqual(t, s.FinishedAt.Sub(s.StartedAt), 30*time.Millisecond)
}

func waitFor(t *testing.T, m *MemRunner, signal string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, s := range m.Waiting() {
			if s == signal {
				return true
			}
		}
		return false
	}, 5*time.Second, time.Millisecond)
}

func TestRunWaitForSignal(t *testing.T) {
	t.Parallel()
	f := newFuncs(nil)
	m := startRun(t, `{"steps":[{"id":"a","function":"echo"},{"id":"w","wait_for":{"signal":"approve","timeout_ms":10000}},{"id":"b","function":"echo"}]}`, `1`, f, MemOptions{})
	done := make(chan MemResult)
	go func() { done <- m.Run(context.Background()) }()
	waitFor(t, m, "approve")
	require.ErrorIs(t, m.Signal("other", nil), ErrNotWaiting)
	for _, s := range m.Snapshot() {
		if s.ID == "w" {
			require.Equal(t, StepWaiting, s.Status)
		}
	}
	require.NoError(t, m.Signal("approve", json.RawMessage(`{"by":"ada"}`)))
	res := <-done
	require.Equal(t, RunSucceeded, res.Status)
	require.JSONEq(t, `{"by":"ada"}`, string(res.Output))
	require.Empty(t, m.Waiting())
}

func TestRunWaitTimeout(t *testing.T) {
	t.Parallel()
	r := runPipeline(t, `{"steps":[{"id":"w","wait_for":{"signal":"go","timeout_ms":10,"on_timeout":{"approved":false}}},{"id":"b","function":"echo"}]}`, `1`, newFuncs(nil))
	require.Equal(t, RunSucceeded, r.res.Status)
	require.JSONEq(t, `{"approved":false}`, string(r.res.Output))
	require.Equal(t, StepSucceeded, r.step(t, "w").Status)

	r = runPipeline(t, `{"steps":[{"id":"w","wait_for":{"signal":"go","timeout_ms":10}},{"id":"b","function":"echo"}]}`, `1`, newFuncs(nil))
	require.Equal(t, RunFailed, r.res.Status)
	require.Equal(t, &Error{Type: ErrTypeWaitTimeout, Message: `no "go" signal within 10 ms`, Step: "w"}, r.res.Error)
	require.Equal(t, StepFailed, r.step(t, "w").Status)
}

func TestRunTimeout(t *testing.T) {
	t.Parallel()
	r := runPipeline(t, `{"timeout_ms":30,"steps":[{"id":"a","function":"echo"},{"id":"b","function":"block"},{"id":"c","function":"echo"}]}`, `1`, newFuncs(nil))
	require.Equal(t, RunFailed, r.res.Status)
	require.Equal(t, ErrTypeRunTimeout, r.res.Error.Type)
	require.Equal(t, StepSucceeded, r.step(t, "a").Status)
	require.Equal(t, StepCanceled, r.step(t, "b").Status)
	require.Equal(t, StepPending, r.status(t, "c"))

	// A run that finishes in time is not affected (and its timer is released).
	r = runPipeline(t, `{"timeout_ms":60000,"steps":[{"id":"a","function":"echo"}]}`, `1`, newFuncs(nil))
	require.Equal(t, RunSucceeded, r.res.Status)
}

func TestRunCancelDuringMap(t *testing.T) {
	t.Parallel()
	var inflight atomic.Int64
	f := newFuncs(map[string]handler{"work": func(ctx context.Context, _ FunctionCall, _ any) (Outcome, error) {
		inflight.Add(1)
		<-ctx.Done()
		return Outcome{}, ctx.Err()
	}})
	m := startRun(t, `{"steps":[{"id":"m","map":{"items":"input","max_concurrency":3,"step":{"function":"work"}}},{"id":"b","function":"echo"}]}`,
		`[1,2,3,4,5,6,7,8]`, f, MemOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan MemResult)
	go func() { done <- m.Run(ctx) }()
	require.Eventually(t, func() bool { return inflight.Load() == 3 }, 5*time.Second, time.Millisecond)
	cancel()
	res := <-done
	require.Equal(t, RunCanceled, res.Status)
	require.Equal(t, ErrTypeCanceled, res.Error.Type)
	st := map[string]StepState{}
	for _, s := range m.Snapshot() {
		st[s.ID] = s
	}
	require.Equal(t, StepCanceled, st["m"].Status)
	require.Equal(t, &ItemCounts{Total: 8}, st["m"].Items)
	require.Equal(t, StepPending, st["b"].Status)
	require.Equal(t, 3, f.count())
}

func TestRunSeeds(t *testing.T) {
	t.Parallel()
	src := `{"steps":[
	  {"id":"a","function":"double"},
	  {"id":"b","function":"fail","catch":"d"},
	  {"id":"c","function":"echo"},
	  {"id":"d","function":"echo","input":{"a":"${steps.a.output}","b":"${steps.b.status}"}},
	  {"id":"p","parallel":{"x":[{"id":"x1","function":"double"},{"id":"x2","function":"add1"}]}}]}`
	f := newFuncs(nil)
	m := startRun(t, src, `{"n":1}`, f, MemOptions{
		RunOptions: RunOptions{Seed: map[string]SeededStep{
			"a":  {Status: StepSucceeded, Attempts: 2, ExecutionID: "exec-a"},
			"b":  {Status: StepFailed, Attempts: 1, Error: &Error{Type: "ValueError", Message: "seeded boom"}},
			"x1": {Status: StepSucceeded, Attempts: 1},
			"c":  {Status: StepCanceled}, // not final as a seed: ignored (and skipped by the catch anyway)
		}},
		SeedOutputs: map[string]json.RawMessage{"a": json.RawMessage(`{"n":40}`), "x1": json.RawMessage(`{"n":7}`)},
	})
	res := m.Run(context.Background())
	require.Equal(t, RunSucceeded, res.Status, "%+v", res)
	require.Empty(t, f.callsOf("a"), "seeded steps are not called again")
	require.Empty(t, f.callsOf("b"))
	require.Empty(t, f.callsOf("x1"))
	require.Empty(t, f.callsOf("c"))
	require.JSONEq(t, `{"a":{"n":40},"b":"failed"}`, string(f.callsOf("d")[0].Input))
	require.JSONEq(t, `{"n":7}`, string(f.callsOf("x2")[0].Input), "a seeded step inside a branch feeds the next")
	require.JSONEq(t, `{"x":{"n":8}}`, string(res.Output))
	for _, s := range m.Snapshot() {
		switch s.ID {
		case "a":
			require.True(t, s.Seeded)
			require.Equal(t, 2, s.Attempts)
			require.Equal(t, "exec-a", s.ExecutionID)
		case "c":
			require.False(t, s.Seeded)
			require.Equal(t, StepSkipped, s.Status)
		}
	}

	// A seeded composite is taken whole: its branches do not run.
	f = newFuncs(nil)
	m = startRun(t, src, `{"n":1}`, f, MemOptions{
		RunOptions: RunOptions{Seed: map[string]SeededStep{
			"a": {Status: StepSucceeded}, "b": {Status: StepSucceeded}, "c": {Status: StepSucceeded}, "d": {Status: StepSucceeded},
			"p": {Status: StepSucceeded},
		}},
		SeedOutputs: map[string]json.RawMessage{"p": json.RawMessage(`{"x":1}`)},
	})
	res = m.Run(context.Background())
	require.Equal(t, RunSucceeded, res.Status)
	require.Zero(t, f.count())
	require.JSONEq(t, `{"x":1}`, string(res.Output))
}

func TestRunStop(t *testing.T) {
	t.Parallel()
	f := newFuncs(map[string]handler{"stop": func(context.Context, FunctionCall, any) (Outcome, error) {
		return Outcome{}, ErrStop
	}})
	m := startRun(t, `{"steps":[{"id":"a","function":"echo"},{"id":"b","function":"stop","retry":{"max_attempts":3}},{"id":"c","function":"echo"}]}`, `1`, f, MemOptions{})
	res := m.Run(context.Background())
	require.True(t, res.Stopped)
	require.Empty(t, res.Status)
	require.False(t, m.finished, "Finish is not called")
	require.Len(t, m.Steps(), 1, "only a was settled")
	st := m.Snapshot()
	require.Equal(t, StepSucceeded, st[0].Status)
	require.Equal(t, StepRunning, st[1].Status)
	require.Equal(t, 1, st[1].Attempts, "no retry after a stop")
	require.Equal(t, StepPending, st[2].Status)
	require.Empty(t, f.callsOf("c"))
}

func TestRunStopDuringMapLetsInFlightCallsFinish(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var finishedCalls atomic.Int64
	f := newFuncs(map[string]handler{"work": func(ctx context.Context, c FunctionCall, in any) (Outcome, error) {
		if in.(int64) == 3 {
			return Outcome{}, ErrStop
		}
		select {
		case <-release:
		case <-ctx.Done():
			return Outcome{}, ctx.Err()
		}
		finishedCalls.Add(1)
		return ok(in), nil
	}})
	m := startRun(t, `{"steps":[{"id":"m","map":{"items":"input","max_concurrency":4,"step":{"function":"work"}}}]}`, `[0,1,2,3,4,5,6,7]`, f, MemOptions{})
	done := make(chan MemResult)
	go func() { done <- m.Run(context.Background()) }()
	require.Eventually(t, func() bool { return f.count() == 4 }, 5*time.Second, time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	close(release)
	res := <-done
	require.True(t, res.Stopped)
	require.Equal(t, int64(3), finishedCalls.Load(), "in-flight calls were not canceled")
	require.Equal(t, 4, f.count(), "nothing more launched")
	require.Empty(t, m.Steps())
}

func TestSnapshotWhileRunning(t *testing.T) {
	t.Parallel()
	var m *MemRunner
	var seen []StepState
	f := newFuncs(map[string]handler{"look": func(_ context.Context, _ FunctionCall, in any) (Outcome, error) {
		seen = m.Snapshot()
		return ok(in), nil
	}})
	m = startRun(t, `{"steps":[{"id":"a","function":"echo"},{"id":"b","function":"look"},{"id":"c","function":"echo"}]}`, `1`, f, MemOptions{})
	res := m.Run(context.Background())
	require.Equal(t, RunSucceeded, res.Status)
	require.Equal(t, []StepStatus{StepSucceeded, StepRunning, StepPending}, []StepStatus{seen[0].Status, seen[1].Status, seen[2].Status})
	require.Equal(t, 1, seen[1].Attempts)
	b, err := json.Marshal(seen[0])
	require.NoError(t, err)
	require.Contains(t, string(b), `"status":"succeeded"`)
}

func TestStepExecutionID(t *testing.T) {
	t.Parallel()
	ns := uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://lambda-microservice/pipeline/step-execution"))
	require.Equal(t, ns.String(), StepNamespace())
	runID := "0190d5f2-7c1e-7abc-8def-0123456789ab"
	require.Equal(t, uuid.NewSHA1(ns, []byte(runID+"/load")).String(), StepExecutionID(runID, "load", -1))
	require.Equal(t, uuid.NewSHA1(ns, []byte(runID+"/each/12")).String(), StepExecutionID(runID, "each", 12))
	require.Equal(t, StepExecutionID(runID, "each", 12), StepExecutionID(runID, "each", 12))
	require.NotEqual(t, StepExecutionID(runID, "each", 1), StepExecutionID(runID, "each", 2))
	u, err := uuid.Parse(StepExecutionID(runID, "x", -1))
	require.NoError(t, err)
	require.Equal(t, uuid.Version(5), u.Version())
	require.Equal(t, uuid.RFC4122, u.Variant())
}

func TestCompiledSharedAcrossRuns(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, `{"output":{"n":"${steps.c.output.n}","i":"${input.i}"},"steps":[
	  {"id":"a","function":"double","input":{"n":"${input.i}"}},
	  {"id":"m","map":{"items":"[1, 2, 3]","max_concurrency":2,"step":{"function":"echo","input":"${item + steps.a.output.n}"}}},
	  {"id":"c","function":"add1","input":{"n":"${steps.m.output[2]}"},"if":"size(steps.m.output) == 3"}]}`)
	f := newFuncs(nil)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			m := NewMemRunner(p, MemOptions{RunID: fmt.Sprint("run-", i), Input: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), Caller: f.call})
			res := m.Run(context.Background())
			require.Equal(t, RunSucceeded, res.Status)
			require.JSONEq(t, fmt.Sprintf(`{"n":%d,"i":%d}`, 3+2*i+1, i), string(res.Output))
		})
	}
	wg.Wait()
}
