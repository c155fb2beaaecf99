package devstack

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/openfaas/faas-provider/types"
	sdk "github.com/openfaas/go-sdk"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/provider"
	"github.com/lambda-microservice/lambda/runtimes"
)

// component is one entry of the start-up table: Start runs the entries in order and Stop
// stops their processes in reverse. A plain process is one process(...) entry.
type component struct {
	name    string
	enabled func(*Stack) bool
	start   func(*Stack, context.Context) error
	// job and metrics make the generated Prometheus configuration scrape the component.
	job     string
	metrics func(*Stack) string // host:port serving /metrics
}

// components is the platform, in start order. (A function, not a variable: the
// Prometheus configuration is generated from the table.)
func components() []component {
	return []component{
		{name: "postgres", start: (*Stack).ensurePostgres},
		{name: "redis", start: (*Stack).ensureRedis},
		process("temporal", func(s *Stack) bool { return !s.opts.SkipTemporal }, temporalCommand, temporalReady,
			"temporal", func(s *Stack) string { return s.temporalMetrics }),
		// Before the provider, which starts the runtime hosts that need them.
		{name: "packages", start: (*Stack).ensurePackages},
		process("provider", nil, providerCommand,
			func(s *Stack) func(context.Context) error { return httpOK(s.ProviderURL + "/healthz") },
			"lambda-provider", func(s *Stack) string { return s.providerAddr }),
		// Before the gateway, which queries it; after the provider, its service discovery.
		{name: "prometheus", enabled: (*Stack).prometheusWanted, start: (*Stack).startPrometheus,
			job: "prometheus", metrics: func(s *Stack) string { return s.prometheusAddr }},
		{name: "gateway", start: (*Stack).startGateway,
			job: "openfaas-gateway", metrics: func(s *Stack) string { return s.gatewayMetricsHostPort() }},
		{name: "runtimes", start: (*Stack).deployRuntimes},
		{name: "migrate", enabled: func(s *Stack) bool { return !s.opts.SkipAPI }, start: func(s *Stack, ctx context.Context) error {
			return s.runOnce(ctx, "migrate", command{path: s.binLambda, args: []string{"migrate"}, env: s.PlatformEnv()})
		}},
		{name: "api", enabled: func(s *Stack) bool { return !s.opts.SkipAPI }, start: (*Stack).startAPIs,
			job: "lambda-api", metrics: func(s *Stack) string { return s.apiAddr }},
		{name: "worker", enabled: func(s *Stack) bool { return s.worker }, start: (*Stack).startWorkers,
			job: "lambda-worker", metrics: func(s *Stack) string { return s.workerMetrics }},
	}
}

// process is a component that runs one long-lived child and waits for ready.
func process(name string, enabled func(*Stack) bool, cmd func(*Stack) (command, error),
	ready func(*Stack) func(context.Context) error, job string, metrics func(*Stack) string) component {
	return component{
		name:    name,
		enabled: enabled,
		job:     job,
		metrics: metrics,
		start: func(s *Stack, ctx context.Context) error {
			c, err := cmd(s)
			if err != nil {
				return err
			}
			return s.startProcess(ctx, name, c, ready(s))
		},
	}
}

// startProcess spawns a long-lived child and waits until ready answers; the child
// remembers both, so that Restart can start it again the same way.
func (s *Stack) startProcess(ctx context.Context, name string, c command, ready func(context.Context) error) error {
	p, err := s.spawn(name, c)
	if err != nil {
		return err
	}
	p.ready = ready
	return s.waitUntil(ctx, p, s.opts.StartTimeout, "ready", ready)
}

// numbered names the i-th of several processes of one kind: api, api-2, api-3, ...
func numbered(name string, i int) string {
	if i == 0 {
		return name
	}
	return fmt.Sprintf("%s-%d", name, i+1)
}

// startAPIs starts Options.APIs api processes, each on its own address.
func (s *Stack) startAPIs(ctx context.Context) error {
	for i, addr := range s.apiAddrs {
		c := command{path: s.binLambda, args: []string{"api"}, env: s.platformEnv(map[string]string{"LAMBDA_HTTP_ADDR": addr})}
		if err := s.startProcess(ctx, numbered("api", i), c, httpOK("http://"+addr+"/readyz")); err != nil {
			return err
		}
	}
	return nil
}

