package api

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

// Sessions is what the handlers need for notebook sessions (*core.Sessions).
type Sessions interface {
	Open(ctx context.Context, tenant, language string, memoryMB int) (store.Session, error)
	RunCell(ctx context.Context, tenant, id, source string) (core.CellResult, error)
	Get(ctx context.Context, tenant, id string) (store.Session, []store.Cell, error)
	Close(ctx context.Context, tenant, id string) error
	Promote(ctx context.Context, tenant, id, name string, cells []int) (store.Function, error)
}

func (s *server) sessionsOn(w http.ResponseWriter, r *http.Request) bool {
	if s.Sessions == nil {
		s.writeError(w, r, fault.New(fault.Unavailable, "notebook sessions are not enabled on this server"))
		return false
	}
	return true
}

func (s *server) handleOpenSession() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.sessionsOn(w, r) {
			return
		}
		var req struct {
			Language string `json:"language"`
			MemoryMB int    `json:"memory_mb"`
		}
		if err := decode(w, r, 64<<10, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		if req.Language == "" {
			req.Language = r.Header.Get("Language-Title")
		}
		if req.Language == "" {
			s.writeError(w, r, invalid("language is required"))
			return
		}
		ss, err := s.Sessions.Open(r.Context(), tenantOf(r), req.Language, req.MemoryMB)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/v1/sessions/"+ss.ID)
		encode(w, http.StatusCreated, ss)
	}
}

func (s *server) handleRunCell() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.sessionsOn(w, r) {
			return
		}
		var req struct {
			Source *string `json:"source"`
		}
		if err := decode(w, r, s.bodyLimit(), &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		if req.Source == nil {
			s.writeError(w, r, invalid("source is required"))
			return
		}
		res, err := s.Sessions.RunCell(r.Context(), tenantOf(r), chi.URLParam(r, "id"), *req.Source)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		code := http.StatusOK
		switch res.Status {
		case store.StatusFailed:
			code = http.StatusInternalServerError
		case store.StatusTimeout:
			code = http.StatusGatewayTimeout
		}
		encode(w, code, res)
	}
}

func (s *server) handleGetSession() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.sessionsOn(w, r) {
			return
		}
		ss, cells, err := s.Sessions.Get(r.Context(), tenantOf(r), chi.URLParam(r, "id"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, struct {
			store.Session
			Cells []store.Cell `json:"cells"`
		}{ss, cells})
	}
}

func (s *server) handleDeleteSession() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.sessionsOn(w, r) {
			return
		}
		if err := s.Sessions.Close(r.Context(), tenantOf(r), chi.URLParam(r, "id")); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *server) handlePromoteSession() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.sessionsOn(w, r) {
			return
		}
		var req struct {
			Name  string `json:"name"`
			Cells []int  `json:"cells"`
		}
		if err := decode(w, r, 64<<10, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		f, err := s.Sessions.Promote(r.Context(), tenantOf(r), chi.URLParam(r, "id"), req.Name, req.Cells)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f.Source = ""
		w.Header().Set("Location", "/v1/functions/"+f.Name)
		encode(w, http.StatusCreated, f)
	}
}
