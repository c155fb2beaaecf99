package api

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// readiness runs the checks at most once per second, so probes stay cheap.
type readiness struct {
	checks []Check
	mu     sync.Mutex
	at     time.Time
	status int
	body   map[string]any
}

func newReadiness(checks []Check) *readiness { return &readiness{checks: checks} }

func (rd *readiness) run(ctx context.Context) (int, map[string]any) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if time.Since(rd.at) < time.Second && rd.body != nil {
		return rd.status, rd.body
	}
	results := make(map[string]string, len(rd.checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	failed, degraded := false, false
	for _, c := range rd.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			err := c.Probe(cctx)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				results[c.Name] = "ok"
			case c.Required:
				results[c.Name] = "down: " + err.Error()
				failed = true
			default:
				results[c.Name] = "degraded: " + err.Error()
				degraded = true
			}
		}()
	}
	wg.Wait()
	status, word := http.StatusOK, "ready"
	if failed {
		status, word = http.StatusServiceUnavailable, "unready"
	} else if degraded {
		word = "degraded"
	}
	rd.at, rd.status, rd.body = time.Now(), status, map[string]any{"status": word, "checks": results}
	return status, rd.body
}

func (s *server) handleHealthz() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		encode(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

func (s *server) handleReadyz() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, body := s.ready.run(r.Context())
		encode(w, status, body)
	}
}
