// Package api is the public HTTP API (chi): functions CRUD, sync and async invoke,
// executions, health and metrics. Handlers are thin adapters over the invocation core
// and the store; every error leaves through one problem+json writer.
package api

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/invoke"
	"github.com/lambda-microservice/lambda/metrics"
	"github.com/lambda-microservice/lambda/store"
)

// Config holds the API's limits and defaults.
type Config struct {
	Addr              string        `env:"LAMBDA_HTTP_ADDR" envDefault:"127.0.0.1:8000"`
	MaxSourceBytes    int           `env:"LAMBDA_MAX_SOURCE_BYTES" envDefault:"262144"`
	MaxEventBytes     int64         `env:"LAMBDA_MAX_EVENT_BYTES" envDefault:"6291456"`
	DefaultTimeoutMS  int           `env:"LAMBDA_DEFAULT_TIMEOUT_MS" envDefault:"3000"`
	DefaultMemoryMB   int           `env:"LAMBDA_DEFAULT_MEMORY_MB" envDefault:"128"`
	MaxTimeout        time.Duration `env:"LAMBDA_MAX_TIMEOUT" envDefault:"15m"`
	MaxWait           time.Duration `env:"LAMBDA_MAX_WAIT" envDefault:"60s"`
	ReadHeaderTimeout time.Duration `env:"LAMBDA_HTTP_READ_HEADER_TIMEOUT" envDefault:"5s"`
	ReadTimeout       time.Duration `env:"LAMBDA_HTTP_READ_TIMEOUT" envDefault:"30s"`
	WriteTimeout      time.Duration `env:"LAMBDA_HTTP_WRITE_TIMEOUT" envDefault:"90s"`
	IdleTimeout       time.Duration `env:"LAMBDA_HTTP_IDLE_TIMEOUT" envDefault:"120s"`
}

// Store is what the handlers need from PostgreSQL.
type Store interface {
	CreateFunction(ctx context.Context, v store.Version) (store.Function, error)
	PutVersion(ctx context.Context, v store.Version) (store.Function, bool, error)
	GetFunction(ctx context.Context, tenant, name string) (store.Function, error)
	ListFunctions(ctx context.Context, tenant string) ([]store.Function, error)
	DeleteFunction(ctx context.Context, tenant, name string) error
	ListVersions(ctx context.Context, tenant, name string) ([]store.Version, error)
	GetVersion(ctx context.Context, tenant, name string, version int) (store.Version, error)
	GetExecution(ctx context.Context, tenant, id string, withPayload bool) (store.Execution, error)
	ListExecutions(ctx context.Context, f store.ExecutionFilter) ([]store.Execution, string, error)
}

// Finishes wakes a long-poll the moment an async execution finishes (store.FinishFeed).
type Finishes interface {
	Subscribe(id string) (<-chan struct{}, func())
	Listening() bool
}

// Async starts and cancels durable executions (the Temporal path).
type Async interface {
	Start(ctx context.Context, req invoke.Request) (store.Execution, bool, error)
	Cancel(ctx context.Context, tenant, id string) error
}

// Check is one readiness check; Required checks make /readyz fail, others degrade it.
type Check struct {
	Name     string
	Required bool
	Probe    func(ctx context.Context) error
}

// Deps are the server's collaborators.
type Deps struct {
	Config   Config
	Log      *zap.Logger
	Core     *invoke.Service
	Store    Store
	Async    Async         // nil: async invocations answer 503
	Finishes Finishes      // nil: long-polls of an execution poll PostgreSQL only
	Auth     Authenticator // nil: no authentication, every request acts for the default tenant
	Limits   Limiter       // nil: no rate or concurrency limits
	Tenants  Tenants
	Checks   []Check
	Metrics  *metrics.HTTP
	Gatherer prometheus.Gatherer
}

type server struct {
	Deps
	ready *readiness
}

// NewServer returns the API's http.Handler.
func NewServer(d Deps) http.Handler {
	s := &server{Deps: d, ready: newReadiness(d.Checks)}
	return s.routes()
}

// HTTPServer wraps h with the configured timeouts.
func HTTPServer(cfg Config, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              cfg.Addr,
		Handler:           h,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// tenantOf returns the tenant a request acts for.
func tenantOf(r *http.Request) string {
	if t, ok := r.Context().Value(tenantKey{}).(string); ok {
		return t
	}
	return "default"
}

type tenantKey struct{}
