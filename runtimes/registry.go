// Package runtimes loads the runtime registry (runtimes.yaml): the languages the platform
// runs, their Language-Title aliases, OpenFaaS function names, images and the commands that
// build and run a script. Nothing else in the platform names a language.
package runtimes

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/lambda-microservice/lambda/internal/deps"
)

// bundled holds the registry and the bootstraps shipped with the platform.
//
//go:embed runtimes.yaml */*
var bundled embed.FS

// Runtime is one language entry of the registry.
type Runtime struct {
	Title      string   `yaml:"title"`
	Aliases    []string `yaml:"aliases"`
	Function   string   `yaml:"function"`
	Image      string   `yaml:"image"`
	SourceFile string   `yaml:"source_file"`
	Build      []string `yaml:"build"`
	Command    []string `yaml:"command"`
	// Session starts a notebook session's worker (a kernel that keeps its state between
	// cells); empty for a language without sessions.
	Session []string `yaml:"session"`
	// SessionPromote is the template file of a handler made from session cells
	// (POST /v1/sessions/{id}/promote): its __CELLS__ becomes a JSON array of the sources.
	SessionPromote string `yaml:"session_promote"`
	// BuildEnv names host environment variables passed through to Build and Prepare (a
	// toolchain's home, say); workers never see the host environment.
	BuildEnv []string `yaml:"build_env"`
	// BuildReadOnly are the paths a build reads besides its own folder and the system: the
	// toolchain, prepared dependencies ({cache_dir}, {runtime_dir} and $VARIABLES of the
	// build environment expand; paths that do not exist are skipped). The sandbox shows a
	// build nothing else of the host.
	BuildReadOnly []string `yaml:"build_readonly"`
	// Prepare runs once when a runtime host starts (checks the toolchain, warms shared
	// build caches); the host reports ready only after it succeeded.
	Prepare []string `yaml:"prepare"`
	// Packages are the Debian packages a runtime host on a plain machine needs beyond the
	// language itself, each with a path glob that shows it is installed; `lambda dev`
	// installs a missing one (the runtime's Dockerfile installs them in its image).
	Packages []Package `yaml:"packages"`
	// Dependencies is the entry's `dependencies:` block, how a function's third-party
	// packages are resolved and installed (package internal/deps); Deps is that block
	// parsed, nil for a language that takes none.
	Dependencies yaml.Node  `yaml:"dependencies"`
	Deps         *deps.Spec `yaml:"-"`
	// Dir is the language's folder (the {runtime_dir} placeholder), set by Load.
	Dir string `yaml:"-"`
}

// Package is a Debian package and a path glob present once it is installed.
type Package struct {
	Name  string `yaml:"name"`
	Check string `yaml:"check"`
}

// Installed reports whether the package's check path exists.
func (p Package) Installed() bool {
	m, _ := filepath.Glob(p.Check)
	return len(m) > 0
}

// Registry is the loaded set of runtimes.
type Registry struct {
	runtimes []Runtime
	byTitle  map[string]*Runtime // lower-cased title and aliases
	// Path is the registry file it was loaded from.
	Path string
}

type file struct {
	Runtimes []Runtime `yaml:"runtimes"`
}

var titleRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

// Load reads the registry at path. An empty path loads the registry bundled into the
// binary, unpacked once into a cache folder so its bootstraps can be executed.
func Load(path string) (*Registry, error) {
	if path == "" {
		p, err := unpackBundled()
		if err != nil {
			return nil, fmt.Errorf("unpack bundled runtimes: %w", err)
		}
		path = p
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read runtime registry: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("read runtime registry: %w", err)
	}
	return Parse(data, filepath.Dir(abs), abs)
}

