package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/lambda-microservice/lambda/internal/core"
)

// handleFunctionStats answers GET /v1/stats/functions/{name}?window=1h&step=60s: the
// console's charts of one function (calls, errors, p50/p99 latency per step).
func (s *server) handleFunctionStats() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		if !core.NameRE.MatchString(name) {
			s.writeError(w, r, invalid("invalid function name %q", name))
			return
		}
		q := r.URL.Query()
		window, err := durationParam(q.Get("window"), time.Hour)
		if err != nil {
			s.writeError(w, r, invalid("window must be a duration such as 1h, got %q", q.Get("window")))
			return
		}
		step, err := durationParam(q.Get("step"), time.Minute)
		if err != nil {
			s.writeError(w, r, invalid("step must be a duration such as 60s, got %q", q.Get("step")))
			return
		}
		st, err := s.Core.FunctionStats(r.Context(), core.StatsRequest{Tenant: tenantOf(r), Function: name, Window: window, Step: step})
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, st)
	}
}

// durationParam parses a query duration: Go's syntax (90s, 1h) or whole seconds; empty
// is def.
func durationParam(v string, def time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(v)
}
