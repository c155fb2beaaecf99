package runtimehost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/runtimehost/sandbox"
	"github.com/lambda-microservice/lambda/runtimes"
)

// Files in a script's build folder besides the source and the build's own output.
const (
	markerOK     = ".built"  // the build succeeded
	markerFailed = ".failed" // the build failed; holds the diagnostics
)

// maxDiagnostics bounds the compiler output kept for a failed build.
const maxDiagnostics = 64 << 10

// script is a script version known to this host: its build folder and build outcome.
type script struct {
	sha    string
	dir    string
	source string // path of the source file in dir
	diag   string // compile diagnostics when the build failed
	failed bool
	deps   *deps.Installed // the version's installed dependencies (paths, env), nil without any
	lock   *deps.Lock      // the version's lock, nil without dependencies
}

// builds is the per-sha256 build cache: each script version gets a folder under the cache
// dir holding its source and build output; the registry's build command runs once per
// sha256 (concurrent requests wait for the same build), and success and compile failures
// are both remembered, in memory and on disk.
type builds struct {
	rt       *runtimes.Runtime
	private  bool     // sha folders are the host's alone (workers run copies: direct sandbox)
	readOnly []string // what a build reads besides its folder: the runtime's files, its toolchain
	dir      string
	env      []string // environment of build and prepare commands
	timeout  time.Duration
	spawner  sandbox.Spawner
	deps     *deps.Engine // installs locked dependencies; nil when the runtime takes none
	metrics  *hostMetrics
	log      *zap.Logger
	mu       sync.RWMutex
	known    map[string]*script
	inflight singleflight.Group
	// slots bounds the builds running at once (each has its own folder, target and cargo
	// home: no build waits on another's lock, only for a free core).
	slots chan struct{}
	// held are the install directories this host's calls and workers use, by lock hash
	// (depsHold); the others may be evicted (LAMBDA_DEPS_CACHE_MB).
	heldMu sync.Mutex
	held   map[string]*depsHold
}

var errBuildTimeout = errors.New("build timed out")

// prepareTimeout is the least time the runtime's prepare step gets.
const prepareTimeout = 10 * time.Minute

var errSourceRequired = fault.New(fault.NotFound, "this runtime host has not seen the script: resend the request with its source")

// get returns the built script sha, building it from source (and installing its lock's
// packages first) when this host has not seen it. Without a source an unseen script is
// errSourceRequired.
func (b *builds) get(sha string, source *string, lock *deps.Lock) (*script, error) {
	b.mu.RLock()
	s := b.known[sha]
	b.mu.RUnlock()
	if s != nil {
		return s, nil
	}
	if s := b.fromDisk(sha); s != nil {
		return s, nil
	}
	if source == nil {
		return nil, errSourceRequired
	}
	v, err, _ := b.inflight.Do(sha, func() (any, error) {
		if s := b.fromDisk(sha); s != nil {
			return s, nil
		}
		return b.build(sha, *source, lock)
	})
	if err != nil {
		return nil, err
	}
	return v.(*script), nil
}

func (b *builds) remember(s *script) *script {
	b.mu.Lock()
	defer b.mu.Unlock()
	if old := b.known[s.sha]; old != nil && !s.failed {
		return old
	}
	b.known[s.sha] = s
	return s
}

func (b *builds) newScript(sha string) *script {
	dir := filepath.Join(b.dir, sha)
	return &script{sha: sha, dir: dir, source: filepath.Join(dir, b.rt.SourceFile)}
}

// fromDisk loads a script a previous run of the host built (installing its lock's
// packages again when they were evicted meanwhile).
func (b *builds) fromDisk(sha string) *script {
	s := b.newScript(sha)
	if _, err := os.Stat(filepath.Join(s.dir, markerOK)); err == nil {
		if lock, err := loadLock(s.dir); err != nil || (lock != nil && (b.deps == nil || b.install(s, lock) != nil)) {
			return nil // built again from the source and lock the caller resends
		}
		s.deps.Release() // held again by the calls and workers that use it (hold)
		return b.remember(s)
	}
	if diag, err := os.ReadFile(filepath.Join(s.dir, markerFailed)); err == nil {
		s.failed, s.diag = true, string(diag)
		return b.remember(s)
	}
	return nil
}

