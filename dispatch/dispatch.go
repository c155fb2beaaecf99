// Package dispatch starts and cancels durable async executions for the api (it
// implements api.Async). Start writes the queued request_logs row that holds the event
// (the claim check) before it starts workflow exec-{id}; an Idempotency-Key maps to the
// execution id, and so to the workflow ID, so a repeated request starts nothing new.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/fault"
	"github.com/lambda-microservice/lambda/invoke"
	"github.com/lambda-microservice/lambda/logging"
	"github.com/lambda-microservice/lambda/metrics"
	"github.com/lambda-microservice/lambda/runtimes"
	"github.com/lambda-microservice/lambda/store"
	"github.com/lambda-microservice/lambda/worker"
	"github.com/lambda-microservice/lambda/workflows"
)

// Config tunes async executions.
type Config struct {
	// HeartbeatTimeout is how soon a worker that died mid-call is noticed and the call
	// retried on another worker.
	HeartbeatTimeout time.Duration `env:"LAMBDA_ASYNC_HEARTBEAT_TIMEOUT" envDefault:"10s"`
	// MaxAttempts bounds the attempts of a runtime call that meets platform faults.
	MaxAttempts int `env:"LAMBDA_ASYNC_MAX_ATTEMPTS" envDefault:"5"`
	// LocalInvokeMax: a function whose timeout is at most this runs its runtime call as a
	// local activity (no activity task: about half the dev server's work per execution);
	// a longer one as a heartbeating activity. 0 always uses the activity.
	LocalInvokeMax time.Duration `env:"LAMBDA_ASYNC_LOCAL_INVOKE_MAX" envDefault:"10s"`
	// StartTimeout bounds the call that starts a workflow (Temporal down → 503).
	StartTimeout time.Duration `env:"LAMBDA_TEMPORAL_START_TIMEOUT" envDefault:"5s"`
	// IdempotencyTTL is how long an Idempotency-Key maps to its execution.
	IdempotencyTTL time.Duration `env:"LAMBDA_IDEMPOTENCY_TTL" envDefault:"24h"`
	// Eager starts a workflow with its first workflow task handed back to this process's
	// worker (Temporal's eager workflow start), skipping the trip through matching.
	Eager bool `env:"LAMBDA_ASYNC_EAGER" envDefault:"true"`
	// Namespace is the Temporal namespace, for registering search attributes.
	Namespace string `env:"LAMBDA_TEMPORAL_NAMESPACE" envDefault:"default"`
}

// Core is what dispatch needs from the invocation core (*invoke.Service).
type Core interface {
	Resolve(ctx context.Context, tenant, name string, version int, title string) (store.Version, *runtimes.Runtime, error)
}

// Store is what dispatch needs from PostgreSQL (*store.Store).
type Store interface {
	SaveExecution(ctx context.Context, e *store.Execution) error
	GetExecution(ctx context.Context, tenant, id string, withPayload bool) (store.Execution, error)
	ClaimIdempotencyKey(ctx context.Context, tenant, key, executionID, requestHash string, ttl time.Duration) (string, bool, error)
	ReleaseIdempotencyKey(ctx context.Context, tenant, key, executionID string) error
}

// Dispatcher starts and cancels ExecuteFunction workflows.
type Dispatcher struct {
	cfg        Config
	client     client.Client
	core       Core
	store      Store
	m          *metrics.Invoke
	log        *zap.Logger
	registered atomic.Bool
}

// New returns a dispatcher over a Temporal client (a lazy one is fine).
func New(cfg Config, c client.Client, core Core, st Store, m *metrics.Invoke, log *zap.Logger) *Dispatcher {
	return &Dispatcher{cfg: cfg, client: c, core: core, store: st, m: m, log: log}
}

// Start records a queued execution and starts its workflow. With an Idempotency-Key
// already used, it returns that key's execution (replayed) and starts nothing.
func (d *Dispatcher) Start(ctx context.Context, req invoke.Request) (store.Execution, bool, error) {
	v, rt, err := d.core.Resolve(ctx, req.Tenant, req.Function, req.Version, req.LanguageTitle)
	if err != nil {
		return store.Execution{}, false, err
	}
	id := invoke.NewExecutionID()
	e := store.Execution{
		ID: id, Tenant: req.Tenant, Function: v.Name, Version: v.Version, Language: v.Language,
		LanguageTitle: req.LanguageTitle, Mode: "async", Status: store.StatusQueued, Payload: req.Event,
		CreatedAt: time.Now().UTC(), WorkflowID: workflows.WorkflowID(id),
	}
	if req.IdempotencyKey != "" {
		hash := invoke.RequestHash("async", req.Function, req.Version, rt.Title, req.Event)
		owner, claimed, err := d.store.ClaimIdempotencyKey(ctx, req.Tenant, req.IdempotencyKey, id, hash, d.cfg.IdempotencyTTL)
		if err != nil {
			return store.Execution{}, false, err
		}
		if !claimed {
			prev, err := d.owner(ctx, req.Tenant, owner)
			if err == nil {
				d.count(rt.Title, "deduplicated")
			}
			return prev, err == nil, err
		}
	}
	if err := d.store.SaveExecution(ctx, &e); err != nil {
		d.release(req, id)
		return store.Execution{}, false, err
	}
	ref := workflows.ExecutionRef{
		ID: id, Tenant: req.Tenant, Function: v.Name, Version: v.Version, SHA256: v.SHA256, Language: v.Language,
		LanguageTitle: req.LanguageTitle, HeartbeatTimeout: d.cfg.HeartbeatTimeout, MaxAttempts: d.cfg.MaxAttempts,
		LocalInvokeMax: d.cfg.LocalInvokeMax,
	}
	if err := d.startWorkflow(ctx, ref); err != nil {
		d.log.Error("start workflow", logging.Err(err), zap.String(logging.FieldExecutionID, id))
		d.abandon(&e)
		d.release(req, id)
		return store.Execution{}, false, fault.Wrap(fault.Unavailable, err, "the durable execution service (Temporal) is unavailable")
	}
	d.count(rt.Title, "started")
	return e, false, nil
}

