package deps

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"
)

// Spec is one language's dependency entry: the `dependencies:` block of its runtime registry
// entry. Everything language-specific is here, as data.
type Spec struct {
	// Title is the language's registry title (set by the loader).
	Title string `yaml:"-"`
	// Name and Version are regular expressions a package name and its version spec match.
	Name    string `yaml:"name"`
	Version string `yaml:"version"`
	// Vars are configuration values (package source locations) read from the environment.
	Vars map[string]Var `yaml:"vars"`
	// Env is the commands' environment (templates) on top of the minimal one; PassEnv names
	// host variables copied into it.
	Env     map[string]string `yaml:"env"`
	PassEnv []string          `yaml:"pass_env"`
	// Files are written into the working directory before resolve and install (templates).
	Files map[string]string `yaml:"files"`
	// Resolve runs in a temporary project; afterwards the files named by Lock are the lock.
	Resolve []Command `yaml:"resolve"`
	Lock    []string  `yaml:"lock"`
	// Count is a regular expression whose matches over the lock files are its packages.
	Count string `yaml:"count"`
	// Install runs in the new install directory holding the lock files, Files and
	// InstallFiles.
	Install      []Command         `yaml:"install"`
	InstallFiles map[string]string `yaml:"install_files"`
	// RuntimeEnv is what a build or worker using an install gets in its environment.
	RuntimeEnv map[string]string `yaml:"runtime_env"`
	// BuildEnv is what only a build using an install gets (on top of RuntimeEnv): the
	// workers never see it (Rust's cargo settings: the compiled handler needs none).
	BuildEnv map[string]string `yaml:"build_env"`
	// Hints add a sentence to an installer error whose output matches.
	Hints []Hint `yaml:"hints"`

	nameRE, versionRE, countRE *regexp.Regexp
	hintREs                    []*regexp.Regexp
	tmpl                       *template.Template
}

// Var is a configuration variable of a Spec.
type Var struct {
	Env     string `yaml:"env"`
	Default string `yaml:"default"`
	// Path marks a directory the commands read (a wheelhouse, a crate registry): the
	// sandbox makes it visible read-only.
	Path bool `yaml:"path"`
}

// Command is one step of resolve or install.
type Command struct {
	// Args are templates; an argument that expands to "" is left out.
	Args []string `yaml:"args"`
	// Network is a template giving "registry" (the command talks to the package source)
	// or "none".
	Network string `yaml:"network"`
}

// Hint is an explanation added to an installer error whose output matches Match.
type Hint struct {
	Match   string `yaml:"match"`
	Message string `yaml:"message"`
}

// Dep is one requested dependency.
type Dep struct {
	Name    string
	Version string
}

