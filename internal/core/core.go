// Package core is the invocation core and the platform's use cases: registering and
// updating functions, running an invocation on the fast path, accepting and canceling
// durable (async) executions, and the steps a durable execution takes. The HTTP api and
// the Temporal activities are thin adapters over it, and so is any later transport.
//
// The core declares what it needs from its collaborators (Store, ResultCache, Runner,
// LogWriter) and from the durable side (Durable): the Temporal specifics — workflow IDs,
// options, search attributes — live in package workflows, which implements Durable, so
// the core never imports the async side.
package core

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/runtimes"
)

// Store is what the core needs from PostgreSQL (*store.Store).
type Store interface {
	CreateFunction(ctx context.Context, v store.Version) (store.Function, error)
	PutVersion(ctx context.Context, v store.Version) (store.Function, bool, error)
	GetFunction(ctx context.Context, tenant, name string) (store.Function, error)
	DeleteFunction(ctx context.Context, tenant, name string) error
	GetVersion(ctx context.Context, tenant, name string, version int) (store.Version, error)
	SaveExecution(ctx context.Context, e *store.Execution) error
	GetExecution(ctx context.Context, tenant, id string, withPayload bool) (store.Execution, error)
	StartAttempt(ctx context.Context, tenant, id string, attempt int) (store.Execution, error)
	UndoAttempt(ctx context.Context, tenant, id string, attempt int) error
	ClaimIdempotencyKey(ctx context.Context, tenant, key, executionID, requestHash string, ttl time.Duration) (string, bool, error)
	ClaimPendingIdempotencyKey(ctx context.Context, tenant, key, executionID, requestHash string, ttl, pending time.Duration) (string, bool, error)
	EnqueueExecution(ctx context.Context, e *store.Execution, a store.Admission) (string, bool, error)
	OpenAsyncExecutions(ctx context.Context, before time.Time, limit int) ([]store.OpenAsync, error)
	ReleaseIdempotencyKey(ctx context.Context, tenant, key, executionID string) error
	FunctionStats(ctx context.Context, q store.StatsQuery) ([]store.StatsBucket, error)

	CreatePipeline(ctx context.Context, p store.PipelineVersion) (store.PipelineVersion, error)
	PutPipelineVersion(ctx context.Context, p store.PipelineVersion) (store.PipelineVersion, bool, error)
	GetPipeline(ctx context.Context, tenant, name string, version int) (store.PipelineVersion, error)
	DeletePipeline(ctx context.Context, tenant, name string) error
	GetDefinition(ctx context.Context, tenant, sha string) (json.RawMessage, error)
	InsertRun(ctx context.Context, r *store.Run, a store.Admission) (string, bool, error)
	GetRun(ctx context.Context, tenant, id string) (store.Run, error)
	GetRunWithSteps(ctx context.Context, tenant, id string, annotate bool) (store.Run, []store.RunStep, error)
	RunStatus(ctx context.Context, tenant, id string) (string, error)
	LoadRun(ctx context.Context, id string) (store.Run, error)
	LoadRunMarkingRunning(ctx context.Context, id string) (store.Run, error)
	RunSteps(ctx context.Context, runID string) ([]store.RunStep, error)
	RunStepsOf(ctx context.Context, runID string, ids []string) ([]store.RunStep, error)
	ReadForCall(ctx context.Context, w store.CallWant) (store.CallReads, error)
	LoadRunHead(ctx context.Context, id string) (store.Run, error)
	RunInput(ctx context.Context, id string) (json.RawMessage, error)
	SaveSteps(ctx context.Context, runID string, steps []store.RunStep) error
	SaveCallStep(ctx context.Context, runID string, st store.RunStep, execID string) error
	FinishSyncRun(ctx context.Context, r *store.Run, steps []store.RunStep, execs []*store.Execution) error
	HandOver(ctx context.Context, r *store.Run, steps []store.RunStep, execs []*store.Execution) (bool, error)
	RecordRunning(ctx context.Context, r *store.Run) error
	MarkRunRunning(ctx context.Context, runID string) error
	SetWaiting(ctx context.Context, runID, stepID, signal string, waiting bool) error
	FinishRun(ctx context.Context, runID, status string, output json.RawMessage, e *pipeline.Error, at time.Time) (string, bool, error)
	SaveItems(ctx context.Context, runID, stepID string, items json.RawMessage) error
	Item(ctx context.Context, runID, stepID string, i int) (json.RawMessage, error)
	AddSignal(ctx context.Context, runID, signal string, payload json.RawMessage) error
	TakeSignal(ctx context.Context, runID, stepID, signal string) (json.RawMessage, error)
	ExecutionResults(ctx context.Context, ids []string) (map[string]json.RawMessage, error)
	OpenRuns(ctx context.Context, before time.Time, limit int) ([]store.OpenRun, error)

	GetCallback(ctx context.Context, id string) (store.Callback, error)
	RecordCallbackAttempt(ctx context.Context, id string, attempt, status int, state, reason string) error
	AnnotateExecutions(ctx context.Context, es []store.Execution) error
	AnnotateRuns(ctx context.Context, rs []store.Run) error
	WebhookSecret(ctx context.Context, tenant string, fresh func() string) (store.WebhookSecret, error)
	RotateWebhookSecret(ctx context.Context, tenant, next string) (store.WebhookSecret, error)
	CreateSchedule(ctx context.Context, r store.ScheduleRow) (store.ScheduleRow, error)
	GetSchedule(ctx context.Context, tenant, name string) (store.ScheduleRow, error)
	ListSchedules(ctx context.Context, tenant string) ([]store.ScheduleRow, error)
	DeleteSchedule(ctx context.Context, tenant, name string) error
	ScheduleStarts(ctx context.Context, tenant, schedule string, limit int) ([]store.ScheduleStart, error)
}

