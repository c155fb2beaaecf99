package runtimehost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/frame"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/runtimehost/sandbox"
	"github.com/lambda-microservice/lambda/runtimes"
)

// Execution statuses reported to the caller.
const (
	statusSucceeded = "succeeded"
	statusFailed    = "failed"
	statusTimeout   = "timeout"
)

// collectGrace bounds the wait for an execution's output after its reply (or death).
const collectGrace = 2 * time.Second

// Request is an invoke request (POST /).
type Request struct {
	ExecutionID string  `json:"execution_id"`
	Function    string  `json:"function"`
	Version     int64   `json:"version"`
	SHA256      string  `json:"sha256"`
	Source      *string `json:"source"`
	// Lock is the version's dependency lock, sent with the source; SHA256 then covers both
	// (deps.BuildHash).
	Lock      *deps.Lock        `json:"lock"`
	Event     json.RawMessage   `json:"event"`
	TimeoutMS int64             `json:"timeout_ms"`
	MemoryMB  int               `json:"memory_mb"`
	Env       map[string]string `json:"env"`
	BuildOnly bool              `json:"build_only"`
	// Tenant is optional; when sent it is part of the worker key, so two tenants'
	// identical functions never share a worker.
	Tenant string `json:"tenant"`
	// Resolve, when set, makes the request a resolve instead of an invoke: the host
	// resolves these requested dependencies into a lock with its own toolchain and
	// answers {"lock": ...}; nothing is built or run (the api registers functions this way).
	Resolve map[string]string `json:"resolve"`
}

func (r *Request) reset() {
	ev := r.Event[:0]
	env := r.Env
	clear(env)
	*r = Request{Event: ev, Env: env}
}

// Outcome is the result of one execution. The caller must call Host.Done once it has
// encoded the outcome: Result and the output alias the worker's buffers until then.
type Outcome struct {
	Status   string
	Result   []byte // raw JSON, nil for null
	Error    []byte // raw JSON object {type, message, stack}, nil for null
	Stdout   segment
	Stderr   segment
	Duration time.Duration
	Cold     bool

	w       *worker
	healthy bool
	timer   *time.Timer
	timeout time.Duration
}

// Options are a Host's dependencies.
type Options struct {
	Config  Config
	Runtime *runtimes.Runtime
	// BuildEnv is the environment of build and prepare commands (see BuildEnviron).
	BuildEnv []string
	// Deps installs functions' locked dependencies; nil means an engine configured from
	// the environment (LAMBDA_DEPS_*) when the runtime's entry declares dependencies.
	Deps *deps.Engine
	// Spawner starts workers and builds; nil means the sandbox Config.Sandbox asks for
	// (sandbox.Plain when off).
	Spawner sandbox.Spawner
	Metrics *metrics.Runtime
	HTTP    *metrics.HTTP
	Logger  *zap.Logger
}

// Host runs the scripts of one runtime.
type Host struct {
	cfg      Config
	rt       *runtimes.Runtime
	cacheDir string
	tmpBase  string
	spawner  sandbox.Spawner
	builds   *builds
	pool     *pool
	sess     sessions
	// advertise is this replica's base URL for the api's session calls ("" : the api's own).
	advertise string
	m         *hostMetrics
	log       *zap.Logger

	direct     bool   // workers are kept apart by uids alone: each gets a private copy of its script
	pinWhy     string // why workers cannot be isolated here: the host then serves one tenant only
	pinned     atomic.Pointer[string]
	sandboxDoc []byte // the "sandbox" member of /_/ready
	prepared   atomic.Bool
	spareUp    atomic.Bool
	prepareErr atomic.Pointer[string]
	stop       chan struct{}
}

// BuildEnviron returns the environment of build and prepare commands: the worker allowlist
// plus the host variables the runtime's build_env names.
func BuildEnviron(rt *runtimes.Runtime, getenv func(string) string) []string {
	env := []string{"PATH=" + sandbox.WorkerPath, "LANG=C.UTF-8"}
	for _, name := range rt.BuildEnv {
		if v := getenv(name); v != "" {
			env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
			env = append(env, name+"="+v)
		}
	}
	return env
}

