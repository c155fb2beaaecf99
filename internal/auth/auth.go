// Package auth authenticates API callers. An API key reads "lmk_<id>_<secret>": the id
// finds the key's record, the secret is compared as SHA-256 in constant time, and only
// the hash is ever stored. The operator's admin token (LAMBDA_ADMIN_TOKEN) is never
// stored at all. Validated keys are cached briefly so the hot path skips PostgreSQL (a key
// in use is re-read in the background before its entry expires, so no request waits for
// that read); a revocation reaches every replica's cache at once (Forget, through the
// store's revocation feed), the cache's TTL being the backstop while that feed is down.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

// Principal is an authenticated caller.
type Principal struct {
	Tenant string
	KeyID  string
	Admin  bool
}

// Keys is what the authenticator needs from the store.
type Keys interface {
	GetAPIKey(ctx context.Context, id string) (store.APIKey, error)
}

// Config configures authentication.
type Config struct {
	AdminToken  string `env:"LAMBDA_ADMIN_TOKEN"`
	AdminTenant string `env:"LAMBDA_ADMIN_TENANT" envDefault:"default"`
	// CacheTTL bounds how long a verified key is honoured without a look at PostgreSQL:
	// the backstop for revocations while the revocation feed is down.
	CacheTTL time.Duration `env:"LAMBDA_AUTH_CACHE_TTL" envDefault:"5s"`
}

// Authenticator checks bearer tokens.
type Authenticator struct {
	cfg   Config
	keys  Keys
	admin [32]byte
	mu    sync.Mutex
	cache map[string]cached // full token hash → principal
	// gen counts Forget/ForgetAll calls: a lookup that began before one does not cache
	// what it read (the key may have been revoked since).
	gen uint64
}

type cached struct {
	p       Principal
	expires time.Time
	// refresh is when a call first re-reads the key in the background, while the entry
	// still serves: a key in use is never looked up on a request's path.
	refresh    time.Time
	refreshing bool
}

// New returns an authenticator over the key store.
func New(cfg Config, keys Keys) *Authenticator {
	a := &Authenticator{cfg: cfg, keys: keys, cache: map[string]cached{}}
	if cfg.AdminToken != "" {
		a.admin = sha256.Sum256([]byte(cfg.AdminToken))
	}
	return a
}

var errUnauthorized = fault.New(fault.Unauthorized, "a valid API key is required: Authorization: Bearer <key>")

// Authenticate resolves an Authorization header value to a principal.
func (a *Authenticator) Authenticate(ctx context.Context, header string) (Principal, error) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return Principal{}, errUnauthorized
	}
	token = strings.TrimSpace(token)
	if token == "" || len(token) > 256 {
		return Principal{}, errUnauthorized
	}
	sum := sha256.Sum256([]byte(token))
	if a.cfg.AdminToken != "" && subtle.ConstantTimeCompare(sum[:], a.admin[:]) == 1 {
		return Principal{Tenant: a.cfg.AdminTenant, KeyID: "admin", Admin: true}, nil
	}
	ck := string(sum[:])
	now := time.Now()
	a.mu.Lock()
	c, hit := a.cache[ck]
	if hit && now.Before(c.expires) {
		if !c.refreshing && !now.Before(c.refresh) {
			c.refreshing = true
			a.cache[ck] = c
			go a.refresh(ck, token, a.gen)
		}
		a.mu.Unlock()
		return c.p, nil
	}
	gen := a.gen
	a.mu.Unlock()
	return a.lookup(ctx, ck, token, gen)
}

// lookup verifies token against its key's record and caches the principal, unless a key
// was forgotten since gen.
func (a *Authenticator) lookup(ctx context.Context, ck, token string, gen uint64) (Principal, error) {
	id, secret, ok := parseKey(token)
	if !ok {
		return Principal{}, errUnauthorized
	}
	now := time.Now()
	k, err := a.keys.GetAPIKey(ctx, id)
	if err != nil {
		if fault.Is(err, fault.NotFound) {
			return Principal{}, errUnauthorized
		}
		return Principal{}, err
	}
	secretSum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare(secretSum[:], k.Hash) != 1 || k.RevokedAt != nil {
		return Principal{}, errUnauthorized
	}
	p := Principal{Tenant: k.Tenant, KeyID: k.ID}
	a.mu.Lock()
	if a.gen == gen {
		if len(a.cache) > 10000 {
			a.cache = map[string]cached{}
		}
		ttl := a.cfg.CacheTTL
		a.cache[ck] = cached{p: p, expires: now.Add(ttl), refresh: now.Add(ttl - ttl/4)}
	}
	a.mu.Unlock()
	return p, nil
}

// refresh re-reads a cached key in the background before its entry expires; a key
// revoked or gone leaves the cache, and a failed read leaves the entry to expire.
func (a *Authenticator) refresh(ck, token string, gen uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.CacheTTL/4+time.Second)
	defer cancel()
	_, err := a.lookup(ctx, ck, token, gen)
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.cache[ck]; ok && c.refreshing {
		if fault.Is(err, fault.Unauthorized) {
			delete(a.cache, ck)
		} else {
			c.refreshing = false // not refreshed: retried by a later call, expires meanwhile
			a.cache[ck] = c
		}
	}
}

// Forget drops cached principals of a key: after its revocation here, or anywhere (the
// store's revocation feed calls it on every replica).
func (a *Authenticator) Forget(keyID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	for k, c := range a.cache {
		if c.p.KeyID == keyID {
			delete(a.cache, k)
		}
	}
}

// ForgetAll drops every cached principal (a revocation may have been missed).
func (a *Authenticator) ForgetAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.gen++
	clear(a.cache)
}

// NewKey returns a fresh key's id, its full token, and the secret's hash to store.
func NewKey() (id, token string, hash []byte) {
	idb := make([]byte, 6)
	sec := make([]byte, 32)
	_, _ = rand.Read(idb)
	_, _ = rand.Read(sec)
	id = hex.EncodeToString(idb)
	secret := base64.RawURLEncoding.EncodeToString(sec)
	sum := sha256.Sum256([]byte(secret))
	return id, "lmk_" + id + "_" + secret, sum[:]
}

func parseKey(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, "lmk_")
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || len(id) != 12 || secret == "" {
		return "", "", false
	}
	return id, secret, true
}
