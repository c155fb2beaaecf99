// Package workflows holds the durable async execution, ExecuteFunction, the durable
// pipeline run, RunPipeline (pipeline.go), and how the platform starts, signals and
// cancels them (Starter, the Temporal side of core.Durable and core.RunDurable). Workflow
// code only orchestrates: it is deterministic (no I/O, clocks or randomness) and carries
// references — execution id, the pinned version and its settings — never the event, the
// result or the script, which stay in PostgreSQL (claim check).
//
// RunPipeline runs the pipeline package's interpreter itself inside the workflow, so a
// change to the interpreter's order of runner calls is a change to the workflow: guard it
// with workflow.GetVersion, and keep the recorded run histories in testdata replaying.
//
// Shape. The run starts with the version its execution was accepted with (core.Pinned in
// ExecutionRef), so no step resolves it again: CheckCache (when the version caches
// results), Invoke, Persist. CheckCache and Persist are local activities: each is a
// sub-millisecond PostgreSQL/Redis call that runs inside the workflow task instead of
// costing a server round trip and a task-queue hop. Invoke depends on the function's
// timeout (ExecutionRef.LocalInvokeMax, LAMBDA_ASYNC_LOCAL_INVOKE_MAX, default 10 s):
//
//   - up to it, a local activity too: the whole execution is one workflow task, and a
//     worker that dies mid-call is noticed when that task times out (10 s, as the default
//     heartbeat timeout); the next worker runs the call again, and Invoke takes the attempt
//     number from the execution's row, so attempts count across workers either way;
//   - above it, a regular activity that heartbeats while the runtime call runs, so a dead
//     worker is noticed by HeartbeatTimeout however long the handler may run.
//
// Local activities keep their own StartToCloseTimeout and RetryPolicy, and Persist is
// idempotent, so retries and exactly-once recording hold on both paths. The api starts
// runs eagerly (Temporal's eager workflow start: the first workflow task comes back with
// the start's answer and runs in the api's own worker). Runs started before a choice
// existed replay their old shape (workflow.GetVersion): "local-invoke" (before it, Invoke
// was always a regular activity) and "pinned-version" (before it, a run resolved its
// version in a ResolveVersion step, CheckCache and Invoke resolved it again, and a
// StoreCache step filled the cache after Persist; since its version 2, Invoke records the
// runtime's outcome final instead of staging it for Persist — one commit less — and a
// short local Invoke upserts no "running" status, StatusAtEndMax). An Invoke refused
// because the tenant's own calls hold its share of the runtime waits for the share,
// spending no attempt (shareWait, GetVersion "share-wait"). Measurements: BENCHMARKS.md.
package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/store"
)

// TaskQueue is the task queue of the async executions.
const TaskQueue = "lambda-executions"

// WorkflowName is the registered name of ExecuteFunction.
const WorkflowName = "ExecuteFunction"

// Search attributes an operator filters runs by in the Temporal Web UI.
var (
	SearchFunction = temporal.NewSearchAttributeKeyKeyword("LambdaFunction")
	SearchLanguage = temporal.NewSearchAttributeKeyKeyword("LambdaLanguage")
	SearchStatus   = temporal.NewSearchAttributeKeyKeyword("LambdaStatus")
)

// SearchAttributeNames lists the custom search attributes (all Keyword); LambdaPipeline
// is SearchPipeline (pipeline runs).
var SearchAttributeNames = []string{"LambdaFunction", "LambdaLanguage", "LambdaStatus", "LambdaPipeline"}

// Defaults for ExecutionRef fields left zero.
const (
	DefaultHeartbeatTimeout = 10 * time.Second
	DefaultMaxAttempts      = 5
	DefaultShareWait        = time.Hour
	// InvokeMargin is added to the handler's timeout for Invoke's StartToCloseTimeout:
	// the invocation core waits timeout + its slack (5 s) for the runtime, so the
	// activity only times out when its worker is stuck.
	InvokeMargin = 30 * time.Second
)