// startWorkers starts Options.Workers workers polling the same task queues, each with its
// own metrics address. The worker's /readyz answers 200 once it polls its task queue and
// PostgreSQL and Temporal answer (its /metrics listens earlier, before it has connected).
func (s *Stack) startWorkers(ctx context.Context) error {
	for i, addr := range s.workerAddrs {
		c := command{path: s.binLambda, args: []string{"worker"}, env: s.platformEnv(map[string]string{"LAMBDA_METRICS_ADDR": addr})}
		if err := s.startProcess(ctx, numbered("worker", i), c, httpOK("http://"+addr+"/readyz")); err != nil {
			return err
		}
	}
	return nil
}

// SearchAttributes are registered on the Temporal dev server (all Keyword) at its start,
// all four the workflows use (workflows.SearchAttributeNames): a start that would
// register one later waits for the server's namespace cache to see it.
var SearchAttributes = []string{"LambdaFunction", "LambdaLanguage", "LambdaStatus", "LambdaPipeline"}

func temporalCommand(s *Stack) (command, error) {
	host, port, err := net.SplitHostPort(s.TemporalAddr)
	if err != nil {
		return command{}, fmt.Errorf("temporal address %q: %w", s.TemporalAddr, err)
	}
	args := []string{"server", "start-dev", "--ip", host, "--port", port,
		"--metrics-port", portOf(s.temporalMetrics), "--log-level", "warn",
		// The default (20) adds ~40 ms per queued step: notes/measured-floors.md.
		"--dynamic-config-value", "history.transferProcessorMaxPollRPS=10000"}
	if s.opts.TemporalHeadless {
		args = append(args, "--headless")
	} else {
		args = append(args, "--ui-port", strconv.Itoa(s.temporalUIPort))
	}
	if !s.opts.TemporalInMemory {
		// WAL with synchronous=normal: one fsync per checkpoint instead of several per
		// transaction; survives a crash of the server (not of the OS). The dev server on
		// this file DB sustained 19 workflows/s before, 31 after (BENCHMARKS.md, run 7).
		args = append(args, "--db-filename", filepath.Join(s.DataDir, "temporal.db"),
			"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal")
	}
	for _, a := range SearchAttributes {
		args = append(args, "--search-attribute", a+"=Keyword")
	}
	// GOGC=400: the dev server spent ~10 % of its CPU in the garbage collector at
	// 100 workflows/s; with a heap allowed to grow 5× it sustained 120/s where it had
	// stalled (BENCHMARKS.md, run 11). Memory is cheap here, a core is not.
	//
	// GOMAXPROCS: half the machine's cores (at least one) unless the environment sets it.
	// The server's persistence goes through one SQLite connection; with every core its
	// goroutines hand work across threads that spin and park. On 2 cores, one cut its
	// CPU per 3-step durable run 15-20 % (BENCHMARKS.md, run 27).
	extra := map[string]string{"GOGC": "400"}
	if s.opts.Environ["GOMAXPROCS"] == "" {
		extra["GOMAXPROCS"] = strconv.Itoa(temporalProcs(runtime.NumCPU()))
	}
	env := s.plainEnv(extra)
	return command{path: s.opts.TemporalBin, args: args, env: env, dir: s.DataDir}, nil
}

// temporalProcs is the dev server's GOMAXPROCS on a machine of cpus cores.
func temporalProcs(cpus int) int { return max(1, cpus/2) }

// temporalReady asks the frontend for its health with the CLI itself (no SDK needed here).
func temporalReady(s *Stack) func(context.Context) error {
	return func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, s.opts.TemporalBin, "operator", "cluster", "health",
			"--address", s.TemporalAddr).CombinedOutput()
		if err != nil {
			return fmt.Errorf("temporal operator cluster health: %v: %s", err, strings.TrimSpace(string(out)))
		}
		if !strings.Contains(string(out), "SERVING") {
			return fmt.Errorf("temporal operator cluster health: %s", strings.TrimSpace(string(out)))
		}
		return nil
	}
}

