package runtimehost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// depsLockFile is the version's lock, kept in its build folder: a host that restarts
// installs it again (a cache hit unless it was evicted) before the script's workers start.
const depsLockFile = "deps.lock.json"

// checkLock checks a request's lock against the runtime's dependency entry.
func (h *Host) checkLock(lock *deps.Lock) error {
	if lock == nil {
		return nil
	}
	if h.rt.Deps == nil || h.builds.deps == nil {
		return fault.New(fault.Invalid, "%s functions take no dependencies on this runtime host", h.rt.Title)
	}
	if err := lock.Verify(h.rt.Deps); err != nil {
		return fault.Wrap(fault.Invalid, err, "lock: %v", err)
	}
	return nil
}

// install makes s's locked packages available (one shared directory per lock, reused by
// every version and function with the same lock) and holds them for the host's life.
func (b *builds) install(s *script, lock *deps.Lock) error {
	if lock == nil {
		return nil
	}
	// The engine bounds the install (LAMBDA_DEPS_INSTALL_TIMEOUT); builds of one lock wait
	// for the same install.
	in, err := b.deps.Install(context.Background(), b.rt.Deps, lock)
	if err != nil {
		var inst *deps.InstallerError
		var lim *deps.LimitError
		if errors.As(err, &inst) || errors.As(err, &lim) {
			return deps.Fault(err) // 422 with the installer's message; 413 for the size
		}
		return fault.Wrap(fault.Internal, err, "install dependencies")
	}
	b.log.Info("dependencies ready", zap.String("lock", lock.Hash), zap.Int("packages", lock.Packages),
		zap.Bool("cached", in.Cached), zap.Int64("bytes", in.Size))
	s.deps, s.lock = in, lock
	return nil
}

// depsHold is an install directory held for this host's calls and warm workers: the
// directory stays while refs > 0, then the hold is dropped and eviction may take it.
type depsHold struct {
	in   *deps.Installed
	refs int
}

// hold keeps s's install directory from eviction until the returned release runs: a
// call holds it while it runs, a worker bound to s for its life. A directory evicted since
// s was built is installed again (the lock is s's). Without dependencies it holds nothing.
func (b *builds) hold(s *script) (release func(), err error) {
	if s.lock == nil || b.deps == nil {
		return func() {}, nil
	}
	hash := s.lock.Hash
	b.heldMu.Lock()
	if hd := b.held[hash]; hd != nil {
		hd.refs++
		b.heldMu.Unlock()
		return b.releaser(hash), nil
	}
	b.heldMu.Unlock()
	in, err := b.deps.Install(context.Background(), b.rt.Deps, s.lock)
	if err != nil {
		return nil, deps.Fault(err)
	}
	b.heldMu.Lock()
	if hd := b.held[hash]; hd != nil {
		hd.refs++ // another call held it meanwhile
		b.heldMu.Unlock()
		in.Release()
		return b.releaser(hash), nil
	}
	if b.held == nil {
		b.held = map[string]*depsHold{}
	}
	b.held[hash] = &depsHold{in: in, refs: 1}
	b.heldMu.Unlock()
	return b.releaser(hash), nil
}

// releaser drops one reference to hash's hold, once.
func (b *builds) releaser(hash string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.heldMu.Lock()
			hd := b.held[hash]
			if hd == nil {
				b.heldMu.Unlock()
				return
			}
			if hd.refs--; hd.refs > 0 {
				b.heldMu.Unlock()
				return
			}
			delete(b.held, hash)
			b.heldMu.Unlock()
			hd.in.Release()
		})
	}
}

// saveLock records s's lock in its build folder.
func saveLock(s *script, lock *deps.Lock) error {
	if lock == nil {
		return nil
	}
	data, err := json.Marshal(lock)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, depsLockFile), data)
}

// loadLock reads the lock a build folder recorded (nil without one).
func loadLock(dir string) (*deps.Lock, error) {
	data, err := os.ReadFile(filepath.Join(dir, depsLockFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var l deps.Lock
	if err := json.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("%s: %w", depsLockFile, err)
	}
	return &l, nil
}

// depsEnviron is the build environment with s's installed packages' variables on top
// (the entry's runtime_env, then its build_env).
func (b *builds) depsEnviron(s *script) []string {
	if s.deps == nil {
		return b.env
	}
	env := slices.Clone(b.env)
	for _, m := range []map[string]string{s.deps.Env, s.deps.BuildEnv} {
		for k, v := range m {
			env = append(slices.DeleteFunc(env, func(kv string) bool { return len(kv) > len(k) && kv[:len(k)+1] == k+"=" }), k+"="+v)
		}
	}
	return env
}

// depsReadOnly are the install directories a worker of s (or a spare, which may get any
// script) reads.
func (h *Host) depsReadOnly(s *script) []string {
	switch {
	case h.builds.deps == nil:
		return nil
	case s == nil:
		return []string{filepath.Join(h.builds.deps.Config().Dir, "installs")}
	case s.deps != nil:
		return []string{s.deps.Dir}
	}
	return nil
}

// depsDirs is s's install directory, for a build that reads it.
func depsDirs(s *script) []string {
	if s.deps == nil {
		return nil
	}
	return []string{s.deps.Dir}
}

// depsEnv is what a worker of s gets on top of its version's env: the entry's runtime_env
// for the install (NODE_PATH, PYTHONPATH), which the bootstraps apply at init.
func depsEnv(s *script) map[string]string {
	if s.deps == nil {
		return nil
	}
	return s.deps.Env
}

// ResolveDeps resolves requested dependencies into a lock with this host's toolchain and
// package sources (the runtime image carries npm, pip, cargo and the crate sources; the
// api's image does not). Errors are faults: a refused name or spec Invalid, the installed
// size TooLarge, an installer's refusal or another limit Unprocessable with its message.
func (h *Host) ResolveDeps(ctx context.Context, requested map[string]string) (*deps.Lock, error) {
	if h.rt.Deps == nil || h.builds.deps == nil {
		return nil, fault.New(fault.Invalid, "%s functions take no dependencies on this runtime host", h.rt.Title)
	}
	lock, err := h.builds.deps.Resolve(ctx, h.rt.Deps, requested)
	if err != nil {
		return nil, deps.Fault(err)
	}
	return lock, nil
}

// resolveHTTP answers a resolve request ({"resolve": {...}}) with {"lock": ...}.
func (h *Host) resolveHTTP(r *http.Request, buf *bytes.Buffer, requested map[string]string) int {
	lock, err := h.ResolveDeps(r.Context(), requested)
	if err != nil {
		return h.writeError(buf, err)
	}
	data, err := json.Marshal(struct {
		Lock *deps.Lock `json:"lock"`
	}{lock})
	if err != nil {
		return h.writeError(buf, fault.Wrap(fault.Internal, err, "encode the lock"))
	}
	buf.Reset()
	buf.Write(data)
	return http.StatusOK
}
