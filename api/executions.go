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

func (s *server) handleGetExecution() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		var wait time.Duration
		if q := r.URL.Query().Get("wait"); q != "" {
			d, err := time.ParseDuration(q)
			if err != nil {
				if n, nerr := strconv.Atoi(q); nerr == nil {
					d, err = time.Duration(n)*time.Second, nil
				}
			}
			if err != nil || d < 0 {
				s.writeError(w, r, invalid("wait must be a duration such as 30s, got %q", q))
				return
			}
			wait = min(d, s.Config.MaxWait)
		}
		deadline := time.Now().Add(wait)
		var finished <-chan struct{}
		if u, err := uuid.Parse(id); err == nil && wait > 0 && s.Finishes != nil {
			// Before the first read, so no finish is missed; by the id's canonical text,
			// which is what the notification carries.
			ch, unsubscribe := s.Finishes.Subscribe(u.String())
			defer unsubscribe()
			finished = ch
		}
		poll := 20 * time.Millisecond
		for {
			e, err := s.Store.GetExecution(r.Context(), tenantOf(r), id, false)
			if err != nil {
				s.writeError(w, r, err)
				return
			}
			if store.Finished(e.Status) || !time.Now().Before(deadline) {
				es := []store.Execution{e}
				if err := s.Store.AnnotateExecutions(r.Context(), es); err != nil {
					s.writeError(w, r, err)
					return
				}
				encode(w, http.StatusOK, es[0])
				return
			}
			// Woken by the finish feed; the poll is the fallback while the feed is down.
			next := poll
			if finished != nil && s.Finishes.Listening() {
				next = finishedFallbackPoll
			}
			select {
			case <-r.Context().Done():
				return
			case <-finished:
			case <-time.After(min(next, time.Until(deadline))):
			}
			poll = min(poll*2, 250*time.Millisecond)
		}
	}
}

// finishedFallbackPoll is how often a long-poll still reads the row while the finish feed
// is listening: only a lost notification would need it.
const finishedFallbackPoll = 2 * time.Second

var statuses = map[string]bool{store.StatusQueued: true, store.StatusRunning: true, store.StatusSucceeded: true,
	store.StatusFailed: true, store.StatusTimeout: true, store.StatusCanceled: true}

func (s *server) handleListExecutions() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := store.ExecutionFilter{Tenant: tenantOf(r), Function: q.Get("function"), Status: q.Get("status"),
			Limit: 50, Cursor: q.Get("cursor")}
		if f.Function != "" && !core.NameRE.MatchString(f.Function) {
			s.writeError(w, r, invalid("invalid function name %q", f.Function))
			return
		}
		if f.Status != "" && !statuses[f.Status] {
			s.writeError(w, r, invalid("unknown status %q: want queued, running, succeeded, failed, timeout or canceled", f.Status))
			return
		}
		var err error
		if f.Limit, err = pageLimit(q.Get("limit"), f.Limit); err != nil {
			s.writeError(w, r, err)
			return
		}
		es, next, err := s.Store.ListExecutions(r.Context(), f)
		if err == nil {
			err = s.Store.AnnotateExecutions(r.Context(), es)
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encodePage(w, "executions", es, next)
	}
}

func (s *server) handleCancelExecution() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		if err := s.Core.CancelExecution(r.Context(), tenantOf(r), id); err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusAccepted, map[string]string{"id": id, "status": "canceling"})
	}
}
