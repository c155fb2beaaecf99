// Package provider is the local OpenFaaS provider: the laptop and CI stand-in for faas-netes.
// It implements the faas-provider API (deploy, update, list, status, delete, scale, info,
// logs, health and the function proxy) and "deploys" a runtime function by running replica
// processes of the runtime host binary, each on its own free 127.0.0.1 port. The image of a
// deployment is recorded and reported, but every replica runs the runtime host binary.
//
// Replicas are supervised as the kubelet would: a replica receives traffic once its
// GET /_/ready answers 200, a replica that exits is restarted with exponential backoff, and
// deleting or scaling down stops whole process groups (SIGTERM, then SIGKILL after a grace
// period). GET /system/endpoints/{name} lists the ready replicas' base URLs so a caller can
// reach them directly while the gateway keeps the management API and the default route.
package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openfaas/faas-provider/types"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
)

// Namespace is the one namespace the local provider has (faas-netes' default function namespace).
const Namespace = "openfaas-fn"

// Labels the provider reads from a deployment.
const (
	LabelScaleMin = "com.openfaas.scale.min" // initial replicas (default 1)
	LabelScaleMax = "com.openfaas.scale.max" // upper bound for ScaleFunction (default Config.MaxReplicas)
)

// Environment variables the provider sets for every replica.
const (
	EnvRuntimeAddr  = "LAMBDA_RUNTIME_ADDR"
	EnvRuntimesFile = "LAMBDA_RUNTIMES_FILE"
	EnvLogLevel     = "LAMBDA_LOG_LEVEL"
	EnvLogFormat    = "LAMBDA_LOG_FORMAT"
	EnvSecretFile   = "LAMBDA_RUNTIME_SECRET_FILE"
)

// reservedEnv are the prefixes of variables a deployment may not set: the replica's
// isolation, authentication, address and files are the provider's (its operator's)
// choice, never the caller's of PUT /system/functions. Variables of PassEnv are
// reserved as well.
var reservedEnv = []string{"LAMBDA_SANDBOX", "LAMBDA_RUNTIME_SECRET", "LAMBDA_RUNTIME_AUTH", "LAMBDA_RUNTIME_TENANT",
	EnvRuntimeAddr, EnvRuntimesFile, "LAMBDA_RUNTIME_CACHE_DIR", "LAMBDA_RUNTIME_BIN", "LAMBDA_LOG_", "LD_", "GODEBUG", "GOMAXPROCS", "PATH"}

