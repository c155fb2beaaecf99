package core

import (
	"context"
	"errors"
	"maps"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/runtimes"
)

// Resolver resolves a version's requested dependencies into a lock (*deps.Engine).
type Resolver interface {
	Resolve(ctx context.Context, spec *deps.Spec, requested map[string]string) (*deps.Lock, error)
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
		return depsFault(err)
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
			lock, err := s.deps.Resolve(ctx, rt.Deps, v.Dependencies)
			if err != nil {
				return depsFault(err)
			}
			v.SetLock(lock)
		}
	}
	seal(v)
	return nil
}

// depsFault translates an error of package deps into the platform's fault kinds: a name
// or spec the language refuses is Invalid (400), an installer's refusal (no such package
// or version, no wheel) and a limit are Unprocessable (422) with the installer's message,
// the installed size TooLarge (413).
func depsFault(err error) error {
	var inv *deps.InvalidError
	var lim *deps.LimitError
	var inst *deps.InstallerError
	switch {
	case errors.As(err, &inv):
		return fault.Wrap(fault.Invalid, err, "%s", err.Error())
	case errors.As(err, &lim) && lim.Limit == deps.LimitSize:
		return fault.Wrap(fault.TooLarge, err, "%s", err.Error())
	case errors.As(err, &lim), errors.As(err, &inst):
		return fault.Wrap(fault.Unprocessable, err, "%s", err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fault.Wrap(fault.Internal, err, "dependencies could not be resolved")
}
