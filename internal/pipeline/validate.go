package pipeline

import "fmt"

// Catalog is what Validate needs from the platform; the caller implements it (a catalog
// backed by a database captures its request's context and tenant).
type Catalog interface {
	// Function describes the function called name; version > 0 asks whether that pinned
	// version exists. A function that does not exist is FunctionInfo{} with a nil error;
	// an error is the catalog failing, and Validate returns it as is.
	Function(name string, version int) (FunctionInfo, error)
	// Limits are the operator's limits; zero fields take the defaults.
	Limits() Limits
}

// FunctionInfo is one catalog answer.
type FunctionInfo struct {
	Exists   bool
	Language string // not used by Validate; for the caller's bookkeeping
	Latest   int    // its latest version
	Pinned   bool   // the version asked for exists (always false when none was asked for)
}

// Limits are the operator-configurable bounds of a definition.
type Limits struct {
	MaxSteps           int // every step, nested ones included (default 500)
	MaxDepth           int // nesting of step lists: top level 1, a parallel's branches 2... (default 4)
	MaxStepTimeoutMS   int // a function step's timeout_ms (default 15 min)
	MaxRunTimeoutMS    int // the pipeline's timeout_ms (default 30 days)
	MaxDefinitionBytes int // canonical definition size (default 256 KiB)
}

// Default limits.
const (
	DefaultMaxSteps           = 500
	DefaultMaxDepth           = 4
	DefaultMaxStepTimeoutMS   = 15 * 60 * 1000
	DefaultMaxRunTimeoutMS    = 30 * 24 * 3600 * 1000
	DefaultMaxDefinitionBytes = 256 << 10
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxSteps, DefaultMaxSteps)
	def(&l.MaxDepth, DefaultMaxDepth)
	def(&l.MaxStepTimeoutMS, DefaultMaxStepTimeoutMS)
	def(&l.MaxRunTimeoutMS, DefaultMaxRunTimeoutMS)
	def(&l.MaxDefinitionBytes, DefaultMaxDefinitionBytes)
	return l
}

// Validate checks a definition for registration: everything Compile checks, plus the
// name, the operator's limits and the catalog (every function exists, every pinned
// version exists). It returns nil, a *ValidationError listing every problem (each naming
// the step and field), or the catalog's error.
func Validate(d *Definition, cat Catalog) error {
	limits := cat.Limits().withDefaults()
	k, err := newCompiler(d, &limits)
	if err != nil {
		return err
	}
	p := k.p
	switch {
	case d.Name == "":
		p.add("", "name", "name is required")
	case !nameRe.MatchString(d.Name):
		p.add("", "name", "name %q must match %s", d.Name, nameRe.String())
	}
	if d.TimeoutMS > limits.MaxRunTimeoutMS {
		p.add("", "timeout_ms", "timeout_ms %d is above the limit of %d", d.TimeoutMS, limits.MaxRunTimeoutMS)
	}
	if canon, err := d.Canonical(); err != nil {
		p.add("", "", "the definition cannot be encoded: %v", err)
	} else if len(canon) > limits.MaxDefinitionBytes {
		p.add("", "", "the definition is %d bytes long; the limit is %d", len(canon), limits.MaxDefinitionBytes)
	}
	k.run()
	if n := len(k.c.all); n > limits.MaxSteps {
		p.add("", "steps", "the pipeline has %d steps; the limit is %d", n, limits.MaxSteps)
	}
	type key struct {
		name    string
		version int
	}
	seen := map[key]FunctionInfo{}
	for _, f := range k.funcs {
		kk := key{f.name, f.version}
		info, ok := seen[kk]
		if !ok {
			if info, err = cat.Function(f.name, f.version); err != nil {
				return fmt.Errorf("validate pipeline: look up function %q: %w", f.name, err)
			}
			seen[kk] = info
		}
		switch {
		case !info.Exists:
			p.add(f.loc, f.prefix+"function", "unknown function %q", f.name)
		case f.version > 0 && !info.Pinned:
			p.add(f.loc, f.prefix+"version", "function %q has no version %d (its latest is %d)", f.name, f.version, info.Latest)
		}
	}
	return p.err()
}
