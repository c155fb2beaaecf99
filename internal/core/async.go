package core

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/store"
)

// Pinned is the function version an execution runs, resolved once when the execution is
// accepted. The durable side carries it from step to step instead of resolving the version
// again; the script's source and environment stay in PostgreSQL.
type Pinned struct {
	Tenant    string `json:"tenant"`
	Function  string `json:"function"`
	Version   int    `json:"version"`
	SHA256    string `json:"sha256"`
	Language  string `json:"language"`
	Runtime   string `json:"runtime"` // the OpenFaaS function
	TimeoutMS int    `json:"timeout_ms"`
	MemoryMB  int    `json:"memory_mb"`
	CacheTTLS int    `json:"cache_ttl_s"`
}

func pin(v store.Version, runtimeFunction string) Pinned {
	return Pinned{Tenant: v.Tenant, Function: v.Name, Version: v.Version, SHA256: v.SHA256, Language: v.Language,
		Runtime: runtimeFunction, TimeoutMS: v.TimeoutMS, MemoryMB: v.MemoryMB, CacheTTLS: v.CacheTTLS}
}

// AsyncExecution is an accepted execution as the core hands it to Durable: its id, the
// Language-Title it was asked with and its pinned version. References only: the event
// is in the execution's request_logs row (claim check).
type AsyncExecution struct {
	ID            string
	LanguageTitle string
	Pinned
	// Callback: the execution asked for a completion callback (its URL is in its row).
	Callback bool
}

// errAsyncOff answers async requests on a server without a durable side.
// ErrStartUncertain marks a durable start whose outcome is unknown (Durable's call timed
// out, or Temporal became unreachable mid-call): the workflow may have started.
var ErrStartUncertain = errors.New("the durable start's outcome is unknown")

func errAsyncOff() error {
	return fault.New(fault.Unavailable, "async invocations are not enabled on this server")
}

// StartExecution accepts an async invocation: it pins the version, records the execution
// queued (the row holds the event) and has Durable start it. The row, the Idempotency-Key's
// claim and the tenant's cap (AsyncPerTenant, RateLimited beyond) are one transaction.
// With a key already used it returns that key's execution (replayed) and starts nothing.
// A start that fails leaves the execution recorded failed and the key free for a retry;
// a start that never happens (the api died after the row) is the sweeper's to finish.
func (s *Service) StartExecution(ctx context.Context, req Request) (store.Execution, bool, error) {
	x, e, created, err := s.admitExecution(ctx, req, "")
	if err != nil || !created {
		return e, err == nil, err
	}
	if err := s.durable.StartExecution(ctx, x); err != nil {
		if errors.Is(err, ErrStartUncertain) {
			// The start may have reached Temporal and the workflow may run: failing the row
			// and freeing the key would let a retry run the function a second time. The row
			// stays queued with its key claimed; the sweeper starts it unless it started
			// (an id runs once), so the execution is accepted.
			s.log.Warn("durable start uncertain; the sweeper finishes it", logging.Err(err), zap.String(logging.FieldExecutionID, x.ID))
			s.countAsync(x.Language, "start_deferred")
			return e, false, nil
		}
		s.log.Error("start durable execution", logging.Err(err), zap.String(logging.FieldExecutionID, x.ID))
		s.abandon(&e)
		s.release(req.Tenant, req.IdempotencyKey, x.ID)
		return store.Execution{}, false, fault.Wrap(fault.Unavailable, err, "the durable execution service (Temporal) is unavailable")
	}
	s.countAsync(x.Language, "started")
	return e, false, nil
}

