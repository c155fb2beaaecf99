package workflows

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

// StarterConfig tunes how async executions are started.
type StarterConfig struct {
	// HeartbeatTimeout is how soon a worker that died mid-call is noticed and the call
	// retried on another worker.
	HeartbeatTimeout time.Duration `env:"LAMBDA_ASYNC_HEARTBEAT_TIMEOUT" envDefault:"10s"`
	// MaxAttempts bounds the attempts of a runtime call that meets platform faults.
	MaxAttempts int `env:"LAMBDA_ASYNC_MAX_ATTEMPTS" envDefault:"5"`
	// LocalInvokeMax: a function whose timeout is at most this runs its runtime call as a
	// local activity (no activity task: about half the dev server's work per execution);
	// a longer one as a heartbeating activity. 0 always uses the activity.
	LocalInvokeMax time.Duration `env:"LAMBDA_ASYNC_LOCAL_INVOKE_MAX" envDefault:"10s"`
	// ShareWait bounds how long an async execution waits for a worker while its tenant's
	// other calls hold the tenant's share of the runtime (LAMBDA_RUNTIME_TENANT_SHARE):
	// the wait spends no attempt; past it the execution is recorded timeout.
	ShareWait time.Duration `env:"LAMBDA_ASYNC_SHARE_WAIT" envDefault:"1h"`
	// StartTimeout bounds a call to Temporal that starts or cancels a run (Temporal down → 503).
	StartTimeout time.Duration `env:"LAMBDA_TEMPORAL_START_TIMEOUT" envDefault:"5s"`
	// Eager starts a workflow with its first workflow task handed back to this process's
	// worker (Temporal's eager workflow start), skipping the trip through matching.
	Eager bool `env:"LAMBDA_ASYNC_EAGER" envDefault:"true"`
}

// Starter starts and cancels ExecuteFunction runs and RunPipeline runs: the Temporal
// side of core.Durable and core.RunDurable.
type Starter struct {
	cfg       StarterConfig
	client    client.Client
	namespace string
}

var (
	_ core.Durable         = (*Starter)(nil)
	_ core.RunDurable      = (*Starter)(nil)
	_ core.Inspector       = (*Starter)(nil)
	_ core.CallbackDurable = (*Starter)(nil)
	_ core.ScheduleDurable = (*Starter)(nil)
)

// Settings are the starter's settings a workflow carries into the runs it starts.
type Settings struct {
	HeartbeatTimeout time.Duration `json:"heartbeat_timeout,omitempty"`
	MaxAttempts      int           `json:"max_attempts,omitempty"`
	LocalInvokeMax   time.Duration `json:"local_invoke_max,omitempty"`
	ShareWait        time.Duration `json:"share_wait,omitempty"`
}

func (c StarterConfig) settings() Settings {
	return Settings{HeartbeatTimeout: c.HeartbeatTimeout, MaxAttempts: c.MaxAttempts, LocalInvokeMax: c.LocalInvokeMax,
		ShareWait: c.ShareWait}
}

// NewExecutionRef is the ExecutionRef of an accepted execution.
func NewExecutionRef(x core.AsyncExecution, st Settings) ExecutionRef {
	return ExecutionRef{
		ID: x.ID, Tenant: x.Tenant, Function: x.Function, Version: x.Version, SHA256: x.SHA256, Language: x.Language,
		LanguageTitle: x.LanguageTitle, HeartbeatTimeout: st.HeartbeatTimeout, MaxAttempts: st.MaxAttempts,
		LocalInvokeMax: st.LocalInvokeMax,
		Runtime:        x.Runtime, TimeoutMS: x.TimeoutMS, MemoryMB: x.MemoryMB, CacheTTLS: x.CacheTTLS,
		Callback: x.Callback, ShareWait: st.ShareWait,
	}
}