// WorkflowID is the workflow ID of execution id.
func WorkflowID(id string) string { return "exec-" + id }

// ExecutionRef is the workflow's input: references only.
type ExecutionRef struct {
	ID            string `json:"id"`
	Tenant        string `json:"tenant"`
	Function      string `json:"function"`
	Version       int    `json:"version"`
	SHA256        string `json:"sha256"`
	Language      string `json:"language"`
	LanguageTitle string `json:"language_title"`
	// HeartbeatTimeout is Invoke's heartbeat timeout: how soon a dead worker is noticed.
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	// MaxAttempts bounds Invoke's retries of platform faults.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// LocalInvokeMax: Invoke runs as a local activity when the version's timeout is at
	// most this (0: always a regular, heartbeating activity).
	LocalInvokeMax time.Duration `json:"local_invoke_max,omitempty"`
	// The pinned version's settings (runs started without them resolve the version).
	Runtime   string `json:"runtime,omitempty"` // the OpenFaaS function
	TimeoutMS int    `json:"timeout_ms,omitempty"`
	MemoryMB  int    `json:"memory_mb,omitempty"`
	CacheTTLS int    `json:"cache_ttl_s,omitempty"`
	// Callback: the execution asked for a completion callback; Persist starts its
	// delivery once the execution is final.
	Callback bool `json:"callback,omitempty"`
	// ShareWait bounds how long, from the run's start, the execution waits for a worker
	// while its tenant's other calls hold the tenant's share of the runtime (0: the
	// default); past it the execution is recorded timeout (TenantShareTimeout).
	ShareWait time.Duration `json:"share_wait,omitempty"`
}

// pinned is the version the run was started with, or nil for a run started without it.
func (ref ExecutionRef) pinned() *core.Pinned {
	if ref.Runtime == "" {
		return nil
	}
	return &core.Pinned{Tenant: ref.Tenant, Function: ref.Function, Version: ref.Version, SHA256: ref.SHA256,
		Language: ref.Language, Runtime: ref.Runtime, TimeoutMS: ref.TimeoutMS, MemoryMB: ref.MemoryMB, CacheTTLS: ref.CacheTTLS}
}

// Outcome is the workflow's result: the recorded status (the result itself is in
// PostgreSQL, GET /v1/executions/{id}).
type Outcome struct {
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
	Cached   bool   `json:"cached,omitempty"`
}

// Memo is what the Temporal UI shows for each run.
func Memo(ref ExecutionRef) map[string]any {
	return map[string]any{"function": ref.Function, "version": ref.Version, "language": ref.Language,
		"sha256": ref.SHA256, "tenant": ref.Tenant, "execution_id": ref.ID}
}

var a *activities.Activities

// platformRetry retries the cheap local activities through a brief PostgreSQL outage.
var platformRetry = &temporal.RetryPolicy{
	InitialInterval:    100 * time.Millisecond,
	BackoffCoefficient: 2,
	MaximumInterval:    2 * time.Second,
	MaximumAttempts:    20,
}

// persistRetry keeps trying to make an execution final through a longer PostgreSQL
// outage: giving up would leave the row running forever.
var persistRetry = &temporal.RetryPolicy{
	InitialInterval:    100 * time.Millisecond,
	BackoffCoefficient: 2,
	MaximumInterval:    10 * time.Second,
}

func localOptions(summary string) workflow.LocalActivityOptions {
	return workflow.LocalActivityOptions{
		StartToCloseTimeout:    10 * time.Second,
		ScheduleToCloseTimeout: time.Minute,
		RetryPolicy:            platformRetry,
		Summary:                summary,
	}
}

