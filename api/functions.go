package api

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/lambda-microservice/lambda/fault"
	"github.com/lambda-microservice/lambda/store"
)

var (
	nameRE   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
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
}

// version validates a registration request into a version to store.
func (s *server) version(r *http.Request, req functionRequest) (store.Version, error) {
	if !nameRE.MatchString(req.Name) {
		return store.Version{}, invalid("invalid function name %q: want ^[a-z][a-z0-9-]{0,62}$", req.Name)
	}
	title := req.Language
	if title == "" {
		title = r.Header.Get("Language-Title")
	}
	if title == "" {
		return store.Version{}, invalid("field \"language\" is required; supported: %s",
			strings.Join(s.Core.Registry().Titles(), ", "))
	}
	rt, err := s.Core.Runtime(title)
	if err != nil {
		return store.Version{}, err
	}
	if req.Source == nil || strings.TrimSpace(*req.Source) == "" {
		return store.Version{}, invalid("field \"source\" is required and must not be empty")
	}
	if len(*req.Source) > s.Config.MaxSourceBytes {
		return store.Version{}, fault.New(fault.TooLarge, "source is %d bytes; the limit is %d", len(*req.Source), s.Config.MaxSourceBytes)
	}
	v := store.Version{
		Tenant: tenantOf(r), Name: req.Name, Language: rt.Title, Source: *req.Source,
		Settings: store.Settings{TimeoutMS: s.Config.DefaultTimeoutMS, MemoryMB: s.Config.DefaultMemoryMB, Env: req.Env},
	}
	if req.TimeoutMS != nil {
		maxMS := int(s.Config.MaxTimeout / time.Millisecond)
		if *req.TimeoutMS < 1 || *req.TimeoutMS > maxMS {
			return store.Version{}, invalid("timeout_ms must be between 1 and %d", maxMS)
		}
		v.TimeoutMS = *req.TimeoutMS
	}
	if req.MemoryMB != nil {
		if *req.MemoryMB < 16 || *req.MemoryMB > 2048 {
			return store.Version{}, invalid("memory_mb must be between 16 and 2048")
		}
		v.MemoryMB = *req.MemoryMB
	}
	if req.CacheTTLS != nil {
		if *req.CacheTTLS < 0 || *req.CacheTTLS > 86400 {
			return store.Version{}, invalid("cache_ttl_s must be between 0 and 86400")
		}
		v.CacheTTLS = *req.CacheTTLS
	}
	size := 0
	for k, val := range req.Env {
		if !envKeyRE.MatchString(k) || strings.HasPrefix(strings.ToUpper(k), "LAMBDA_") {
			return store.Version{}, invalid("invalid env name %q (letters, digits, _; not LAMBDA_*)", k)
		}
		size += len(k) + len(val)
	}
	if size > 4096 {
		return store.Version{}, invalid("env is %d bytes; the limit is 4096", size)
	}
	sum := sha256.Sum256([]byte(v.Source))
	v.SHA256 = hex.EncodeToString(sum[:])
	return v, nil
}

func (s *server) bodyLimit() int64 { return int64(s.Config.MaxSourceBytes)*2 + 64<<10 }

func (s *server) handleCreateFunction() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req functionRequest
		if err := decode(w, r, s.bodyLimit(), &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		v, err := s.version(r, req)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if _, err := s.Store.GetFunction(r.Context(), v.Tenant, v.Name); err == nil {
			s.writeError(w, r, fault.New(fault.Conflict, "function %q already exists; PUT /v1/functions/%s adds a version", v.Name, v.Name))
			return
		}
		rt, _ := s.Core.Runtime(v.Language)
		v.Version = 1
		if err := s.Core.Build(r.Context(), rt, v); err != nil {
			s.writeError(w, r, err)
			return
		}
		f, err := s.Store.CreateFunction(r.Context(), v)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.Core.Forget(v.Tenant, v.Name)
		f.Source = "" // metadata only; GET .../versions/{v} returns the source
		w.Header().Set("Location", "/v1/functions/"+v.Name)
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
		cur, err := s.Store.GetFunction(r.Context(), tenantOf(r), name)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if req.Language == "" && r.Header.Get("Language-Title") == "" {
			req.Language = cur.Language
		}
		// Settings left out keep their current values.
		if req.TimeoutMS == nil {
			req.TimeoutMS = &cur.TimeoutMS
		}
		if req.MemoryMB == nil {
			req.MemoryMB = &cur.MemoryMB
		}
		if req.CacheTTLS == nil {
			req.CacheTTLS = &cur.CacheTTLS
		}
		if req.Env == nil {
			req.Env = cur.Env
		}
		v, err := s.version(r, req)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if v.Language != cur.Language {
			s.writeError(w, r, invalid("function %q is %s; a new version cannot change its language to %s", name, cur.Language, v.Language))
			return
		}
		if v.SHA256 != cur.SHA256 || v.MemoryMB != cur.MemoryMB || !maps.Equal(v.Env, cur.Env) {
			rt, _ := s.Core.Runtime(v.Language)
			v.Version = cur.Version.Version + 1 // what PutVersion assigns, barring a concurrent PUT
			if err := s.Core.Build(r.Context(), rt, v); err != nil {
				s.writeError(w, r, err)
				return
			}
		}
		f, created, err := s.Store.PutVersion(r.Context(), v)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.Core.Forget(v.Tenant, v.Name)
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
		if err := s.Store.DeleteFunction(r.Context(), tenantOf(r), name); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.Core.Forget(tenantOf(r), name)
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
