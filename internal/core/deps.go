package core

import (
	"context"
	"maps"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/runtimes"
)

// Resolver resolves a version's requested dependencies into a lock where the language's
// toolchain is: the runtime function fn of the language (*faas.Client: its runtime host
// resolves with its own npm / pip / cargo and package sources). Errors are faults.
type Resolver interface {
	ResolveDeps(ctx context.Context, fn string, requested map[string]string) (*deps.Lock, error)
}

// validateDeps checks requested dependencies against the language's entry (names, specs):
// a language without a `dependencies:` entry takes none.
func (s *Service) validateDeps(rt *runtimes.Runtime, requested map[string]string) error {
	if len(requested) == 0 {
		return nil
	}
	if rt.Deps == nil {
		return invalid("%s functions take no \"dependencies\" (the runtime registry entry declares no installer)", rt.Title)
	}
	if s.deps == nil {
		return invalid("\"dependencies\" are not enabled on this platform")
	}
	if _, err := rt.Deps.Validate(requested); err != nil {
		return deps.Fault(err)
	}
	return nil
}

// lockDeps resolves v's dependencies into its lock and reseals it; prev, when it asked for
// the same dependencies, gives its lock instead (an update keeps exactly the packages the
// function runs with unless it asks for others).
func (s *Service) lockDeps(ctx context.Context, v *store.Version, prev *store.Version) error {
	v.SetLock(nil)
	if len(v.Dependencies) > 0 {
		if prev != nil && prev.Lock != nil && maps.Equal(prev.Dependencies, v.Dependencies) {
			v.SetLock(prev.Lock)
		} else {
			rt, err := s.Runtime(v.Language)
			if err != nil {
				return err
			}
			if err := s.validateDeps(rt, v.Dependencies); err != nil {
				return err
			}
			lock, err := s.deps.ResolveDeps(ctx, rt.Function, v.Dependencies)
			if err != nil {
				return deps.Fault(err)
			}
			if err := lock.Verify(rt.Deps); err != nil {
				return fault.Wrap(fault.Unavailable, err, "runtime %s answered a lock that does not fit its entry", rt.Function)
			}
			v.SetLock(lock)
		}
	}
	seal(v)
	return nil
}
