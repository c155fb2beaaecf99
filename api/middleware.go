package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
)

var (
	idPrefix  = newIDPrefix()
	idCounter atomic.Uint64
)

func newIDPrefix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func validRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// requestID gives every response an X-Request-Id: the caller's (if sane) or a new one.
func (s *server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !validRequestID(id) {
			id = idPrefix + "-" + strconv.FormatUint(idCounter.Add(1), 36)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r)
	})
}

// recoverer turns a handler panic into a logged 500 problem.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.writeError(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// unmatchedKey marks, in a request's context, where notFound and methodNotAllowed record
// that no route matched (a sub-router's catch-all pattern, such as /v1/*, is no route).
type unmatchedKey struct{}

// instrument records request metrics by route pattern and method — label values from
// the routes and the known methods only — and logs every request at debug level.
func (s *server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.Metrics.InFlight.Inc()
		sw := &statusWriter{ResponseWriter: w}
		unmatched := false
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), unmatchedKey{}, &unmatched)))
		s.Metrics.InFlight.Dec()
		elapsed := time.Since(start)
		route := chi.RouteContext(r.Context()).RoutePattern()
		if route == "" || unmatched {
			route = "unmatched"
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		method := metrics.Method(r.Method)
		s.Metrics.Requests.WithLabelValues(route, method, strconv.Itoa(sw.status)).Inc()
		s.Metrics.Duration.WithLabelValues(route, method).Observe(elapsed.Seconds())
		if ce := s.Log.Check(zap.DebugLevel, "request"); ce != nil {
			ce.Write(zap.String("http.request.method", r.Method), zap.String("url.path", r.URL.Path),
				zap.Int("http.response.status_code", sw.status), zap.Duration("event.duration", elapsed),
				zap.String(logging.FieldRequestID, w.Header().Get("X-Request-Id")))
		}
	})
}

func (s *server) notFound(w http.ResponseWriter, r *http.Request) {
	if unmatched, ok := r.Context().Value(unmatchedKey{}).(*bool); ok {
		*unmatched = true
	}
	s.writeError(w, r, fault.New(fault.NotFound, "no route %s %s", r.Method, r.URL.Path))
}

func (s *server) methodNotAllowed(w http.ResponseWriter, r *http.Request) {
	// No route has this method (the router may not even have found the path's route).
	if unmatched, ok := r.Context().Value(unmatchedKey{}).(*bool); ok {
		*unmatched = true
	}
	s.writeError(w, r, fault.New(fault.MethodNotAllowed, "%s is not allowed on %s", r.Method, r.URL.Path))
}
