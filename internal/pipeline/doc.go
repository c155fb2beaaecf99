// Package pipeline is the pure core of pipelines (DESIGN.md §9): definitions (Parse,
// Canonical, SHA256), validation (Validate against a Catalog), CEL expressions and JSON
// templates compiled once (Compile), and one deterministic interpreter (Run, Interpreter)
// driven by a Runner — MemRunner in memory (the sync path), a Temporal runner inside a
// workflow function. It imports nothing else from this repository.
//
// # Data flow
//
// The interpreter holds control-flow state only: statuses, attempts, execution ids, error
// summaries. Payloads stay with the runner: Call renders a step's input and calls its
// function, Eval evaluates an if or a map's items, Settle is told where a settled step's
// output comes from (OutputRef), Finish where the run's default output comes from.
//
// # Semantics
//
//   - Steps run in order. The default input of a step without an input template is the
//     output of the previous step that ran in its list, or the run's input for the first;
//     a branch's first step gets the parallel step's own input; a map item gets its item.
//     Skipped steps (if false, or jumped over by a catch) and sleep steps produce no value
//     (their recorded output is null) and are transparent: the next step gets what they
//     got. The run's default output follows the same rule.
//   - A function step makes one call, or up to retry.max_attempts (default 3 when a retry
//     object is given) when its handler fails or times out, sleeping initial_interval_ms
//     (default 1000) × backoff^(n-1) (default 2, each delay capped at one hour) before
//     attempt n+1. A platform fault (a runner error, already retried by the runner) and an
//     input expression error are never retried. All attempts share one execution id.
//   - A step that fails with catch settles failed; the steps between it and the catch
//     target (always later in the same list, so every run ends) are settled skipped
//     (steps nested in them stay pending); the target's default input is
//     {"error": {"type","message"}, "step": "<failed id>"}. Without catch the failure ends
//     its list: the run fails, or the branch fails its parallel step. Steps never reached
//     are not settled (pending).
//   - map: items must give a list (at most RunOptions.MaxItems); at most max_concurrency
//     (default 10) items run at once, each with the step's retry policy; the output is the
//     list of item outputs in item order; the first failed item fails the step
//     ("item <i>: <message>") and cancels the items in flight.
//   - parallel: branches start in sorted name order, all at once; the output is
//     {branch: the value of its last step that ran (its input when none ran)}; the first
//     failed branch fails the step with that step's error (Error.Step names the innermost
//     step) and cancels the others.
//   - wait_for: the output is the signal's payload, else on_timeout's value; without it a
//     timeout fails the step (WaitTimeout). The run is waiting while a Wait is in progress.
//   - timeout_ms of the pipeline: the steps and a timer run side by side (Fork); the timer
//     firing first cancels the steps and the run fails with RunTimeout.
//   - Cancellation: the steps in flight are settled canceled (through Detached), then
//     Finish(canceled).
//   - Seeds (RunOptions.Seed) are taken as final without running; ErrStop stops a run
//     without recording anything more (see ErrStop).
//
// # Expressions
//
// CEL with the variables input (the run's input), steps (id → {"output","status","error"},
// every step, pending ones with status "pending"), and item and index in a map's item
// step. JSON numbers with an integral value are ints, others doubles; mixed comparisons
// work (3 == 3.0). An expression may name only the steps that finish before it runs (the
// steps before it in its list and in the lists enclosing it, nested steps included); the
// pipeline's output may name any. Every evaluation is cost-limited (CostLimit) and a
// comprehension checks its context for cancellation.
//
// # Determinism
//
// The interpreter never blocks, spawns goroutines, reads a clock or iterates a map
// without sorting; everything that does goes through the Runner, so the interpreter can
// run inside a Temporal workflow. Its state is guarded by a mutex that is never held
// across a runner call.
package pipeline
