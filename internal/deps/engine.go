package deps

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Config configures an Engine. ConfigFromEnv fills it from LAMBDA_* variables.
type Config struct {
	// Dir is the cache root: downloads/<title>/ (the shared download caches),
	// installs/<hash>/ (one directory per lock), locks/, work/ (temporary projects).
	Dir string
	// CacheBytes bounds the install directories' total size; least recently used ones
	// nobody holds are removed beyond it (LAMBDA_DEPS_CACHE_MB, 2048).
	CacheBytes int64
	// MaxInstallBytes bounds one install directory, and a resolve's downloads
	// (LAMBDA_MAX_DEPS_MB, 256).
	MaxInstallBytes int64
	// MaxDeps bounds the requested packages (LAMBDA_MAX_DEPS, 64); MaxPackages the
	// resolved ones, transitive included (LAMBDA_MAX_DEP_PACKAGES, 1000).
	MaxDeps, MaxPackages int
	// ResolveTimeout and InstallTimeout bound one Resolve and one Install
	// (LAMBDA_DEPS_RESOLVE_TIMEOUT 2m, LAMBDA_DEPS_INSTALL_TIMEOUT 5m).
	ResolveTimeout, InstallTimeout time.Duration
	// ResolvedTTL is how long Resolve answers the same request (language, packages and
	// specs, package source) with the lock it resolved, without running the resolver
	// again (LAMBDA_DEPS_RESOLVED_TTL, 10m; a negative value turns it off). A release
	// published meanwhile is picked up once it expires.
	ResolvedTTL time.Duration
	// Exec runs every command (LocalExecutor when nil): the sandbox's seam.
	Exec Executor
	// Getenv reads the entries' variables (LAMBDA_NPM_REGISTRY, ...); os.Getenv when nil.
	Getenv func(string) string
	// PassEnv names host variables every command gets (proxies, CA bundle), on top of
	// each entry's own pass_env.
	PassEnv []string
}

// DefaultPassEnv are the host variables every command gets by default: how this machine
// reaches the network.
var DefaultPassEnv = []string{"HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR"}

// ConfigFromEnv reads the engine's configuration from the process environment.
func ConfigFromEnv() (Config, error) { return ConfigFrom(os.Getenv) }

// ConfigFrom reads the engine's configuration through getenv, which also becomes the
// Config's Getenv (the entries' variables: package sources).
func ConfigFrom(getenv func(string) string) (Config, error) {
	c := Config{
		CacheBytes:      2048 << 20,
		MaxInstallBytes: 256 << 20,
		MaxDeps:         64,
		MaxPackages:     1000,
		ResolveTimeout:  2 * time.Minute,
		InstallTimeout:  5 * time.Minute,
		ResolvedTTL:     10 * time.Minute,
		Getenv:          getenv,
	}
	c.Dir = getenv("LAMBDA_DEPS_DIR")
	if c.Dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		c.Dir = filepath.Join(base, "lambda-microservice", "deps")
	}
	mb := func(key string, dst *int64) error {
		if v := getenv(key); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 {
				return fmt.Errorf("%s=%q: a positive number of MiB", key, v)
			}
			*dst = n << 20
		}
		return nil
	}
	count := func(key string, dst *int) error {
		if v := getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return fmt.Errorf("%s=%q: a positive number", key, v)
			}
			*dst = n
		}
		return nil
	}
	dur := func(key string, dst *time.Duration) error {
		if v := getenv(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("%s=%q: a positive duration", key, v)
			}
			*dst = d
		}
		return nil
	}
	ttl := func(key string, dst *time.Duration) error {
		if v := getenv(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return fmt.Errorf("%s=%q: a duration (0 turns it off)", key, v)
			}
			*dst = d
			if d == 0 {
				*dst = -1
			}
		}
		return nil
	}
	err := errors.Join(
		mb("LAMBDA_DEPS_CACHE_MB", &c.CacheBytes),
		mb("LAMBDA_MAX_DEPS_MB", &c.MaxInstallBytes),
		count("LAMBDA_MAX_DEPS", &c.MaxDeps),
		count("LAMBDA_MAX_DEP_PACKAGES", &c.MaxPackages),
		dur("LAMBDA_DEPS_RESOLVE_TIMEOUT", &c.ResolveTimeout),
		dur("LAMBDA_DEPS_INSTALL_TIMEOUT", &c.InstallTimeout),
		ttl("LAMBDA_DEPS_RESOLVED_TTL", &c.ResolvedTTL),
	)
	return c, err
}

// Engine resolves and installs dependency sets. It is safe for concurrent use, and
// several engines (processes) may share one cache root.
type Engine struct {
	cfg Config
	// installRuns counts install command sequences this engine ran (cache misses).
	installRuns atomic.Int64
	resolveRuns atomic.Int64
	recentUse   time.Duration
	resolved    sync.Map // resolveKey → resolvedLock
	resolving   singleflight.Group
	exec        atomic.Pointer[Executor] // SetExecutor's, else cfg.Exec
}