// New returns a host for o.Runtime; Start brings it up.
func New(o Options) (*Host, error) {
	if o.Runtime == nil || o.Metrics == nil || o.Logger == nil {
		return nil, errors.New("runtimehost: Runtime, Metrics and Logger are required")
	}
	cacheDir, err := o.Config.cacheDir(o.Runtime.Title)
	if err != nil {
		return nil, fmt.Errorf("runtimehost: cache dir: %w", err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("runtimehost: cache dir: %w", err)
	}
	sp := o.Spawner
	mode := o.Config.Sandbox
	if sp == nil {
		if mode == "" {
			mode = sandbox.Auto
		}
		if mode == sandbox.Off {
			sp = sandbox.Plain{}
		} else {
			sb, err := sandbox.New(o.Config.sandboxConfig())
			if err != nil {
				return nil, fmt.Errorf("runtimehost: %w", err)
			}
			sp = sb
			if o.Config.SecretFile != "" {
				if can, why := sb.WorkersCanRead(o.Config.SecretFile); can {
					sb.Close()
					return nil, fmt.Errorf("runtimehost: LAMBDA_SANDBOX=%s refuses to serve: workers could read the invoke secret's file %s (%s), "+
						"and whoever holds it can call any replica as any tenant; mount it readable by the host only (mode 0400/0440 for the "+
						"host's uid or group, or in a folder the workers cannot enter: the runtime images keep /var/openfaas 0710 root:10001), "+
						"or, where workers share the host's uid, give it inline in LAMBDA_RUNTIME_SECRET (the host's environment is unreadable to them); "+
						"LAMBDA_SANDBOX=off serves anyway, for one trusted user's machine only",
						mode, o.Config.SecretFile, why)
				}
			}
			if sb.Direct() {
				// No mount namespace: each sha's folder is the host's alone (builds get
				// theirs for their time, workers a copy of their script); the cache itself
				// can be passed through (to the prepared dependencies), not listed.
				if err := os.Chmod(cacheDir, 0o711); err != nil {
					return nil, fmt.Errorf("runtimehost: cache dir: %w", err)
				}
			} else if sb.PrivateMounts() {
				// Spares see the whole cache: workers may open a script they know the sha256
				// of, never list the others.
				if err := os.Chmod(cacheDir, 0o711); err != nil {
					return nil, fmt.Errorf("runtimehost: cache dir: %w", err)
				}
			}
		}
	}
	tmpBase, err := os.MkdirTemp("", "lambda-workers-"+o.Runtime.Title+"-")
	if err != nil {
		return nil, fmt.Errorf("runtimehost: temp dir: %w", err)
	}
	direct := false
	if sb, ok := sp.(interface{ Direct() bool }); ok && sb.Direct() {
		direct = true
		// Workers (other uids) pass through to their own 0700 folders, list nothing.
		if err := os.Chmod(tmpBase, 0o711); err != nil {
			return nil, fmt.Errorf("runtimehost: temp dir: %w", err)
		}
	}
	h := &Host{
		cfg: o.Config, rt: o.Runtime, cacheDir: cacheDir, tmpBase: tmpBase, spawner: sp, direct: direct,
		m:    newHostMetrics(o.Runtime.Title, o.Metrics, o.HTTP),
		log:  o.Logger.With(zap.String(logging.FieldRuntime, o.Runtime.Title)),
		stop: make(chan struct{}),
	}
	h.sess.m = map[string]*session{}
	h.advertise = advertiseURL(o.Config)
	if h.cfg.MaxSessions <= 0 {
		h.cfg.MaxSessions = 32
	}
	if h.cfg.SessionIdle <= 0 {
		h.cfg.SessionIdle = 30 * time.Minute
	}
	h.builds = &builds{
		rt: o.Runtime, dir: cacheDir, env: o.BuildEnv, timeout: o.Config.BuildTimeout,
		spawner: sp, metrics: h.m, log: h.log, known: map[string]*script{},
	}
	if h.builds.env == nil {
		h.builds.env = BuildEnviron(o.Runtime, func(string) string { return "" })
	}
	h.builds.private = direct
	if n := o.Config.Builds; n > 0 {
		h.builds.slots = make(chan struct{}, n)
	} else {
		h.builds.slots = make(chan struct{}, max(2, runtime.NumCPU()))
	}
	h.builds.readOnly = buildReadOnly(o.Runtime, cacheDir, h.builds.env)
	if h.builds.deps = o.Deps; h.builds.deps == nil && o.Runtime.Deps != nil {
		cfg, err := deps.ConfigFromEnv()
		if err != nil {
			return nil, fmt.Errorf("runtimehost: %w", err)
		}
		if h.builds.deps, err = deps.New(cfg); err != nil {
			return nil, fmt.Errorf("runtimehost: %w", err)
		}
	}
	if h.builds.deps != nil {
		if err := h.builds.deps.Check(o.Runtime.Deps); err != nil {
			h.log.Warn("dependency installers missing: versions with dependencies will not build", logging.Err(err))
		}
		// Installers run in the build sandbox, like the builds (deps_exec.go). Spares see
		// every install, like every script: opened by a lock hash, never listed (the
		// engine keeps installs/ 0711).
		h.builds.deps.SetExecutor(depsExecutor{b: h.builds})
	}
	h.pool = newPool(o.Config.Workers, o.Config.QueueLength, o.Config.QueueWait, o.Config.StartTimeout, o.Runtime.Prestartable(), h.startWorker, h.m, h.log)
	h.pool.onSpare = func() { h.spareUp.Store(true) }
	h.pool.share = o.Config.tenantShare()
	if mode == sandbox.Off && o.Config.SecretFile != "" {
		h.log.Warn("LAMBDA_SANDBOX=off: workers run as the host's uid and can read the invoke secret's file", zap.String("file.path", o.Config.SecretFile))
	}
	tenants := "isolated"
	if sb, ok := sp.(*sandbox.Sandbox); ok && !sb.Isolated() {
		// auto without distinct worker uids: never several tenants on shared ground.
		tenants = "pinned"
		h.pinWhy = "workers cannot run as distinct uids here (" + sb.Missing()["uid"] + "): this replica serves the first tenant it is called for, and refuses others"
		h.m.pinned.Set(1)
	} else if mode == sandbox.Off {
		tenants = "shared" // LAMBDA_SANDBOX=off, explicitly
	}
	if lr, ok := sp.(sandbox.LayerReporter); ok {
		layers := lr.Layers()
		for layer, on := range layers {
			h.m.sandbox.WithLabelValues(layer).Set(b2f(on))
		}
		var missing map[string]string
		if sb, ok := sp.(*sandbox.Sandbox); ok {
			missing = sb.Missing()
		}
		h.sandboxDoc = sandboxJSON(mode, layers, missing, tenants, h.pinWhy)
		h.log.Info("sandbox", zap.String("mode", mode), zap.Any("layers", layers), zap.Any("missing", missing))
	}
	return h, nil
}

// buildReadOnly expands the registry's build_readonly for this host: the runtime's own
// folder first, then each path.
func buildReadOnly(rt *runtimes.Runtime, cacheDir string, env []string) []string {
	vars := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	out := []string{rt.Dir}
	for _, p := range rt.ExpandVars(rt.BuildReadOnly, runtimes.Vars{CacheDir: cacheDir}) {
		missing := false
		p = os.Expand(p, func(k string) string {
			v := vars[k]
			missing = missing || v == ""
			return v
		})
		if !missing && filepath.IsAbs(p) && !slices.Contains(out, p) {
			out = append(out, p) // one that does not exist when a build starts is skipped then
		}
	}
	return out
}

// sandboxJSON is the "sandbox" member of /_/ready: the mode, each layer's state and why
// the inactive ones are missing.
func sandboxJSON(mode string, layers map[string]bool, missing map[string]string, tenants, why string) []byte {
	names := make([]string, 0, len(layers))
	for l := range layers {
		names = append(names, l)
	}
	slices.Sort(names)
	b := append([]byte(`{"mode":`), appendString(nil, mode)...)
	b = append(append(b, `,"tenants":`...), appendString(nil, tenants)...)
	if why != "" {
		b = append(append(b, `,"tenants_why":`...), appendString(nil, why)...)
	}
	b = append(b, `,"layers":{`...)
	for i, l := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, l), ':')
		b = appendBool(b, layers[l])
	}
	b = append(b, `},"missing":{`...)
	first := true
	for _, l := range names {
		if why, ok := missing[l]; ok && !layers[l] {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(appendString(b, l), ':')
			b = appendString(b, why)
		}
	}
	return append(b, "}}"...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Start runs the runtime's prepare command and starts the spare worker in the background;
// Ready reports when both are done.
func (h *Host) Start() {
	if !h.rt.Prestartable() {
		h.spareUp.Store(true)
	}
	go func() {
		if err := h.builds.prepare(); err != nil {
			h.log.Error("runtime prepare failed", logging.Err(err))
			msg := err.Error()
			h.prepareErr.Store(&msg)
			return
		}
		h.prepared.Store(true)
		h.pool.mu.Lock()
		h.pool.refillLocked(false)
		h.pool.mu.Unlock()
	}()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				h.reapSessions(now)
			case <-h.stop:
				return
			}
		}
	}()
	if h.cfg.IdleTimeout > 0 {
		go func() {
			t := time.NewTicker(min(h.cfg.IdleTimeout/2, 30*time.Second))
			defer t.Stop()
			for {
				select {
				case <-t.C:
					h.pool.reap(h.cfg.IdleTimeout)
				case <-h.stop:
					return
				}
			}
		}()
	}
}

