// Package devstack runs the whole platform on one machine: `lambda dev` (`make run`) and the
// end-to-end tests use it. Start brings up, in order, PostgreSQL and Redis (the running
// servers, or private instances started from the system binaries), Prometheus (when
// installed), the Temporal dev server, the local OpenFaaS provider, the real OpenFaaS
// gateway, the runtime functions of the registry (deployed through the gateway's API),
// `lambda migrate`, the api and the worker; Stack.Stop stops them in reverse order.
//
// Children's output goes to files under DataDir/logs; the terminal gets progress lines,
// the children's error lines and a table of addresses. A child that exits unexpectedly
// fails the whole stack (Stack.Done is closed, Stack.Err says which child and where its
// log is): a half-running platform is worse than a clear stop. Runtime replicas are the
// exception: the provider restarts them, as the kubelet would.
package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caarlos0/env/v11"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
	"github.com/lambda-microservice/lambda/runtimes"
)

// Options configure a stack. LoadOptions fills them from LAMBDA_* variables; Isolate
// adapts them for a test.
type Options struct {
	// BinDir holds lambda and lambda-runtime. Default: the running executable's folder.
	BinDir string `env:"LAMBDA_BIN_DIR"`
	// GatewayBin is the OpenFaaS gateway (make gateway). Default: BinDir/gateway. Its UI
	// assets are expected in gateway-ui/assets beside it.
	GatewayBin string `env:"LAMBDA_GATEWAY_BIN"`
	// TemporalBin is the Temporal CLI (make temporal).
	// Default: ${XDG_CACHE_HOME:-$HOME/.cache}/lambda-microservice/temporal-v1.5.1/temporal.
	TemporalBin string `env:"LAMBDA_TEMPORAL_BIN"`
	// PrometheusBin is started unless SkipPrometheus; when missing, the prometheus package is
	// installed (AllowInstall, as root), else a stub answers the gateway's queries.
	PrometheusBin string `env:"LAMBDA_PROMETHEUS_BIN" envDefault:"/usr/bin/prometheus"`
	// RulesDir holds Prometheus rule files (*.yml) loaded when the folder exists.
	RulesDir string `env:"LAMBDA_PROMETHEUS_RULES" envDefault:"deploy/prometheus/rules"`
	// DataDir holds logs, the Temporal database, generated configs and private servers' data.
	DataDir string `env:"LAMBDA_DATA_DIR" envDefault:".data"`
	// RuntimesFile is the runtime registry (empty: the one bundled into the binaries).
	RuntimesFile string `env:"LAMBDA_RUNTIMES_FILE"`

	DatabaseURL string `env:"LAMBDA_DATABASE_URL" envDefault:"postgres://postgres@127.0.0.1:5432/lambda?sslmode=disable"`
	RedisURL    string `env:"LAMBDA_REDIS_URL" envDefault:"redis://127.0.0.1:6379/0"`
	// DropDatabase drops the database at Stop (tests use a fresh one per run).
	DropDatabase bool `env:"-"`

	APIAddr           string `env:"LAMBDA_HTTP_ADDR" envDefault:"127.0.0.1:8000"`
	ProviderAddr      string `env:"LAMBDA_PROVIDER_ADDR" envDefault:"127.0.0.1:8081"`
	TemporalAddr      string `env:"LAMBDA_TEMPORAL_ADDR" envDefault:"127.0.0.1:7233"`
	TemporalUIPort    int    `env:"LAMBDA_TEMPORAL_UI_PORT" envDefault:"8233"`
	PrometheusAddr    string `env:"LAMBDA_PROMETHEUS_ADDR" envDefault:"127.0.0.1:9090"`
	WorkerMetricsAddr string `env:"LAMBDA_WORKER_METRICS_ADDR" envDefault:"127.0.0.1:9101"`
	// FreePorts replaces every address above (not the gateway's fixed 8080/8082) with a
	// free loopback port.
	FreePorts bool `env:"-"`

	// TemporalInMemory keeps Temporal's state in memory instead of DataDir/temporal.db.
	TemporalInMemory bool `env:"LAMBDA_DEV_TEMPORAL_IN_MEMORY"`
	// TemporalHeadless starts Temporal without its Web UI.
	TemporalHeadless bool `env:"LAMBDA_DEV_TEMPORAL_HEADLESS"`
	// Worker: auto (start `lambda worker` when the binary has it), on, off.
	Worker string `env:"LAMBDA_DEV_WORKER" envDefault:"auto"`
	// Skip* leave a part out (tests that need less).
	SkipTemporal   bool `env:"LAMBDA_DEV_SKIP_TEMPORAL"`
	SkipPrometheus bool `env:"LAMBDA_DEV_SKIP_PROMETHEUS"`
	SkipAPI        bool `env:"-"`

	// InvokeRoute is how the api and the worker reach the runtime functions: direct (to a
	// replica listed by the provider, the gateway as fallback) or gateway (every call
	// through the OpenFaaS gateway). See BENCHMARKS.md for what each costs.
	InvokeRoute string `env:"LAMBDA_INVOKE_ROUTE" envDefault:"direct"`

	// Runtimes are the titles to deploy (default: every runtime of the registry).
	Runtimes []string `env:"LAMBDA_DEV_RUNTIMES" envSeparator:","`
	// RuntimeReplicas is each runtime function's com.openfaas.scale.min.
	RuntimeReplicas int `env:"LAMBDA_DEV_RUNTIME_REPLICAS" envDefault:"1"`
	// APIs and Workers are how many api and worker processes run, side by side on one
	// database and task queue (a deployment's replicas). The first keeps the configured
	// addresses and the log names api.log / worker.log; the others (api-2, worker-2, ...)
	// listen on free ports.
	APIs    int `env:"LAMBDA_DEV_APIS" envDefault:"1"`
	Workers int `env:"LAMBDA_DEV_WORKERS" envDefault:"1"`

	// Env is extra environment for migrate, the api and the worker (LAMBDA_ADMIN_TOKEN...).
	Env map[string]string `env:"-"`
	// Environ is the base environment of every child (PATH, HOME, ...); the platform's
	// LAMBDA_* settings in it reach migrate, the api and the worker only. Default: the
	// process environment.
	Environ map[string]string `env:"-"`
	// Log is handed to the children as LAMBDA_LOG_LEVEL / LAMBDA_LOG_FORMAT.
	Log logging.Config

	// PortWait is how long to wait for the gateway's fixed ports 8080/8082 when another
	// stack of this machine holds them (tests of several packages); 0 fails at once.
	PortWait time.Duration `env:"-"`
	// StartTimeout bounds each readiness wait; RuntimeReadyTimeout the runtime functions'
	// (a cold Rust toolchain takes a while).
	StartTimeout        time.Duration `env:"LAMBDA_DEV_START_TIMEOUT" envDefault:"2m"`
	RuntimeReadyTimeout time.Duration `env:"LAMBDA_DEV_RUNTIME_READY_TIMEOUT" envDefault:"5m"`
	// StopGrace is the time between SIGTERM and SIGKILL for each child.
	StopGrace time.Duration `env:"LAMBDA_DEV_STOP_GRACE" envDefault:"10s"`
	// AllowInstall lets a root process `apt-get install` PostgreSQL, Redis, Prometheus,
	// bubblewrap and the runtimes' packages when missing.
	AllowInstall bool `env:"LAMBDA_DEV_ALLOW_INSTALL" envDefault:"true"`

	// Out receives progress lines, children's error lines and the summary (nil: discard).
	Out io.Writer `env:"-"`
	// Logger receives the stack's own structured log (nil: nop).
	Logger *zap.Logger `env:"-"`
}