// SetExecutor makes x run every later command of the engine (a runtime host hands its
// sandbox the engine it was given).
func (e *Engine) SetExecutor(x Executor) { e.exec.Store(&x) }

func (e *Engine) executor() Executor {
	if x := e.exec.Load(); x != nil {
		return *x
	}
	return e.cfg.Exec
}

// New prepares the cache root and removes what interrupted runs left there.
func New(cfg Config) (*Engine, error) {
	def, _ := ConfigFromEnv()
	if cfg.Dir == "" {
		return nil, errors.New("deps: Config.Dir is required")
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	cfg.Dir = abs
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = def.CacheBytes
	}
	if cfg.MaxInstallBytes <= 0 {
		cfg.MaxInstallBytes = def.MaxInstallBytes
	}
	if cfg.MaxInstallBytes > cfg.CacheBytes {
		return nil, fmt.Errorf("deps: the largest install (%d MiB) does not fit the cache (%d MiB)", cfg.MaxInstallBytes>>20, cfg.CacheBytes>>20)
	}
	if cfg.MaxDeps <= 0 {
		cfg.MaxDeps = def.MaxDeps
	}
	if cfg.MaxPackages <= 0 {
		cfg.MaxPackages = def.MaxPackages
	}
	if cfg.ResolveTimeout <= 0 {
		cfg.ResolveTimeout = def.ResolveTimeout
	}
	if cfg.InstallTimeout <= 0 {
		cfg.InstallTimeout = def.InstallTimeout
	}
	if cfg.ResolvedTTL == 0 {
		cfg.ResolvedTTL = def.ResolvedTTL
	}
	if cfg.Exec == nil {
		cfg.Exec = LocalExecutor{}
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.PassEnv == nil {
		cfg.PassEnv = DefaultPassEnv
	}
	// Commands run as uids of their own that pass through to their folders (0711); the
	// install directories are opened by their lock hash, never listed; the locks are the
	// engine's alone.
	for _, d := range []struct {
		name string
		mode os.FileMode
	}{{"", 0o711}, {"downloads", 0o711}, {"installs", 0o711}, {"locks", 0o700}, {"work", 0o711}} {
		p := filepath.Join(cfg.Dir, d.name)
		if err := os.MkdirAll(p, d.mode); err != nil {
			return nil, fmt.Errorf("deps: %w", err)
		}
		if err := os.Chmod(p, d.mode); err != nil {
			return nil, fmt.Errorf("deps: %w", err)
		}
	}
	e := &Engine{cfg: cfg, recentUse: defaultRecentUse}
	e.sweep()
	return e, nil
}

// Config returns the engine's effective configuration.
func (e *Engine) Config() Config { return e.cfg }

// InstallRuns is how many installs ran their commands (cache misses) in this engine.
func (e *Engine) InstallRuns() int64 { return e.installRuns.Load() }

// ResolveRuns is how many resolves ran their commands (not answered from ResolvedTTL's
// memory) in this engine.
func (e *Engine) ResolveRuns() int64 { return e.resolveRuns.Load() }

// sweep removes temporary directories of runs that died (older than the longest step).
func (e *Engine) sweep() {
	cutoff := time.Now().Add(-2 * max(e.cfg.InstallTimeout, e.cfg.ResolveTimeout))
	for _, sub := range []string{"installs", "work"} {
		ents, _ := os.ReadDir(filepath.Join(e.cfg.Dir, sub))
		for _, ent := range ents {
			name := ent.Name()
			if !strings.HasPrefix(name, ".tmp-") && !strings.HasPrefix(name, ".trash-") && sub != "work" {
				continue
			}
			if fi, err := ent.Info(); err == nil && (strings.HasPrefix(name, ".trash-") || fi.ModTime().Before(cutoff)) {
				_ = removeAll(filepath.Join(e.cfg.Dir, sub, name))
			}
		}
	}
}

// vars returns the entry's configuration variables.
func (e *Engine) vars(s *Spec) map[string]string {
	out := make(map[string]string, len(s.Vars))
	for name, v := range s.Vars {
		val := ""
		if v.Env != "" {
			val = e.cfg.Getenv(v.Env)
		}
		if val == "" {
			val = v.Default
		}
		out[name] = val
	}
	return out
}

// stepEnv is one resolve or install run of an entry's commands.
type stepEnv struct {
	spec  *Spec
	step  string
	data  *tmplData
	limit Limit // the time limit that applies
	max   time.Duration
}

// run runs the step's commands in order in d.Dir, with the size of watchDir bounded.
func (e *Engine) run(ctx context.Context, st stepEnv, watchDir string) error {
	s, d := st.spec, st.data
	cmds := s.Resolve
	if st.step == "install" {
		cmds = s.Install
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopWatch := e.watchSize(ctx, cancel, s.Title, watchDir)
	defer stopWatch()
	for i := range cmds {
		home, err := os.MkdirTemp(filepath.Join(e.cfg.Dir, "work"), "home-")
		if err != nil {
			return err
		}
		err = func() error {
			defer removeAll(home)
			d.Home = home
			defer func() { d.Home = "" }()
			args, network, err := s.command(st.step, i, d)
			if err != nil {
				return err
			}
			env, err := e.env(s, d)
			if err != nil {
				return err
			}
			deadline, _ := ctx.Deadline()
			cmd := Cmd{
				Title: s.Title, Step: st.step, Dir: d.Dir, Args: args, Env: env,
				Timeout: time.Until(deadline), Network: network,
				Writable: []string{d.Dir, d.Cache, home}, ReadOnly: s.pathVars(d.Var), Shared: []string{d.Cache},
			}
			stdout, stderr, err := e.executor().Exec(ctx, cmd)
			if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
				var le *LimitError
				if errors.As(cause, &le) {
					return le
				}
			}
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return &LimitError{Title: s.Title, Limit: st.limit, Max: st.max.Milliseconds()}
				}
				return ctx.Err()
			}
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				return fmt.Errorf("deps: %s %s: run %s: %w", s.Title, st.step, args[0], err)
			}
			out := strings.TrimSpace(string(stderr))
			if out == "" {
				out = strings.TrimSpace(string(stdout))
			}
			out = e.clean(out, d)
			return &InstallerError{
				Title: s.Title, Step: st.step, Command: args[0], ExitCode: exit.ExitCode(),
				Output: out, Hints: s.hints(out, d),
			}
		}()
		if err != nil {
			return err
		}
	}
	// A command may finish just after the watcher saw the directory grow too large.
	if cause := context.Cause(ctx); cause != nil {
		var le *LimitError
		if errors.As(cause, &le) {
			return le
		}
	}
	return nil
}

