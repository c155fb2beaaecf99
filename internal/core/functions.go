package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

var (
	// NameRE is what a function name must match.
	NameRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// FunctionSpec is a registration or a new version as a caller asks for it. Settings left
// nil take their defaults (a registration) or keep their current values (an update).
type FunctionSpec struct {
	Tenant string
	Name   string
	// Language is a runtime title or alias; empty on an update keeps the function's.
	Language  string
	Source    *string
	TimeoutMS *int
	MemoryMB  *int
	CacheTTLS *int
	Env       map[string]string
	// Dependencies are third-party packages (package → version spec) from the language's
	// configured source, resolved and locked at registration. Nil on an update keeps the
	// function's (and its lock); an empty map drops them.
	Dependencies map[string]string
}

// RegisterFunction registers a new function as version 1 once its script builds on its
// runtime; Conflict when the name exists.
func (s *Service) RegisterFunction(ctx context.Context, spec FunctionSpec) (store.Function, error) {
	v, err := s.newVersion(spec)
	if err != nil {
		return store.Function{}, err
	}
	if _, err := s.store.GetFunction(ctx, v.Tenant, v.Name); err == nil {
		return store.Function{}, fault.New(fault.Conflict, "function %q already exists; PUT /v1/functions/%s adds a version", v.Name, v.Name)
	} else if !fault.Is(err, fault.NotFound) {
		return store.Function{}, err
	}
	v.Version = 1
	if err := s.lockDeps(ctx, &v, nil); err != nil {
		return store.Function{}, err
	}
	if err := s.build(ctx, v); err != nil {
		return store.Function{}, err
	}
	f, err := s.store.CreateFunction(ctx, v)
	if err != nil {
		return store.Function{}, err
	}
	s.forget(v.Tenant, v.Name)
	return f, nil
}

// versionRaces bounds how often UpdateFunction starts over when concurrent updates of
// the same function take the version number it built for. Each restart means another
// update got its version, so n concurrent updates need at most n-1.
const versionRaces = 16

// UpdateFunction adds a version (created=true) unless the latest version has the same
// source and settings, which it returns instead. A script that changed, or runs with
// another memory size or environment, is built first, for the version number it will
// get: the store assigns exactly that number or reports that another update took it, and
// then the update starts over from the new latest version.
func (s *Service) UpdateFunction(ctx context.Context, spec FunctionSpec) (store.Function, bool, error) {
	var resolved store.Version
	for try := 1; ; try++ {
		cur, err := s.store.GetFunction(ctx, spec.Tenant, spec.Name)
		if err != nil {
			return store.Function{}, false, err
		}
		merged := spec
		if merged.Language == "" {
			merged.Language = cur.Language
		}
		if merged.TimeoutMS == nil {
			merged.TimeoutMS = &cur.TimeoutMS
		}
		if merged.MemoryMB == nil {
			merged.MemoryMB = &cur.MemoryMB
		}
		if merged.CacheTTLS == nil {
			merged.CacheTTLS = &cur.CacheTTLS
		}
		if merged.Env == nil {
			merged.Env = cur.Env
		}
		if merged.Dependencies == nil {
			merged.Dependencies = cur.Dependencies
		}
		v, err := s.newVersion(merged)
		if err != nil {
			return store.Function{}, false, err
		}
		if v.Language != cur.Language {
			return store.Function{}, false, fault.New(fault.Invalid,
				"function %q is %s; a new version cannot change its language to %s", v.Name, cur.Language, v.Language)
		}
		v.Version = cur.Version.Version + 1
		prev := &cur.Version
		if resolved.Lock != nil && maps.Equal(resolved.Dependencies, v.Dependencies) {
			prev = &resolved // resolved on an earlier try: not again
		}
		if err := s.lockDeps(ctx, &v, prev); err != nil {
			return store.Function{}, false, err
		}
		resolved = v
		if v.Build() != cur.Build() || v.MemoryMB != cur.MemoryMB || !maps.Equal(v.Env, cur.Env) {
			if err := s.build(ctx, v); err != nil {
				return store.Function{}, false, err
			}
		}
		f, created, err := s.store.PutVersion(ctx, v)
		if errors.Is(err, store.ErrLatestMoved) && try < versionRaces {
			continue
		}
		if err != nil {
			return store.Function{}, false, err
		}
		s.forget(v.Tenant, v.Name)
		return f, created, nil
	}
}

// DeleteFunction deletes a function and its versions; its executions stay.
func (s *Service) DeleteFunction(ctx context.Context, tenant, name string) error {
	if err := s.store.DeleteFunction(ctx, tenant, name); err != nil {
		return err
	}
	s.forget(tenant, name)
	return nil
}

// newVersion validates spec into a version to store (without its number).
func (s *Service) newVersion(spec FunctionSpec) (store.Version, error) {
	lim := s.cfg.Functions
	if !NameRE.MatchString(spec.Name) {
		return store.Version{}, invalid("invalid function name %q: want ^[a-z][a-z0-9-]{0,62}$", spec.Name)
	}
	if spec.Language == "" {
		return store.Version{}, invalid("field \"language\" is required; supported: %s", strings.Join(s.reg.Titles(), ", "))
	}
	rt, err := s.Runtime(spec.Language)
	if err != nil {
		return store.Version{}, err
	}
	if spec.Source == nil || strings.TrimSpace(*spec.Source) == "" {
		return store.Version{}, invalid("field \"source\" is required and must not be empty")
	}
	if len(*spec.Source) > lim.MaxSourceBytes {
		return store.Version{}, fault.New(fault.TooLarge, "source is %d bytes; the limit is %d", len(*spec.Source), lim.MaxSourceBytes)
	}
	v := store.Version{
		Tenant: spec.Tenant, Name: spec.Name, Language: rt.Title, Source: *spec.Source,
		Settings: store.Settings{TimeoutMS: lim.DefaultTimeoutMS, MemoryMB: lim.DefaultMemoryMB, Env: spec.Env},
	}
	if err := s.validateDeps(rt, spec.Dependencies); err != nil {
		return store.Version{}, err
	}
	if len(spec.Dependencies) > 0 {
		v.Dependencies = spec.Dependencies
	}
	if spec.TimeoutMS != nil {
		maxMS := int(lim.MaxTimeout / time.Millisecond)
		if *spec.TimeoutMS < 1 || *spec.TimeoutMS > maxMS {
			return store.Version{}, invalid("timeout_ms must be between 1 and %d", maxMS)
		}
		v.TimeoutMS = *spec.TimeoutMS
	}
	if spec.MemoryMB != nil {
		if *spec.MemoryMB < 16 || *spec.MemoryMB > 2048 {
			return store.Version{}, invalid("memory_mb must be between 16 and 2048")
		}
		v.MemoryMB = *spec.MemoryMB
	}
	if spec.CacheTTLS != nil {
		if *spec.CacheTTLS < 0 || *spec.CacheTTLS > 86400 {
			return store.Version{}, invalid("cache_ttl_s must be between 0 and 86400")
		}
		v.CacheTTLS = *spec.CacheTTLS
	}
	size := 0
	for k, val := range spec.Env {
		if !envKeyRE.MatchString(k) || strings.HasPrefix(strings.ToUpper(k), "LAMBDA_") {
			return store.Version{}, invalid("invalid env name %q (letters, digits, _; not LAMBDA_*)", k)
		}
		size += len(k) + len(val)
	}
	if size > 4096 {
		return store.Version{}, invalid("env is %d bytes; the limit is 4096", size)
	}
	seal(&v)
	return v, nil
}

// seal sets a version's two hashes from everything it is made of. It is the one place
// they are computed: an input added to versions (dependencies, say) goes into buildHash
// when the runtime host must build it, and into versionHash in any case.
func seal(v *store.Version) {
	v.BuildSHA256 = buildHash(*v)
	v.SHA256 = versionHash(*v)
}

// buildHash is what a runtime host builds and caches a version by, and checks its source
// and lock against: the hex sha256 of the source, or of the source and the lock's hash
// (deps.BuildHash).
func buildHash(v store.Version) string {
	return deps.BuildHash(v.Source, v.Lock)
}

// versionHash is a version's sha256: everything that may change what it answers for an
// event — its build, its language and every setting, env included (keys in order). The
// result cache is keyed on it, so a version that only changed its env misses the cache.
// Each field is written with its length, so no two versions share an encoding.
func versionHash(v store.Version) string {
	h := sha256.New()
	field := func(name, value string) {
		fmt.Fprintf(h, "%s:%d:%s\n", name, len(value), value)
	}
	field("lambda-version", "2")
	field("build", buildHash(v))
	field("language", v.Language)
	field("timeout_ms", strconv.Itoa(v.TimeoutMS))
	field("memory_mb", strconv.Itoa(v.MemoryMB))
	field("cache_ttl_s", strconv.Itoa(v.CacheTTLS))
	for _, k := range slices.Sorted(maps.Keys(v.Env)) {
		field("env", k)
		field("=", v.Env[k])
	}
	// The lock is in the build; the requested specs too, as the version shows them.
	for _, k := range slices.Sorted(maps.Keys(v.Dependencies)) {
		field("dependency", k)
		field("=", v.Dependencies[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// build checks that a script builds on its runtime (syntax check, Rust compile) before it
// is registered; a build failure is Unprocessable with the compiler's diagnostics. The host
// keeps the worker it initialised warm for exactly this (tenant, function, version, memory,
// env), so v.Version must be the version the store will assign.
func (s *Service) build(ctx context.Context, v store.Version) error {
	rt, err := s.Runtime(v.Language)
	if err != nil {
		return err
	}
	_, err = s.runner.Run(ctx, rt.Function, faas.Call{
		ExecutionID: "build-" + v.SHA256[:12], Tenant: v.Tenant, Function: v.Name, Version: v.Version, SHA256: v.Build(),
		Source: v.Source, Lock: v.Lock, Event: json.RawMessage("null"), TimeoutMS: v.TimeoutMS, MemoryMB: v.MemoryMB,
		Env: v.Env, BuildOnly: true,
	})
	return err
}

func invalid(format string, args ...any) error {
	return fault.New(fault.Invalid, format, args...)
}
