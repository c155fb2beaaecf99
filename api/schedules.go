package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/lambda-microservice/lambda/internal/core"
)

func (s *server) handleGetWebhookSecret() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sec, err := s.Core.GetWebhookSecret(r.Context(), tenantOf(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		encode(w, http.StatusOK, sec)
	}
}

func (s *server) handleRotateWebhookSecret() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sec, err := s.Core.RotateWebhookSecret(r.Context(), tenantOf(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		encode(w, http.StatusOK, sec)
	}
}

// maxScheduleBytes bounds a schedule's body (its input included).
const maxScheduleBytes = 256 << 10

func (s *server) handleCreateSchedule() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var spec core.ScheduleSpec
		if err := decode(w, r, maxScheduleBytes, &spec); err != nil {
			s.writeError(w, r, err)
			return
		}
		sc, err := s.Core.CreateSchedule(r.Context(), tenantOf(r), spec)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/v1/schedules/"+sc.Name)
		encode(w, http.StatusCreated, sc)
	}
}

func (s *server) handleListSchedules() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		list, err := s.Core.ListSchedules(r.Context(), tenantOf(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, map[string]any{"schedules": list})
	}
}

func (s *server) handleGetSchedule() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sc, err := s.Core.GetSchedule(r.Context(), tenantOf(r), chi.URLParam(r, "name"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, sc)
	}
}

func (s *server) handlePatchSchedule() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Paused *bool `json:"paused"`
		}
		if err := decode(w, r, 4<<10, &body); err != nil {
			s.writeError(w, r, err)
			return
		}
		if body.Paused == nil {
			s.writeError(w, r, invalid(`the body must set "paused" (true or false)`))
			return
		}
		sc, err := s.Core.PauseSchedule(r.Context(), tenantOf(r), chi.URLParam(r, "name"), *body.Paused)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, sc)
	}
}

func (s *server) handleDeleteSchedule() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.Core.DeleteSchedule(r.Context(), tenantOf(r), chi.URLParam(r, "name")); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *server) handleTriggerSchedule() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		if err := s.Core.TriggerSchedule(r.Context(), tenantOf(r), name); err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusAccepted, map[string]string{"name": name, "status": "triggered"})
	}
}

func (s *server) handleScheduleRuns() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		runs, err := s.Core.ScheduleRuns(r.Context(), tenantOf(r), chi.URLParam(r, "name"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, map[string]any{"runs": runs})
	}
}
