package runtimehost

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
)

// NewServer returns the runtime host's HTTP handler (routes.go lists the routes).
func NewServer(h *Host, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, h, gatherer)
	return mux
}

var (
	contentTypeJSON = []string{"application/json"}
	bufPool         = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 8<<10)) }}
	requestPool     = sync.Pool{New: func() any { return new(Request) }}
	outcomePool     = sync.Pool{New: func() any { return new(Outcome) }}
)

// handleInvoke serves POST /: decode, run, encode. It records its own HTTP metrics so the
// hot path wraps no ResponseWriter.
func handleInvoke(h *Host) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if h.m.httpInFlight != nil {
			h.m.httpInFlight.Inc()
			defer h.m.httpInFlight.Dec()
		}
		if h.cfg.Auth != AuthNone && !platformsecret.Equal(r.Header.Get(platformsecret.RuntimeHeader), h.cfg.secret) {
			// Nothing is read, built or run for a caller without the deployment's secret.
			w.Header()["Content-Type"] = contentTypeJSON
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"type":"Unauthorized","message":"this runtime host runs calls of the platform only (`+platformsecret.RuntimeHeader+`)"}}`)
			h.m.invokeServed(http.StatusUnauthorized, time.Since(start).Seconds())
			return
		}
		buf := bufPool.Get().(*bytes.Buffer)
		buf.Reset()
		req := requestPool.Get().(*Request)
		out := outcomePool.Get().(*Outcome)
		code := h.invokeHTTP(r, buf, req, out)
		w.Header()["Content-Type"] = contentTypeJSON
		w.Header()["Content-Length"] = []string{strconv.Itoa(buf.Len())}
		w.WriteHeader(code)
		_, _ = w.Write(buf.Bytes())
		h.Done(out)
		timer := out.timer
		*out = Outcome{timer: timer}
		outcomePool.Put(out)
		req.reset()
		requestPool.Put(req)
		if buf.Cap() <= 1<<20 {
			bufPool.Put(buf)
		}
		h.m.invokeServed(code, time.Since(start).Seconds())
	}
}

// invokeHTTP decodes, runs and encodes one invoke into buf and returns the status code.
func (h *Host) invokeHTTP(r *http.Request, buf *bytes.Buffer, req *Request, out *Outcome) int {
	if _, err := buf.ReadFrom(io.LimitReader(r.Body, h.cfg.MaxBody+1)); err != nil {
		return h.writeError(buf, fault.Wrap(fault.Invalid, err, "cannot read the request body"))
	}
	if int64(buf.Len()) > h.cfg.MaxBody {
		return h.writeError(buf, fault.New(fault.TooLarge, "request body exceeds %d bytes", h.cfg.MaxBody))
	}
	if err := json.Unmarshal(buf.Bytes(), req); err != nil {
		return h.writeError(buf, fault.Wrap(fault.Invalid, err, "malformed request: %s", err.Error()))
	}
	if req.Resolve != nil {
		return h.resolveHTTP(r, buf, req.Resolve)
	}
	if err := h.InvokeContext(r.Context(), req, out); err != nil {
		return h.writeError(buf, err)
	}
	buf.Reset()
	b := appendOutcome(buf.AvailableBuffer(), out)
	buf.Write(b)
	return http.StatusOK
}

// appendOutcome encodes the 200 response of an execution.
func appendOutcome(b []byte, o *Outcome) []byte {
	b = append(b, `{"status":`...)
	b = appendString(b, o.Status)
	b = append(b, `,"result":`...)
	b = appendRawOrNull(b, o.Result)
	b = append(b, `,"error":`...)
	b = appendRawOrNull(b, o.Error)
	b = append(b, `,"stdout":`...)
	b = appendString(b, o.Stdout.data)
	b = append(b, `,"stderr":`...)
	b = appendString(b, o.Stderr.data)
	b = append(b, `,"stdout_truncated":`...)
	b = appendBool(b, o.Stdout.truncated)
	b = append(b, `,"stderr_truncated":`...)
	b = appendBool(b, o.Stderr.truncated)
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, float64(o.Duration.Microseconds())/1000, 'f', -1, 64)
	b = append(b, `,"cold":`...)
	b = appendBool(b, o.Cold)
	return append(b, '}')
}

// httpError is the one mapping from an error to the host's HTTP status and error type.
func httpError(err error) (int, string) {
	switch fault.KindOf(err) {
	case fault.Invalid:
		return http.StatusBadRequest, "BadRequest"
	case fault.TooLarge:
		return http.StatusRequestEntityTooLarge, "TooLarge"
	case fault.NotFound:
		return http.StatusPreconditionRequired, "SourceRequired"
	case fault.Unprocessable:
		return http.StatusUnprocessableEntity, "CompileError"
	case fault.Overloaded:
		return http.StatusServiceUnavailable, "Overloaded"
	case fault.TenantShare:
		return http.StatusTooManyRequests, "TenantShare"
	case fault.Unavailable:
		return http.StatusServiceUnavailable, "Unavailable"
	}
	return http.StatusInternalServerError, "InternalError"
}

func (h *Host) writeError(buf *bytes.Buffer, err error) int {
	code, typ := httpError(err)
	msg := fault.Detail(err)
	if code == http.StatusInternalServerError {
		h.log.Error("invoke failed", logging.Err(err))
	} else if code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests {
		h.log.Warn("invoke refused", logging.Err(err))
	}
	buf.Reset()
	b := append(buf.AvailableBuffer(), `{"error":{"type":`...)
	b = appendString(b, typ)
	b = append(b, `,"message":`...)
	b = appendString(b, msg)
	b = append(b, "}}"...)
	buf.Write(b)
	return code
}

func handleHealth() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = contentTypeJSON
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	}
}

func handleReady(h *Host) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = contentTypeJSON
		if !h.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			b := append([]byte(`{"status":"starting","runtime":`), appendString(nil, h.rt.Title)...)
			if p := h.Problem(); p != "" {
				b = append(append(b[:0], `{"status":"failed","runtime":`...), appendString(nil, h.rt.Title)...)
				b = appendString(append(b, `,"problem":`...), p)
			}
			if h.sandboxDoc != nil {
				b = append(append(b, `,"sandbox":`...), h.sandboxDoc...)
			}
			_, _ = w.Write(append(b, '}'))
			return
		}
		b := append([]byte(`{"status":"ready","runtime":`), appendString(nil, h.rt.Title)...)
		// The pool's load, for the local provider's autoscaling.
		busy, queued, workers := h.pool.load()
		b = append(b, `,"load":{"busy":`...)
		b = appendInt(b, int64(busy))
		b = append(b, `,"queued":`...)
		b = appendInt(b, int64(queued))
		b = append(b, `,"workers":`...)
		b = appendInt(b, int64(workers))
		b = append(b, '}')
		if h.sandboxDoc != nil {
			b = append(append(b, `,"sandbox":`...), h.sandboxDoc...)
		}
		_, _ = w.Write(append(b, '}'))
	}
}

// instrument records HTTP metrics for the routes other than invoke.
func instrument(h *Host, route string, next http.Handler) http.Handler {
	if h.m.httpRequests == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		method := metrics.Method(r.Method)
		h.m.httpRequests.WithLabelValues(route, method, strconv.Itoa(rec.code)).Inc()
		h.m.httpDuration.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}
