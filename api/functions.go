package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// functionRequest is the body of POST /v1/functions and PUT /v1/functions/{name}.
type functionRequest struct {
	Name      string            `json:"name"`
	Language  string            `json:"language"`
	Source    *string           `json:"source"`
	TimeoutMS *int              `json:"timeout_ms"`
	MemoryMB  *int              `json:"memory_mb"`
	CacheTTLS *int              `json:"cache_ttl_s"`
	Env       map[string]string `json:"env"`
	// Dependencies: package → version spec (npm packages, Python wheels, Rust crates).
	Dependencies map[string]string `json:"dependencies"`
}

// spec is the registration a request asks for; its language is the body's, else the
// Language-Title header's.
func (req functionRequest) spec(r *http.Request) core.FunctionSpec {
	title := req.Language
	if title == "" {
		title = r.Header.Get("Language-Title")
	}
	return core.FunctionSpec{Tenant: tenantOf(r), Name: req.Name, Language: title, Source: req.Source,
		TimeoutMS: req.TimeoutMS, MemoryMB: req.MemoryMB, CacheTTLS: req.CacheTTLS, Env: req.Env,
		Dependencies: req.Dependencies}
}

func (s *server) bodyLimit() int64 { return int64(s.Core.Config().Functions.MaxSourceBytes)*2 + 64<<10 }

// allowResolve moves a registration's write deadline past WriteTimeout by the time a
// dependency resolve may take on the runtime host (LAMBDA_DEPS_RESOLVE_TIMEOUT), so the
// answer is not cut off before the resolve's own limit answers.
func (s *server) allowResolve(w http.ResponseWriter) {
	if s.Config.WriteTimeout > 0 && s.Config.DepsResolveTimeout > 0 {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.Config.WriteTimeout + s.Config.DepsResolveTimeout))
	}
}

func (s *server) handleCreateFunction() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req functionRequest
		if err := decode(w, r, s.bodyLimit(), &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		if len(req.Dependencies) > 0 {
			s.allowResolve(w)
		}
		f, err := s.Core.RegisterFunction(r.Context(), req.spec(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		f.Source = "" // metadata only; GET .../versions/{v} returns the source
		w.Header().Set("Location", "/v1/functions/"+f.Name)
		encode(w, http.StatusCreated, f)
	}
}

func (s *server) handlePutFunction() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req functionRequest
		if err := decode(w, r, s.bodyLimit(), &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		name := chi.URLParam(r, "name")
		if req.Name != "" && req.Name != name {
			s.writeError(w, r, invalid("body name %q does not match the path's %q", req.Name, name))
			return
		}
		req.Name = name
		if len(req.Dependencies) > 0 {
			s.allowResolve(w)
		}
		f, created, err := s.Core.UpdateFunction(r.Context(), req.spec(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		f.Source = ""
		encode(w, status, f)
	}
}

func (s *server) handleGetFunction() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := s.Store.GetFunction(r.Context(), tenantOf(r), chi.URLParam(r, "name"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, f)
	}
}

func (s *server) handleListFunctions() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fs, err := s.Store.ListFunctions(r.Context(), tenantOf(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, map[string]any{"functions": fs})
	}
}

func (s *server) handleDeleteFunction() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := chi.URLParam(r, "name")
		if err := s.Core.DeleteFunction(r.Context(), tenantOf(r), name); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *server) handleListVersions() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		vs, err := s.Store.ListVersions(r.Context(), tenantOf(r), chi.URLParam(r, "name"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, map[string]any{"versions": vs})
	}
}

func (s *server) handleGetVersion() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(chi.URLParam(r, "version"))
		if err != nil || n < 1 {
			s.writeError(w, r, fault.New(fault.NotFound, "no version %q", chi.URLParam(r, "version")))
			return
		}
		v, err := s.Store.GetVersion(r.Context(), tenantOf(r), chi.URLParam(r, "name"), n)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, v)
	}
}
