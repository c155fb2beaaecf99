package pipeline

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// wfCtx is a context that is not a context.Context, as Temporal's workflow.Context is not:
// the interpreter only needs Err.
type wfCtx struct{ node *cancelNode }

type cancelNode struct {
	parent   *cancelNode
	canceled bool
}

var errWfCanceled = errors.New("canceled")

func (c wfCtx) Err() error {
	for n := c.node; n != nil; n = n.parent {
		if n.canceled {
			return errWfCanceled
		}
	}
	return nil
}

// scriptRunner is a single-threaded runner in the shape of a Temporal runner: Fork runs
// its functions one after the other, Sleep and Wait return at once, the clock is a
// counter. It logs every call so that two runs can be compared, as a replay would.
type scriptRunner struct {
	log     []string
	clock   time.Time
	outcome func(spec CallSpec) CallResult
	signals map[string]bool
	// settleErr fails recording these steps.
	settleErr map[string]error
}

func (r *scriptRunner) logf(format string, args ...any) {
	r.log = append(r.log, fmt.Sprintf(format, args...))
}

func (r *scriptRunner) Call(ctx wfCtx, spec CallSpec) (CallResult, error) {
	r.logf("call %s item=%d attempt=%d from=%+v", spec.StepID, spec.Item, spec.Attempt, spec.InputFrom)
	if ctx.Err() != nil {
		return CallResult{}, ctx.Err()
	}
	res := r.outcome(spec)
	res.ExecutionID = fmt.Sprintf("%s/%d", spec.StepID, spec.Item)
	return res, nil
}

func (r *scriptRunner) Eval(_ wfCtx, spec EvalSpec) (EvalResult, error) {
	r.logf("eval %s %s", spec.StepID, spec.Kind)
	if spec.Kind == EvalItems {
		return EvalResult{Count: 4}, nil
	}
	return EvalResult{Bool: !strings.HasPrefix(spec.StepID, "skip")}, nil
}

func (r *scriptRunner) Settle(_ wfCtx, rec StepRecord) error {
	r.logf("settle %s %s attempts=%d err=%v items=%v out=%+v at=%s..%s", rec.StepID, rec.Status, rec.Attempts, rec.Error, rec.Items, rec.Output,
		rec.StartedAt.Format("05.000"), rec.FinishedAt.Format("05.000"))
	return r.settleErr[rec.StepID]
}

func (r *scriptRunner) Sleep(ctx wfCtx, d time.Duration) error {
	r.logf("sleep %s", d)
	r.clock = r.clock.Add(d)
	return ctx.Err()
}

func (r *scriptRunner) Wait(_ wfCtx, spec WaitSpec) (bool, error) {
	r.logf("wait %s %s %s", spec.StepID, spec.Signal, spec.Timeout)
	return r.signals[spec.Signal], nil
}

func (r *scriptRunner) Fork(ctx wfCtx, n, limit int, fn func(wfCtx, int) error) error {
	r.logf("fork n=%d limit=%d", n, limit)
	child := wfCtx{&cancelNode{parent: ctx.node}}
	for i := 0; i < n; i++ {
		if child.Err() != nil {
			break
		}
		if err := fn(child, i); err != nil {
			child.node.canceled = true
			return err
		}
	}
	return nil
}

func (r *scriptRunner) WithCancel(ctx wfCtx) (wfCtx, func()) {
	c := wfCtx{&cancelNode{parent: ctx.node}}
	return c, func() { c.node.canceled = true }
}

func (r *scriptRunner) Detached(wfCtx) wfCtx { return wfCtx{&cancelNode{}} }

func (r *scriptRunner) Now(wfCtx) time.Time {
	r.clock = r.clock.Add(time.Millisecond)
	return r.clock
}

func (r *scriptRunner) Finish(_ wfCtx, out RunOutcome) error {
	r.logf("finish %s %v from=%+v", out.Status, out.Error, out.OutputFrom)
	return nil
}