// ResultCache is the Redis result cache (*cache.Cache).
type ResultCache interface {
	Get(ctx context.Context, key string) (cache.Entry, bool, error)
	Set(ctx context.Context, key string, e cache.Entry, ttl time.Duration) error
}

// Runner calls a runtime function (*faas.Client).
type Runner interface {
	Run(ctx context.Context, fn string, call faas.Call) (faas.Result, error)
}

// LogWriter durably records an execution (group commit, *store.LogWriter).
type LogWriter interface {
	Write(ctx context.Context, e *store.Execution) error
	// WriteWithStep also upserts the row of the pipeline step e settles (run runID), its
	// output e's result, in the same commit.
	WriteWithStep(ctx context.Context, e *store.Execution, runID string, step store.RunStep) error
}

// Durable runs executions durably; the Temporal side implements it (workflows.Starter).
// RunID names the durable run of an execution before it starts (its row records it);
// StartExecution starts one run per execution id however often it is called (a repeat
// joins the run already started); CancelExecution answers a fault.NotFound error when the
// execution's run is no longer there (it has finished).
type Durable interface {
	RunID(executionID string) string
	StartExecution(ctx context.Context, x AsyncExecution) error
	CancelExecution(ctx context.Context, executionID string) error
}

// Config holds the core's limits and defaults.
type Config struct {
	SyncTimeoutMax   time.Duration `env:"LAMBDA_SYNC_TIMEOUT_MAX" envDefault:"60s"`
	IdempotencyTTL   time.Duration `env:"LAMBDA_IDEMPOTENCY_TTL" envDefault:"24h"`
	VersionCacheTTL  time.Duration `env:"LAMBDA_VERSION_CACHE_TTL" envDefault:"1s"`
	RuntimeCallSlack time.Duration `env:"LAMBDA_RUNTIME_CALL_SLACK" envDefault:"5s"`
	// IdempotencyPendingMargin: the Idempotency-Key of a sync call whose api died mid-call
	// is free again after the function's timeout, the runtime slack and this margin (the
	// request log's write retries included); held for IdempotencyTTL once its row exists.
	IdempotencyPendingMargin time.Duration `env:"LAMBDA_IDEMPOTENCY_PENDING_MARGIN" envDefault:"1m"`
	// MaxResultBytes caps a handler's result (its JSON text): a larger one fails the
	// execution with ResultTooLarge and is neither stored, cached nor returned. ≤ 0 means
	// the default, 6 MiB: there is always a cap.
	MaxResultBytes int `env:"LAMBDA_MAX_RESULT_BYTES" envDefault:"6291456"`
	// ShareWaitersPerTenant bounds how many of one tenant's async calls, refused because the
	// tenant holds its share of a runtime's workers, wait for the share inside one worker
	// process (holding a slot of the worker's while they wait). The tenant's other refused
	// calls wait on their workflow's timers, so a tenant's backlog never takes every slot of
	// the worker that other tenants' executions need. ≤ 0 means the default, 4.
	ShareWaitersPerTenant int `env:"LAMBDA_ASYNC_SHARE_WAITERS" envDefault:"4"`
	// AsyncPerTenant caps a tenant's async executions queued or running at once: one more
	// is refused 429 (0: no cap).
	AsyncPerTenant int `env:"LAMBDA_TENANT_ASYNC_MAX" envDefault:"1000"`
	// SyncPipelineMax is how long a sync pipeline run may take before it is answered 202
	// and continues as a workflow from the steps it finished (when the durable side is on).
	SyncPipelineMax time.Duration `env:"LAMBDA_SYNC_PIPELINE_MAX" envDefault:"10s"`
	// LiveStepsTimeout bounds how long reading a durable run in flight waits for its
	// workflow's live step states (the "steps" query); past it the recorded ones are
	// answered (0: DefaultLiveStepsTimeout).
	LiveStepsTimeout time.Duration `env:"LAMBDA_LIVE_STEPS_TIMEOUT" envDefault:"300ms"`
	// CallbackAllowCIDRs are exceptions to the callback SSRF guard (comma- or
	// space-separated CIDRs or addresses, callback.ParseCIDRs): loopback, private,
	// link-local and metadata targets are refused unless listed.
	CallbackAllowCIDRs string `env:"LAMBDA_CALLBACK_ALLOW_CIDRS"`
	// Functions bounds what a registration may ask for.
	Functions FunctionLimits
}