// InvokeOptions are Invoke's activity options for a version's timeout.
func InvokeOptions(ref ExecutionRef, timeoutMS int) workflow.ActivityOptions {
	hb := ref.HeartbeatTimeout
	if hb <= 0 {
		hb = DefaultHeartbeatTimeout
	}
	attempts := ref.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	return workflow.ActivityOptions{
		StartToCloseTimeout: time.Duration(timeoutMS)*time.Millisecond + InvokeMargin,
		HeartbeatTimeout:    hb,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    200 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    10 * time.Second,
			MaximumAttempts:    int32(attempts),
			// A refusal for the tenant's share comes back to the workflow, which waits for
			// the share without spending an attempt (shareWait).
			NonRetryableErrorTypes: []string{activities.ErrHandlerFailed, activities.ErrHandlerTimeout, activities.ErrTenantShare},
		},
		Summary: fmt.Sprintf("run %s v%d (%s)", ref.Function, ref.Version, ref.Language),
	}
}

// InvokeLocalOptions are Invoke's options when it runs as a local activity: the same
// timeout and retries as the regular one. A worker that dies mid-call is noticed when the
// workflow task times out, and the next worker runs the call again.
func InvokeLocalOptions(ref ExecutionRef, timeoutMS int) workflow.LocalActivityOptions {
	o := InvokeOptions(ref, timeoutMS)
	return workflow.LocalActivityOptions{StartToCloseTimeout: o.StartToCloseTimeout, RetryPolicy: o.RetryPolicy, Summary: o.Summary}
}

// localInvoke reports whether Invoke runs as a local activity. Runs started before the
// choice existed replay their regular activity (workflow.GetVersion).
func localInvoke(ctx workflow.Context, ref ExecutionRef, timeoutMS int) bool {
	if workflow.GetVersion(ctx, "local-invoke", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return false
	}
	return ref.LocalInvokeMax > 0 && time.Duration(timeoutMS)*time.Millisecond <= ref.LocalInvokeMax
}

