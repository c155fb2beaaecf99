package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/store"
)

// runStatus is the HTTP status of a run answered to its POST: a finished sync run is 200
// (succeeded) or 500; anything else goes on durably, 202.
func runStatus(r store.Run) int {
	switch {
	case r.Mode != core.ModeSync || !store.RunFinished(r.Status):
		return http.StatusAccepted
	case r.Status == store.StatusSucceeded:
		return http.StatusOK
	default:
		return http.StatusInternalServerError
	}
}

func (s *server) handleStartRun() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := core.RunRequest{Tenant: tenantOf(r), Pipeline: chi.URLParam(r, "name"),
			IdempotencyKey: r.Header.Get("Idempotency-Key"), CallbackURL: r.Header.Get("X-Callback-Url"),
			Async: preferAsync(r)}
		if len(req.IdempotencyKey) > 255 {
			s.writeError(w, r, invalid("Idempotency-Key is longer than 255 characters"))
			return
		}
		if q := r.URL.Query().Get("version"); q != "" {
			n, err := strconv.Atoi(q)
			if err != nil || n < 1 {
				s.writeError(w, r, invalid("version must be a positive integer, got %q", q))
				return
			}
			req.Version = n
		}
		input, err := readEvent(w, r, s.Config.MaxEventBytes)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		req.Input = input
		run, replayed, err := s.Core.StartRun(r.Context(), req)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		status := runStatus(run)
		if status == http.StatusAccepted {
			w.Header().Set("Location", "/v1/runs/"+run.ID)
			if req.Async {
				w.Header().Set("Preference-Applied", "respond-async")
			}
		}
		encode(w, status, run)
	}
}

// parseWait reads the ?wait= of a long-poll, bounded by the API's MaxWait.
func (s *server) parseWait(r *http.Request) (time.Duration, error) {
	q := r.URL.Query().Get("wait")
	if q == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(q)
	if err != nil {
		if n, nerr := strconv.Atoi(q); nerr == nil {
			d, err = time.Duration(n)*time.Second, nil
		}
	}
	if err != nil || d < 0 {
		return 0, invalid("wait must be a duration such as 30s, got %q", q)
	}
	return min(d, s.Config.MaxWait), nil
}

func (s *server) handleGetRun() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		wait, err := s.parseWait(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		deadline := time.Now().Add(wait)
		var finished <-chan struct{}
		if u, err := uuid.Parse(id); err == nil && wait > 0 && s.Finishes != nil {
			// Subscribed before the first read, so no finish is missed (the runs trigger
			// notifies the executions' channel with the run's id).
			ch, unsubscribe := s.Finishes.Subscribe(u.String())
			defer unsubscribe()
			finished = ch
		}
		poll := 20 * time.Millisecond
		// While it waits, a long-poll reads only the run's status; the whole run (its
		// steps, schedule and callback: one round trip) once it has ended, or at the deadline.
		woken := false
		for {
			if wait > 0 && !woken && time.Now().Before(deadline) {
				status, err := s.Core.RunStatus(r.Context(), tenantOf(r), id)
				if err != nil {
					s.writeError(w, r, err)
					return
				}
				if !store.RunFinished(status) {
					woken = s.awaitRun(r, finished, &poll, deadline)
					if r.Context().Err() != nil {
						return
					}
					continue
				}
			}
			woken = false
			run, err := s.Core.GetRunView(r.Context(), tenantOf(r), id)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if store.RunFinished(run.Status) || !time.Now().Before(deadline) {
				// A run in flight shows its workflow's live steps (bounded; a final run
				// needs no query).
				encode(w, http.StatusOK, s.Core.WithLiveSteps(r.Context(), run))
				return
			}
			woken = s.awaitRun(r, finished, &poll, deadline)
			if r.Context().Err() != nil {
				return
			}
		}
	}
}

// awaitRun waits for a run's finish notification (finished), else the next poll (poll
// doubles up to 250 ms; a long fallback while the finish feed listens) or the deadline.
// It reports whether the notification came.
func (s *server) awaitRun(r *http.Request, finished <-chan struct{}, poll *time.Duration, deadline time.Time) bool {
	next := *poll
	if finished != nil && s.Finishes.Listening() {
		next = finishedFallbackPoll
	}
	*poll = min(*poll*2, 250*time.Millisecond)
	select {
	case <-r.Context().Done():
		return false
	case <-finished:
		return true
	case <-time.After(min(next, time.Until(deadline))):
		return false
	}
}

var runStatuses = map[string]bool{store.StatusQueued: true, store.StatusRunning: true, store.RunWaiting: true,
	store.StatusSucceeded: true, store.StatusFailed: true, store.StatusCanceled: true}

func (s *server) handleListRuns() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := store.RunFilter{Tenant: tenantOf(r), Pipeline: q.Get("pipeline"), Status: q.Get("status"), Limit: 50,
			Cursor: q.Get("cursor")}
		if f.Pipeline != "" && !core.NameRE.MatchString(f.Pipeline) {
			s.writeError(w, r, invalid("invalid pipeline name %q", f.Pipeline))
			return
		}
		if f.Status != "" && !runStatuses[f.Status] {
			s.writeError(w, r, invalid("unknown status %q: want queued, running, waiting, succeeded, failed or canceled", f.Status))
			return
		}
		var err error
		if f.Limit, err = pageLimit(q.Get("limit"), f.Limit); err != nil {
			s.writeError(w, r, err)
			return
		}
		runs, next, err := s.Store.ListRuns(r.Context(), f)
		if err == nil {
			err = s.Store.AnnotateRuns(r.Context(), runs)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encodePage(w, "runs", runs, next)
	}
}

func (s *server) handleSignalRun() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, signal := chi.URLParam(r, "id"), chi.URLParam(r, "name")
		payload, err := readEvent(w, r, s.Config.MaxEventBytes)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := s.Core.SignalRun(r.Context(), tenantOf(r), id, signal, payload); err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusAccepted, map[string]string{"id": id, "signal": signal})
	}
}

func (s *server) handleCancelRun() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		if err := s.Core.CancelRun(r.Context(), tenantOf(r), id); err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusAccepted, map[string]string{"id": id, "status": "canceling"})
	}
}

// retryRequest is the body of POST /v1/runs/{id}/retry.
type retryRequest struct {
	FromStep string `json:"from_step"`
}

func (s *server) handleRetryRun() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req retryRequest
		if r.ContentLength != 0 {
			if err := decode(w, r, 64<<10, &req); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		run, err := s.Core.RetryRun(r.Context(), tenantOf(r), chi.URLParam(r, "id"), req.FromStep)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/v1/runs/"+run.ID)
		encode(w, http.StatusAccepted, run)
	}
}