func providerCommand(s *Stack) (command, error) {
	env := s.plainEnv(map[string]string{
		"LAMBDA_PROVIDER_ADDR": s.providerAddr,
		"LAMBDA_RUNTIME_BIN":   s.binRuntime,
		"LAMBDA_RUNTIMES_FILE": s.opts.RuntimesFile,
		"LAMBDA_LOG_LEVEL":     s.opts.Log.Level,
		"LAMBDA_LOG_FORMAT":    s.opts.Log.Format,
		// Every replica gets the invoke secret's file from the provider.
		"LAMBDA_RUNTIME_SECRET_FILE": s.RuntimeSecretFile,
		// Above the gateway's upstream timeout (the user's own value, below, wins).
		"LAMBDA_PROVIDER_PROXY_TIMEOUT": (s.upstreamTimeout() + 5*time.Second).String(),
	})
	// The user's LAMBDA_PROVIDER_* tuning, the dependency settings (cache, limits, package
	// sources) and the replicas' sandbox and tenant settings (LAMBDA_SANDBOX*,
	// LAMBDA_RUNTIME_TENANT*) reach the provider, which hands the latter ones to every replica.
	for k, v := range s.opts.Environ {
		if strings.HasPrefix(k, "LAMBDA_PROVIDER_") && k != "LAMBDA_PROVIDER_ADDR" || isDepsVar(k) ||
			strings.HasPrefix(k, "LAMBDA_SANDBOX") || strings.HasPrefix(k, "LAMBDA_RUNTIME_TENANT") {
			env = append(env, k+"="+v)
		}
	}
	return command{path: s.binLambda, args: []string{"provider"}, env: env, dir: s.DataDir}, nil
}

// gatewayMetricsHostPort is where the gateway's metrics are scraped.
func (s *Stack) gatewayMetricsHostPort() string {
	if s.gatewayMetricsAddr != "" {
		return s.gatewayMetricsAddr
	}
	return fmt.Sprintf("127.0.0.1:%d", GatewayMetricsPort)
}

// startGateway runs the real OpenFaaS gateway in front of the provider: in a network
// namespace of its own where one can be made (reachable on 127.0.0.1 only), else on its
// fixed ports.
func (s *Stack) startGateway(ctx context.Context) error {
	if s.gatewayAddr == "" {
		if err := s.lockGatewayPorts(); err != nil {
			return err
		}
	}
	promAddr := s.prometheusAddr
	if promAddr == "" {
		// GET /system/functions through the gateway queries Prometheus and fails without one.
		addr, err := s.startPrometheusStub()
		if err != nil {
			return err
		}
		promAddr = addr
	}
	promHost, promPort, _ := net.SplitHostPort(promAddr)
	dir := filepath.Dir(s.opts.GatewayBin)
	if st, err := os.Stat(filepath.Join(dir, "gateway-ui", "assets")); err == nil && st.IsDir() {
		dir = filepath.Join(dir, "gateway-ui") // the gateway serves its UI from ./assets
	}
	env := s.plainEnv(map[string]string{
		"functions_provider_url":  s.ProviderURL + "/",
		"read_timeout":            (s.upstreamTimeout() + 10*time.Second).String(),
		"write_timeout":           (s.upstreamTimeout() + 10*time.Second).String(),
		"upstream_timeout":        s.upstreamTimeout().String(),
		"faas_prometheus_host":    promHost,
		"faas_prometheus_port":    promPort,
		"max_idle_conns":          "1024",
		"max_idle_conns_per_host": "1024",
		// The management API (/system/*) and the UI need the credentials of
		// DataDir/secrets, as the real gateway's Kubernetes secret provides them.
		"basic_auth":        "true",
		"secret_mount_path": s.SecretsDir,
	})
	gw := command{path: s.opts.GatewayBin, env: env, dir: dir}
	var p *proc
	var err error
	if s.gatewayAddr != "" {
		p, err = s.spawnGatewayInNetns(gw, promAddr)
	} else {
		p, err = s.spawn("gateway", gw)
	}
	if err != nil {
		return err
	}
	if err := s.waitUntil(ctx, p, s.opts.StartTimeout, "ready", httpOK(s.GatewayURL+"/healthz")); err != nil {
		return err
	}
	// A gateway that lost the race for its ports exits at once: make sure ours is the one.
	select {
	case <-p.done:
		return fmt.Errorf("exited right after start (%v); its log: %s%s", exitText(p.err), p.logPath, tailText(p.logPath, 10))
	case <-time.After(150 * time.Millisecond):
	}
	return nil
}

