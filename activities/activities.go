// Package activities holds the Temporal activities of an async execution. They are
// methods on one struct holding the invocation core (workflows reference them through a
// nil *Activities) and thin adapters over the core's execution steps (core.Pin,
// CheckCache, RunAttempt, Finish): what they add is Temporal's — heartbeats while the
// runtime call runs, and the one mapping of errors to retryability (classify).
//
// Activities pass references, never payloads: the event and the result live in the
// execution's request_logs row (claim check), so a 6 MiB event never enters Temporal.
// The workflow hands them the version it pinned (core.Pinned) when its run was started
// with one; runs started without it resolve the version per step, as they always did.
package activities

import (
	"context"
	"errors"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/store"
)

// Error types of the application errors the activities return. A handler failure or a
// handler timeout is the script's doing: non-retryable, recorded as failed/timeout.
const (
	ErrHandlerFailed  = "HandlerFailed"
	ErrHandlerTimeout = "HandlerTimeout"
)

// ErrTenantShare is the type of the error of a runtime call refused because the tenant's
// own calls hold its share of the runtime's workers: retryable as a platform fault for
// those who retry, while the execution workflow lists it non-retryable and waits for its
// share itself, without spending an attempt.
var ErrTenantShare = fault.TenantShare.String()

// Core is what the activities need from the invocation core (*core.Service).
type Core interface {
	Pin(ctx context.Context, tenant, name string, version int, title string) (core.Pinned, error)
	CheckCache(ctx context.Context, id string, p core.Pinned) (key string, hit bool, err error)
	RunAttempt(ctx context.Context, id string, p core.Pinned, n int, timeout time.Duration, final bool, started func(n int)) (core.Attempt, error)
	Finish(ctx context.Context, tenant, id string, f core.Final) (store.Execution, bool, error)
	StoreResult(ctx context.Context, tenant, id, key string, ttl time.Duration) error
	DeliverCallback(ctx context.Context, id string, n int) (core.Delivery, error)
	GiveUpCallback(ctx context.Context, id, reason string) error
	StartScheduled(ctx context.Context, tenant, name, key string) (core.ScheduledStart, error)
}

// Config tunes the activities.
type Config struct {
	// HeartbeatEvery is how often Invoke heartbeats while it waits for the runtime; it is
	// also capped at a third of the activity's HeartbeatTimeout.
	HeartbeatEvery time.Duration `env:"LAMBDA_HEARTBEAT_INTERVAL" envDefault:"1s"`
}

// Activities are the activities of the ExecuteFunction workflow.
type Activities struct {
	cfg  Config
	core Core
	m    *metrics.Workflow
	log  *zap.Logger
	runs Runs // pipeline runs' step operations (runs.go); nil when not composed
}