// Config is the provider's configuration.
type Config struct {
	// Addr is the listen address of the provider API (loopback by default: the API starts
	// processes and carries no authentication).
	Addr string `env:"LAMBDA_PROVIDER_ADDR" envDefault:"127.0.0.1:8081"`
	// RuntimeBin is the runtime host binary every replica runs. Empty: lambda-runtime next
	// to the running executable.
	RuntimeBin string `env:"LAMBDA_RUNTIME_BIN"`
	// RuntimeArgs are extra arguments for RuntimeBin (tests re-execute themselves).
	RuntimeArgs []string `env:"-"`
	// RuntimesFile is passed to replicas as LAMBDA_RUNTIMES_FILE unless the deployment sets it.
	RuntimesFile string `env:"LAMBDA_RUNTIMES_FILE"`
	// ReadyTimeout bounds how long a replica may take to answer GET /_/ready with 200
	// before it is killed and restarted.
	ReadyTimeout time.Duration `env:"LAMBDA_PROVIDER_READY_TIMEOUT" envDefault:"60s"`
	// ProxyTimeout bounds one proxied call (above the 60 s sync limit).
	ProxyTimeout time.Duration `env:"LAMBDA_PROVIDER_PROXY_TIMEOUT" envDefault:"65s"`
	// ProxyWait is how long a call waits for a ready replica of a deployed function
	// (during start-up or a restart) before it is answered 503.
	ProxyWait time.Duration `env:"LAMBDA_PROVIDER_PROXY_WAIT" envDefault:"10s"`
	// StopGrace is the time between SIGTERM and SIGKILL when a replica is stopped.
	StopGrace time.Duration `env:"LAMBDA_PROVIDER_STOP_GRACE" envDefault:"5s"`
	// RestartBackoff is the first restart delay; it doubles up to MaxRestartBackoff and
	// resets once a replica stayed up for a minute.
	RestartBackoff    time.Duration `env:"LAMBDA_PROVIDER_RESTART_BACKOFF" envDefault:"100ms"`
	MaxRestartBackoff time.Duration `env:"LAMBDA_PROVIDER_MAX_RESTART_BACKOFF" envDefault:"10s"`
	// ProbeInterval is the period of the health and readiness probes of a running replica
	// (3 failed health probes restart it; a failed readiness probe takes it out of the
	// balancing). 0 disables them.
	ProbeInterval time.Duration `env:"LAMBDA_PROVIDER_PROBE_INTERVAL" envDefault:"5s"`
	// AutoscaleInterval is how often the provider looks at each function's load (the
	// replicas' pools, from their readiness answers) to scale it: out by one replica while
	// its busy and queued calls fill AutoscaleUp of its workers, back in by one after
	// AutoscaleIdle without a busy worker, between the com.openfaas.scale.min and .max
	// labels. 0 turns it off.
	AutoscaleInterval time.Duration `env:"LAMBDA_PROVIDER_AUTOSCALE_INTERVAL" envDefault:"5s"`
	AutoscaleUp       float64       `env:"LAMBDA_PROVIDER_AUTOSCALE_UP" envDefault:"0.8"`
	AutoscaleIdle     time.Duration `env:"LAMBDA_PROVIDER_AUTOSCALE_IDLE" envDefault:"5m"`
	// LogLines is how many output lines are kept per function for the logs API.
	LogLines int `env:"LAMBDA_PROVIDER_LOG_LINES" envDefault:"1000"`
	// MaxReplicas caps ScaleFunction when the deployment has no com.openfaas.scale.max label.
	MaxReplicas int `env:"LAMBDA_PROVIDER_MAX_REPLICAS" envDefault:"16"`
	// PassEnv names the variables of the provider's own environment that replicas inherit.
	// Everything else a replica sees comes from its deployment's EnvVars: never the
	// provider's secrets (database URL, tokens). The default includes what a runtime host's
	// dependency installs read: the cache and its limits, the package sources (the
	// registry entries' vars) and how this machine reaches them (proxies, CA bundles).
	// A name ending in * passes every variable with that prefix. The sandbox settings
	// (LAMBDA_SANDBOX*) are the operator's: they come from here, never from a deployment.
	PassEnv []string `env:"LAMBDA_PROVIDER_PASS_ENV" envSeparator:"," envDefault:"PATH,HOME,USER,LANG,LC_ALL,TZ,TMPDIR,XDG_CACHE_HOME,RUSTUP_HOME,CARGO_HOME,LAMBDA_DEPS_*,LAMBDA_MAX_DEP*,LAMBDA_NPM_REGISTRY,LAMBDA_PIP_INDEX_URL,LAMBDA_PIP_WHEELHOUSE,LAMBDA_CARGO_REGISTRY,HTTPS_PROXY,HTTP_PROXY,NO_PROXY,https_proxy,http_proxy,no_proxy,SSL_CERT_FILE,SSL_CERT_DIR,NODE_EXTRA_CA_CERTS,PIP_CERT,REQUESTS_CA_BUNDLE,LAMBDA_SANDBOX*,LAMBDA_RUNTIME_TENANT*"`
	// RuntimeSecretFile is handed to every replica as LAMBDA_RUNTIME_SECRET_FILE: the
	// secret a runtime host requires of each call (the api reads the same file).
	RuntimeSecretFile string `env:"LAMBDA_RUNTIME_SECRET_FILE"`
	// RuntimeSecret is the same secret given inline, handed on as LAMBDA_RUNTIME_SECRET
	// (a replica's environment is readable by its own uid only, never by its workers').
	RuntimeSecret string `env:"LAMBDA_RUNTIME_SECRET"`
	// Environ is the provider's own environment, from which PassEnv is copied.
	Environ map[string]string `env:"-"`
	// Log is handed on to replicas as LAMBDA_LOG_LEVEL and LAMBDA_LOG_FORMAT.
	Log logging.Config
}

// Validate fills defaults that depend on the machine and checks the configuration.
func (c *Config) Validate() error {
	if c.RuntimeBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("provider config: locate runtime host: %w", err)
		}
		c.RuntimeBin = filepath.Join(filepath.Dir(exe), "lambda-runtime")
	}
	st, err := os.Stat(c.RuntimeBin)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("provider config: runtime host binary %s not found or not executable (run `make build` or set LAMBDA_RUNTIME_BIN)", c.RuntimeBin)
	}
	if c.ReadyTimeout <= 0 || c.ProxyTimeout <= 0 || c.StopGrace <= 0 || c.RestartBackoff <= 0 || c.MaxRestartBackoff < c.RestartBackoff {
		return errors.New("provider config: timeouts and backoffs must be positive")
	}
	if c.LogLines < 1 {
		c.LogLines = 1
	}
	if c.MaxReplicas < 1 {
		return errors.New("provider config: LAMBDA_PROVIDER_MAX_REPLICAS must be at least 1")
	}
	return nil
}