// Ready reports whether the toolchain works: prepare succeeded and, for runtimes that
// keep a spare, a spare worker said hello.
func (h *Host) Ready() bool { return h.prepared.Load() && h.spareUp.Load() }

// Problem explains why a host will not become ready (its prepare step failed), or "".
func (h *Host) Problem() string {
	if p := h.prepareErr.Load(); p != nil {
		return *p
	}
	return ""
}

// Direct reports whether the host's workers are kept apart by distinct uids alone (no
// mount namespace): they share /tmp, so the binary sets a private umask.
func (h *Host) Direct() bool { return h.direct }

// Runtime is the registry entry this host serves.
func (h *Host) Runtime() *runtimes.Runtime { return h.rt }

// Close stops every worker.
func (h *Host) Close() {
	select {
	case <-h.stop:
		return
	default:
		close(h.stop)
	}
	h.pool.close()
	h.closeSessions()
	// The workers were killed: their private temp dirs go now, and once more after
	// stragglers (a busy worker released late) are gone.
	if c, ok := h.spawner.(interface{ Close() }); ok {
		c.Close() // waits (briefly) for the killed workers: their cgroups go with them
	}
	os.RemoveAll(h.tmpBase)
	time.AfterFunc(3*time.Second, func() { os.RemoveAll(h.tmpBase) })
}