func TestInterpreterIsDeterministic(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, `{"timeout_ms":100000,"steps":[
	  {"id":"a","function":"f","retry":{"max_attempts":3,"initial_interval_ms":10,"backoff":3}},
	  {"id":"skip1","function":"f","if":"false"},
	  {"id":"m","map":{"items":"[1,2,3,4]","max_concurrency":2,"step":{"function":"f"}}},
	  {"id":"p","parallel":{"z":[{"id":"z1","function":"bad","catch":"z3"},{"id":"z2","function":"f"},{"id":"z3","function":"f"}],
	                        "b":[{"id":"b1","sleep_ms":5},{"id":"b2","wait_for":{"signal":"ok","timeout_ms":9,"on_timeout":1}}]}},
	  {"id":"w","wait_for":{"signal":"go","timeout_ms":7}}]}`)
	outcome := func(spec CallSpec) CallResult {
		switch {
		case spec.StepID == "a" && spec.Attempt < 3:
			return CallResult{Status: CallTimeout}
		case spec.StepID == "z1":
			return CallResult{Status: CallFailed, Error: &Error{Type: "E", Message: "x"}}
		}
		return CallResult{Status: CallSucceeded}
	}
	runOnce := func() ([]string, RunResult) {
		r := &scriptRunner{outcome: outcome, signals: map[string]bool{"go": true}, clock: time.Unix(0, 0).UTC()}
		it := New[wfCtx](r, p, RunOptions{Versions: map[string]int{"f": 2, "bad": 1}})
		res := it.Run(wfCtx{&cancelNode{}})
		return r.log, res
	}
	log1, res1 := runOnce()
	log2, res2 := runOnce()
	require.Equal(t, log1, log2, "the same answers give the same calls in the same order")
	require.Equal(t, res1, res2)
	require.Equal(t, RunSucceeded, res1.Status)
	require.Equal(t, Source{Step: "w"}, res1.OutputFrom)
	joined := strings.Join(log1, "\n")
	require.Contains(t, joined, "sleep 10ms\ncall a item=-1 attempt=2")
	require.Contains(t, joined, "sleep 30ms\ncall a item=-1 attempt=3")
	require.Contains(t, joined, "settle skip1 skipped")
	require.Contains(t, joined, "fork n=2 limit=2", "branches, sorted: b before z")
	require.Less(t, strings.Index(joined, "settle b2"), strings.Index(joined, "call z1"), "branch b runs first")
	require.Contains(t, joined, "settle z2 skipped")
	require.Contains(t, joined, "call z3 item=-1 attempt=1 from={Step:z1 Error:true}")
	require.Contains(t, joined, "settle b2 succeeded attempts=0 err=<nil> items=<nil> out={Kind:literal")
	require.Contains(t, joined, "out={Kind:branches ExecutionID: Count:0 Branches:[{Name:b From:{Step:b2 Error:false}} {Name:z From:{Step:z3 Error:false}}]")
	require.Contains(t, joined, "settle m succeeded attempts=4 err=<nil> items=&{4 4 0}")
	t.Log(joined)
}

func TestSettleFailureFailsTheRun(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, `{"steps":[{"id":"a","function":"f","catch":"c"},{"id":"b","function":"f"},{"id":"c","function":"f"}]}`)
	boom := errors.New("db down")
	r := &scriptRunner{
		outcome:   func(CallSpec) CallResult { return CallResult{Status: CallSucceeded} },
		settleErr: map[string]error{"a": boom},
	}
	res := Run[wfCtx](wfCtx{&cancelNode{}}, r, p, RunOptions{})
	require.Equal(t, RunFailed, res.Status)
	require.Equal(t, ErrTypePlatform, res.Error.Type, "a recording failure is not caught")
	require.Contains(t, res.Error.Message, `recording step "a": db down`)
	require.ErrorIs(t, res.Err, boom)
	require.NotContains(t, strings.Join(r.log, "\n"), "call b")
}