// Provider keeps the deployed functions and their replica processes.
type Provider struct {
	cfg     Config
	log     *zap.Logger
	metrics *metrics.Provider
	httpm   *metrics.HTTP
	reg     *prometheus.Registry
	probe   *http.Client // readiness probes
	proxy   *http.Transport

	ctx    context.Context // cancelled by Close: stops every supervisor
	cancel context.CancelFunc

	mu     sync.RWMutex
	fns    map[string]*function
	closed bool
}

// New returns a provider; it starts nothing until functions are deployed. reg receives
// the provider's collectors and is served on /metrics.
func New(cfg Config, log *zap.Logger, reg *prometheus.Registry) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Provider{
		cfg:     cfg,
		log:     log,
		metrics: metrics.NewProvider(reg),
		httpm:   metrics.NewHTTP(reg),
		reg:     reg,
		probe:   &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}},
		proxy:   newProxyTransport(),
		ctx:     ctx,
		cancel:  cancel,
		fns:     map[string]*function{},
	}
	if cfg.AutoscaleInterval > 0 {
		go p.autoscale()
	}
	return p, nil
}

// autoscale scales each function to its load until the provider closes (the seed's
// horizontal scale-out; on Kubernetes the HPA and OpenFaaS' autoscaler do this).
func (p *Provider) autoscale() {
	t := time.NewTicker(p.cfg.AutoscaleInterval)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case now := <-t.C:
			p.mu.RLock()
			fns := slices.Collect(maps.Values(p.fns))
			p.mu.RUnlock()
			for _, fn := range fns {
				fn.autoscale(now)
			}
		}
	}
}

// Close stops every replica of every function (SIGTERM to each process group, SIGKILL
// after the grace period) and waits for them, or until ctx is done.
func (p *Provider) Close(ctx context.Context) error {
	p.mu.Lock()
	p.closed = true
	fns := slices.Collect(maps.Values(p.fns))
	p.mu.Unlock()
	p.cancel()
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() { defer wg.Done(); fn.stopAll() }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		p.proxy.CloseIdleConnections()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop replicas: %w", ctx.Err())
	}
}

// deploy starts a new function; it fails with Conflict if the name is taken.
func (p *Provider) deploy(spec types.FunctionDeployment) error {
	if err := p.checkSpec(&spec); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fault.New(fault.Unavailable, "provider is shutting down")
	}
	if _, ok := p.fns[spec.Service]; ok {
		return fault.New(fault.Conflict, "function %s already exists", spec.Service)
	}
	fn := newFunction(p, spec)
	p.fns[spec.Service] = fn
	p.metrics.Restarts.WithLabelValues(spec.Service) // exported from 0, so rate() sees the first restart
	fn.mu.Lock()
	fn.scale(scaleLabel(spec.Labels, LabelScaleMin, 1))
	fn.mu.Unlock()
	p.log.Info("function deployed", zap.String(logging.FieldFunction, spec.Service), zap.String("container.image.name", spec.Image))
	return nil
}

// update replaces a function's deployment: new replicas start with the new spec and the
// old ones stop once the new ones are ready (a rolling update).
func (p *Provider) update(spec types.FunctionDeployment) error {
	if err := p.checkSpec(&spec); err != nil {
		return err
	}
	p.mu.RLock()
	fn, ok := p.fns[spec.Service]
	p.mu.RUnlock()
	if !ok {
		return fault.New(fault.NotFound, "function %s not found", spec.Service)
	}
	fn.update(spec)
	p.log.Info("function updated", zap.String(logging.FieldFunction, spec.Service), zap.String("container.image.name", spec.Image))
	return nil
}

// remove deletes a function and stops its replicas.
func (p *Provider) remove(name string) error {
	p.mu.Lock()
	fn, ok := p.fns[name]
	delete(p.fns, name)
	p.mu.Unlock()
	if !ok {
		return fault.New(fault.NotFound, "function %s not found", name)
	}
	fn.stopAll()
	p.metrics.Replicas.DeleteLabelValues(name)
	p.metrics.Restarts.DeleteLabelValues(name)
	p.log.Info("function deleted", zap.String(logging.FieldFunction, name))
	return nil
}