// startWorker starts a worker process: an unassigned spare when s is nil.
func (h *Host) startWorker(s *script) (*worker, error) {
	vars := runtimes.Vars{CacheDir: h.cacheDir}
	memory := 0
	readOnly := []string{h.cacheDir} // a spare: any script of the cache may come
	tmp, task := "", ""
	if s != nil {
		vars.Workdir = s.dir
		readOnly = []string{s.dir}
	}
	if h.direct {
		readOnly = nil
		var err error
		if tmp, err = os.MkdirTemp(h.tmpBase, "worker-"); err != nil {
			return nil, fmt.Errorf("start worker: temp dir: %w", err)
		}
		if s != nil {
			task = filepath.Join(tmp, "task")
			if err := copyScript(s.dir, task); err != nil {
				os.RemoveAll(tmp)
				return nil, fmt.Errorf("start worker: %w", err)
			}
			vars.Workdir = task
		}
	}
	readOnly = append(readOnly, h.depsReadOnly(s)...)
	w, err := startWorker(&startSpec{
		tmp:         tmp,
		task:        task,
		argv:        h.rt.ExpandVars(h.rt.Command, vars),
		tmpBase:     h.tmpBase,
		outputLimit: h.cfg.OutputLimit,
		limits:      sandbox.Limits{FileSize: h.cfg.FileSizeLimit, OpenFiles: 1024, Processes: 4096},
		memory:      memory,
		readOnly:    readOnly,
		timeout:     h.cfg.StartTimeout,
		spawner:     h.spawner,
		onExit:      h.pool.exited,
	})
	return w, err
}