// ParseSpecs reads the dependency entries of a runtime registry document
// (`runtimes: [{title, dependencies: {...}, ...}]`); other fields of an entry are ignored,
// entries without dependencies are left out. The result is keyed by title.
func ParseSpecs(data []byte) (map[string]*Spec, error) {
	var doc struct {
		Runtimes []struct {
			Title        string    `yaml:"title"`
			Dependencies yaml.Node `yaml:"dependencies"`
		} `yaml:"runtimes"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("deps: parse registry: %w", err)
	}
	out := map[string]*Spec{}
	for _, rt := range doc.Runtimes {
		if rt.Dependencies.Kind == 0 {
			continue
		}
		// Decode the block strictly: a misspelt field is an error, not a silent default.
		raw, err := yaml.Marshal(&rt.Dependencies)
		if err != nil {
			return nil, fmt.Errorf("deps: %s: %w", rt.Title, err)
		}
		var s Spec
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("deps: %s: %w", rt.Title, err)
		}
		s.Title = rt.Title
		if err := s.compile(); err != nil {
			return nil, err
		}
		if _, dup := out[s.Title]; dup {
			return nil, fmt.Errorf("deps: %s: two entries", s.Title)
		}
		out[s.Title] = &s
	}
	return out, nil
}

// compile checks the entry and prepares its patterns and templates.
func (s *Spec) compile() error {
	fail := func(format string, a ...any) error {
		return fmt.Errorf("deps: %s: "+format, append([]any{s.Title}, a...)...)
	}
	if s.Title == "" {
		return fmt.Errorf("deps: an entry without a title")
	}
	var err error
	for _, p := range []struct {
		field string
		src   string
		dst   **regexp.Regexp
	}{{"name", s.Name, &s.nameRE}, {"version", s.Version, &s.versionRE}, {"count", s.Count, &s.countRE}} {
		if p.src == "" {
			return fail("%s is required", p.field)
		}
		if *p.dst, err = regexp.Compile(p.src); err != nil {
			return fail("%s: %v", p.field, err)
		}
	}
	if len(s.Resolve) == 0 || len(s.Install) == 0 || len(s.Lock) == 0 {
		return fail("resolve, install and lock are required")
	}
	for _, name := range s.Lock {
		if !safeRel(name) {
			return fail("lock file %q is not a relative path inside the project", name)
		}
	}
	for name := range s.Files {
		if !safeRel(name) {
			return fail("file %q is not a relative path inside the project", name)
		}
	}
	for name := range s.InstallFiles {
		if !safeRel(name) {
			return fail("install file %q is not a relative path inside the project", name)
		}
	}
	for name := range s.Vars {
		if !varNameRE.MatchString(name) {
			return fail("variable name %q", name)
		}
	}
	s.hintREs = nil
	for _, h := range s.Hints {
		re, err := regexp.Compile(h.Match)
		if err != nil {
			return fail("hint %q: %v", h.Match, err)
		}
		s.hintREs = append(s.hintREs, re)
	}
	// Parse every template once, named by where it is used, so a typo fails at load.
	s.tmpl = template.New(s.Title).Funcs(funcs).Option("missingkey=zero")
	add := func(name, text string) error {
		if _, err := s.tmpl.New(name).Parse(text); err != nil {
			return fail("template %s: %v", name, err)
		}
		return nil
	}
	for k, v := range s.Env {
		if err := add("env:"+k, v); err != nil {
			return err
		}
	}
	for k, v := range s.Files {
		if err := add("files:"+k, v); err != nil {
			return err
		}
	}
	for k, v := range s.InstallFiles {
		if err := add("install_files:"+k, v); err != nil {
			return err
		}
	}
	for k, v := range s.RuntimeEnv {
		if err := add("runtime_env:"+k, v); err != nil {
			return err
		}
	}
	for k, v := range s.BuildEnv {
		if err := add("build_env:"+k, v); err != nil {
			return err
		}
	}
	for i, h := range s.Hints {
		if err := add(fmt.Sprintf("hint:%d", i), h.Message); err != nil {
			return err
		}
	}
	for step, cmds := range map[string][]Command{"resolve": s.Resolve, "install": s.Install} {
		for i, c := range cmds {
			if len(c.Args) == 0 {
				return fail("%s command %d has no args", step, i)
			}
			for j, a := range c.Args {
				if err := add(fmt.Sprintf("%s:%d:%d", step, i, j), a); err != nil {
					return err
				}
			}
			if err := add(fmt.Sprintf("%s:%d:network", step, i), c.Network); err != nil {
				return err
			}
		}
	}
	return nil
}

var varNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// safeRel reports whether name is a clean relative path that stays inside its directory.
func safeRel(name string) bool {
	return name != "" && !strings.HasPrefix(name, "/") && path.Clean(name) == name &&
		name != "." && name != ".." && !strings.HasPrefix(name, "../") && !strings.Contains(name, "\x00")
}

var funcs = template.FuncMap{
	"json": func(v any) (string, error) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return "", err
		}
		return strings.TrimSuffix(b.String(), "\n"), nil
	},
	// toml quotes a TOML basic string (JSON's string escapes are a subset of TOML's).
	"toml": func(s string) (string, error) {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s); err != nil {
			return "", err
		}
		return strings.TrimSuffix(b.String(), "\n"), nil
	},
	"bare": func(v string) bool { return v != "" && v[0] >= '0' && v[0] <= '9' },
}

// tmplData is what the templates of a Spec see.
type tmplData struct {
	Deps    []Dep
	DepsMap map[string]string
	Var     map[string]string
	Dir     string
	Final   string
	Cache   string
	Home    string
}

func (s *Spec) exec(name string, d *tmplData) (string, error) {
	var b strings.Builder
	if err := s.tmpl.ExecuteTemplate(&b, name, d); err != nil {
		return "", fmt.Errorf("deps: %s: template %s: %w", s.Title, name, err)
	}
	return b.String(), nil
}

// command expands one command: its arguments (empty ones dropped) and its network need.
func (s *Spec) command(step string, i int, d *tmplData) ([]string, Network, error) {
	c := (map[string][]Command{"resolve": s.Resolve, "install": s.Install})[step][i]
	var args []string
	for j := range c.Args {
		a, err := s.exec(fmt.Sprintf("%s:%d:%d", step, i, j), d)
		if err != nil {
			return nil, 0, err
		}
		if a != "" {
			args = append(args, a)
		}
	}
	n, err := s.exec(fmt.Sprintf("%s:%d:network", step, i), d)
	if err != nil {
		return nil, 0, err
	}
	switch strings.TrimSpace(n) {
	case "registry":
		return args, NetworkRegistry, nil
	case "none", "":
		return args, NetworkNone, nil
	default:
		return nil, 0, fmt.Errorf("deps: %s: %s command %d: network %q is neither registry nor none", s.Title, step, i, n)
	}
}

// renderMap expands a map of templates (files, env) under prefix.
func (s *Spec) renderMap(prefix string, m map[string]string, d *tmplData) (map[string]string, error) {
	out := make(map[string]string, len(m))
	for k := range m {
		v, err := s.exec(prefix+":"+k, d)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// hints returns the sentences of the hints whose pattern matches the installer's output.
func (s *Spec) hints(output string, d *tmplData) []string {
	var out []string
	for i, re := range s.hintREs {
		m := re.FindStringSubmatchIndex(output)
		if m == nil {
			continue
		}
		msg, err := s.exec(fmt.Sprintf("hint:%d", i), d)
		if err != nil {
			continue
		}
		msg = string(re.ExpandString(nil, msg, output, m))
		if !slices.Contains(out, msg) {
			out = append(out, msg)
		}
	}
	return out
}

// pathVars returns the values of the variables marked as directories the commands read.
func (s *Spec) pathVars(vars map[string]string) []string {
	var out []string
	for name, v := range s.Vars {
		if v.Path && vars[name] != "" {
			out = append(out, vars[name])
		}
	}
	slices.Sort(out)
	return out
}

// Validate checks a dependency set against the entry's name and version patterns and
// returns it sorted by name.
func (s *Spec) Validate(deps map[string]string) ([]Dep, error) {
	out := make([]Dep, 0, len(deps))
	for name, version := range deps {
		version = strings.TrimSpace(version)
		switch {
		case !printable(name) || !s.nameRE.MatchString(name):
			return nil, &InvalidError{Title: s.Title, Name: name, Version: version, Reason: "not a valid " + s.Title + " package name"}
		case !printable(version) || !s.versionRE.MatchString(version):
			return nil, &InvalidError{Title: s.Title, Name: name, Version: version, Reason: "not a valid version spec (a version or range from the configured package source; URLs, paths and git specs are not accepted)"}
		}
		out = append(out, Dep{Name: name, Version: version})
	}
	slices.SortFunc(out, func(a, b Dep) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func printable(s string) bool {
	if len(s) > 256 {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
