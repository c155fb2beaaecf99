package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

// pipelineBodyLimit bounds a pipeline definition's request body.
const pipelineBodyLimit = 512 << 10

// pipelineView is a pipeline version as the API shows it: its definition's fields
// (description, steps, output, timeout_ms) with its name, version, sha256 and creation.
func pipelineView(p store.PipelineVersion) map[string]any {
	var def map[string]json.RawMessage
	_ = json.Unmarshal(p.Definition, &def)
	out := make(map[string]any, len(def)+4)
	for k, v := range def {
		out[k] = v
	}
	out["name"], out["version"], out["sha256"], out["created_at"] = p.Name, p.Version, p.SHA256, p.CreatedAt
	return out
}

func pipelineViews(ps []store.PipelineVersion) []map[string]any {
	out := make([]map[string]any, 0, len(ps))
	for _, p := range ps {
		out = append(out, pipelineView(p))
	}
	return out
}

// readDefinition reads a pipeline definition body (a JSON object, checked by the core).
func readDefinition(w http.ResponseWriter, r *http.Request) (json.RawMessage, error) {
	if r.ContentLength > pipelineBodyLimit {
		return nil, fault.New(fault.TooLarge, "request body is larger than %d bytes", pipelineBodyLimit)
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, pipelineBodyLimit))
	if err != nil {
		return nil, decodeError(err, pipelineBodyLimit)
	}
	if len(raw) == 0 {
		return nil, invalid("request body is empty")
	}
	if !json.Valid(raw) {
		return nil, invalid("malformed JSON: the pipeline definition is not valid JSON")
	}
	return raw, nil
}

func (s *server) handleCreatePipeline() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readDefinition(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		p, err := s.Core.RegisterPipeline(r.Context(), tenantOf(r), body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		w.Header().Set("Location", "/v1/pipelines/"+p.Name)
		encode(w, http.StatusCreated, pipelineView(p))
	}
}

func (s *server) handlePutPipeline() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := readDefinition(w, r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		p, created, err := s.Core.UpdatePipeline(r.Context(), tenantOf(r), chi.URLParam(r, "name"), body)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		encode(w, status, pipelineView(p))
	}
}

func (s *server) handleListPipelines() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ps, err := s.Store.ListPipelines(r.Context(), tenantOf(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, map[string]any{"pipelines": pipelineViews(ps)})
	}
}

func (s *server) handleGetPipeline() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Store.GetPipeline(r.Context(), tenantOf(r), chi.URLParam(r, "name"), 0)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, pipelineView(p))
	}
}

func (s *server) handleListPipelineVersions() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ps, err := s.Store.ListPipelineVersions(r.Context(), tenantOf(r), chi.URLParam(r, "name"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, map[string]any{"versions": pipelineViews(ps)})
	}
}

func (s *server) handleGetPipelineVersion() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(chi.URLParam(r, "version"))
		if err != nil || n < 1 {
			s.writeError(w, r, fault.New(fault.NotFound, "no version %q", chi.URLParam(r, "version")))
			return
		}
		p, err := s.Store.GetPipeline(r.Context(), tenantOf(r), chi.URLParam(r, "name"), n)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, pipelineView(p))
	}
}

func (s *server) handleDeletePipeline() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.Core.DeletePipeline(r.Context(), tenantOf(r), chi.URLParam(r, "name")); err != nil {
			s.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