// env builds a command's environment: the minimal base, the host variables named by the
// engine and the entry, then the entry's own.
func (e *Engine) env(s *Spec, d *tmplData) ([]string, error) {
	m := map[string]string{
		"PATH":   "/usr/local/bin:/usr/bin:/bin",
		"LANG":   "C.UTF-8",
		"HOME":   d.Home,
		"TMPDIR": d.Home,
	}
	for _, k := range append(append([]string{}, e.cfg.PassEnv...), s.PassEnv...) {
		if v, ok := os.LookupEnv(k); ok && v != "" {
			m[k] = v
		}
	}
	own, err := s.renderMap("env", s.Env, d)
	if err != nil {
		return nil, err
	}
	for k, v := range own {
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out, nil
}

// clean removes the engine's own paths from an installer message.
func (e *Engine) clean(out string, d *tmplData) string {
	r := []string{}
	for _, p := range []struct{ path, as string }{{d.Dir + "/", ""}, {d.Dir, "."}, {d.Cache, "<cache>"}, {d.Home, "<home>"}} {
		if p.path != "" && p.path != "/" {
			r = append(r, p.path, p.as)
		}
	}
	return strings.NewReplacer(r...).Replace(out)
}

// watchSize cancels ctx with a LimitError when dir grows beyond MaxInstallBytes.
func (e *Engine) watchSize(ctx context.Context, cancel context.CancelCauseFunc, title, dir string) func() {
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if n := dirSize(dir); n > e.cfg.MaxInstallBytes {
					cancel(&LimitError{Title: title, Limit: LimitSize, Max: e.cfg.MaxInstallBytes, Got: n})
					return
				}
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// dirSize is the total size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// writeFiles writes rendered files under dir.
func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		if err := writeFile(dir, name, []byte(content)); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(dir, name string, content []byte) error {
	if !safeRel(name) {
		return fmt.Errorf("deps: file name %q", name)
	}
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, content, 0o644)
}

// removeAll deletes a tree, making read-only directories writable first (Go's module
// cache style trees, cargo's vendored sources).
func removeAll(p string) error {
	if err := os.RemoveAll(p); err == nil {
		return nil
	}
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o755)
		}
		return nil
	})
	return os.RemoveAll(p)
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Check reports the programs of spec's commands that cannot be found with the commands'
// PATH (a runtime host's prepare step, `lambda dev`'s package check).
func (e *Engine) Check(spec *Spec) error {
	d, err := e.data(spec, nil, e.cfg.Dir, e.cfg.Dir)
	if err != nil {
		return err
	}
	d.Home = e.cfg.Dir
	env, err := e.env(spec, d)
	if err != nil {
		return err
	}
	var errs []error
	for _, step := range []string{"resolve", "install"} {
		n := len(spec.Resolve)
		if step == "install" {
			n = len(spec.Install)
		}
		for i := range n {
			args, _, err := spec.command(step, i, d)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if _, err := lookPath(args[0], envValue(env, "PATH")); err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", spec.Title, step, err))
			}
		}
	}
	return errors.Join(errs...)
}
