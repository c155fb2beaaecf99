package pipeline

import (
	"errors"
	"fmt"
	"strings"
)

// Error is a step's or a run's error as the run envelope shows it. Step names the step
// that failed first (the innermost one: a step in a parallel branch, not the parallel).
type Error struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Step    string `json:"step,omitempty"`
}

func (e *Error) Error() string {
	if e.Step != "" {
		return fmt.Sprintf("step %q: %s: %s", e.Step, e.Type, e.Message)
	}
	return e.Type + ": " + e.Message
}

// Error types the interpreter and the expressions produce; a handler's failure keeps the
// type its runtime reported.
const (
	ErrTypeExpression  = "ExpressionError" // an if, items, input or output expression failed
	ErrTypePlatform    = "PlatformError"   // the runner could not do it (after its own retries)
	ErrTypeTimeout     = "Timeout"         // a function call ran past its timeout
	ErrTypeWaitTimeout = "WaitTimeout"     // no signal in time and no on_timeout
	ErrTypeRunTimeout  = "RunTimeout"      // the pipeline's timeout_ms passed
	ErrTypeCanceled    = "Canceled"        // the run was canceled
	ErrTypeItemsLimit  = "ItemsLimit"      // a map's items list is longer than RunOptions.MaxItems
)

// ErrStop is returned by a runner from Call, Eval (or any other call) to stop the run
// where it is: the interpreter launches nothing more, settles and finishes nothing, waits
// for the calls in flight (they are not canceled) and returns a RunResult with Stopped
// set. The sync runner uses it to hand a run that outlives its budget over to a durable
// workflow seeded with the steps Snapshot shows final. A step whose call was in flight is
// not settled and runs again in the workflow under the same execution id
// (StepExecutionID), which lets the invocation core recognise the execution it finished.
var ErrStop = errors.New("pipeline: run stopped by its runner")

// Problem is one reason a definition is invalid.
type Problem struct {
	Step    string `json:"step,omitempty"`  // step id, or its path (steps[2]) when it has none; "" for the pipeline
	Field   string `json:"field,omitempty"` // e.g. "input", "retry.max_attempts", "output", "name", "timeout_ms"
	Message string `json:"message"`         // a sentence for the user, naming the step
}

// ValidationError lists every problem found in a definition; the api answers it with 422.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Message
	}
	return "invalid pipeline: " + strings.Join(msgs, "; ")
}

// maxProblems bounds a ValidationError: a 10,000-step definition of garbage is not
// reported line by line.
const maxProblems = 100

type problems struct {
	list []Problem
}

func (p *problems) add(step, field, format string, args ...any) {
	if len(p.list) >= maxProblems {
		return
	}
	msg := fmt.Sprintf(format, args...)
	switch {
	case step == "":
	case strings.ContainsAny(step, "[."):
		msg = step + ": " + msg
	default:
		msg = fmt.Sprintf("step %q: %s", step, msg)
	}
	p.list = append(p.list, Problem{Step: step, Field: field, Message: msg})
}

func (p *problems) has(step, field string) bool {
	for _, q := range p.list {
		if q.Step == step && q.Field == field {
			return true
		}
	}
	return false
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{Problems: p.list}
}