// ensurePackages installs the Debian packages the deployed runtimes declare in the
// registry (Rust's offline crate sources, say) and bubblewrap for the sandbox. A missing
// runtime package fails the start now, with the command to run, rather than as a runtime
// host that never gets ready; without bubblewrap the sandbox runs with fewer layers
// (LAMBDA_SANDBOX=auto reports which), so that one is only a warning.
func (s *Stack) ensurePackages(ctx context.Context) error {
	deployed, err := s.deployed()
	if err != nil {
		return err
	}
	for _, rt := range deployed {
		for _, pkg := range rt.Packages {
			if pkg.Installed() {
				continue
			}
			if err := s.install(ctx, pkg.Name, fmt.Sprintf("the %s runtime needs %s (no %s)", rt.Title, pkg.Name, pkg.Check)); err != nil {
				return err
			}
			if !pkg.Installed() {
				return fmt.Errorf("installed %s but %s is still missing", pkg.Name, pkg.Check)
			}
		}
	}
	if _, err := exec.LookPath("bwrap"); err != nil {
		if err := s.install(ctx, "bubblewrap", "no bubblewrap (bwrap) for the runtime sandbox"); err != nil {
			s.printf("  %-12s warning: %v; language workers run with fewer sandbox layers\n", "", err)
		}
	}
	return nil
}

// deployed lists the runtimes this stack deploys (Options.Runtimes, default all).
func (s *Stack) deployed() ([]runtimes.Runtime, error) {
	want := map[string]bool{}
	for _, t := range s.opts.Runtimes {
		rt, ok := s.registry.Lookup(t)
		if !ok {
			return nil, fmt.Errorf("runtime %q is not in the registry (%v)", t, s.registry.Titles())
		}
		want[rt.Title] = true
	}
	var out []runtimes.Runtime
	for _, rt := range s.registry.All() {
		if len(want) == 0 || want[rt.Title] {
			out = append(out, rt)
		}
	}
	return out, nil
}