// ExecuteFunction runs one async execution: answer from the cache or invoke the
// runtime, persist the outcome (and, for runs started without a pinned version, resolve
// it first and fill the cache last). A handler failure or timeout ends the workflow failed
// (non-retryable); a cancel records the execution canceled unless it is already final.
func ExecuteFunction(ctx workflow.Context, ref ExecutionRef) (Outcome, error) {
	target := activities.Target{ID: ref.ID, Tenant: ref.Tenant}
	ver := activities.ResolveInput{Tenant: ref.Tenant, Function: ref.Function, Version: ref.Version, LanguageTitle: ref.LanguageTitle}

	pinned := ref.pinned()
	statusAtEnd := false
	if pinned != nil {
		// 2: Invoke records the outcome final, and a short local Invoke upserts no
		// running status (statusAtEnd).
		switch workflow.GetVersion(ctx, "pinned-version", workflow.DefaultVersion, 2) {
		case workflow.DefaultVersion:
			pinned = nil
		case 2:
			statusAtEnd = true
		}
	}
	var v activities.Resolved
	if pinned != nil {
		v = activities.Resolved{TimeoutMS: pinned.TimeoutMS, CacheTTLS: pinned.CacheTTLS}
	} else {
		err := workflow.ExecuteLocalActivity(
			workflow.WithLocalActivityOptions(ctx, localOptions(fmt.Sprintf("resolve %s v%d", ref.Function, ref.Version))),
			a.ResolveVersion, ver).Get(ctx, &v)
		if err != nil {
			return finish(ctx, ref, platformFailure(ctx, target, err))
		}
	}

	var cacheKey string
	if v.CacheTTLS > 0 {
		var c activities.CacheResult
		err := workflow.ExecuteLocalActivity(
			workflow.WithLocalActivityOptions(ctx, localOptions("check result cache")),
			a.CheckCache, activities.CheckCacheInput{Exec: target, Version: ver, Pinned: pinned}).Get(ctx, &c)
		switch {
		case err != nil && canceled(ctx, err):
			return finish(ctx, ref, platformFailure(ctx, target, err))
		case err == nil && c.Hit:
			return finish(ctx, ref, activities.PersistInput{Exec: target, Status: store.StatusSucceeded, Cached: true})
		case err == nil:
			cacheKey = c.Key
		}
		// A cache that cannot be read is a miss: the script runs.
	}

	if !statusAtEnd {
		upsertStatus(ctx, store.StatusRunning)
	}
	local := localInvoke(ctx, ref, v.TimeoutMS)
	if statusAtEnd && (!local || time.Duration(v.TimeoutMS)*time.Millisecond > StatusAtEndMax) {
		upsertStatus(ctx, store.StatusRunning)
	}
	var res activities.InvokeResult
	in := activities.InvokeInput{Exec: target, Version: ver, Pinned: pinned, TimeoutMS: v.TimeoutMS, Final: statusAtEnd}
	invoke := func() error {
		if local {
			return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, InvokeLocalOptions(ref, v.TimeoutMS)),
				a.Invoke, in).Get(ctx, &res)
		}
		return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, InvokeOptions(ref, v.TimeoutMS)),
			a.Invoke, in).Get(ctx, &res)
	}
	err := invoke()
	if shareRefused(err) {
		err = shareWait(ctx, ref, invoke, err)
	}
	var p activities.PersistInput
	var appErr *temporal.ApplicationError
	switch {
	case errors.As(err, new(shareTimeout)):
		p = activities.PersistInput{Exec: target, Status: store.StatusTimeout, ErrorType: ErrTenantShareTimeout, ErrorMessage: err.Error()}
	case err == nil:
		p = activities.PersistInput{Exec: target, Status: res.Status, Attempts: res.Attempt}
	case errors.As(err, &appErr) && (appErr.Type() == activities.ErrHandlerFailed || appErr.Type() == activities.ErrHandlerTimeout):
		_ = appErr.Details(&res)
		p = activities.PersistInput{Exec: target, Status: res.Status, Attempts: res.Attempt}
	default:
		p = platformFailure(ctx, target, err)
	}
	out, ferr := finish(ctx, ref, p)
	if pinned == nil && ferr == nil && out.Status == store.StatusSucceeded && cacheKey != "" && !out.Cached {
		// Best effort: a result that could not be cached is still a succeeded execution.
		// (Invoke stores the result itself when the run has its pinned version.)
		sctx, _ := workflow.NewDisconnectedContext(ctx)
		_ = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(sctx, localOptions("store result in cache")),
			a.StoreCache, activities.StoreCacheInput{Exec: target, Key: cacheKey, TTLS: v.CacheTTLS}).Get(sctx, nil)
	}
	return out, ferr
}

// ErrTenantShareTimeout is the error type of an execution that waited ShareWait for a
// worker within its tenant's share and got none: recorded timeout, not failed.
const ErrTenantShareTimeout = "TenantShareTimeout"

// shareTimeout is shareWait's error when the execution's ShareWait passed.
type shareTimeout struct{ wait time.Duration }

func (e shareTimeout) Error() string {
	return fmt.Sprintf("no worker within this tenant's share of the runtime came free in %s (LAMBDA_ASYNC_SHARE_WAIT)", e.wait)
}

// shareRefused reports whether Invoke's error is a refusal because the tenant's own calls
// hold its share of the runtime's workers.
func shareRefused(err error) bool {
	var appErr *temporal.ApplicationError
	return errors.As(err, &appErr) && appErr.Type() == activities.ErrTenantShare
}