// owner returns the execution an Idempotency-Key belongs to. Its row is written right
// after the key is claimed, so a concurrent repeat waits briefly for it; the workflow
// ID derives from the id, so the repeat never starts a second run either way.
func (d *Dispatcher) owner(ctx context.Context, tenant, id string) (store.Execution, error) {
	for i := 0; ; i++ {
		e, err := d.store.GetExecution(ctx, tenant, id, false)
		if !fault.Is(err, fault.NotFound) {
			return e, err
		}
		if i == 20 {
			return store.Execution{ID: id, Status: store.StatusQueued}, nil
		}
		select {
		case <-ctx.Done():
			return store.Execution{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *Dispatcher) startWorkflow(ctx context.Context, ref workflows.ExecutionRef) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	opts := client.StartWorkflowOptions{
		ID:        workflows.WorkflowID(ref.ID),
		TaskQueue: workflows.TaskQueue,
		// An execution id runs once: a workflow ID that was used (even by a run that
		// has finished) is never started again, and a start racing a running one joins it.
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Memo:                     workflows.Memo(ref),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchFunction.ValueSet(ref.Function),
			workflows.SearchLanguage.ValueSet(ref.Language),
			workflows.SearchStatus.ValueSet(store.StatusQueued),
		),
		StaticSummary:    fmt.Sprintf("%s v%d (%s)", ref.Function, ref.Version, ref.Language),
		EnableEagerStart: d.cfg.Eager,
	}
	for try := 0; ; try++ {
		_, err := d.client.ExecuteWorkflow(ctx, opts, workflows.WorkflowName, ref)
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		switch {
		case err == nil, errors.As(err, &started):
			return nil
		case try == 0 && unregisteredSearchAttribute(err):
			// First use of a fresh namespace: register the attributes and try again.
			if rerr := worker.EnsureSearchAttributes(ctx, d.client, d.cfg.Namespace); rerr != nil {
				return errors.Join(err, rerr)
			}
			continue
		}
		return err
	}
}

func unregisteredSearchAttribute(err error) bool {
	var inv *serviceerror.InvalidArgument
	return errors.As(err, &inv) && strings.Contains(strings.ToLower(inv.Error()), "search attribute")
}

// abandon records an execution whose workflow could not be started as failed, so it
// does not stay queued forever.
func (d *Dispatcher) abandon(e *store.Execution) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := time.Now().UTC()
	e.Status, e.FinishedAt = store.StatusFailed, &now
	e.Error = &store.ExecError{Type: "Unavailable", Message: "the durable execution service was unavailable; nothing ran"}
	if err := d.store.SaveExecution(ctx, e); err != nil {
		d.log.Warn("record unstarted execution", logging.Err(err), zap.String(logging.FieldExecutionID, e.ID))
	}
}

func (d *Dispatcher) release(req invoke.Request, id string) {
	if req.IdempotencyKey == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := d.store.ReleaseIdempotencyKey(ctx, req.Tenant, req.IdempotencyKey, id); err != nil {
		d.log.Warn("release idempotency key", logging.Err(err))
	}
}

func (d *Dispatcher) count(runtime, event string) {
	if d.m != nil {
		d.m.Async.WithLabelValues(runtime, event).Inc()
	}
}

// Cancel requests the cancellation of a queued or running execution: its workflow
// records it canceled and abandons the runtime call. A finished execution (or a sync
// one) is a Conflict; another tenant's id is NotFound.
func (d *Dispatcher) Cancel(ctx context.Context, tenant, id string) error {
	e, err := d.store.GetExecution(ctx, tenant, id, false)
	if err != nil {
		return err
	}
	if store.Finished(e.Status) {
		return fault.New(fault.Conflict, "execution %s has already finished (%s)", id, e.Status)
	}
	if e.Mode != "async" {
		return fault.New(fault.Conflict, "execution %s is not an async execution", id)
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.StartTimeout)
	defer cancel()
	err = d.client.CancelWorkflow(cctx, workflows.WorkflowID(id), "")
	var nf *serviceerror.NotFound
	switch {
	case err == nil:
		d.count(e.Language, "canceled")
		return nil
	case errors.As(err, &nf):
		// The workflow closed between the read and the cancel.
		return fault.New(fault.Conflict, "execution %s has already finished", id)
	default:
		return fault.Wrap(fault.Unavailable, err, "the durable execution service (Temporal) is unavailable")
	}
}
