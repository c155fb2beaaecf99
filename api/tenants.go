package api

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/lambda-microservice/lambda/internal/auth"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

// Authenticator resolves bearer tokens to principals.
type Authenticator interface {
	Authenticate(ctx context.Context, header string) (auth.Principal, error)
	Forget(keyID string)
}

// Limiter applies the rate limits (per API key, per tenant, registrations per tenant) and
// the per-tenant concurrency limits (invocations and registrations, long-polls).
type Limiter interface {
	Allow(ctx context.Context, key string) (bool, time.Duration)
	AllowTenant(ctx context.Context, tenant string) (bool, time.Duration)
	AllowRegistration(ctx context.Context, tenant string) (bool, time.Duration)
	Acquire(tenant string) (release func(), ok bool)
	AcquireLongPoll(tenant string) (release func(), ok bool)
}

// Tenants is what the tenant and key handlers need from the store.
type Tenants interface {
	CreateTenant(ctx context.Context, name string) error
	CreateAPIKey(ctx context.Context, tenant, id string, hash []byte, maxActive int) (store.APIKey, error)
	ListAPIKeys(ctx context.Context, tenant string) ([]store.APIKey, error)
	RevokeAPIKey(ctx context.Context, tenant, id string) error
}

type principalKey struct{}

func principalOf(r *http.Request) auth.Principal {
	p, _ := r.Context().Value(principalKey{}).(auth.Principal)
	return p
}

// authenticate requires a valid API key on every /v1 route, scopes the request to the
// key's tenant and applies the key's rate limit and its tenant's, which all the tenant's
// keys share. Without an Authenticator (tests of the HTTP contract) every request acts
// for the default tenant.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Auth == nil {
			next.ServeHTTP(w, r)
			return
		}
		p, err := s.Auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if s.Limits != nil {
			if ok, wait := s.Limits.Allow(r.Context(), p.KeyID); !ok {
				s.refuse(w, r, wait, "rate limit exceeded for this API key")
				return
			}
			if ok, wait := s.Limits.AllowTenant(r.Context(), p.Tenant); !ok {
				s.refuse(w, r, wait, "rate limit exceeded for this tenant (all its API keys together)")
				return
			}
		}
		ctx := context.WithValue(r.Context(), principalKey{}, p)
		ctx = context.WithValue(ctx, tenantKey{}, p.Tenant)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// refuse answers 429 with a Retry-After of at least a second.
func (s *server) refuse(w http.ResponseWriter, r *http.Request, wait time.Duration, detail string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait.Seconds(), 1)))))
	s.writeError(w, r, fault.New(fault.RateLimited, "%s", detail))
}

// isAdmin reports whether a request carries the operator's admin token (outside /v1,
// where authenticate does not run).
func (s *server) isAdmin(r *http.Request) bool {
	if s.Auth == nil || r.Header.Get("Authorization") == "" {
		return false
	}
	p, err := s.Auth.Authenticate(r.Context(), r.Header.Get("Authorization"))
	return err == nil && p.Admin
}

// limitConcurrency caps a tenant's invocations (sync calls, async starts, sync runs) and
// registrations in flight on this replica.
func (s *server) limitConcurrency(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Limits == nil {
			next.ServeHTTP(w, r)
			return
		}
		release, ok := s.Limits.Acquire(tenantOf(r))
		if !ok {
			s.writeError(w, r, fault.New(fault.RateLimited, "too many invocations and registrations in flight for this tenant"))
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// limitRegistrations applies a tenant's registration rate (each registration or new
// version builds its script on a runtime) before its in-flight limit.
func (s *server) limitRegistrations(next http.Handler) http.Handler {
	limited := s.limitConcurrency(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Limits != nil {
			if ok, wait := s.Limits.AllowRegistration(r.Context(), tenantOf(r)); !ok {
				s.refuse(w, r, wait, "too many registrations for this tenant (LAMBDA_TENANT_REGISTRATIONS_PER_MINUTE)")
				return
			}
		}
		limited.ServeHTTP(w, r)
	})
}

// limitLongPolls caps a tenant's long-polls (?wait= on a GET of an execution or a run)
// held open on this replica; a plain read is not one.
func (s *server) limitLongPolls(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.Limits == nil || !longPoll(r) {
			next.ServeHTTP(w, r)
			return
		}
		release, ok := s.Limits.AcquireLongPoll(tenantOf(r))
		if !ok {
			s.refuse(w, r, 0, "too many long-polls in flight for this tenant (LAMBDA_TENANT_LONG_POLLS)")
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// longPoll reports whether a GET asks to wait (?wait= other than 0).
func longPoll(r *http.Request) bool {
	switch q := r.URL.Query().Get("wait"); q {
	case "", "0", "0s":
		return false
	}
	return true
}

type tenantRequest struct {
	Name string `json:"name"`
}

func (s *server) handleCreateTenant() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.Auth != nil && !principalOf(r).Admin {
			s.writeError(w, r, fault.New(fault.NotFound, "no route %s %s", r.Method, r.URL.Path))
			return
		}
		var req tenantRequest
		if err := decode(w, r, 4096, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		if !core.NameRE.MatchString(req.Name) {
			s.writeError(w, r, invalid("invalid tenant name %q: want ^[a-z][a-z0-9-]{0,62}$", req.Name))
			return
		}
		if err := s.Tenants.CreateTenant(r.Context(), req.Name); err != nil {
			s.writeError(w, r, err)
			return
		}
		k, token, err := s.newKey(r.Context(), req.Name)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusCreated, map[string]any{"tenant": req.Name, "api_key": token, "key_id": k.ID})
	}
}

// newKey mints a key for tenant, up to the tenant's active keys' limit (Conflict beyond:
// revoking one makes room).
func (s *server) newKey(ctx context.Context, tenant string) (store.APIKey, string, error) {
	id, token, hash := auth.NewKey()
	k, err := s.Tenants.CreateAPIKey(ctx, tenant, id, hash, s.Config.MaxKeys)
	return k, token, err
}

func (s *server) handleCreateKey() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		k, token, err := s.newKey(r.Context(), tenantOf(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusCreated, map[string]any{"id": k.ID, "tenant": k.Tenant, "api_key": token, "created_at": k.CreatedAt})
	}
}

func (s *server) handleListKeys() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ks, err := s.Tenants.ListAPIKeys(r.Context(), tenantOf(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		encode(w, http.StatusOK, map[string]any{"keys": ks})
	}
}

func (s *server) handleRevokeKey() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		if err := s.Tenants.RevokeAPIKey(r.Context(), tenantOf(r), id); err != nil {
			s.writeError(w, r, err)
			return
		}
		if s.Auth != nil {
			s.Auth.Forget(id)
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
