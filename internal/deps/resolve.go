package deps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Lock is a resolved dependency set: the files an installer needs to reproduce it exactly
// (package.json + package-lock.json, a requirements list pinned with sha256 hashes,
// Cargo.toml + Cargo.lock). It is stored with a function version and is part of its hash.
type Lock struct {
	Title string            `json:"title"`
	Files map[string][]byte `json:"files"`
	// Hash is the hex sha256 of the canonical form (see HashFiles); it names the install.
	Hash string `json:"hash"`
	// Packages is how many packages the lock holds (the entry's count pattern).
	Packages int `json:"packages"`
}

// HashFiles is the sha256 of a lock's canonical form: a version tag, the language title
// and each file in name order as name, length and content, separated by NUL bytes.
func HashFiles(title string, files map[string][]byte) string {
	h := sha256.New()
	h.Write([]byte("lambda-deps-lock/1\x00" + title + "\x00"))
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		h.Write([]byte(n + "\x00" + strconv.Itoa(len(files[n])) + "\x00"))
		h.Write(files[n])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Verify checks that the lock belongs to spec, names exactly the entry's lock files and
// matches its hash (a lock read back from storage is trusted only after this).
func (l *Lock) Verify(spec *Spec) error {
	if l == nil {
		return errors.New("deps: no lock")
	}
	if l.Title != spec.Title {
		return fmt.Errorf("deps: a %s lock given to the %s installer", l.Title, spec.Title)
	}
	if len(l.Files) != len(spec.Lock) {
		return fmt.Errorf("deps: %s lock: %d files, the entry names %d", spec.Title, len(l.Files), len(spec.Lock))
	}
	for _, name := range spec.Lock {
		if _, ok := l.Files[name]; !ok {
			return fmt.Errorf("deps: %s lock: %s missing", spec.Title, name)
		}
	}
	if got := HashFiles(l.Title, l.Files); got != l.Hash {
		return fmt.Errorf("deps: %s lock: hash %s does not match its files (%s)", spec.Title, l.Hash, got)
	}
	return nil
}

// Resolve turns requested dependencies (package → version spec) into a Lock, running the
// entry's resolve commands in a temporary project. No dependencies: a nil Lock, nil error.
// Errors: *InvalidError (a name or spec the entry refuses), *LimitError, *InstallerError
// (the installer's own message: unknown package or version, no wheel), or an internal
// error (a missing tool, a full disk).
func (e *Engine) Resolve(ctx context.Context, spec *Spec, deps map[string]string) (*Lock, error) {
	if len(deps) == 0 {
		return nil, nil
	}
	if len(deps) > e.cfg.MaxDeps {
		return nil, &LimitError{Title: spec.Title, Limit: LimitDependencies, Max: int64(e.cfg.MaxDeps), Got: int64(len(deps))}
	}
	list, err := spec.Validate(deps)
	if err != nil {
		return nil, err
	}
	key := e.resolveKey(spec, list)
	if e.cfg.ResolvedTTL > 0 {
		if v, ok := e.resolved.Load(key); ok && time.Since(v.(resolvedLock).at) < e.cfg.ResolvedTTL {
			return v.(resolvedLock).lock.clone(), nil
		}
	}
	// Concurrent requests for the same set share one resolve, so they get one lock.
	v, err, _ := e.resolving.Do(key, func() (any, error) {
		lock, err := e.resolve(ctx, spec, list)
		if err == nil && e.cfg.ResolvedTTL > 0 {
			e.resolved.Store(key, resolvedLock{lock: lock.clone(), at: time.Now()})
		}
		return lock, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*Lock).clone(), nil
}

// resolvedLock is a lock Resolve remembers for ResolvedTTL.
type resolvedLock struct {
	lock *Lock
	at   time.Time
}

// resolveKey names a resolve request: the language, its packages and specs, and the
// values of the entry's variables (the package source).
func (e *Engine) resolveKey(spec *Spec, list []Dep) string {
	var b strings.Builder
	b.WriteString(spec.Title)
	for _, d := range list {
		b.WriteString("\x00" + d.Name + "\x00" + d.Version)
	}
	vars := e.vars(spec)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		b.WriteString("\x01" + k + "=" + vars[k])
	}
	return b.String()
}

func (l *Lock) clone() *Lock {
	c := *l
	c.Files = make(map[string][]byte, len(l.Files))
	for k, v := range l.Files {
		c.Files[k] = slices.Clone(v)
	}
	return &c
}

// resolve runs the entry's resolve commands for list.
func (e *Engine) resolve(ctx context.Context, spec *Spec, list []Dep) (*Lock, error) {
	e.resolveRuns.Add(1)
	dir, err := os.MkdirTemp(filepath.Join(e.cfg.Dir, "work"), "resolve-"+spec.Title+"-")
	if err != nil {
		return nil, fmt.Errorf("deps: %w", err)
	}
	defer removeAll(dir)
	d, err := e.data(spec, list, dir, "")
	if err != nil {
		return nil, err
	}
	files, err := spec.renderMap("files", spec.Files, d)
	if err != nil {
		return nil, err
	}
	if err := writeFiles(dir, files); err != nil {
		return nil, fmt.Errorf("deps: %w", err)
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, e.cfg.ResolveTimeout)
	defer cancel()
	st := stepEnv{spec: spec, step: "resolve", data: d, limit: LimitResolveTime, max: e.cfg.ResolveTimeout}
	if err := e.run(ctx, st, dir); err != nil {
		if parent.Err() != nil {
			return nil, parent.Err() // the caller gave up (or its own deadline came first)
		}
		return nil, err
	}
	lock := &Lock{Title: spec.Title, Files: map[string][]byte{}}
	var all strings.Builder
	for _, name := range spec.Lock {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return nil, fmt.Errorf("deps: %s resolve wrote no %s: %w", spec.Title, name, err)
		}
		lock.Files[name] = b
		all.Write(b)
		all.WriteByte('\n')
	}
	lock.Packages = len(spec.countRE.FindAllStringIndex(all.String(), -1))
	if lock.Packages > e.cfg.MaxPackages {
		return nil, &LimitError{Title: spec.Title, Limit: LimitPackages, Max: int64(e.cfg.MaxPackages), Got: int64(lock.Packages)}
	}
	lock.Hash = HashFiles(lock.Title, lock.Files)
	return lock, nil
}