// Parse decodes a registry document; baseDir is where the languages' folders live.
func Parse(data []byte, baseDir, path string) (*Registry, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse runtime registry %s: %w", path, err)
	}
	if len(f.Runtimes) == 0 {
		return nil, fmt.Errorf("parse runtime registry %s: no runtimes", path)
	}
	specs, err := deps.ParseSpecs(data)
	if err != nil {
		return nil, fmt.Errorf("runtime registry %s: %w", path, err)
	}
	r := &Registry{runtimes: f.Runtimes, byTitle: map[string]*Runtime{}, Path: path}
	for i := range r.runtimes {
		rt := &r.runtimes[i]
		if !titleRE.MatchString(rt.Title) {
			return nil, fmt.Errorf("runtime registry %s: invalid title %q", path, rt.Title)
		}
		if rt.Function == "" || rt.SourceFile == "" || len(rt.Command) == 0 {
			return nil, fmt.Errorf("runtime registry %s: %s needs function, source_file and command", path, rt.Title)
		}
		for _, pkg := range rt.Packages {
			if pkg.Name == "" || !filepath.IsAbs(pkg.Check) {
				return nil, fmt.Errorf("runtime registry %s: %s: a package needs a name and an absolute check path", path, rt.Title)
			}
		}
		rt.Dir = filepath.Join(baseDir, rt.Title)
		rt.Deps = specs[rt.Title]
		for _, name := range append([]string{rt.Title}, rt.Aliases...) {
			key := strings.ToLower(name)
			if _, dup := r.byTitle[key]; dup {
				return nil, fmt.Errorf("runtime registry %s: title or alias %q used twice", path, name)
			}
			r.byTitle[key] = rt
		}
	}
	return r, nil
}

// Lookup finds a runtime by title or alias, case-insensitively.
func (r *Registry) Lookup(title string) (*Runtime, bool) {
	rt, ok := r.byTitle[strings.ToLower(strings.TrimSpace(title))]
	return rt, ok
}

// All returns the runtimes in registry order.
func (r *Registry) All() []Runtime { return r.runtimes }

// Titles returns every accepted Language-Title value, sorted.
func (r *Registry) Titles() []string {
	out := make([]string, 0, len(r.byTitle))
	for k := range r.byTitle {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Vars are the values of the placeholders of a command.
type Vars struct {
	Workdir  string // {workdir}, and {source} inside it
	CacheDir string // {cache_dir}: the host's build cache, shared by all scripts
}

// ExpandVars substitutes every placeholder of a command.
func (rt *Runtime) ExpandVars(args []string, v Vars) []string {
	source := ""
	if v.Workdir != "" {
		source = filepath.Join(v.Workdir, rt.SourceFile)
	}
	repl := strings.NewReplacer(
		"{runtime_dir}", rt.Dir,
		"{workdir}", v.Workdir,
		"{source}", source,
		"{cache_dir}", v.CacheDir,
	)
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = repl.Replace(a)
	}
	return out
}

// Prestartable reports whether the run command names no script ({workdir}, {source}): such
// a worker can start before its script is known and learn it from the init frame, which is
// how a runtime host keeps a spare worker ready for a new version's first call.
func (rt *Runtime) Prestartable() bool {
	for _, a := range rt.Command {
		if strings.Contains(a, "{workdir}") || strings.Contains(a, "{source}") {
			return false
		}
	}
	return true
}

// unpackBundled writes the embedded registry and bootstraps to a cache folder named by
// their content hash and returns the registry file's path there.
func unpackBundled() (string, error) {
	h := sha256.New()
	var files []string
	err := fs.WalkDir(bundled, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") {
			return err
		}
		data, err := bundled.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, p)
		h.Write([]byte(p))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", err
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "lambda-microservice", "runtimes-"+hex.EncodeToString(h.Sum(nil))[:16])
	reg := filepath.Join(dir, "runtimes.yaml")
	if _, err := os.Stat(reg); err == nil {
		return reg, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unpack-*")
	if err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return "", err
		}
		if tmp, err = os.MkdirTemp(filepath.Dir(dir), ".unpack-*"); err != nil {
			return "", err
		}
	}
	for _, p := range files {
		data, _ := bundled.ReadFile(p)
		dst := filepath.Join(tmp, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(dst, data, mode); err != nil {
			return "", err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, statErr := os.Stat(reg); statErr != nil {
			return "", err
		}
	}
	return reg, nil
}

// PromoteTemplate reads the session_promote template. A registry file installed without
// its language folders (a Kubernetes ConfigMap next to the api) falls back to the
// template bundled into the binary for a language of the same title.
func (rt *Runtime) PromoteTemplate() ([]byte, error) {
	if rt.SessionPromote == "" {
		return nil, fmt.Errorf("the %s runtime declares no session_promote template", rt.Title)
	}
	path := rt.ExpandVars([]string{rt.SessionPromote}, Vars{})[0]
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if bb, berr := bundled.ReadFile(rt.Title + "/" + filepath.Base(path)); berr == nil {
			return bb, nil
		}
	}
	return b, err
}