// FunctionLimits are the limits and defaults of a function's registration.
type FunctionLimits struct {
	MaxSourceBytes   int           `env:"LAMBDA_MAX_SOURCE_BYTES" envDefault:"262144"`
	DefaultTimeoutMS int           `env:"LAMBDA_DEFAULT_TIMEOUT_MS" envDefault:"3000"`
	DefaultMemoryMB  int           `env:"LAMBDA_DEFAULT_MEMORY_MB" envDefault:"128"`
	MaxTimeout       time.Duration `env:"LAMBDA_MAX_TIMEOUT" envDefault:"15m"`
}

// Deps are the core's collaborators.
type Deps struct {
	Store    Store
	Cache    ResultCache
	Runner   Runner
	Logs     LogWriter
	Registry *runtimes.Registry
	Durable  Durable // nil: async executions are not enabled
	// Runs runs pipeline runs durably (workflows.Starter); nil: async runs answer 503 and
	// a sync run is never handed over.
	Runs RunDurable
	// Callbacks starts the delivery of completion callbacks (workflows.Starter); nil: a
	// request asking for one (X-Callback-Url) is refused 503.
	Callbacks CallbackDurable
	// Deliverer makes delivery attempts (*callback.Client; the worker's core needs it).
	Deliverer Deliverer
	// Schedules runs schedules (workflows.Starter); nil: the schedules API answers 503.
	Schedules ScheduleDurable
	// Deps resolves functions' dependencies (nil: registrations asking for any are refused).
	Deps    Resolver
	Metrics *metrics.Invoke
	Log     *zap.Logger
}

// Service is the invocation core.
type Service struct {
	cfg       Config
	store     Store
	cache     ResultCache
	runner    Runner
	logs      LogWriter
	reg       *runtimes.Registry
	durable   Durable
	runs      RunDurable
	deps      Resolver
	callbacks CallbackDurable
	deliverer Deliverer
	schedules ScheduleDurable
	m         *metrics.Invoke
	log       *zap.Logger
	versions  sync.Map // versionKey → cachedVersion
	// pipelines holds compiled definitions by tenant and sha256 (immutable).
	pipelines        sync.Map
	heads            runHeads // step operations' runs (immutable part)
	pipelineVersions sync.Map // versionKey → cachedPipeline
	shareWaiters     sync.Map // tenant → *atomic.Int32: its calls waiting for its share here
}

// New returns the invocation core.
func New(cfg Config, d Deps) *Service {
	return &Service{cfg: cfg, store: d.Store, cache: d.Cache, runner: d.Runner, logs: d.Logs, reg: d.Registry,
		durable: d.Durable, runs: d.Runs, deps: d.Deps, m: d.Metrics, log: d.Log,
		callbacks: d.Callbacks, deliverer: d.Deliverer, schedules: d.Schedules}
}

// DefaultMaxResultBytes is the result cap when Config.MaxResultBytes is not set.
const DefaultMaxResultBytes = 6 << 20

// maxResult is the result cap in force.
func (s *Service) maxResult() int {
	if s.cfg.MaxResultBytes > 0 {
		return s.cfg.MaxResultBytes
	}
	return DefaultMaxResultBytes
}

// Config returns the core's configuration.
func (s *Service) Config() Config { return s.cfg }
