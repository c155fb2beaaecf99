// Package api is the public HTTP API (chi): functions CRUD, sync and async invoke,
// executions, pipelines and their runs, tenants and keys, health and metrics. Handlers are thin adapters over the
// core's use cases (package core) and the store's reads; every error leaves through one
// problem+json writer.
package api

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/platform/health"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/runtimes"
)

// Config holds the API's limits (a registration's are the core's, core.FunctionLimits).
type Config struct {
	Addr              string        `env:"LAMBDA_HTTP_ADDR" envDefault:"127.0.0.1:8000"`
	MaxEventBytes     int64         `env:"LAMBDA_MAX_EVENT_BYTES" envDefault:"6291456"`
	MaxWait           time.Duration `env:"LAMBDA_MAX_WAIT" envDefault:"60s"`
	ReadHeaderTimeout time.Duration `env:"LAMBDA_HTTP_READ_HEADER_TIMEOUT" envDefault:"5s"`
	ReadTimeout       time.Duration `env:"LAMBDA_HTTP_READ_TIMEOUT" envDefault:"30s"`
	WriteTimeout      time.Duration `env:"LAMBDA_HTTP_WRITE_TIMEOUT" envDefault:"90s"`
	IdleTimeout       time.Duration `env:"LAMBDA_HTTP_IDLE_TIMEOUT" envDefault:"120s"`
	// DepsResolveTimeout is the runtime hosts' bound on resolving a dependency set (the
	// same variable): a function registration's answer may take that much longer than
	// WriteTimeout before it is cut off.
	DepsResolveTimeout time.Duration `env:"LAMBDA_DEPS_RESOLVE_TIMEOUT" envDefault:"2m"`
	// MaxKeys bounds a tenant's active (unrevoked) API keys; 0: no bound.
	MaxKeys int `env:"LAMBDA_TENANT_MAX_KEYS" envDefault:"100"`
}

// Core is what the handlers need from the invocation core (*core.Service): its use cases.
type Core interface {
	Config() core.Config
	Runtime(title string) (*runtimes.Runtime, error)
	RegisterFunction(ctx context.Context, spec core.FunctionSpec) (store.Function, error)
	UpdateFunction(ctx context.Context, spec core.FunctionSpec) (store.Function, bool, error)
	DeleteFunction(ctx context.Context, tenant, name string) error
	Invoke(ctx context.Context, req core.Request) (store.Execution, bool, error)
	StartExecution(ctx context.Context, req core.Request) (store.Execution, bool, error)
	CancelExecution(ctx context.Context, tenant, id string) error
	FunctionStats(ctx context.Context, req core.StatsRequest) (core.FunctionStats, error)

	RegisterPipeline(ctx context.Context, tenant string, body json.RawMessage) (store.PipelineVersion, error)
	UpdatePipeline(ctx context.Context, tenant, name string, body json.RawMessage) (store.PipelineVersion, bool, error)
	DeletePipeline(ctx context.Context, tenant, name string) error
	StartRun(ctx context.Context, req core.RunRequest) (store.Run, bool, error)
	GetRunView(ctx context.Context, tenant, id string) (store.Run, error)
	RunStatus(ctx context.Context, tenant, id string) (string, error)
	WithLiveSteps(ctx context.Context, r store.Run) store.Run
	SignalRun(ctx context.Context, tenant, id, signal string, payload json.RawMessage) error
	CancelRun(ctx context.Context, tenant, id string) error
	RetryRun(ctx context.Context, tenant, id, fromStep string) (store.Run, error)

	GetWebhookSecret(ctx context.Context, tenant string) (core.WebhookSecret, error)
	RotateWebhookSecret(ctx context.Context, tenant string) (core.WebhookSecret, error)
	CreateSchedule(ctx context.Context, tenant string, spec core.ScheduleSpec) (core.Schedule, error)
	GetSchedule(ctx context.Context, tenant, name string) (core.Schedule, error)
	ListSchedules(ctx context.Context, tenant string) ([]core.Schedule, error)
	PauseSchedule(ctx context.Context, tenant, name string, paused bool) (core.Schedule, error)
	TriggerSchedule(ctx context.Context, tenant, name string) error
	DeleteSchedule(ctx context.Context, tenant, name string) error
	ScheduleRuns(ctx context.Context, tenant, name string) ([]core.ScheduleRun, error)
}

// Store is what the handlers read from PostgreSQL directly.
type Store interface {
	GetFunction(ctx context.Context, tenant, name string) (store.Function, error)
	ListFunctions(ctx context.Context, tenant string) ([]store.Function, error)
	ListVersions(ctx context.Context, tenant, name string) ([]store.Version, error)
	GetVersion(ctx context.Context, tenant, name string, version int) (store.Version, error)
	GetExecution(ctx context.Context, tenant, id string, withPayload bool) (store.Execution, error)
	ListExecutions(ctx context.Context, f store.ExecutionFilter) ([]store.Execution, string, error)
	ListPipelines(ctx context.Context, tenant string) ([]store.PipelineVersion, error)
	ListPipelineVersions(ctx context.Context, tenant, name string) ([]store.PipelineVersion, error)
	GetPipeline(ctx context.Context, tenant, name string, version int) (store.PipelineVersion, error)
	ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, string, error)
	AnnotateExecutions(ctx context.Context, es []store.Execution) error
	AnnotateRuns(ctx context.Context, rs []store.Run) error
}

// Finishes wakes a long-poll the moment an async execution finishes (store.FinishFeed).
type Finishes interface {
	Subscribe(id string) (<-chan struct{}, func())
	Listening() bool
}

// Check is one readiness check of /readyz.
type Check = health.Check

// Deps are the server's collaborators.
type Deps struct {
	Config   Config
	Log      *zap.Logger
	Core     Core
	Store    Store
	Finishes Finishes      // nil: long-polls of an execution poll PostgreSQL only
	Auth     Authenticator // nil: no authentication, every request acts for the default tenant
	Limits   Limiter       // nil: no rate or concurrency limits
	Tenants  Tenants
	Checks   []Check
	Metrics  *metrics.HTTP
	Gatherer prometheus.Gatherer
	// Console is the web console, served at /console/ without authentication (the page
	// signs in with an API key and calls /v1 like any client); nil: no console.
	Console http.Handler
	// Sessions runs notebook sessions (*core.Sessions); nil: /v1/sessions answers 503.
	Sessions Sessions
}

type server struct {
	Deps
	ready *health.Readiness
}

// NewServer returns the API's http.Handler.
func NewServer(d Deps) http.Handler {
	s := &server{Deps: d, ready: health.NewReadiness(true)}
	s.ready.Set(d.Checks)
	return s.routes()
}

// HTTPServer wraps h with the configured timeouts; m, when set, counts the connections
// it accepts.
func HTTPServer(cfg Config, h http.Handler, m *metrics.HTTP) *http.Server {
	srv := &http.Server{
		Addr:              cfg.Addr,
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
	if m != nil {
		srv.ConnState = func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				m.Connections.Inc()
			}
		}
	}
	return srv
}

// tenantOf returns the tenant a request acts for.
func tenantOf(r *http.Request) string {
	if t, ok := r.Context().Value(tenantKey{}).(string); ok {
		return t
	}
	return "default"
}

type tenantKey struct{}