// LoadOptions reads Options from environ (LAMBDA_* variables, defaults for the rest).
func LoadOptions(environ map[string]string) (Options, error) {
	var o Options
	if err := env.ParseWithOptions(&o, env.Options{Environment: environ}); err != nil {
		return o, fmt.Errorf("devstack options: %w", err)
	}
	o.Environ = environ
	return o, nil
}

// OSEnviron returns the process environment as a map, for LoadOptions.
func OSEnviron() map[string]string {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Isolate adapts the options for a test: data under dataDir, free ports (the gateway's
// fixed ports are waited for up to 10 minutes), a fresh database dropped at Stop, one of
// Redis' logical databases 1-15, Temporal in memory without its UI, no Prometheus.
func (o *Options) Isolate(dataDir string) {
	o.DataDir = dataDir
	o.FreePorts = true
	o.PortWait = 10 * time.Minute
	o.TemporalInMemory = true
	o.TemporalHeadless = true
	o.SkipPrometheus = true
	o.DropDatabase = true
	o.DatabaseURL = withDatabase(o.DatabaseURL, fmt.Sprintf("lambda_test_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9))
	// Spread concurrent test stacks over Redis' logical databases 1-15 (0 stays the default).
	if u, err := url.Parse(o.RedisURL); err == nil {
		u.Path = fmt.Sprintf("/%d", 1+(os.Getpid()+int(time.Now().UnixNano()/1000))%15)
		o.RedisURL = u.String()
	}
	if o.Log.Level == "" {
		o.Log.Level = "info"
	}
	// A private dependency cache: what a test installs is installed by this stack.
	if o.Environ == nil {
		o.Environ = OSEnviron()
	}
	o.Environ = maps.Clone(o.Environ)
	o.Environ["LAMBDA_DEPS_DIR"] = filepath.Join(dataDir, "deps")
}

// Stack is a running platform. Its fields are the addresses to use.
type Stack struct {
	APIURL string // http://127.0.0.1:8000 ("" with SkipAPI)
	// APIURLs are every api process's base URL (Options.APIs of them), APIURL first.
	APIURLs           []string
	GatewayURL        string // http://127.0.0.1:8080
	GatewayUIURL      string // http://127.0.0.1:8080/ui/
	GatewayMetricsURL string // http://127.0.0.1:8082/metrics
	ProviderURL       string // http://127.0.0.1:8081
	DatabaseURL       string // the database the platform uses (created if missing)
	RedisURL          string
	TemporalAddr      string   // host:port of the frontend ("" with SkipTemporal)
	TemporalUIURL     string   // "" when headless or skipped
	PrometheusURL     string   // "" when Prometheus is not running (a stub answers the gateway)
	WorkerMetricsURL  string   // the worker's /metrics
	DataDir           string   // absolute
	LogDir            string   // absolute; one <child>.log per child
	Functions         []string // the runtime functions deployed, e.g. runtime-python
	// AdminToken is the api's admin bearer token: LAMBDA_ADMIN_TOKEN when set, otherwise
	// one generated once per data dir (DataDir/admin-token).
	AdminToken string
	// SecretsDir (DataDir/secrets) holds the control plane's secret files, generated once:
	// runtime-secret (the runtime hosts' invoke secret), basic-auth-user and
	// basic-auth-password (the gateway's credentials, its secret_mount_path).
	SecretsDir        string
	RuntimeSecretFile string
	GatewayUserFile   string
	GatewayPassFile   string

	opts                  Options
	log                   *zap.Logger
	out                   *syncWriter
	registry              *runtimes.Registry
	binLambda, binRuntime string
	worker                bool

	// private servers and their notes for the summary
	pgNote, redisNote string
	temporalMetrics   string
	workerMetrics     string
	providerAddr      string
	apiAddr           string
	apiAddrs          []string // apiAddr first
	workerAddrs       []string // each worker's metrics address, workerMetrics first
	// The gateway's own network namespace (netns.go): its 127.0.0.1 addresses on this
	// machine, or "" when it binds its fixed ports on every interface.
	gatewayAddr, gatewayMetricsAddr string
	temporalUIPort                  int
	prometheusAddr                  string

	mu       sync.Mutex
	procs    []*proc  // started children, in start order
	cleanups []func() // run in reverse order by Stop, after the children
	started  time.Time

	failOnce sync.Once
	failed   chan struct{}
	failErr  error
	stopOnce sync.Once
	stopErr  error
}

// Start brings the platform up and returns once the api is ready, or fails and stops
// whatever it had started.
func Start(ctx context.Context, o Options) (*Stack, error) {
	s, err := newStack(o)
	if err != nil {
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

func newStack(o Options) (*Stack, error) {
	if o.Environ == nil {
		o.Environ = OSEnviron()
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.RuntimeReadyTimeout <= 0 {
		o.RuntimeReadyTimeout = 5 * time.Minute
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 10 * time.Second
	}
	if o.RuntimeReplicas < 1 {
		o.RuntimeReplicas = 1
	}
	o.APIs = max(o.APIs, 1)
	o.Workers = max(o.Workers, 1)
	if o.Worker == "" {
		o.Worker = "auto"
	}
	if o.DataDir == "" {
		o.DataDir = ".data"
	}
	data, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("devstack: data dir: %w", err)
	}
	s := &Stack{
		opts:        o,
		log:         o.Logger,
		out:         &syncWriter{w: o.Out},
		DataDir:     data,
		LogDir:      filepath.Join(data, "logs"),
		DatabaseURL: o.DatabaseURL,
		RedisURL:    o.RedisURL,
		failed:      make(chan struct{}),
		started:     time.Now(),
	}
	if err := os.MkdirAll(s.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	if err := s.resolveBinaries(); err != nil {
		return nil, err
	}
	return s, nil
}

// TemporalVersion is the Temporal CLI the Makefile builds.
const TemporalVersion = "v1.5.1"

// DefaultTemporalBin is where `make temporal` puts the Temporal CLI:
// ${XDG_CACHE_HOME:-$HOME/.cache}/lambda-microservice/temporal-v1.5.1/temporal.
func DefaultTemporalBin(environ map[string]string) string {
	cache := environ["XDG_CACHE_HOME"]
	if cache == "" {
		cache = filepath.Join(environ["HOME"], ".cache")
	}
	return filepath.Join(cache, "lambda-microservice", "temporal-"+TemporalVersion, "temporal")
}

// resolveBinaries finds lambda, lambda-runtime, the gateway and Temporal.
func (s *Stack) resolveBinaries() error {
	o := &s.opts
	if o.BinDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("devstack: locate binaries: %w", err)
		}
		o.BinDir = filepath.Dir(exe)
	}
	bin, err := filepath.Abs(o.BinDir)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	o.BinDir = bin
	s.binLambda = filepath.Join(bin, "lambda")
	s.binRuntime = filepath.Join(bin, "lambda-runtime")
	if o.GatewayBin == "" {
		o.GatewayBin = filepath.Join(bin, "gateway")
	}
	if o.TemporalBin == "" && !o.SkipTemporal {
		o.TemporalBin = DefaultTemporalBin(o.Environ)
	}
	need := []struct{ path, what, how string }{
		{s.binLambda, "lambda", "make build (or set LAMBDA_BIN_DIR)"},
		{s.binRuntime, "the runtime host", "make build (or set LAMBDA_BIN_DIR)"},
		{o.GatewayBin, "the OpenFaaS gateway", "make gateway (or set LAMBDA_GATEWAY_BIN)"},
	}
	if !o.SkipTemporal {
		need = append(need, struct{ path, what, how string }{o.TemporalBin, "the Temporal CLI", "make temporal (or set LAMBDA_TEMPORAL_BIN)"})
	}
	for _, n := range need {
		if !isExecutable(n.path) {
			return fmt.Errorf("devstack: %s is missing at %s: run `%s`", n.what, n.path, n.how)
		}
	}
	return nil
}

// start runs the component table in order.
func (s *Stack) start(ctx context.Context) error {
	reg, err := runtimes.Load(s.opts.RuntimesFile)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	s.registry = reg
	if err := s.adminToken(); err != nil {
		return err
	}
	if err := s.controlSecrets(); err != nil {
		return err
	}
	if err := s.assignAddresses(); err != nil {
		return err
	}
	s.worker, err = s.wantWorker(ctx)
	if err != nil {
		return err
	}
	for _, c := range components() {
		if c.enabled != nil && !c.enabled(s) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("devstack: interrupted while starting %s", c.name)
		}
		t0 := time.Now()
		s.printf("  %-12s starting…\n", c.name)
		if err := c.start(s, ctx); err != nil {
			return fmt.Errorf("devstack: %s: %w", c.name, err)
		}
		select {
		case <-s.failed:
			return s.failErr
		default:
		}
		s.printf("  %-12s ready (%s)\n", c.name, time.Since(t0).Round(10*time.Millisecond))
	}
	s.printSummary()
	return nil
}

// Done is closed when a child exits unexpectedly; Err then says which.
func (s *Stack) Done() <-chan struct{} { return s.failed }

// Err is the reason the stack failed after Start, or nil.
func (s *Stack) Err() error {
	select {
	case <-s.failed:
		return s.failErr
	default:
		return nil
	}
}

func (s *Stack) fail(err error) {
	s.failOnce.Do(func() {
		s.failErr = err
		close(s.failed)
	})
}

// Stop stops every child in reverse start order (SIGTERM to its process group, SIGKILL
// after the grace period), then runs the cleanups (stub servers, locks, dropping a test
// database). It is safe to call more than once.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		procs := slices.Clone(s.procs)
		cleanups := slices.Clone(s.cleanups)
		s.mu.Unlock()
		var errs []error
		for i := len(procs) - 1; i >= 0; i-- {
			p := procs[i]
			if p.infra {
				continue // private PostgreSQL and Redis go last, after the cleanups that use them
			}
			if err := p.stop(s.opts.StopGrace); err != nil {
				errs = append(errs, err)
			}
		}
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		for i := len(procs) - 1; i >= 0; i-- {
			if p := procs[i]; p.infra {
				if err := p.stop(s.opts.StopGrace); err != nil {
					errs = append(errs, err)
				}
			}
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

func (s *Stack) addCleanup(f func()) {
	s.mu.Lock()
	s.cleanups = append(s.cleanups, f)
	s.mu.Unlock()
}

// PlatformEnv is the environment migrate, the api and the worker run with: the base
// environment, the stack's addresses and Options.Env. Tests use it to start more processes.
func (s *Stack) PlatformEnv() []string {
	return s.platformEnv(nil)
}

// platformEnv is PlatformEnv with some variables replaced (a second api's address).
func (s *Stack) platformEnv(override map[string]string) []string {
	m := maps.Clone(s.opts.Environ)
	for k, v := range s.platformVars() {
		m[k] = v
	}
	maps.Copy(m, override)
	return envList(m)
}

func (s *Stack) platformVars() map[string]string {
	v := map[string]string{
		"LAMBDA_HTTP_ADDR":        s.apiAddr,
		"LAMBDA_DATABASE_URL":     s.DatabaseURL,
		"LAMBDA_REDIS_URL":        s.RedisURL,
		"LAMBDA_GATEWAY_URL":      s.GatewayURL,
		"LAMBDA_PROVIDER_URL":     s.ProviderURL,
		"LAMBDA_ENDPOINTS_URL":    s.ProviderURL,
		"LAMBDA_INVOKE_ROUTE":     s.opts.InvokeRoute,
		"LAMBDA_TEMPORAL_ADDR":    s.TemporalAddr,
		"LAMBDA_TEMPORAL_UI_URL":  s.TemporalUIURL, // where the console links workflows
		"LAMBDA_METRICS_ADDR":     s.workerMetrics,
		"LAMBDA_RUNTIMES_FILE":    s.opts.RuntimesFile,
		"LAMBDA_LOG_LEVEL":        s.opts.Log.Level,
		"LAMBDA_LOG_FORMAT":       s.opts.Log.Format,
		"LAMBDA_MIGRATE_ON_START": "true",
		"LAMBDA_ADMIN_TOKEN":      s.AdminToken,
		// The api and the worker call the runtime hosts with their secret and the
		// gateway's management API with its credentials.
		"LAMBDA_RUNTIME_SECRET_FILE":   s.RuntimeSecretFile,
		"LAMBDA_GATEWAY_USER_FILE":     s.GatewayUserFile,
		"LAMBDA_GATEWAY_PASSWORD_FILE": s.GatewayPassFile,
	}
	for k, val := range v {
		if val == "" {
			delete(v, k)
		}
	}
	maps.Copy(v, s.opts.Env)
	return v
}

// adminToken picks the api's admin token: the configured one, or a random one kept in
// DataDir/admin-token so that it stays the same across runs.
func (s *Stack) adminToken() error {
	if t := s.opts.Env["LAMBDA_ADMIN_TOKEN"]; t != "" {
		s.AdminToken = t
		return nil
	}
	if t := s.opts.Environ["LAMBDA_ADMIN_TOKEN"]; t != "" {
		s.AdminToken = t
		return nil
	}
	path := filepath.Join(s.DataDir, "admin-token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 16 {
		s.AdminToken = strings.TrimSpace(string(b))
		return nil
	}
	buf := make([]byte, 24)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("devstack: admin token: %w", err)
	}
	s.AdminToken = "dev-" + hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(s.AdminToken+"\n"), 0o600); err != nil {
		return fmt.Errorf("devstack: admin token: %w", err)
	}
	return nil
}

// controlSecrets creates the control plane's secret files once per data dir (kept across
// runs, readable by their owner only): the runtime hosts' invoke secret and the gateway's
// basic-auth credentials, in the layout of the gateway's secret_mount_path.
func (s *Stack) controlSecrets() error {
	s.SecretsDir = filepath.Join(s.DataDir, "secrets")
	if err := os.MkdirAll(s.SecretsDir, 0o700); err != nil {
		return fmt.Errorf("devstack: secrets: %w", err)
	}
	s.RuntimeSecretFile = filepath.Join(s.SecretsDir, "runtime-secret")
	s.GatewayUserFile = filepath.Join(s.SecretsDir, "basic-auth-user")
	s.GatewayPassFile = filepath.Join(s.SecretsDir, "basic-auth-password")
	for path, fixed := range map[string]string{s.RuntimeSecretFile: "", s.GatewayUserFile: "admin", s.GatewayPassFile: ""} {
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			continue
		}
		v := fixed
		if v == "" {
			var err error
			if v, err = platformsecret.New(); err != nil {
				return fmt.Errorf("devstack: secrets: %w", err)
			}
		}
		if err := platformsecret.WriteFile(path, v); err != nil {
			return fmt.Errorf("devstack: secrets: %w", err)
		}
	}
	return nil
}

// plainEnv is the base environment without any LAMBDA_* variable, plus extra.
func (s *Stack) plainEnv(extra map[string]string) []string {
	m := map[string]string{}
	for k, v := range s.opts.Environ {
		if !strings.HasPrefix(k, "LAMBDA_") {
			m[k] = v
		}
	}
	for k, v := range extra {
		if v != "" {
			m[k] = v
		}
	}
	return envList(m)
}

func envList(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func (s *Stack) printf(format string, args ...any) {
	fmt.Fprintf(s.out, format, args...)
}

// syncWriter serialises writes from the children's log pumps and the progress lines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
