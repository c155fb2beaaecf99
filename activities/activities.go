// Package activities holds the Temporal activities of an async execution. They are
// methods on one struct holding the invocation core and the store (workflows reference
// them through a nil *Activities), and they are thin adapters over the same invocation
// core and OpenFaaS call as the HTTP fast path.
//
// Activities pass references, never payloads: the event and the result live in the
// execution's request_logs row (claim check), so a 6 MiB event never enters Temporal.
//
// Row lifecycle: the api writes the row as queued; Invoke marks it running (with the
// attempt number) and stages the runtime's outcome in the row while it stays running;
// Persist makes it final. The store never changes a final row, so however many
// attempts of Invoke or Persist run, an execution is recorded exactly once.
package activities

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/cache"
	"github.com/lambda-microservice/lambda/fault"
	"github.com/lambda-microservice/lambda/logging"
	"github.com/lambda-microservice/lambda/metrics"
	"github.com/lambda-microservice/lambda/runtimes"
	"github.com/lambda-microservice/lambda/store"
)

// Error types of the application errors the activities return. A handler failure or a
// handler timeout is the script's doing: non-retryable, recorded as failed/timeout.
const (
	ErrHandlerFailed  = "HandlerFailed"
	ErrHandlerTimeout = "HandlerTimeout"
)

// Core is what the activities need from the invocation core (*invoke.Service).
type Core interface {
	Resolve(ctx context.Context, tenant, name string, version int, title string) (store.Version, *runtimes.Runtime, error)
	CacheLookup(ctx context.Context, v store.Version, event json.RawMessage) (string, cache.Entry, bool)
	Run(ctx context.Context, v store.Version, rt *runtimes.Runtime, e *store.Execution, timeout time.Duration) error
	Record(ctx context.Context, e *store.Execution) error
}

// Store is what the activities need from PostgreSQL (*store.Store).
type Store interface {
	GetExecution(ctx context.Context, tenant, id string, withPayload bool) (store.Execution, error)
	MarkRunning(ctx context.Context, tenant, id string, attempt int) error
}

// ResultCache is the Redis result cache (*cache.Cache).
type ResultCache interface {
	Set(ctx context.Context, key string, e cache.Entry, ttl time.Duration) error
}

// Config tunes the activities.
type Config struct {
	// HeartbeatEvery is how often Invoke heartbeats while it waits for the runtime; it is
	// also capped at a third of the activity's HeartbeatTimeout.
	HeartbeatEvery time.Duration `env:"LAMBDA_HEARTBEAT_INTERVAL" envDefault:"1s"`
}

// Activities are the activities of the ExecuteFunction workflow.
type Activities struct {
	cfg   Config
	core  Core
	store Store
	cache ResultCache
	m     *metrics.Workflow
	im    *metrics.Invoke
	log   *zap.Logger
}

// New returns the activities over the invocation core.
func New(cfg Config, core Core, st Store, c ResultCache, m *metrics.Workflow, im *metrics.Invoke, log *zap.Logger) *Activities {
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = time.Second
	}
	return &Activities{cfg: cfg, core: core, store: st, cache: c, m: m, im: im, log: log}
}

// Target names one execution.
type Target struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
}

// ResolveInput names the function version an execution runs.
type ResolveInput struct {
	Tenant        string `json:"tenant"`
	Function      string `json:"function"`
	Version       int    `json:"version"`
	LanguageTitle string `json:"language_title"`
}

// Resolved is a version's identity and settings, which the workflow turns into
// activity options.
type Resolved struct {
	Version   int    `json:"version"`
	SHA256    string `json:"sha256"`
	Language  string `json:"language"`
	Runtime   string `json:"runtime"` // the OpenFaaS function
	TimeoutMS int    `json:"timeout_ms"`
	MemoryMB  int    `json:"memory_mb"`
	CacheTTLS int    `json:"cache_ttl_s"`
}