// New returns the activities over the invocation core.
func New(cfg Config, c Core, m *metrics.Workflow, log *zap.Logger) *Activities {
	if cfg.HeartbeatEvery <= 0 {
		cfg.HeartbeatEvery = time.Second
	}
	return &Activities{cfg: cfg, core: c, m: m, log: log}
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

// Resolved is what the workflow needs of a version it resolved by number.
type Resolved struct {
	TimeoutMS int `json:"timeout_ms"`
	CacheTTLS int `json:"cache_ttl_s"`
}

// CheckCacheInput names an execution and its version: the pinned one, or (runs started
// without it) the one to resolve.
type CheckCacheInput struct {
	Exec    Target       `json:"exec"`
	Version ResolveInput `json:"version"`
	Pinned  *core.Pinned `json:"pinned,omitempty"`
}

// CacheResult says whether the cache answered; on a hit the cached result is already
// staged in the execution's row.
type CacheResult struct {
	Hit bool   `json:"hit"`
	Key string `json:"key,omitempty"` // the cache key, for StoreCache after a miss
}

// InvokeInput names the execution to run and its version, as CheckCacheInput does.
type InvokeInput struct {
	Exec      Target       `json:"exec"`
	Version   ResolveInput `json:"version"`
	Pinned    *core.Pinned `json:"pinned,omitempty"`
	TimeoutMS int          `json:"timeout_ms"`
	// Final: record the runtime's outcome final, not staged (the workflow persists the
	// same status next, finding the row final).
	Final bool `json:"final,omitempty"`
}

// InvokeResult is the outcome of the runtime call, without its payload (staged in the
// row). It is also the details of a HandlerFailed/HandlerTimeout application error.
type InvokeResult struct {
	Status  string `json:"status"`
	Attempt int    `json:"attempt"`
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
	// Notify starts the execution's completion callback once it is final.
	Notify bool `json:"notify,omitempty"`
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

// pinned is the version a step runs: the one the workflow pinned, else resolved now.
func (a *Activities) pinned(ctx context.Context, p *core.Pinned, in ResolveInput) (core.Pinned, error) {
	if p != nil {
		return *p, nil
	}
	return a.core.Pin(ctx, in.Tenant, in.Function, in.Version, in.LanguageTitle)
}

// ResolveVersion resolves the version of an execution whose run was started without
// it pinned, and returns its settings.
func (a *Activities) ResolveVersion(ctx context.Context, in ResolveInput) (_ Resolved, err error) {
	defer a.track("ResolveVersion")(&err)
	p, err := a.core.Pin(ctx, in.Tenant, in.Function, in.Version, in.LanguageTitle)
	if err != nil {
		return Resolved{}, classify("resolve version", err)
	}
	return Resolved{TimeoutMS: p.TimeoutMS, CacheTTLS: p.CacheTTLS}, nil
}

// CheckCache looks the event up in the result cache. On a hit it stages the cached
// result in the row (still running) for Persist; Redis errors are misses.
func (a *Activities) CheckCache(ctx context.Context, in CheckCacheInput) (_ CacheResult, err error) {
	defer a.track("CheckCache")(&err)
	p, err := a.pinned(ctx, in.Pinned, in.Version)
	if err != nil {
		return CacheResult{}, classify("check cache", err)
	}
	key, hit, err := a.core.CheckCache(ctx, in.Exec.ID, p)
	if err != nil {
		return CacheResult{}, classify("check cache", err)
	}
	return CacheResult{Hit: hit, Key: key}, nil
}

// Invoke runs the script on its runtime function, heartbeating while it waits, and
// stages the outcome in the execution's row (core.Service.RunAttempt). A handler failure
// or timeout is a non-retryable application error carrying the InvokeResult as details;
// a platform fault (runtime unreachable, gateway 5xx, PostgreSQL down) is a retryable
// error. When the row is already final (canceled, or persisted by an earlier run) nothing
// runs.
func (a *Activities) Invoke(ctx context.Context, in InvokeInput) (_ InvokeResult, err error) {
	defer a.track("Invoke")(&err)
	info := activity.GetInfo(ctx)
	p, err := a.pinned(ctx, in.Pinned, in.Version)
	if err != nil {
		return InvokeResult{}, classify("invoke", err)
	}

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
	heartbeating := false
	defer func() {
		stopHB()
		if heartbeating {
			<-hbDone
		}
	}()
	heartbeat := func(attempt int) {
		heartbeating = true
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
	}
	timeout := time.Duration(in.TimeoutMS) * time.Millisecond
	at, runErr := a.core.RunAttempt(ctx, in.Exec.ID, p, int(info.Attempt), timeout, in.Final, heartbeat)
	if runErr != nil && at.Number == 0 {
		return InvokeResult{}, classify("invoke", runErr) // before the attempt started
	}
	if runErr != nil {
		log := a.log.With(zap.String(logging.FieldExecutionID, in.Exec.ID), zap.String(logging.FieldFunction, p.Function),
			zap.Int("lambda.attempt", at.Number))
		if ctx.Err() != nil {
			log.Info("runtime call abandoned", logging.Err(ctx.Err()))
			return InvokeResult{}, ctx.Err()
		}
		log.Warn("runtime call failed", logging.Err(runErr))
		return InvokeResult{}, classify("invoke", runErr)
	}
	res := InvokeResult{Status: at.Status, Attempt: at.Number}
	if at.Recorded && a.m != nil {
		a.m.Completed.WithLabelValues(p.Language, at.Status).Inc()
	}
	if at.Final {
		return res, nil
	}
	switch at.Status {
	case store.StatusFailed:
		msg := "the handler failed"
		if at.Error != nil && at.Error.Message != "" {
			msg = at.Error.Type + ": " + at.Error.Message
		}
		return res, temporal.NewNonRetryableApplicationError(msg, ErrHandlerFailed, nil, res)
	case store.StatusTimeout:
		return res, temporal.NewNonRetryableApplicationError("the handler timed out after "+timeout.String(), ErrHandlerTimeout, nil, res)
	}
	return res, nil
}

// Persist makes the execution final with in's status (core.Service.Finish). A row that is
// already final is left as it is and its status returned.
func (a *Activities) Persist(ctx context.Context, in PersistInput) (_ PersistResult, err error) {
	defer a.track("Persist")(&err)
	e, recorded, err := a.core.Finish(ctx, in.Exec.Tenant, in.Exec.ID, core.Final{Status: in.Status, Attempts: in.Attempts,
		Cached: in.Cached, ErrorType: in.ErrorType, ErrorMessage: in.ErrorMessage, Notify: in.Notify})
	if err != nil {
		return PersistResult{}, classify("persist", err)
	}
	if recorded && a.m != nil {
		a.m.Completed.WithLabelValues(e.Language, e.Status).Inc()
	}
	return PersistResult{Status: e.Status, Attempts: e.Attempts}, nil
}

// StoreCache saves a succeeded execution's result in the result cache (runs started
// without a pinned version; Invoke stores it for the others).
func (a *Activities) StoreCache(ctx context.Context, in StoreCacheInput) (err error) {
	defer a.track("StoreCache")(&err)
	err = a.core.StoreResult(ctx, in.Exec.Tenant, in.Exec.ID, in.Key, time.Duration(in.TTLS)*time.Second)
	return classify("store cache", err)
}

// classify is the one place that maps an error to retryability: platform faults
// (unavailable, overloaded, a tenant at its share, platform timeouts, unexpected errors) retry under the
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
	case fault.Unavailable, fault.Overloaded, fault.TenantShare, fault.Timeout, fault.Internal:
		return temporal.NewApplicationErrorWithCause(msg, kind.String(), err)
	default:
		return temporal.NewNonRetryableApplicationError(msg, kind.String(), err)
	}
}