// validate checks a request and fills defaults; it returns the execution timeout.
func (h *Host) validate(req *Request) (time.Duration, error) {
	if len(req.SHA256) != 64 || !isLowerHex(req.SHA256) {
		return 0, fault.New(fault.Invalid, "sha256 must be 64 lower-case hex digits")
	}
	if req.Function == "" {
		return 0, fault.New(fault.Invalid, "function is required")
	}
	if req.MemoryMB < 0 || req.Version < 0 {
		return 0, fault.New(fault.Invalid, "memory_mb and version must not be negative")
	}
	// Compared in milliseconds: converting a huge timeout_ms to a Duration first overflows.
	var timeout time.Duration
	switch {
	case req.TimeoutMS < 0:
		return 0, fault.New(fault.Invalid, "timeout_ms must not be negative")
	case req.TimeoutMS == 0:
		timeout = h.cfg.DefaultTimeout
	case req.TimeoutMS > h.cfg.MaxTimeout.Milliseconds():
		return 0, fault.New(fault.Invalid, "timeout_ms exceeds the maximum of %d", h.cfg.MaxTimeout.Milliseconds())
	default:
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	for k, v := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return 0, fault.New(fault.Invalid, "env: invalid variable %q", k)
		}
	}
	if err := h.checkLock(req.Lock); err != nil {
		return 0, err
	}
	if req.Source != nil {
		if deps.BuildHash(*req.Source, req.Lock) != req.SHA256 {
			if req.Lock != nil {
				return 0, fault.New(fault.Invalid, "sha256 does not match the source and lock")
			}
			return 0, fault.New(fault.Invalid, "sha256 does not match the source")
		}
	}
	return timeout, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func envHash(env map[string]string) uint64 {
	if len(env) == 0 {
		return 0
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	h := fnv.New64a()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(env[k]))
		h.Write([]byte{0})
	}
	return h.Sum64() | 1
}

// compileError is a CompileError with the build's diagnostics.
func compileError(diag string) error { return fault.New(fault.Unprocessable, "%s", diag) }

// Invoke runs req and fills out; an error means no execution happened (bad request,
// source required, compile error, overload). On success the caller must call Done(out).
func (h *Host) Invoke(req *Request, out *Outcome) error {
	return h.InvokeContext(context.Background(), req, out)
}

