package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/store"
)

// preferAsync reports whether the Prefer header asks for respond-async (RFC 7240).
func preferAsync(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, pref := range strings.Split(v, ",") {
			tok, _, _ := strings.Cut(strings.TrimSpace(pref), ";")
			if strings.EqualFold(strings.TrimSpace(tok), "respond-async") {
				return true
			}
		}
	}
	return false
}

// envelopeStatus is the HTTP status of a finished sync execution.
func envelopeStatus(status string) int {
	switch status {
	case store.StatusSucceeded:
		return http.StatusOK
	case store.StatusTimeout:
		return http.StatusGatewayTimeout
	case store.StatusQueued, store.StatusRunning:
		return http.StatusAccepted
	default:
		return http.StatusInternalServerError
	}
}

func (s *server) handleInvoke() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req := core.Request{
			Tenant:         tenantOf(r),
			Function:       chi.URLParam(r, "name"),
			LanguageTitle:  r.Header.Get("Language-Title"),
			IdempotencyKey: r.Header.Get("Idempotency-Key"),
			CallbackURL:    r.Header.Get("X-Callback-Url"),
		}
		if req.CallbackURL != "" && !preferAsync(r) {
			s.writeError(w, r, invalid("X-Callback-Url needs an async invocation (Prefer: respond-async)"))
			return
		}
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
		if _, err := s.Core.Runtime(req.LanguageTitle); err != nil {
			s.writeError(w, r, err)
			return
		}
		event, err := readEvent(w, r, s.Config.MaxEventBytes)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		req.Event = event
		if preferAsync(r) {
			s.invokeAsync(w, r, req)
			return
		}
		e, replayed, err := s.Core.Invoke(r.Context(), req)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		encode(w, envelopeStatus(e.Status), e)
	}
}

func (s *server) invokeAsync(w http.ResponseWriter, r *http.Request, req core.Request) {
	e, replayed, err := s.Core.StartExecution(r.Context(), req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.Header().Set("Location", "/v1/executions/"+e.ID)
	w.Header().Set("Preference-Applied", "respond-async")
	if store.Finished(e.Status) {
		encode(w, http.StatusAccepted, e)
		return
	}
	body := map[string]any{"id": e.ID, "status": e.Status}
	if e.CallbackState != nil {
		body["callback"] = e.CallbackState
	}
	encode(w, http.StatusAccepted, body)
}