// CheckCacheInput names an execution and its version.
type CheckCacheInput struct {
	Exec    Target       `json:"exec"`
	Version ResolveInput `json:"version"`
}

// CacheResult says whether the cache answered; on a hit the cached result is already
// staged in the execution's row.
type CacheResult struct {
	Hit bool   `json:"hit"`
	Key string `json:"key,omitempty"` // the cache key, for StoreCache after a miss
}

// InvokeInput names the execution to run.
type InvokeInput struct {
	Exec      Target       `json:"exec"`
	Version   ResolveInput `json:"version"`
	TimeoutMS int          `json:"timeout_ms"`
}

// InvokeResult is the outcome of the runtime call, without its payload (staged in the
// row). It is also the details of a HandlerFailed/HandlerTimeout application error.
type InvokeResult struct {
	Status     string  `json:"status"`
	Attempt    int     `json:"attempt"`
	DurationMS float64 `json:"duration_ms"`
	Final      bool    `json:"final,omitempty"` // the row was already final (nothing ran)
}

// PersistInput makes an execution final.
type PersistInput struct {
	Exec     Target `json:"exec"`
	Status   string `json:"status"`
	Attempts int    `json:"attempts"` // 0 keeps the row's
	Cached   bool   `json:"cached,omitempty"`
	// ErrorType/ErrorMessage record why the platform gave up (or canceled); empty for
	// outcomes the runtime produced (already staged in the row).
	ErrorType    string `json:"error_type,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
	Language     string `json:"language,omitempty"` // metrics label
}

// PersistResult is the status the execution was recorded with: the row's own when it
// was already final (a cancel that lost the race with the result, a retried Persist).
type PersistResult struct {
	Status   string `json:"status"`
	Attempts int    `json:"attempts"`
}

// StoreCacheInput stores a succeeded execution's result under key.
type StoreCacheInput struct {
	Exec Target `json:"exec"`
	Key  string `json:"key"`
	TTLS int    `json:"ttl_s"`
}

// track starts timing an activity; the returned func records its duration and outcome:
// defer a.track("Invoke")(&err).
func (a *Activities) track(name string) func(*error) {
	start := time.Now()
	return func(err *error) {
		if a.m == nil {
			return
		}
		outcome := "ok"
		if *err != nil {
			outcome = "error"
		}
		a.m.Activities.WithLabelValues(name, outcome).Observe(time.Since(start).Seconds())
	}
}

// ResolveVersion pins the version an execution runs and returns its settings.
func (a *Activities) ResolveVersion(ctx context.Context, in ResolveInput) (_ Resolved, err error) {
	defer a.track("ResolveVersion")(&err)
	v, rt, err := a.core.Resolve(ctx, in.Tenant, in.Function, in.Version, in.LanguageTitle)
	if err != nil {
		return Resolved{}, classify("resolve version", err)
	}
	return Resolved{Version: v.Version, SHA256: v.SHA256, Language: v.Language, Runtime: rt.Function,
		TimeoutMS: v.TimeoutMS, MemoryMB: v.MemoryMB, CacheTTLS: v.CacheTTLS}, nil
}

// CheckCache looks the event up in the result cache. On a hit it stages the cached
// result in the row (still running) for Persist; Redis errors are misses.
func (a *Activities) CheckCache(ctx context.Context, in CheckCacheInput) (_ CacheResult, err error) {
	defer a.track("CheckCache")(&err)
	v, _, err := a.core.Resolve(ctx, in.Exec.Tenant, in.Version.Function, in.Version.Version, in.Version.LanguageTitle)
	if err != nil {
		return CacheResult{}, classify("check cache", err)
	}
	e, err := a.store.GetExecution(ctx, in.Exec.Tenant, in.Exec.ID, true)
	if err != nil {
		return CacheResult{}, classify("check cache", err)
	}
	if store.Finished(e.Status) {
		return CacheResult{}, nil
	}
	key, entry, hit := a.core.CacheLookup(ctx, v, e.Payload)
	if !hit {
		return CacheResult{Key: key}, nil
	}
	now := time.Now().UTC()
	e.Status, e.Result, e.Error, e.Stdout, e.Stderr, e.Cached = store.StatusRunning, entry.Result, nil, entry.Stdout, entry.Stderr, true
	e.DurationMS = float64(now.Sub(e.CreatedAt).Microseconds()) / 1000
	e.FinishedAt = &now
	e.Payload = nil
	if err := a.core.Record(ctx, &e); err != nil {
		return CacheResult{}, classify("check cache", err)
	}
	return CacheResult{Hit: true, Key: key}, nil
}

// Invoke runs the script on its runtime function, heartbeating while it waits, and
// stages the outcome in the execution's row. A handler failure or timeout is a
// non-retryable application error carrying the InvokeResult as details; a platform
// fault (runtime unreachable, gateway 5xx, PostgreSQL down) is a retryable error.
// When the row is already final (canceled, or persisted by an earlier run) nothing runs.
func (a *Activities) Invoke(ctx context.Context, in InvokeInput) (_ InvokeResult, err error) {
	defer a.track("Invoke")(&err)
	info := activity.GetInfo(ctx)

	v, rt, err := a.core.Resolve(ctx, in.Exec.Tenant, in.Version.Function, in.Version.Version, in.Version.LanguageTitle)
	if err != nil {
		return InvokeResult{}, classify("invoke", err)
	}
	e, err := a.store.GetExecution(ctx, in.Exec.Tenant, in.Exec.ID, true)
	if err != nil {
		return InvokeResult{}, classify("invoke", err)
	}
	if store.Finished(e.Status) {
		return InvokeResult{Status: e.Status, Attempt: e.Attempts, DurationMS: e.DurationMS, Final: true}, nil
	}
	// The attempt counts across workers: a local activity starts again at 1 on the worker
	// that replays the run after its first worker died, but the row knows the attempt
	// that worker had started.
	attempt := int(info.Attempt)
	if e.Status == store.StatusRunning {
		attempt = max(attempt, e.Attempts+1)
	}
	log := a.log.With(zap.String(logging.FieldExecutionID, in.Exec.ID), zap.String(logging.FieldFunction, in.Version.Function),
		zap.Int("lambda.attempt", attempt))
	if err := a.store.MarkRunning(ctx, in.Exec.Tenant, in.Exec.ID, attempt); err != nil {
		return InvokeResult{}, classify("invoke", err)
	}
	e.Status, e.Attempts = store.StatusRunning, attempt

	// Heartbeat while the runtime call is in flight: a dead worker stops heartbeating,
	// the server times the attempt out after HeartbeatTimeout and retries it elsewhere;
	// a cancel reaches this attempt through the heartbeat's answer (ctx is canceled,
	// which abandons the runtime call).
	every := a.cfg.HeartbeatEvery
	if hb := info.HeartbeatTimeout; hb > 0 && hb/3 < every {
		every = max(hb/3, 50*time.Millisecond)
	}
	hbCtx, stopHB := context.WithCancel(ctx)
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-hbCtx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx, attempt)
			}
		}
	}()
	runErr := a.core.Run(ctx, v, rt, &e, time.Duration(in.TimeoutMS)*time.Millisecond)
	stopHB()
	<-hbDone
	if runErr != nil {
		if ctx.Err() != nil {
			log.Info("runtime call abandoned", logging.Err(ctx.Err()))
			return InvokeResult{}, ctx.Err()
		}
		log.Warn("runtime call failed", logging.Err(runErr))
		return InvokeResult{}, classify("invoke", runErr)
	}

	// Stage the outcome: the row stays running until Persist makes it final.
	outcome := e.Status
	res := InvokeResult{Status: outcome, Attempt: attempt, DurationMS: e.DurationMS}
	e.Status = store.StatusRunning
	e.Payload = nil
	if err := a.core.Record(ctx, &e); err != nil {
		return InvokeResult{}, classify("invoke", err)
	}
	switch outcome {
	case store.StatusFailed:
		msg := "the handler failed"
		if e.Error != nil && e.Error.Message != "" {
			msg = e.Error.Type + ": " + e.Error.Message
		}
		return res, temporal.NewNonRetryableApplicationError(msg, ErrHandlerFailed, nil, res)
	case store.StatusTimeout:
		return res, temporal.NewNonRetryableApplicationError("the handler timed out after "+
			(time.Duration(in.TimeoutMS)*time.Millisecond).String(), ErrHandlerTimeout, nil, res)
	}
	return res, nil
}

// Persist makes the execution final with in's status. The staged outcome (result,
// error, output) stays; a platform failure or a cancel replaces it with in's error.
// A row that is already final is left as it is and its status returned.
func (a *Activities) Persist(ctx context.Context, in PersistInput) (_ PersistResult, err error) {
	defer a.track("Persist")(&err)
	e, err := a.store.GetExecution(ctx, in.Exec.Tenant, in.Exec.ID, false)
	if err != nil {
		return PersistResult{}, classify("persist", err)
	}
	if store.Finished(e.Status) {
		return PersistResult{Status: e.Status, Attempts: e.Attempts}, nil
	}
	now := time.Now().UTC()
	e.Status = in.Status
	if in.Attempts > 0 {
		e.Attempts = in.Attempts
	}
	e.Cached = in.Cached
	if in.ErrorType != "" {
		e.Result, e.Stdout, e.Stderr, e.Truncated = nil, "", "", false
		e.Error = &store.ExecError{Type: in.ErrorType, Message: in.ErrorMessage}
		e.FinishedAt = nil
	}
	if e.Status != store.StatusSucceeded {
		e.Result = nil
	}
	if e.FinishedAt == nil {
		e.FinishedAt = &now
		if e.DurationMS == 0 {
			e.DurationMS = float64(now.Sub(e.CreatedAt).Microseconds()) / 1000
		}
	}
	if err := a.core.Record(ctx, &e); err != nil {
		return PersistResult{}, classify("persist", err)
	}
	if a.m != nil {
		a.m.Completed.WithLabelValues(in.Language, e.Status).Inc()
	}
	if a.im != nil {
		a.im.Invocations.WithLabelValues(in.Language, "workflow", e.Status).Inc()
		a.im.Duration.WithLabelValues(in.Language, "workflow").Observe(now.Sub(e.CreatedAt).Seconds())
	}
	return PersistResult{Status: e.Status, Attempts: e.Attempts}, nil
}

// StoreCache saves a succeeded execution's result in the result cache.
func (a *Activities) StoreCache(ctx context.Context, in StoreCacheInput) (err error) {
	defer a.track("StoreCache")(&err)
	e, err := a.store.GetExecution(ctx, in.Exec.Tenant, in.Exec.ID, false)
	if err != nil {
		return classify("store cache", err)
	}
	if e.Status != store.StatusSucceeded || e.Cached {
		return nil
	}
	err = a.cache.Set(ctx, in.Key, cache.Entry{Result: e.Result, Stdout: e.Stdout, Stderr: e.Stderr},
		time.Duration(in.TTLS)*time.Second)
	if err != nil {
		return classify("store cache", err)
	}
	return nil
}

// classify is the one place that maps an error to retryability: platform faults
// (unavailable, overloaded, platform timeouts, unexpected errors) retry under the
// activity's RetryPolicy; errors about the request itself (invalid, not found,
// unprocessable, ...) do not. The fault kind is the application error's type.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return err
	}
	kind := fault.KindOf(err)
	msg := op + ": " + err.Error()
	if kind != fault.Internal {
		msg = op + ": " + fault.Detail(err)
	}
	switch kind {
	case fault.Unavailable, fault.Overloaded, fault.Timeout, fault.Internal:
		return temporal.NewApplicationErrorWithCause(msg, kind.String(), err)
	default:
		return temporal.NewNonRetryableApplicationError(msg, kind.String(), err)
	}
}