// InvokeContext is Invoke for a caller that may go away: when ctx ends while the handler
// runs (the api abandoned the call: a cancelled execution, a client gone), the worker is
// killed there and then, not left to run to its timeout.
func (h *Host) InvokeContext(ctx context.Context, req *Request, out *Outcome) error {
	start := time.Now()
	timeout, err := h.validate(req)
	if err != nil {
		return err
	}
	if h.pinWhy != "" {
		if err := h.pin(req.Tenant); err != nil {
			return err
		}
	}
	out.timeout = timeout
	s, err := h.builds.get(req.SHA256, req.Source, req.Lock)
	if err != nil {
		return err
	}
	// A build (a compile, the dependencies' install) is bounded by its own timeout, and a
	// wait for a worker by the queue wait: the execution's timeout starts once it has its
	// worker (as a function's timeout bounds its run, not its wait for concurrency), so a
	// call that queued behind its tenant's share still gets its whole timeout.
	if s.failed {
		return compileError(s.diag)
	}
	key := poolKey{sha: req.SHA256, function: req.Function, tenant: req.Tenant, version: req.Version,
		memory: req.MemoryMB, env: envHash(req.Env)}
	// The version's installed dependencies stay for the call (a worker it starts reads
	// them) and then for as long as a warm worker of the version lives, no longer.
	release, err := h.builds.hold(s)
	if err != nil {
		return err
	}
	defer release()
	for attempt := 0; ; attempt++ {
		w, fresh, err := h.pool.acquire(key, s)
		if err != nil {
			return err
		}
		deadline := time.Now().Add(timeout)
		if !fresh && w.burnedWhileIdle() && attempt < 3 {
			// A thread its last call left behind kept it busy: it goes, the call takes another.
			h.log.Info("recycling a worker that used CPU while idle", zap.String(logging.FieldFunction, req.Function))
			h.pool.release(w, false)
			continue
		}
		out.w, out.Cold = w, fresh
		if fresh {
			if s.lock != nil {
				if wr, err := h.builds.hold(s); err == nil { // the call holds it: a reference more
					w.holdDeps(wr)
				}
			}
			done, err := h.initWorker(w, key, req, s, deadline, out)
			if errors.Is(err, errWorkerGone) && attempt == 0 {
				h.pool.release(w, false) // a spare that died while waiting: take another
				continue
			}
			if err != nil {
				h.pool.release(w, false)
				out.w = nil
				return err
			}
			if done {
				out.Duration = time.Since(start)
				h.m.execution(out.Status, out.Duration.Seconds())
				return nil
			}
		}
		if req.BuildOnly {
			out.Status, out.healthy = statusSucceeded, true
			out.Duration = time.Since(start)
			return nil
		}
		h.exec(ctx, w, req, deadline, out)
		out.Duration = time.Since(start)
		h.m.execution(out.Status, out.Duration.Seconds())
		return nil
	}
}

// pin keeps a host whose workers cannot be isolated to one tenant: the first one it is
// called for.
func (h *Host) pin(tenant string) error {
	p := h.pinned.Load()
	if p == nil {
		if h.pinned.CompareAndSwap(nil, &tenant) {
			h.log.Warn("replica pinned to one tenant", zap.String("reason", h.pinWhy))
		}
		p = h.pinned.Load()
	}
	if *p != tenant {
		return fault.New(fault.Unavailable, "this replica serves another tenant only: %s", h.pinWhy)
	}
	return nil
}

// Done releases what out holds: the worker goes back to the pool.
func (h *Host) Done(out *Outcome) {
	if out.w == nil {
		return
	}
	if out.healthy {
		out.w.markIdle()
	}
	out.w.release(out.Stdout, out.Stderr)
	h.pool.release(out.w, out.healthy)
	out.w = nil
}

