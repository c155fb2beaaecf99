package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/api"
	"github.com/lambda-microservice/lambda/internal/auth"
	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/callback"
	"github.com/lambda-microservice/lambda/internal/console"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/health"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/ratelimit"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/runtimes"
	"github.com/lambda-microservice/lambda/worker"
	"github.com/lambda-microservice/lambda/workflows"
)

// dataConfig locates PostgreSQL, Redis and the runtime registry; shared by api and worker.
type dataConfig struct {
	DatabaseURL  string `env:"LAMBDA_DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/lambda?sslmode=disable"`
	DBMaxConns   int32  `env:"LAMBDA_DB_MAX_CONNS" envDefault:"16"`
	RedisURL     string `env:"LAMBDA_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	RuntimesFile string `env:"LAMBDA_RUNTIMES_FILE"`
	Migrate      bool   `env:"LAMBDA_MIGRATE_ON_START" envDefault:"true"`
	// Cache tunes the result cache's in-process copies of recent hits.
	Cache cache.Config
	// Logs tunes the request log's group commit (LAMBDA_LOG_WRITERS commits in flight).
	Logs store.LogWriterConfig
	// env is the process environment (serve sets it): function dependencies' settings
	// (LAMBDA_DEPS_*, LAMBDA_MAX_DEPS*, the package sources) are read through it. The
	// runtime hosts resolve and install with them; a process given a malformed one still
	// refuses to start, so a shared environment file fails at once.
	env Env
}

func (c dataConfig) validate() error {
	if c.Logs.Writers < 1 {
		return errors.New("LAMBDA_LOG_WRITERS must be at least 1")
	}
	if _, err := c.depsConfig(); err != nil {
		return err
	}
	return c.Cache.Validate()
}

// depsConfig is the dependency engine's configuration.
func (c dataConfig) depsConfig() (deps.Config, error) {
	return deps.ConfigFrom(func(k string) string { return c.env[k] })
}

type apiConfig struct {
	API   api.Config
	Auth  auth.Config
	Limit ratelimit.Config
	Core  core.Config
	// Sessions are the notebook sessions' limits (LAMBDA_SESSION_*).
	Sessions core.SessionConfig
	FaaS     faas.Config
	Log      logging.Config
	Data     dataConfig
	// DebugAddr, when set, serves net/http/pprof there (keep it on loopback).
	DebugAddr string `env:"LAMBDA_DEBUG_ADDR"`
	// TemporalUI is where the console links a run's workflow (the Temporal Web UI).
	TemporalUI string `env:"LAMBDA_TEMPORAL_UI_URL" envDefault:"http://127.0.0.1:8233"`
	// Temporal and Start configure async executions (Prefer: respond-async); Worker and
	// Activities the api's own worker, which runs the executions it starts eagerly.
	Temporal   worker.TemporalConfig
	Start      workflows.StarterConfig
	Worker     worker.Config
	Activities activities.Config
}

func (c apiConfig) logConfig() logging.Config { return c.Log }

func (c *apiConfig) setEnv(e Env) { c.Data.env = e }

func (c apiConfig) validate() error {
	if _, err := callback.ParseCIDRs(c.Core.CallbackAllowCIDRs); err != nil {
		return fmt.Errorf("LAMBDA_CALLBACK_ALLOW_CIDRS: %w", err)
	}
	fl := c.Core.Functions
	if fl.MaxSourceBytes < 1 || c.API.MaxEventBytes < 1 {
		return errors.New("LAMBDA_MAX_SOURCE_BYTES and LAMBDA_MAX_EVENT_BYTES must be positive")
	}
	if fl.DefaultTimeoutMS < 1 || time.Duration(fl.DefaultTimeoutMS)*time.Millisecond > fl.MaxTimeout {
		return errors.New("LAMBDA_DEFAULT_TIMEOUT_MS must be between 1 and LAMBDA_MAX_TIMEOUT")
	}
	return c.Data.validate()
}

// backends are what the api and the worker share: store, request log, cache, runtime
// client and registry — the collaborators of the invocation core.
type backends struct {
	store *store.Store
	logs  *store.LogWriter
	cache *cache.Cache
	faas  *faas.Client
	reg   *runtimes.Registry
	close func()
}

func openBackends(ctx context.Context, data dataConfig, fc faas.Config, m *metrics.Invoke, log *zap.Logger) (*backends, error) {
	reg, err := runtimes.Load(data.RuntimesFile)
	if err != nil {
		return nil, err
	}
	if data.Migrate {
		if err := store.Migrate(ctx, data.DatabaseURL); err != nil {
			return nil, err
		}
	}
	st, err := store.Open(ctx, data.DatabaseURL, data.DBMaxConns)
	if err != nil {
		return nil, err
	}
	c, err := cache.Open(data.RedisURL, data.Cache)
	if err != nil {
		st.Close()
		return nil, err
	}
	fx, err := faas.New(fc)
	if err != nil {
		st.Close()
		return nil, err
	}
	logs := st.NewLogWriter(data.Logs, log, func(wait time.Duration, rows int) {
		if rows > 0 {
			m.LogBatch.Observe(float64(rows))
		} else {
			m.LogWrite.Observe(wait.Seconds())
		}
	})
	lctx, stopLogs := context.WithCancel(context.Background())
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		logs.Run(lctx)
	}()
	return &backends{store: st, logs: logs, cache: c, faas: fx, reg: reg, close: func() {
		stopLogs()
		<-logsDone // queued rows are written before the pool closes
		st.Close()
		_ = c.Close()
	}}, nil
}

// core returns the invocation core over the backends; durable is nil in a process that
// starts no async executions.
func (b *backends) core(cfg core.Config, durable core.Durable, m *metrics.Invoke, log *zap.Logger) *core.Service {
	// The durable side runs pipeline runs too once it implements their methods.
	// Dependencies resolve on the runtime host of their language (its image has the
	// toolchain and the package sources), through the same client as invocations.
	runs, _ := durable.(core.RunDurable)
	callbacks, _ := durable.(core.CallbackDurable)
	schedules, _ := durable.(core.ScheduleDurable)
	// validate() has parsed the allowlist once already.
	allow, _ := callback.ParseCIDRs(cfg.CallbackAllowCIDRs)
	return core.New(cfg, core.Deps{Store: b.store, Cache: b.cache, Runner: b.faas, Logs: b.logs, Registry: b.reg,
		Durable: durable, Runs: runs, Callbacks: callbacks, Schedules: schedules,
		Deliverer: callback.NewClient(callback.Config{AllowCIDRs: allow}), Deps: b.faas, Metrics: m, Log: log})
}

// runtimeChecks probe each registry runtime's function through the OpenFaaS gateway.
func runtimeChecks(reg *runtimes.Registry, fx *faas.Client, namespace string) []health.Check {
	var checks []health.Check
	for _, rt := range reg.All() {
		fn := rt.Function
		checks = append(checks, health.Check{Name: "runtime:" + rt.Title, Required: true, Probe: func(ctx context.Context) error {
			st, err := fx.SDK().GetFunction(ctx, fn, namespace)
			if err != nil {
				return err
			}
			if st.AvailableReplicas < 1 {
				return fmt.Errorf("%s has no available replica", fn)
			}
			return nil
		}})
	}
	return checks
}

func newAPICmd(e Env, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "api",
		Short: "Serve the public HTTP API (functions, invoke, executions)",
		Args:  cobra.NoArgs,
		RunE:  serve(e, stderr, "api", runAPI),
	}
}

func runAPI(ctx context.Context, cfg apiConfig, log *zap.Logger) error {
	reg := metrics.NewRegistry()
	im := metrics.NewInvoke(reg)
	b, err := openBackends(ctx, cfg.Data, cfg.FaaS, im, log)
	if err != nil {
		return err
	}
	defer b.close()
	// The finish feed wakes long-polls of async executions; it outlives the HTTP server's
	// shutdown, which waits for those long-polls.
	finishes := b.store.NewFinishFeed(log)
	fctx, stopFinishes := context.WithCancel(context.Background())
	defer stopFinishes()
	go finishes.Run(fctx)
	// A key revoked on any replica leaves this one's cache of verified keys at once.
	authn := auth.New(cfg.Auth, b.store)
	revocations := b.store.NewRevocationFeed(log, authn.Forget, authn.ForgetAll)
	go revocations.Run(fctx)
	checks := append([]health.Check{
		{Name: "postgres", Required: true, Probe: b.store.Ping},
		{Name: "redis", Required: false, Probe: b.cache.Ping},
		{Name: "finish_feed", Required: false, Probe: func(context.Context) error {
			if !finishes.Listening() {
				return errors.New("not listening: long-polls of executions fall back to polling PostgreSQL")
			}
			return nil
		}},
		{Name: "key_revocations", Required: false, Probe: func(context.Context) error {
			if !revocations.Listening() {
				return errors.New("not listening: a key revoked on another replica is honoured here until LAMBDA_AUTH_CACHE_TTL")
			}
			return nil
		}},
	}, runtimeChecks(b.reg, b.faas, cfg.FaaS.Namespace)...)
	c, temporalCheck, closeTemporal, err := openAsync(cfg, b, im, reg, log)
	if err != nil {
		return err
	}
	defer closeTemporal()
	checks = append(checks, temporalCheck)
	if cfg.Auth.AdminToken == "" {
		log.Warn("LAMBDA_ADMIN_TOKEN is not set: only existing API keys can call /v1, and no tenant can be created")
	}
	sessions := core.NewSessions(cfg.Sessions, b.store, b.faas, cache.NewIdleClock(b.cache.Client()), b.reg, c, log)
	go sessions.RunExpiry(fctx)
	httpMetrics := metrics.NewHTTP(reg)
	h := api.NewServer(api.Deps{
		Config: cfg.API, Log: log, Core: c, Store: b.store, Tenants: b.store, Checks: checks,
		Finishes: finishes,
		Auth:     authn,
		Limits:   ratelimit.New(cfg.Limit, b.cache.Client(), log),
		Metrics:  httpMetrics, Gatherer: reg,
		Console:  console.Handler(console.WithTemporalUI(cfg.TemporalUI, cfg.Temporal.Namespace)),
		Sessions: sessions,
	})
	if cfg.DebugAddr != "" {
		go serveDebug(cfg.DebugAddr, log)
	}
	srv := api.HTTPServer(cfg.API, h, httpMetrics)
	ln, err := net.Listen("tcp", cfg.API.Addr)
	if err != nil {
		return fmt.Errorf("api: listen %s: %w", cfg.API.Addr, err)
	}
	log.Info("api listening", zap.String("addr", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// openAsync wires async executions: a lazy Temporal client (it connects on first use, so
// the api starts and serves sync calls while Temporal is down), the core over the
// workflows' Starter, the api's own worker for eager starts, and a non-required
// "temporal" readiness check (down → /readyz degraded, still 200).
func openAsync(cfg apiConfig, b *backends, im *metrics.Invoke, reg *prometheus.Registry, log *zap.Logger) (*core.Service, health.Check, func(), error) {
	tc, err := worker.NewLazyClient(cfg.Temporal, log, worker.MetricsHandler(reg))
	if err != nil {
		return nil, health.Check{}, nil, err
	}
	c := b.core(cfg.Core, workflows.NewStarter(cfg.Start, tc, cfg.Temporal.Namespace), im, log)
	stop := tc.Close
	var local *worker.Background
	if cfg.Start.Eager {
		// The api's own worker takes the first workflow task of every execution it starts
		// (eager start) and runs its local activities; regular activities (long functions)
		// stay with the worker processes.
		acts := activities.WithRuns(activities.New(cfg.Activities, c, metrics.NewWorkflow(reg), log), activities.RunsOf(c))
		local = worker.StartWhenReachable(context.Background(), func() sdkworker.Worker {
			return worker.NewLocal(tc, cfg.Worker, acts)
		}, log)
		stop = func() {
			local.Stop()
			tc.Close()
		}
	}
	check := health.Check{Name: "temporal", Required: false, Probe: func(ctx context.Context) error {
		if _, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
			return err
		}
		if local != nil && !local.Running() {
			return errors.New("the api's worker has not started yet: executions start without eager dispatch")
		}
		return nil
	}}
	return c, check, stop, nil
}

func newMigrateCmd(e Env, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg dataConfig
			if err := e.parse(&cfg); err != nil {
				return err
			}
			if err := store.Migrate(cmd.Context(), cfg.DatabaseURL); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "migrations applied")
			return nil
		},
	}
}

// serveDebug serves the Go profiler for `go tool pprof http://ADDR/debug/pprof/profile`.
func serveDebug(addr string, log *zap.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("pprof listening", zap.String("addr", addr))
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Warn("pprof server stopped", logging.Err(err))
	}
}
