package deps

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"
)

// Installed is an install directory in use. While it is held (until Release) no eviction,
// in this process or another sharing the cache root, removes it.
type Installed struct {
	Title string
	Hash  string
	// Dir is the install directory (installs/<hash>): node_modules/, site/, vendor/, ...
	Dir string
	// BuildEnv is the entry's build_env for this directory: what only a build gets (the
	// cargo config naming the vendored sources); workers never see it.
	BuildEnv map[string]string
	// Env is the entry's runtime_env for this directory: NODE_PATH, PYTHONPATH, the cargo
	// config naming the vendored sources.
	Env map[string]string
	// Cached is true when the directory existed: nothing was installed.
	Cached bool
	// Size is the directory's size in bytes.
	Size int64

	mu   sync.Mutex
	lock *os.File
}

// Release lets eviction remove the directory again. It may be called more than once, and
// on nil.
func (i *Installed) Release() {
	if i == nil {
		return
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.lock != nil {
		i.lock.Close() // drops the shared flock
		i.lock = nil
	}
}

// marker is the file in each install directory that records it; its mtime is the last use.
const markerName = ".lambda-deps.json"

type marker struct {
	Title   string    `json:"title"`
	Hash    string    `json:"hash"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// defaultRecentUse protects a directory just installed or used from eviction between its
// installer dropping the exclusive lock and taking the shared one.
const defaultRecentUse = 5 * time.Second

// Install makes the lock's packages available in a directory (one per lock hash under the
// cache root) and holds it until Release. The first caller for a hash runs the entry's
// install commands in a temporary directory renamed into place when complete; concurrent
// callers, here or in other processes, wait for it and share the result. No package code
// runs: the entries install with scripts disabled, wheels only, sources vendored.
// Errors: *LimitError (size, time), *InstallerError, or an internal error.
func (e *Engine) Install(ctx context.Context, spec *Spec, lock *Lock) (*Installed, error) {
	if err := lock.Verify(spec); err != nil {
		return nil, err
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, e.cfg.InstallTimeout)
	defer cancel()
	final := filepath.Join(e.cfg.Dir, "installs", lock.Hash)
	lockPath := filepath.Join(e.cfg.Dir, "locks", lock.Hash)
	installed := false
	for attempt := 0; ; attempt++ {
		// Shared: the directory exists and stays while held.
		f, err := flockWait(ctx, lockPath, syscall.LOCK_SH, nil)
		if err != nil {
			return nil, e.waitErr(parent, spec, err)
		}
		if m, err := readMarker(final); err == nil {
			now := time.Now()
			_ = os.Chtimes(filepath.Join(final, markerName), now, now)
			in := &Installed{Title: spec.Title, Hash: lock.Hash, Dir: final, Cached: !installed, Size: m.Size, lock: f}
			if in.Env, in.BuildEnv, err = e.runtimeEnv(spec, final); err != nil {
				in.Release()
				return nil, err
			}
			if installed {
				e.evict()
			}
			return in, nil
		}
		f.Close()
		if attempt >= 3 {
			return nil, fmt.Errorf("deps: %s install %s: the directory vanished after install %d times (cache too small?)", spec.Title, lock.Hash, attempt)
		}
		// Exclusive: install unless another caller did meanwhile. Callers holding the
		// finished directory (shared) would keep the exclusive lock away forever: the wait
		// ends as soon as the directory exists, and the loop takes it shared.
		f, err = flockWait(ctx, lockPath, syscall.LOCK_EX, func() bool { return exists(final) })
		if errors.Is(err, errReady) {
			continue
		}
		if err != nil {
			return nil, e.waitErr(parent, spec, err)
		}
		if _, statErr := readMarker(final); statErr != nil {
			err = e.install(ctx, spec, lock, final)
			installed = err == nil
		}
		f.Close()
		if err != nil {
			if parent.Err() != nil {
				return nil, parent.Err() // the caller gave up (or its own deadline came first)
			}
			return nil, err
		}
	}
}

func (e *Engine) waitErr(parent context.Context, spec *Spec, err error) error {
	if parent.Err() != nil {
		return parent.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &LimitError{Title: spec.Title, Limit: LimitInstallTime, Max: e.cfg.InstallTimeout.Milliseconds()}
	}
	return err
}

// install builds the directory for lock at final; the caller holds the exclusive lock.
func (e *Engine) install(ctx context.Context, spec *Spec, lock *Lock, final string) error {
	e.installRuns.Add(1)
	tmp := filepath.Join(e.cfg.Dir, "installs", ".tmp-"+lock.Hash[:16]+"-"+randomSuffix())
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return fmt.Errorf("deps: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			removeAll(tmp)
		}
	}()
	d, err := e.data(spec, nil, tmp, final)
	if err != nil {
		return err
	}
	files, err := spec.renderMap("files", spec.Files, d)
	if err != nil {
		return err
	}
	for name := range lock.Files {
		delete(files, name)
	}
	if err := writeFiles(tmp, files); err != nil {
		return fmt.Errorf("deps: %w", err)
	}
	for name, b := range lock.Files {
		if err := writeFile(tmp, name, b); err != nil {
			return fmt.Errorf("deps: %w", err)
		}
	}
	extra, err := spec.renderMap("install_files", spec.InstallFiles, d)
	if err != nil {
		return err
	}
	if err := writeFiles(tmp, extra); err != nil {
		return fmt.Errorf("deps: %w", err)
	}
	st := stepEnv{spec: spec, step: "install", data: d, limit: LimitInstallTime, max: e.cfg.InstallTimeout}
	if err := e.run(ctx, st, tmp); err != nil {
		return err
	}
	size := dirSize(tmp)
	if size > e.cfg.MaxInstallBytes {
		return &LimitError{Title: spec.Title, Limit: LimitSize, Max: e.cfg.MaxInstallBytes, Got: size}
	}
	m, _ := json.Marshal(marker{Title: spec.Title, Hash: lock.Hash, Size: size, Created: time.Now().UTC()})
	if err := os.WriteFile(filepath.Join(tmp, markerName), m, 0o644); err != nil {
		return fmt.Errorf("deps: %w", err)
	}
	if err := settleInstall(tmp); err != nil { // after the marker: the host's umask may be 077
		return fmt.Errorf("deps: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("deps: %w", err)
	}
	ok = true
	return nil
}

// settleInstall gives a finished install directory the modes workers read it with: the
// engine's uid owns it (its commands' uids had it only for their time), directories 0755,
// files 0644 (0755 when executable), no setuid, setgid or sticky bit, nothing but
// directories, regular files and symbolic links. Workers, of other uids, read it and
// write nothing.
func settleInstall(dir string) error {
	uid, gid := os.Geteuid(), os.Getegid()
	return filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && (int(st.Uid) != uid || int(st.Gid) != gid) {
			if err := os.Lchown(p, uid, gid); err != nil {
				return err
			}
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil
		case fi.IsDir():
			return os.Chmod(p, 0o755)
		case fi.Mode().IsRegular():
			mode := os.FileMode(0o644)
			if fi.Mode().Perm()&0o111 != 0 {
				mode = 0o755
			}
			if fi.Mode() != mode {
				return os.Chmod(p, mode)
			}
			return nil
		}
		return os.Remove(p) // a socket, a FIFO, a device: nothing a package needs
	})
}

// runtimeEnv renders the entry's runtime_env and build_env for the install directory dir.
func (e *Engine) runtimeEnv(spec *Spec, dir string) (env, build map[string]string, err error) {
	d := &tmplData{Deps: []Dep{}, DepsMap: map[string]string{}, Var: e.vars(spec), Dir: dir, Final: dir,
		Cache: filepath.Join(e.cfg.Dir, "downloads", spec.Title)}
	if env, err = spec.renderMap("runtime_env", spec.RuntimeEnv, d); err != nil {
		return nil, nil, err
	}
	if build, err = spec.renderMap("build_env", spec.BuildEnv, d); err != nil {
		return nil, nil, err
	}
	return env, build, nil
}

func readMarker(dir string) (marker, error) {
	var m marker
	b, err := os.ReadFile(filepath.Join(dir, markerName))
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(b, &m)
}

// errReady ends a flockWait whose ready condition became true.
var errReady = errors.New("deps: ready")

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// flockWait opens path and takes a flock of kind, polling until ctx ends or, while it
// waits, ready (when not nil) returns true (errReady).
func flockWait(ctx context.Context, path string, kind int, ready func() bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("deps: %w", err)
	}
	wait := time.Millisecond
	for {
		err := syscall.Flock(int(f.Fd()), kind|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("deps: flock %s: %w", path, err)
		}
		if ready != nil && ready() {
			f.Close()
			return nil, errReady
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 50*time.Millisecond)
	}
}

// CacheEntry describes one install directory.
type CacheEntry struct {
	Title, Hash, Dir string
	Size             int64
	LastUsed         time.Time
}

// Entries lists the install directories, least recently used first.
func (e *Engine) Entries() []CacheEntry {
	root := filepath.Join(e.cfg.Dir, "installs")
	ents, _ := os.ReadDir(root)
	var out []CacheEntry
	for _, ent := range ents {
		if !ent.IsDir() || ent.Name()[0] == '.' {
			continue
		}
		dir := filepath.Join(root, ent.Name())
		m, err := readMarker(dir)
		if err != nil {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, markerName))
		if err != nil {
			continue
		}
		out = append(out, CacheEntry{Title: m.Title, Hash: ent.Name(), Dir: dir, Size: m.Size, LastUsed: fi.ModTime()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.Before(out[j].LastUsed) })
	return out
}

// Evict removes least recently used install directories nobody holds until the total is
// within CacheBytes; it returns the hashes removed. Install calls it after each new install.
func (e *Engine) Evict() []string { return e.evict() }

func (e *Engine) evict() []string {
	ents := e.Entries()
	var total int64
	for _, c := range ents {
		total += c.Size
	}
	var removed []string
	for _, c := range ents {
		if total <= e.cfg.CacheBytes {
			break
		}
		if time.Since(c.LastUsed) < e.recentUse {
			continue
		}
		f, err := os.OpenFile(filepath.Join(e.cfg.Dir, "locks", c.Hash), os.O_RDONLY|os.O_CREATE, 0o644)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			f.Close() // in use
			continue
		}
		// Re-check under the lock: a user may have touched it since the listing.
		if fi, err := os.Stat(filepath.Join(c.Dir, markerName)); err != nil || time.Since(fi.ModTime()) < e.recentUse {
			f.Close()
			continue
		}
		trash := filepath.Join(e.cfg.Dir, "installs", ".trash-"+c.Hash[:16]+"-"+randomSuffix())
		err = os.Rename(c.Dir, trash)
		f.Close()
		if err != nil {
			continue
		}
		_ = removeAll(trash)
		total -= c.Size
		removed = append(removed, c.Hash)
	}
	slices.Sort(removed)
	return removed
}
