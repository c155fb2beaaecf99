// Package fault defines the platform's error kinds. Every layer wraps its errors with a
// Kind; exactly one place maps a Kind to an HTTP status (api) and one to retryability
// (activities), so transports never inspect driver or library errors themselves.
package fault

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies an error by what the caller can do about it.
type Kind int

// The kinds of error the platform distinguishes.
const (
	Internal         Kind = iota // a bug or an unexpected failure
	Invalid                      // bad input from the caller
	NotFound                     // the object does not exist (or belongs to someone else)
	Conflict                     // the object exists or is in the wrong state
	TooLarge                     // a body or field over its limit
	Unprocessable                // well-formed input that cannot be built (compile error)
	Unavailable                  // a dependency is down or unreachable; retrying may help
	Overloaded                   // a limit or queue is full; retry later
	Unauthorized                 // missing or bad credentials
	Timeout                      // the platform (not the handler) ran out of time
	RateLimited                  // the caller is over its rate or concurrency limit
	MethodNotAllowed             // the route exists, not with this HTTP method
	// TenantShare: the caller's tenant holds its share of a runtime's workers and its call
	// found none of its own free in time. Only that tenant waits: the runtime is not
	// overloaded, and a durable execution waits for its share instead of failing.
	TenantShare
)

var kindNames = [...]string{"internal", "invalid", "not_found", "conflict", "too_large",
	"unprocessable", "unavailable", "overloaded", "unauthorized", "timeout", "rate_limited",
	"method_not_allowed", "tenant_share"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is an error with a Kind and a message safe to show to the caller.
type Error struct {
	Kind   Kind
	Detail string // shown to the caller verbatim
	Err    error  // the cause, for logs only
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Detail + ": " + e.Err.Error()
	}
	return e.Detail
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an error of kind k whose detail is shown to callers.
func New(k Kind, format string, args ...any) error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k with a caller-safe detail and the underlying cause.
func Wrap(k Kind, cause error, format string, args ...any) error {
	return &Error{Kind: k, Detail: fmt.Sprintf(format, args...), Err: cause}
}

// KindOf returns the Kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return Internal
}

// Detail returns the caller-safe message of err, or a generic one for internal errors.
func Detail(err error) string {
	var fe *Error
	if errors.As(err, &fe) && fe.Kind != Internal {
		return fe.Detail
	}
	return "internal error"
}

// Is reports whether err carries kind k.
func Is(err error, k Kind) bool {
	var fe *Error
	return errors.As(err, &fe) && fe.Kind == k
}

// HTTPStatus is the one mapping of error kinds to HTTP status codes, used by every HTTP
// server of the platform (api, provider, runtime host).
func (k Kind) HTTPStatus() int {
	switch k {
	case Invalid:
		return http.StatusBadRequest
	case NotFound:
		return http.StatusNotFound
	case Conflict:
		return http.StatusConflict
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case Unprocessable:
		return http.StatusUnprocessableEntity
	case Unavailable, Overloaded:
		return http.StatusServiceUnavailable
	case Unauthorized:
		return http.StatusUnauthorized
	case Timeout:
		return http.StatusGatewayTimeout
	case RateLimited, TenantShare:
		return http.StatusTooManyRequests
	case MethodNotAllowed:
		return http.StatusMethodNotAllowed
	default:
		return http.StatusInternalServerError
	}
}