// NewRunRef is the RunRef of an accepted run.
func NewRunRef(x core.RunStart, st Settings) RunRef {
	return RunRef{RunID: x.RunID, Tenant: x.Tenant, Pipeline: x.Pipeline, Version: x.Version,
		HeartbeatTimeout: st.HeartbeatTimeout, MaxAttempts: st.MaxAttempts, LocalInvokeMax: st.LocalInvokeMax}
}

func executionSearch(ref ExecutionRef) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		SearchFunction.ValueSet(ref.Function),
		SearchLanguage.ValueSet(ref.Language),
		SearchStatus.ValueSet(store.StatusQueued),
	)
}

func executionSummary(ref ExecutionRef) string {
	return fmt.Sprintf("%s v%d (%s)", ref.Function, ref.Version, ref.Language)
}

func runSearch(ref RunRef) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		SearchPipeline.ValueSet(ref.Pipeline),
		SearchStatus.ValueSet(store.StatusQueued),
	)
}

func runSummary(ref RunRef) string { return fmt.Sprintf("pipeline %s v%d", ref.Pipeline, ref.Version) }

// NewStarter returns a starter over a Temporal client (a lazy one is fine) of namespace.
func NewStarter(cfg StarterConfig, c client.Client, namespace string) *Starter {
	return &Starter{cfg: cfg, client: c, namespace: namespace}
}

// RunID is the workflow ID of execution id.
func (s *Starter) RunID(id string) string { return WorkflowID(id) }

// StartExecution starts workflow exec-{id} with the execution's references. An id runs
// once: a workflow ID that was used (even by a run that has finished) is never started
// again, and a start racing a running one joins it.
func (s *Starter) StartExecution(ctx context.Context, x core.AsyncExecution) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	ref := NewExecutionRef(x, s.cfg.settings())
	opts := client.StartWorkflowOptions{
		ID:                       WorkflowID(ref.ID),
		TaskQueue:                TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Memo:                     Memo(ref),
		TypedSearchAttributes:    executionSearch(ref),
		StaticSummary:            executionSummary(ref),
		EnableEagerStart:         s.cfg.Eager,
	}
	return s.execute(ctx, opts, WorkflowName, ref)
}

// execute starts a workflow; one that was already started is joined.
func (s *Starter) execute(ctx context.Context, opts client.StartWorkflowOptions, name string, arg any) error {
	for try := 0; ; try++ {
		_, err := s.client.ExecuteWorkflow(ctx, opts, name, arg)
		var started *serviceerror.WorkflowExecutionAlreadyStarted
		switch {
		case err == nil, errors.As(err, &started):
			return nil
		case try == 0 && unregisteredSearchAttribute(err):
			// First use of a fresh namespace: register the attributes and try again.
			if rerr := EnsureSearchAttributes(ctx, s.client, s.namespace); rerr != nil {
				return errors.Join(err, rerr)
			}
			continue
		}
		if uncertain(ctx, err) {
			return fmt.Errorf("%w: %w", core.ErrStartUncertain, err)
		}
		return err
	}
}

// uncertain says a failed start may still have reached the server: the call timed out,
// was canceled, or lost its connection (Unavailable) after it may have been sent. A
// connection that was never made (Temporal not listening) sent nothing.
func uncertain(ctx context.Context, err error) bool {
	var dl *serviceerror.DeadlineExceeded
	var un *serviceerror.Unavailable
	var ca *serviceerror.Canceled
	if errors.As(err, &un) && neverConnected(un.Error()) {
		return false
	}
	return ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.As(err, &dl) || errors.As(err, &un) || errors.As(err, &ca)
}

