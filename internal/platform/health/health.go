// Package health answers the liveness and readiness probes of the platform's serving
// processes (the api, the worker): /healthz says the process runs, /readyz runs the
// process's dependency checks — at most once a second, so probes stay cheap.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Check is one readiness check; Required checks make /readyz fail, others degrade it.
type Check struct {
	Name     string
	Required bool
	Probe    func(ctx context.Context) error
}

// Report is the body of /readyz: status ready, degraded, unready (or starting, before the
// process has its checks), and each check's result when the process lists them.
type Report struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
	Error  string            `json:"error,omitempty"`
}

// Readiness runs a process's checks for /readyz.
type Readiness struct {
	itemize bool

	mu     sync.Mutex
	set    bool
	checks []Check
	at     time.Time
	status int
	report Report
}

// NewReadiness returns a readiness that is starting until Set gives it its checks. With
// itemize, /readyz lists every check's result; without, it names the failures only.
func NewReadiness(itemize bool) *Readiness { return &Readiness{itemize: itemize} }

// Set gives the readiness its checks (none: always ready).
func (rd *Readiness) Set(checks []Check) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	rd.set, rd.checks, rd.at = true, checks, time.Time{}
}

// Run runs the checks (or answers the last result, if less than a second old).
func (rd *Readiness) Run(ctx context.Context) (int, Report) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if !rd.set {
		return http.StatusServiceUnavailable, Report{Status: "starting"}
	}
	if time.Since(rd.at) < time.Second {
		return rd.status, rd.report
	}
	results := make(map[string]string, len(rd.checks))
	var failures []string
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
				failures = append(failures, c.Name+": "+err.Error())
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
	r := Report{Status: word}
	if rd.itemize {
		r.Checks = results
	} else {
		sort.Strings(failures)
		r.Error = strings.Join(failures, "; ")
	}
	rd.at, rd.status, rd.report = time.Now(), status, r
	return status, r
}

// Ready is the /readyz handler.
func (rd *Readiness) Ready() http.HandlerFunc {
	return rd.ReadyFor(func(*http.Request) bool { return true })
}

// ReadyFor is the /readyz handler that answers each check's details (its error) only to
// the requests details accepts (an operator); everyone else reads ok, degraded or down per
// check and no error text, which could name hosts, addresses or versions.
func (rd *Readiness) ReadyFor(details func(*http.Request) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		status, report := rd.Run(r.Context())
		if !details(r) {
			report = report.Summary()
		}
		write(w, status, report)
	}
}

// Summary is the report without details: each check's word (ok, degraded, down) only.
func (r Report) Summary() Report {
	out := Report{Status: r.Status}
	if r.Checks != nil {
		out.Checks = make(map[string]string, len(r.Checks))
		for name, result := range r.Checks {
			word, _, _ := strings.Cut(result, ":")
			out.Checks[name] = word
		}
	}
	return out
}

// Live is the /healthz handler: the process answers.
func Live() http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		write(w, http.StatusOK, Report{Status: "ok"})
	}
}

func write(w http.ResponseWriter, status int, r Report) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(r)
}