// admitExecution pins the version and records the execution queued, with its key's
// claim, the tenant's cap and its origin (the schedule that started it, the callback it
// asked for) in one transaction. created=false: the key's execution, already there.
func (s *Service) admitExecution(ctx context.Context, req Request, schedule string) (AsyncExecution, store.Execution, bool, error) {
	if s.durable == nil {
		return AsyncExecution{}, store.Execution{}, false, errAsyncOff()
	}
	if err := s.validCallback(req.CallbackURL); err != nil {
		return AsyncExecution{}, store.Execution{}, false, err
	}
	v, rt, err := s.resolve(ctx, req.Tenant, req.Function, req.Version, req.LanguageTitle)
	if err != nil {
		return AsyncExecution{}, store.Execution{}, false, err
	}
	x := AsyncExecution{ID: NewExecutionID(), LanguageTitle: req.LanguageTitle, Pinned: pin(v, rt.Function),
		Callback: req.CallbackURL != ""}
	e := store.Execution{
		ID: x.ID, Tenant: req.Tenant, Function: v.Name, Version: v.Version, Language: v.Language,
		LanguageTitle: req.LanguageTitle, Mode: "async", Status: store.StatusQueued, Payload: req.Event,
		CreatedAt: time.Now().UTC(), WorkflowID: s.durable.RunID(x.ID), Schedule: schedule,
	}
	a := store.Admission{MaxOpen: s.cfg.AsyncPerTenant, Origin: origin(schedule, req.CallbackURL)}
	if req.IdempotencyKey != "" {
		a.Key, a.KeyTTL = req.IdempotencyKey, s.cfg.IdempotencyTTL
		a.RequestHash = requestHash("async", req.Function, req.Version, rt.Title, req.Event)
	}
	owner, created, err := s.store.EnqueueExecution(ctx, &e, a)
	if err != nil {
		return AsyncExecution{}, store.Execution{}, false, err
	}
	if !created {
		s.countAsync(rt.Title, "deduplicated")
		prev, err := s.store.GetExecution(ctx, req.Tenant, owner, false)
		if fault.Is(err, fault.NotFound) {
			// A claim made before claims and rows were written together.
			return AsyncExecution{}, store.Execution{}, false, inProgress(req.IdempotencyKey)
		}
		x.ID = prev.ID
		return x, prev, false, err
	}
	if req.CallbackURL != "" {
		e.CallbackState = &store.CallbackState{State: store.CallbackPending, URL: req.CallbackURL}
	}
	return x, e, true, nil
}

// abandon records an execution whose durable run could not be started as failed, so it
// does not stay queued forever.
func (s *Service) abandon(e *store.Execution) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := time.Now().UTC()
	e.Status, e.FinishedAt = store.StatusFailed, &now
	e.Error = &store.ExecError{Type: "Unavailable", Message: "the durable execution service was unavailable; nothing ran"}
	if err := s.store.SaveExecution(ctx, e); err != nil {
		s.log.Warn("record unstarted execution", logging.Err(err), zap.String(logging.FieldExecutionID, e.ID))
	}
	if e.CallbackState != nil {
		// The caller was answered 503: nothing will be delivered.
		if err := s.store.RecordCallbackAttempt(ctx, e.ID, 0, 0, store.CallbackFailed, "the execution never started"); err != nil {
			s.log.Warn("record unstarted callback", logging.Err(err), zap.String(logging.FieldExecutionID, e.ID))
		}
	}
}

// CancelExecution requests the cancellation of a queued or running async execution: its
// durable run records it canceled and abandons the runtime call. A finished execution (or
// a sync one) is a Conflict; another tenant's id is NotFound.
func (s *Service) CancelExecution(ctx context.Context, tenant, id string) error {
	e, err := s.store.GetExecution(ctx, tenant, id, false)
	if err != nil {
		return err
	}
	if s.durable == nil {
		return fault.New(fault.Conflict, "execution %s is not a running async execution", id)
	}
	if store.Finished(e.Status) {
		return fault.New(fault.Conflict, "execution %s has already finished (%s)", id, e.Status)
	}
	if e.Mode != "async" {
		return fault.New(fault.Conflict, "execution %s is not an async execution", id)
	}
	err = s.durable.CancelExecution(ctx, id)
	switch {
	case err == nil:
		s.countAsync(e.Language, "canceled")
		return nil
	case fault.Is(err, fault.NotFound):
		// The run closed between the read and the cancel.
		return fault.New(fault.Conflict, "execution %s has already finished", id)
	default:
		return fault.Wrap(fault.Unavailable, err, "the durable execution service (Temporal) is unavailable")
	}
}

func (s *Service) countAsync(runtime, event string) {
	if s.m != nil {
		s.m.Async.WithLabelValues(runtime, event).Inc()
	}
}
