package deps

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// InstallerError is a resolve or install command that failed: a package that does not
// exist, a version no release matches, a requirement without a wheel. Output is the
// installer's own message (its stderr, or its stdout when stderr is empty), with the
// engine's temporary paths removed. The registration path answers 422 with it.
type InstallerError struct {
	Title    string   // the language
	Step     string   // "resolve" or "install"
	Command  string   // the program that failed (npm, /usr/bin/python3, cargo)
	ExitCode int      // -1 when it was killed
	Output   string   // the installer's message
	Hints    []string // the entry's explanations whose pattern matched the output
}

func (e *InstallerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s dependencies: %s failed (%s exited %d)", e.Title, e.Step, e.Command, e.ExitCode)
	for _, h := range e.Hints {
		b.WriteString(": ")
		b.WriteString(h)
	}
	if e.Output != "" {
		b.WriteString("\n")
		b.WriteString(e.Output)
	}
	return b.String()
}

// HTTPStatus is 422 Unprocessable Entity.
func (e *InstallerError) HTTPStatus() int { return http.StatusUnprocessableEntity }

// Limit names what a LimitError exceeded.
type Limit string

const (
	LimitDependencies Limit = "dependencies"   // requested packages (Config.MaxDeps)
	LimitPackages     Limit = "packages"       // resolved packages, transitive included (Config.MaxPackages)
	LimitSize         Limit = "installed_size" // bytes of an install or a resolve's downloads (Config.MaxInstallBytes)
	LimitResolveTime  Limit = "resolve_time"   // Config.ResolveTimeout
	LimitInstallTime  Limit = "install_time"   // Config.InstallTimeout
)

// LimitError is a dependency set refused by a limit. HTTPStatus is 422 (413 for the size).
type LimitError struct {
	Title string
	Limit Limit
	Max   int64 // the limit (a count, bytes, or milliseconds)
	Got   int64 // what was found when it was refused (0 for times: the step was stopped)
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case LimitDependencies:
		return fmt.Sprintf("%s dependencies: %d packages requested, at most %d are allowed (LAMBDA_MAX_DEPS)", e.Title, e.Got, e.Max)
	case LimitPackages:
		return fmt.Sprintf("%s dependencies: the set resolves to %d packages, at most %d are allowed (LAMBDA_MAX_DEP_PACKAGES)", e.Title, e.Got, e.Max)
	case LimitSize:
		return fmt.Sprintf("%s dependencies: the packages take more than %d MiB, the limit (LAMBDA_MAX_DEPS_MB)", e.Title, e.Max>>20)
	case LimitResolveTime:
		return fmt.Sprintf("%s dependencies: resolving took longer than %v, the limit (LAMBDA_DEPS_RESOLVE_TIMEOUT)", e.Title, time.Duration(e.Max)*time.Millisecond)
	case LimitInstallTime:
		return fmt.Sprintf("%s dependencies: installing took longer than %v, the limit (LAMBDA_DEPS_INSTALL_TIMEOUT)", e.Title, time.Duration(e.Max)*time.Millisecond)
	}
	return fmt.Sprintf("%s dependencies: limit %s exceeded", e.Title, e.Limit)
}

// HTTPStatus is 413 for the installed size, 422 otherwise.
func (e *LimitError) HTTPStatus() int {
	if e.Limit == LimitSize {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusUnprocessableEntity
}

// InvalidError is a package name or version spec the language's entry does not accept
// (a URL, a path, a git spec, an option smuggled into a requirements line). HTTPStatus 400.
type InvalidError struct {
	Title, Name, Version, Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("%s dependencies: %q: %q: %s", e.Title, e.Name, e.Version, e.Reason)
}

// HTTPStatus is 400 Bad Request.
func (e *InvalidError) HTTPStatus() int { return http.StatusBadRequest }

// Fault translates an error of this package into the platform's fault kinds: a name or
// spec the language refuses is Invalid (400), the installed size TooLarge (413), an
// installer's refusal (no such package or version, no wheel) and the other limits
// Unprocessable (422) with the installer's message. An error that already is a fault, or
// a cancellation, is returned as it is.
func Fault(err error) error {
	var inv *InvalidError
	var lim *LimitError
	var inst *InstallerError
	var f *fault.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inv):
		return fault.Wrap(fault.Invalid, err, "%s", err.Error())
	case errors.As(err, &lim) && lim.Limit == LimitSize:
		return fault.Wrap(fault.TooLarge, err, "%s", err.Error())
	case errors.As(err, &lim), errors.As(err, &inst):
		return fault.Wrap(fault.Unprocessable, err, "%s", err.Error())
	case errors.As(err, &f), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	}
	return fault.Wrap(fault.Internal, err, "dependencies could not be resolved")
}