// shareWait waits for the tenant's share after Invoke's first refusal (err): an
// acknowledged execution must not fail because its own tenant has a backlog. Invoke
// already waits in the worker (core.Service.RunAttempt: backoff, no Temporal work) for as
// long as its timeout leaves room, and takes its attempt back when it gives up; here the
// workflow sleeps a backoff (200 ms doubling to 5 s: a timer, one event pair per round)
// and invokes again, with a fresh activity attempt, until ShareWait from the run's start
// has passed (checked between rounds: a round may overrun it by one Invoke) — then
// shareTimeout. A cancel ends the wait as a cancel. Runs from before this existed replay
// their old path, which had no such refusal (GetVersion "share-wait").
func shareWait(ctx workflow.Context, ref ExecutionRef, invoke func() error, err error) error {
	if workflow.GetVersion(ctx, "share-wait", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return err
	}
	wait := ref.ShareWait
	if wait <= 0 {
		wait = DefaultShareWait
	}
	deadline := workflow.GetInfo(ctx).WorkflowStartTime.Add(wait)
	for try := 0; shareRefused(err); try++ {
		if !workflow.Now(ctx).Before(deadline) {
			return shareTimeout{wait: wait}
		}
		if serr := workflow.Sleep(ctx, min(200*time.Millisecond<<min(try, 5), 5*time.Second)); serr != nil {
			return serr // canceled
		}
		err = invoke()
	}
	return err
}

// canceled reports whether err (or the workflow) is a cancellation.
func canceled(ctx workflow.Context, err error) bool {
	return ctx.Err() != nil || temporal.IsCanceledError(err)
}

// platformFailure turns a step's error into what Persist records: canceled when the
// workflow was canceled, else failed with the error's type and message.
func platformFailure(ctx workflow.Context, target activities.Target, err error) activities.PersistInput {
	if canceled(ctx, err) {
		return activities.PersistInput{Exec: target, Status: store.StatusCanceled, ErrorType: "Canceled",
			ErrorMessage: "the execution was canceled"}
	}
	typ, msg := "PlatformError", err.Error()
	var appErr *temporal.ApplicationError
	var toErr *temporal.TimeoutError
	switch {
	case errors.As(err, &appErr):
		typ, msg = appErr.Type(), appErr.Message()
	case errors.As(err, &toErr):
		typ, msg = "PlatformTimeout", toErr.Error()
	}
	return activities.PersistInput{Exec: target, Status: store.StatusFailed, ErrorType: typ, ErrorMessage: msg}
}

// finish records the execution final (in a disconnected context, so a cancel cannot
// abandon it), upserts LambdaStatus and ends the workflow with a matching state:
// completed for succeeded, failed for failed/timeout, canceled for canceled.
func finish(ctx workflow.Context, ref ExecutionRef, p activities.PersistInput) (Outcome, error) {
	p.Notify = ref.Callback
	dctx, _ := workflow.NewDisconnectedContext(ctx)
	opts := localOptions("record " + p.Status)
	opts.RetryPolicy, opts.ScheduleToCloseTimeout = persistRetry, 30*time.Minute
	var r activities.PersistResult
	err := workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(dctx, opts), a.Persist, p).Get(dctx, &r)
	if err != nil {
		// PostgreSQL stayed down for half an hour: the row stays as it was.
		return Outcome{}, err
	}
	upsertStatus(dctx, r.Status)
	out := Outcome{Status: r.Status, Attempts: r.Attempts, Cached: p.Cached && r.Status == store.StatusSucceeded}
	switch r.Status {
	case store.StatusSucceeded:
		return out, nil
	case store.StatusCanceled:
		return out, temporal.NewCanceledError(out)
	default:
		return out, temporal.NewNonRetryableApplicationError("execution "+r.Status, "Execution"+titleCase(r.Status), nil, out)
	}
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// StatusAtEndMax: an execution whose Invoke is a local activity with a timeout of at most
// this (since "pinned-version" 2) upserts no LambdaStatus "running": the call ends within
// its workflow task (the SDK completes a task running local activities only after 8 s,
// and the core waits at most the timeout and 5 s of slack), so "running" would reach
// Temporal in the same task completion as the final status and never be seen — one
// search-attribute upsert and visibility write per execution saved.
const StatusAtEndMax = 3 * time.Second

func upsertStatus(ctx workflow.Context, status string) {
	// An upsert is a command carried by the next workflow task completion: no extra
	// round trip. A failure (attributes not registered) must not fail the execution.
	_ = workflow.UpsertTypedSearchAttributes(ctx, SearchStatus.ValueSet(status))
}