// neverConnected recognises gRPC's description of a connection it could not make.
func neverConnected(msg string) bool {
	for _, s := range []string{"Error while dialing", "connection refused", "no such host"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// StartRun starts workflow run-{id} (RunPipeline) with the run's references. A run id
// runs once: a workflow ID that was used is never started again, and a start racing a
// running one joins it.
func (s *Starter) StartRun(ctx context.Context, x core.RunStart) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	ref := NewRunRef(x, s.cfg.settings())
	opts := client.StartWorkflowOptions{
		ID:                       RunWorkflowID(ref.RunID),
		TaskQueue:                TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		Memo:                     RunMemo(ref),
		TypedSearchAttributes:    runSearch(ref),
		StaticSummary:            runSummary(ref),
		EnableEagerStart:         s.cfg.Eager,
	}
	return s.execute(ctx, opts, RunWorkflowName, ref)
}

// SignalRun sends signal to run id's workflow (the payload is in PostgreSQL already); a
// workflow that is no longer there (or has finished) is fault.NotFound.
func (s *Starter) SignalRun(ctx context.Context, runID, signal string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	err := s.client.SignalWorkflow(ctx, RunWorkflowID(runID), "", signal, nil)
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fault.Wrap(fault.NotFound, err, "workflow %s not found", RunWorkflowID(runID))
	}
	return err
}

// CancelRun requests the cancellation of run id's workflow: its steps in flight are
// canceled and the run recorded canceled. A workflow that is gone is fault.NotFound.
func (s *Starter) CancelRun(ctx context.Context, runID string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	err := s.client.CancelWorkflow(ctx, RunWorkflowID(runID), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fault.Wrap(fault.NotFound, err, "workflow %s not found", RunWorkflowID(runID))
	}
	return err
}

func unregisteredSearchAttribute(err error) bool {
	var inv *serviceerror.InvalidArgument
	return errors.As(err, &inv) && strings.Contains(strings.ToLower(inv.Error()), "search attribute")
}

// CancelExecution requests the cancellation of execution id's run; a run that is no
// longer there is fault.NotFound.
func (s *Starter) CancelExecution(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	err := s.client.CancelWorkflow(ctx, WorkflowID(id), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fault.Wrap(fault.NotFound, err, "workflow %s not found", WorkflowID(id))
	}
	return err
}

// ExecutionRunState tells whether execution id's run is open, closed or missing (never
// started, or gone past the namespace's retention): the sweeper's core.Inspector.
func (s *Starter) ExecutionRunState(ctx context.Context, id string) (core.RunState, error) {
	return s.workflowState(ctx, WorkflowID(id))
}

// RunWorkflowState implements core.RunInspector: the state of pipeline run id's workflow.
func (s *Starter) RunWorkflowState(ctx context.Context, id string) (core.RunState, error) {
	return s.workflowState(ctx, RunWorkflowID(id))
}

// workflowState tells whether the workflow workflowID is open, closed or missing.
func (s *Starter) workflowState(ctx context.Context, workflowID string) (core.RunState, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.StartTimeout)
	defer cancel()
	d, err := s.client.DescribeWorkflowExecution(ctx, workflowID, "")
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf):
		return core.RunMissing, nil
	case err != nil:
		return 0, err
	case d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
		return core.RunOpen, nil
	}
	return core.RunClosed, nil
}

// EnsureSearchAttributes registers LambdaFunction, LambdaLanguage, LambdaStatus and
// LambdaPipeline (Keyword) in namespace unless they exist.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	list, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range SearchAttributeNames {
		if _, ok := list.GetCustomAttributes()[name]; !ok {
			missing[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace: namespace, SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("add search attributes: %w", err)
	}
	return nil
}

// LiveSteps implements core.RunLive: the "steps" query of run id's workflow, bounded by
// ctx (the caller's short timeout; a query waits for a worker to answer it).
func (s *Starter) LiveSteps(ctx context.Context, runID string) ([]pipeline.StepState, error) {
	v, err := s.client.QueryWorkflow(ctx, RunWorkflowID(runID), "", StepsQuery)
	if err != nil {
		return nil, err
	}
	var states []pipeline.StepState
	if err := v.Get(&states); err != nil {
		return nil, err
	}
	return states, nil
}