// data is the template data of a step in dir.
func (e *Engine) data(spec *Spec, list []Dep, dir, final string) (*tmplData, error) {
	cache := filepath.Join(e.cfg.Dir, "downloads", spec.Title)
	if err := os.MkdirAll(cache, 0o700); err != nil { // the engine's and its commands' only
		return nil, fmt.Errorf("deps: %w", err)
	}
	m := make(map[string]string, len(list))
	for _, d := range list {
		m[d.Name] = d.Version
	}
	if list == nil {
		list = []Dep{}
	}
	return &tmplData{Deps: list, DepsMap: m, Var: e.vars(spec), Dir: dir, Final: final, Cache: cache}, nil
}

// BuildHash is what a runtime host builds and caches a function version by: the hex sha256
// of its source when it has no lock (what versions without dependencies always used),
// else the sha256 of a tag, the source's sha256 and the lock's hash. The same source with
// another lock is another build.
func BuildHash(source string, lock *Lock) string {
	sum := sha256.Sum256([]byte(source))
	if lock == nil {
		return hex.EncodeToString(sum[:])
	}
	h := sha256.New()
	h.Write([]byte("lambda-build/1\x00" + hex.EncodeToString(sum[:]) + "\x00" + lock.Title + "\x00" + lock.Hash))
	return hex.EncodeToString(h.Sum(nil))
}