// initWorker binds a fresh worker to the script. done reports an execution that ended in
// init (an error in the script's top level, a timeout); err a compile error or a worker
// that died before answering (errWorkerGone).
func (h *Host) initWorker(w *worker, key poolKey, req *Request, s *script, deadline time.Time, out *Outcome) (done bool, err error) {
	source, workdir := s.source, s.dir
	if h.direct {
		if w.task == "" { // a spare: the script comes now, as the worker's own copy
			w.task = filepath.Join(w.dir, "task")
			err := copyScript(s.dir, w.task)
			if o, ok := w.proc.(interface{ Own(string) error }); ok && err == nil {
				err = o.Own(w.task)
			}
			if err != nil {
				w.kill()
				return false, fault.New(fault.Unavailable, "cannot hand the worker its script: %v", err)
			}
		}
		source, workdir = filepath.Join(w.task, filepath.Base(s.source)), w.task
	}
	b, start := frame.Begin(w.wbuf[:0])
	b = append(b, `{"type":"init","source":`...)
	b = appendString(b, source)
	b = append(b, `,"workdir":`...)
	b = appendString(b, workdir)
	b = append(b, `,"sha256":`...)
	b = appendString(b, req.SHA256)
	b = append(b, `,"function":`...)
	b = appendString(b, req.Function)
	b = append(b, `,"version":`...)
	b = appendInt(b, req.Version)
	b = append(b, `,"memory_mb":`...)
	b = appendInt(b, int64(req.MemoryMB))
	b = append(b, `,"sentinel":`...)
	b = appendString(b, w.sentinel)
	b = append(b, `,"env":{`...)
	first := true
	for k, v := range req.Env {
		if _, ours := depsEnv(s)[k]; ours {
			continue // the installed packages' variables win
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, v)
	}
	for k, v := range depsEnv(s) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, v)
	}
	b = append(b, "}}"...)
	frame.End(b, start)
	w.wbuf = b
	if c, ok := w.proc.(sandbox.Confiner); ok {
		if err := c.Confine(req.MemoryMB); err != nil {
			w.kill()
			return false, fault.New(fault.Unavailable, "cannot confine the worker: %v", err)
		}
	}
	if err := w.write(deadline); err != nil {
		return h.broken(w, err, out)
	}
	reply, err := w.read(deadline)
	if err != nil {
		return h.broken(w, err, out)
	}
	switch reply.Type {
	case "ready":
		w.key, w.assigned = key, true
		return false, nil
	case "init_error":
		var doc struct{ Message string }
		_ = json.Unmarshal(reply.Error, &doc)
		if reply.Compile {
			w.kill()
			h.m.buildsFailed.Inc()
			return false, compileError(h.builds.fail(s, doc.Message).diag)
		}
		w.kill()
		out.Stdout, out.Stderr, _ = w.collect(h.expiry(out, collectGrace))
		out.Status, out.Error, out.healthy = statusFailed, h.relativePaths(w, req.SHA256, reply.Error), false
		return true, nil
	}
	w.kill()
	return false, fmt.Errorf("worker init: unexpected %q frame", reply.Type)
}

// relativePaths makes the paths of a script's files in an error document (a traceback's
// frames, a message) relative to the script's folder: a caller sees handler.py, not where
// the host keeps it.
func (h *Host) relativePaths(w *worker, sha string, doc []byte) []byte {
	if len(doc) == 0 {
		return doc
	}
	for _, dir := range []string{filepath.Join(h.cacheDir, sha), w.task} {
		if dir != "" && bytes.Contains(doc, []byte(dir+"/")) {
			doc = bytes.ReplaceAll(doc, []byte(dir+"/"), nil)
		}
	}
	return doc
}

// expiry arms out's timer for d and returns its channel.
func (h *Host) expiry(out *Outcome, d time.Duration) <-chan time.Time {
	if out.timer == nil {
		out.timer = time.NewTimer(d)
	} else {
		out.timer.Reset(d)
	}
	return out.timer.C
}

var succeededPrefix = []byte(`{"type":"result","status":"succeeded","result":`)