func (b *builds) build(sha, source string, lock *deps.Lock) (*script, error) {
	s := b.newScript(sha)
	if err := b.install(s, lock); err != nil {
		return nil, err // not remembered: a registry that was down may answer next time
	}
	defer s.deps.Release() // held while building; then by the calls and workers using it (hold)
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("build %s: %w", sha, err)
	}
	defer b.settle(s.dir)
	if err := writeFileAtomic(s.source, []byte(source)); err != nil {
		return nil, fmt.Errorf("build %s: %w", sha, err)
	}
	if err := saveLock(s, lock); err != nil {
		return nil, fmt.Errorf("build %s: %w", sha, err)
	}
	if len(b.rt.Build) > 0 {
		start := time.Now()
		out, err := b.runEnv(sandbox.RoleBuild, b.rt.ExpandVars(b.rt.Build, runtimes.Vars{Workdir: s.dir, CacheDir: b.dir}), s.dir,
			b.depsEnviron(s), depsDirs(s))
		var exit *exec.ExitError
		switch {
		case errors.Is(err, errBuildTimeout):
			// The script's fault (const evaluation, macro loops), or a loaded machine's:
			// answered as a compile error, not remembered.
			b.metrics.buildsFailed.Inc()
			return nil, fault.New(fault.Unprocessable, "the build took longer than %s (LAMBDA_RUNTIME_BUILD_TIMEOUT) and was stopped", b.timeout)
		case errors.As(err, &exit) && exit.Exited():
			b.metrics.buildsFailed.Inc()
			return b.fail(s, out), nil
		case err != nil:
			return nil, fault.Wrap(fault.Internal, err, "build failed")
		}
		b.metrics.buildsOK.Inc()
		b.metrics.buildTime.Observe(time.Since(start).Seconds())
	}
	if err := os.WriteFile(filepath.Join(s.dir, markerOK), nil, 0o644); err != nil {
		return nil, fmt.Errorf("build %s: %w", sha, err)
	}
	return b.remember(s), nil
}

// fail records a compile failure of s (from the build command or the worker's init).
func (b *builds) fail(s *script, diag string) *script {
	diag = strings.ReplaceAll(diag, s.dir+string(filepath.Separator), "")
	if len(diag) > maxDiagnostics {
		diag = diag[:maxDiagnostics] + "\n[diagnostics truncated]"
	}
	f := &script{sha: s.sha, dir: s.dir, source: s.source, diag: diag, failed: true, deps: s.deps, lock: s.lock}
	if err := os.WriteFile(filepath.Join(s.dir, markerFailed), []byte(diag), 0o644); err != nil {
		b.log.Warn("cannot record a failed build", logging.Err(err))
	}
	_ = os.Remove(filepath.Join(s.dir, markerOK))
	return b.remember(f)
}

// settle gives a script's build folder the mode workers need: readable (bubblewrap binds
// it into them), or the host's alone (workers run copies).
func (b *builds) settle(dir string) {
	mode := os.FileMode(0o755)
	if b.private {
		mode = 0o700
	}
	_ = os.Chmod(dir, mode)
}

// run runs a build or prepare command with the build environment and timeout; it returns
// the combined output. A build runs in the sandbox (its own uid, its folder writable, the
// toolchain read-only, no network, CPU and memory bounded); prepare is the platform's own.
func (b *builds) run(role sandbox.Role, argv []string, dir string) (string, error) {
	return b.runEnv(role, argv, dir, b.env, nil)
}

// runEnv is run with the given environment and the read-only paths it reads besides the
// folder and the toolchain (an install directory of dependencies).
func (b *builds) runEnv(role sandbox.Role, argv []string, dir string, env, readOnly []string) (string, error) {
	var out limitedBuffer
	out.limit = maxDiagnostics
	spec := sandbox.Spec{Role: role, Argv: argv, Dir: dir, Env: env, Stdout: &out, Stderr: &out, ReadOnly: readOnly}
	if role == sandbox.RoleBuild {
		spec.Writable, spec.CPU = []string{dir}, b.timeout
		spec.ReadOnly = append(slices.Clone(b.readOnly), readOnly...)
		spec.Limits = sandbox.Limits{FileSize: 1 << 30, OpenFiles: 4096}
		if b.slots != nil {
			b.slots <- struct{}{}
			defer func() { <-b.slots }()
		}
	}
	proc, err := b.spawner.Spawn(spec)
	if err != nil {
		return "", err
	}
	timeout := b.timeout
	if role == sandbox.RolePrepare {
		timeout = max(timeout, prepareTimeout) // compiles the shared dependencies once
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, proc.Kill)
	_, err = proc.Wait()
	stop()
	if ctx.Err() != nil {
		return out.String(), fmt.Errorf("%s: %w after %s", argv[0], errBuildTimeout, timeout)
	}
	return out.String(), err
}

// prepare runs the runtime's prepare command once at start.
func (b *builds) prepare() error {
	if len(b.rt.Prepare) == 0 {
		return nil
	}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return err
	}
	start := time.Now()
	out, err := b.run(sandbox.RolePrepare, b.rt.ExpandVars(b.rt.Prepare, runtimes.Vars{CacheDir: b.dir}), b.dir)
	if err != nil {
		return fmt.Errorf("prepare %s: %w: %s", b.rt.Title, err, strings.TrimSpace(out))
	}
	b.log.Info("runtime prepared", zap.String(logging.FieldRuntime, b.rt.Title), zap.Duration("took", time.Since(start)))
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// limitedBuffer keeps the first limit bytes written to it and discards the rest.
type limitedBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	limit int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.limit - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