// setReplicas changes the replica count of a function.
func (p *Provider) setReplicas(name string, n uint64) error {
	fn, ok := p.lookup(name)
	if !ok {
		return fault.New(fault.NotFound, "function %s not found", name)
	}
	limit := scaleLabel(fn.specCopy().Labels, LabelScaleMax, p.cfg.MaxReplicas)
	if n > uint64(limit) {
		return fault.New(fault.Invalid, "function %s: at most %d replicas", name, limit)
	}
	fn.mu.Lock()
	fn.scale(int(n))
	fn.mu.Unlock()
	p.log.Info("function scaled", zap.String(logging.FieldFunction, name), zap.Uint64("replicas", n))
	return nil
}

// lookup finds a function by name, also in OpenFaaS' "name.namespace" form (what the
// go-sdk's InvokeFunction and the gateway send).
func (p *Provider) lookup(name string) (*function, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if fn, ok := p.fns[name]; ok {
		return fn, true
	}
	if base, ok := strings.CutSuffix(name, "."+Namespace); ok {
		fn, ok := p.fns[base]
		return fn, ok
	}
	return nil, false
}

// list returns the status of every function, sorted by name.
func (p *Provider) list() []types.FunctionStatus {
	p.mu.RLock()
	fns := slices.Collect(maps.Values(p.fns))
	p.mu.RUnlock()
	out := make([]types.FunctionStatus, 0, len(fns))
	for _, fn := range fns {
		out = append(out, fn.status())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Endpoints returns the base URLs (http://127.0.0.1:port) of a function's ready replicas.
func (p *Provider) Endpoints(name string) ([]string, error) {
	fn, ok := p.lookup(name)
	if !ok {
		return nil, fault.New(fault.NotFound, "function %s not found", name)
	}
	ready := fn.readySnapshot()
	out := make([]string, 0, len(ready))
	for _, r := range ready {
		out = append(out, r.baseURL())
	}
	return out, nil
}

func (p *Provider) checkSpec(spec *types.FunctionDeployment) error {
	if spec.Service == "" {
		return fault.New(fault.Invalid, "service (function name) is required")
	}
	for k := range spec.EnvVars {
		if p.reserved(k) {
			return fault.New(fault.Invalid, "envVars: %s is set by the provider's operator, not by a deployment", k)
		}
	}
	if spec.Namespace != "" && spec.Namespace != Namespace {
		return fault.New(fault.Invalid, "namespace %s does not exist (the local provider has only %s)", spec.Namespace, Namespace)
	}
	spec.Namespace = Namespace
	if n := scaleLabel(spec.Labels, LabelScaleMin, 1); n > scaleLabel(spec.Labels, LabelScaleMax, p.cfg.MaxReplicas) {
		return fault.New(fault.Invalid, "label %s=%d is above the replica limit", LabelScaleMin, n)
	}
	return nil
}

// reserved reports whether a deployment may not set the variable k.
func (p *Provider) reserved(k string) bool {
	for _, r := range reservedEnv {
		if strings.HasPrefix(k, r) {
			return true
		}
	}
	for _, pass := range p.cfg.PassEnv {
		if prefix, ok := strings.CutSuffix(pass, "*"); ok && strings.HasPrefix(k, prefix) || k == pass {
			return true
		}
	}
	return false
}

// scaleLabel reads a non-negative integer label, or def.
func scaleLabel(labels *map[string]string, key string, def int) int {
	if labels == nil {
		return def
	}
	v, ok := (*labels)[key]
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return def
	}
	return n
}

// replicaEnv is the environment of one replica: the allowlisted part of the provider's
// environment, the deployment's EnvVars, and what the provider must set.
func (p *Provider) replicaEnv(spec *types.FunctionDeployment, addr string) []string {
	env := map[string]string{}
	maps.Copy(env, spec.EnvVars) // checked by checkSpec: nothing below can be overridden
	for _, k := range p.cfg.PassEnv {
		if prefix, ok := strings.CutSuffix(k, "*"); ok {
			for name, v := range p.cfg.Environ {
				if strings.HasPrefix(name, prefix) {
					env[name] = v
				}
			}
		} else if v, ok := p.cfg.Environ[k]; ok {
			env[k] = v
		}
	}
	if p.cfg.RuntimeSecretFile != "" {
		env[EnvSecretFile] = p.cfg.RuntimeSecretFile
	}
	if p.cfg.RuntimeSecret != "" {
		env["LAMBDA_RUNTIME_SECRET"] = p.cfg.RuntimeSecret
	}
	if p.cfg.RuntimesFile != "" {
		env[EnvRuntimesFile] = p.cfg.RuntimesFile
	}
	if p.cfg.Log.Level != "" {
		env[EnvLogLevel] = p.cfg.Log.Level
	}
	if p.cfg.Log.Format != "" {
		env[EnvLogFormat] = p.cfg.Log.Format
	}
	env[EnvRuntimeAddr] = addr
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