// exec runs one invocation on an assigned worker.
func (h *Host) exec(ctx context.Context, w *worker, req *Request, deadline time.Time, out *Outcome) {
	b, start := frame.Begin(w.wbuf[:0])
	b = append(b, `{"type":"invoke","execution_id":`...)
	b = appendString(b, req.ExecutionID)
	b = append(b, `,"deadline_ms":`...)
	b = appendInt(b, deadline.UnixMilli())
	b = append(b, `,"event":`...)
	b = appendRawOrNull(b, req.Event)
	b = append(b, '}')
	frame.End(b, start)
	w.wbuf = b
	if err := w.write(deadline); err != nil {
		_, _ = h.broken(w, err, out)
		return
	}
	_ = w.resp.SetReadDeadline(deadline)
	var abandoned atomic.Bool
	stop := context.AfterFunc(ctx, func() {
		abandoned.Store(true)
		w.kill()
	})
	payload, err := w.rd.Next()
	stop()
	if err != nil {
		_, _ = h.broken(w, err, out)
		if abandoned.Load() {
			out.Status = statusFailed
			out.Error = errorDoc("Cancelled", "the caller abandoned the call: the handler was stopped", "")
		}
		return
	}
	out.healthy = true
	if len(payload) > len(succeededPrefix) && payload[len(payload)-1] == '}' && string(payload[:len(succeededPrefix)]) == string(succeededPrefix) &&
		json.Valid(payload[len(succeededPrefix):len(payload)-1]) {
		out.Status, out.Result = statusSucceeded, payload[len(succeededPrefix):len(payload)-1]
	} else {
		var reply workerReply
		switch err := json.Unmarshal(payload, &reply); {
		case err != nil || reply.Type != "result":
			out.Status, out.healthy = statusFailed, false
			out.Error = errorDoc("ProtocolError", "the worker sent a malformed reply", "")
			w.kill()
		case reply.Status == statusSucceeded:
			out.Status, out.Result = statusSucceeded, reply.Result
		default:
			out.Status, out.Error = statusFailed, h.relativePaths(w, w.key.sha, reply.Error)
		}
	}
	var ok bool
	out.Stdout, out.Stderr, ok = w.collect(h.expiry(out, collectGrace))
	out.timer.Stop()
	if ok && out.healthy {
		if c, isCleaner := w.proc.(sandbox.Cleaner); isCleaner && !c.Clean() {
			ok = false // the call left processes behind: they go with the worker
		}
	}
	if !ok {
		out.healthy = false
		w.kill()
	}
	if len(out.Result) == 4 && string(out.Result) == "null" {
		out.Result = nil
	}
}

// broken handles a worker that timed out, died or failed a pipe operation mid-request.
// It reports errWorkerGone when the worker died before a fresh one could be used.
func (h *Host) broken(w *worker, err error, out *Outcome) (done bool, _ error) {
	out.healthy = false
	timedOut := errors.Is(err, os.ErrDeadlineExceeded)
	if !timedOut {
		err = w.describe(err) // waits briefly for the exit status before anything is killed
	}
	w.kill()
	if errors.Is(err, errWorkerGone) && !w.assigned {
		return false, err
	}
	out.Stdout, out.Stderr, _ = w.collect(h.expiry(out, 500*time.Millisecond))
	out.timer.Stop()
	switch {
	case timedOut:
		out.Status = statusTimeout
		out.Error = errorDoc("Timeout", fmt.Sprintf("execution exceeded its timeout of %d ms", out.timeout.Milliseconds()), "")
	case errors.Is(err, errWorkerGone):
		out.Status = statusFailed
		out.Error = errorDoc("RuntimeExit", "the worker process died mid-call: "+w.exitStatus(), "")
		if code := w.exitCode(); code >= 0 {
			out.Error = errorDocExit("the worker process exited mid-call with status "+strconv.Itoa(code), code)
		}
	default:
		out.Status = statusFailed
		out.Error = errorDoc("RuntimeError", err.Error(), "")
	}
	return true, nil
}

func errorDoc(typ, message, stack string) []byte {
	b := append([]byte(`{"type":`), appendString(nil, typ)...)
	b = append(b, `,"message":`...)
	b = appendString(b, message)
	b = append(b, `,"stack":`...)
	b = appendString(b, stack)
	return append(b, '}')
}

func errorDocExit(message string, code int) []byte {
	b := errorDoc("RuntimeExit", message, "")
	b = b[:len(b)-1]
	b = append(b, `,"exit_code":`...)
	b = appendInt(b, int64(code))
	return append(b, '}')
}

func isEPIPE(err error) bool { return errors.Is(err, syscall.EPIPE) }