// deployRuntimes deploys every runtime of the registry through the gateway's API and
// waits until each has an available replica.
func (s *Stack) deployRuntimes(ctx context.Context) error {
	gw, _ := url.Parse(s.GatewayURL)
	c := sdk.NewClient(gw, s.gatewayAuth(), &http.Client{Timeout: 30 * time.Second})
	deployed, err := s.deployed()
	if err != nil {
		return err
	}
	var selected []string
	for _, rt := range deployed {
		labels := map[string]string{provider.LabelScaleMin: strconv.Itoa(s.opts.RuntimeReplicas)}
		spec := types.FunctionDeployment{
			Service: rt.Function,
			Image:   rt.Image,
			EnvVars: map[string]string{"LAMBDA_RUNTIME": rt.Title},
			Labels:  &labels,
		}
		code, err := c.Deploy(ctx, spec)
		if code == http.StatusConflict {
			_, err = c.Update(ctx, spec)
		}
		if err != nil {
			return fmt.Errorf("deploy %s through the gateway: %w", rt.Function, err)
		}
		selected = append(selected, rt.Function)
	}
	prov := s.procByName("provider")
	for _, name := range selected {
		err := s.waitUntil(ctx, prov, s.opts.RuntimeReadyTimeout, name+" available", func(ctx context.Context) error {
			st, err := c.GetFunction(ctx, name, "")
			if err != nil {
				return err
			}
			if st.AvailableReplicas < 1 {
				return fmt.Errorf("%s: %d of %d replicas available (replica output: %s)", name, st.AvailableReplicas, st.Replicas, filepath.Join(s.LogDir, "provider.log"))
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.printf("  %-12s %s available\n", "", name)
	}
	s.Functions = selected
	return nil
}

// spawnGatewayInNetns starts the gateway in a network namespace of its own: inside, the
// provider's and Prometheus' loopback ports lead out to them; outside, the stack's gateway
// addresses lead in to its 8080 and 8082.
func (s *Stack) spawnGatewayInNetns(gw command, promAddr string) (*proc, error) {
	var out []string // host addresses the gateway reaches, listened on at the same port inside
	for _, a := range []string{s.providerAddr, promAddr} {
		if loopbackPort(a) != "" {
			out = append(out, a)
		}
	}
	var inner []net.Listener
	var p *proc
	ns, err := newNetns(func() error {
		for _, a := range out {
			ln, err := net.Listen("tcp", a)
			if err != nil {
				return fmt.Errorf("gateway namespace: %w", err)
			}
			inner = append(inner, ln)
		}
		var err error
		p, err = s.spawn("gateway", gw) // forked from this thread: the gateway lives in the namespace
		return err
	})
	if err != nil {
		for _, ln := range inner {
			ln.Close()
		}
		return nil, err
	}
	var bridges []*bridge
	for i, a := range out {
		target := a
		bridges = append(bridges, serveBridge(inner[i], func() (net.Conn, error) { return net.Dial("tcp", target) }))
	}
	for host, port := range map[string]int{s.gatewayAddr: GatewayPort, s.gatewayMetricsAddr: GatewayMetricsPort} {
		ln, err := net.Listen("tcp", host)
		if err != nil {
			for _, b := range bridges {
				b.close()
			}
			ns.close()
			return p, fmt.Errorf("gateway address %s: %w", host, err)
		}
		inside := fmt.Sprintf("127.0.0.1:%d", port)
		bridges = append(bridges, serveBridge(ln, func() (net.Conn, error) { return dialIn(ns, inside) }))
	}
	s.addCleanup(func() {
		for _, b := range bridges {
			b.close()
		}
		ns.close()
	})
	return p, nil
}

// gatewayAuth is the gateway's basic-auth credentials from the secret files.
func (s *Stack) gatewayAuth() *sdk.BasicAuth {
	user, _ := os.ReadFile(s.GatewayUserFile)
	pass, _ := os.ReadFile(s.GatewayPassFile)
	return &sdk.BasicAuth{Username: strings.TrimSpace(string(user)), Password: strings.TrimSpace(string(pass))}
}

func (s *Stack) procByName(name string) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}

var workerCmdRE = regexp.MustCompile(`(?m)^\s+worker\s`)

// wantWorker decides whether `lambda worker` runs: on, off, or auto (when the lambda
// binary has the subcommand and Temporal runs).
func (s *Stack) wantWorker(ctx context.Context) (bool, error) {
	switch s.opts.Worker {
	case "off":
		return false, nil
	case "on":
		if s.opts.SkipTemporal {
			return false, fmt.Errorf("devstack: the worker needs Temporal (LAMBDA_DEV_SKIP_TEMPORAL is set)")
		}
		return true, nil
	case "auto":
		if s.opts.SkipTemporal || s.opts.SkipAPI {
			return false, nil
		}
		out, err := exec.CommandContext(ctx, s.binLambda, "help").Output()
		if err != nil {
			return false, fmt.Errorf("devstack: %s help: %w", s.binLambda, err)
		}
		return workerCmdRE.Match(out), nil
	default:
		return false, fmt.Errorf("devstack: LAMBDA_DEV_WORKER=%q: want auto, on or off", s.opts.Worker)
	}
}

// isDepsVar reports a variable of function dependencies (internal/deps, the registry
// entries' package sources): the runtime hosts resolve and install with them (the api
// validates them at start).
// upstreamTimeout is how long one call may take through the gateway to a runtime replica:
// the longest sync call (60 s) or a dependency resolve on the replica
// (LAMBDA_DEPS_RESOLVE_TIMEOUT, 2 min), whichever is longer, plus a margin, so that no hop
// cuts a resolve off before its own limit answers.
func (s *Stack) upstreamTimeout() time.Duration {
	d := 60 * time.Second
	if cfg, err := deps.ConfigFrom(func(k string) string { return s.opts.Environ[k] }); err == nil {
		d = max(d, cfg.ResolveTimeout)
	}
	return d + 5*time.Second
}

func isDepsVar(k string) bool {
	for _, p := range []string{"LAMBDA_DEPS_", "LAMBDA_MAX_DEP", "LAMBDA_NPM_", "LAMBDA_PIP_", "LAMBDA_CARGO_"} {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}
