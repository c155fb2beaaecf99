package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// APIKey is an API key's record; the secret itself is never stored.
type APIKey struct {
	ID        string     `json:"id"`
	Tenant    string     `json:"tenant"`
	Hash      []byte     `json:"-"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// CreateTenant adds a tenant; Conflict when the name is taken.
func (s *Store) CreateTenant(ctx context.Context, name string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO tenants (name) VALUES ($1)`, name)
	if fault.Is(translate(err, ""), fault.Conflict) {
		return fault.Wrap(fault.Conflict, err, "tenant %q already exists", name)
	}
	return translate(err, "create tenant")
}

// CreateAPIKey stores a key's id and secret hash for a tenant, unless the tenant already
// has maxActive keys that are not revoked (Conflict; 0: no bound). The tenant's row is
// locked meanwhile, so concurrent mints cannot pass the bound together.
func (s *Store) CreateAPIKey(ctx context.Context, tenant, id string, hash []byte, maxActive int) (APIKey, error) {
	k := APIKey{ID: id, Tenant: tenant, Hash: hash}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if maxActive > 0 {
			var active int
			if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM api_keys WHERE tenant = t.name AND revoked_at IS NULL)
				FROM tenants t WHERE t.name = $1 FOR UPDATE`, tenant).Scan(&active); err != nil {
				return err
			}
			if active >= maxActive {
				return fault.New(fault.Conflict,
					"the tenant has %d active API keys, its limit (LAMBDA_TENANT_MAX_KEYS); revoke one to mint another", active)
			}
		}
		return tx.QueryRow(ctx, `INSERT INTO api_keys (id, tenant, hash) VALUES ($1, $2, $3) RETURNING created_at`,
			id, tenant, hash).Scan(&k.CreatedAt)
	})
	if fault.KindOf(err) == fault.Conflict {
		return APIKey{}, err
	}
	return k, translate(err, "create api key")
}

// GetAPIKey returns a key by id, revoked or not.
func (s *Store) GetAPIKey(ctx context.Context, id string) (APIKey, error) {
	k := APIKey{ID: id}
	err := s.pool.QueryRow(ctx, `SELECT tenant, hash, created_at, revoked_at FROM api_keys WHERE id = $1`, id).
		Scan(&k.Tenant, &k.Hash, &k.CreatedAt, &k.RevokedAt)
	if err != nil {
		return APIKey{}, notFound(err, "get api key", "api key not found")
	}
	return k, nil
}

// ListAPIKeys lists a tenant's keys, newest first.
func (s *Store) ListAPIKeys(ctx context.Context, tenant string) ([]APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant, created_at, revoked_at FROM api_keys
		WHERE tenant = $1 ORDER BY created_at DESC`, tenant)
	if err != nil {
		return nil, translate(err, "list api keys")
	}
	defer rows.Close()
	out := []APIKey{}
	for rows.Next() {
		var k APIKey
		if err := rows.Scan(&k.ID, &k.Tenant, &k.CreatedAt, &k.RevokedAt); err != nil {
			return nil, translate(err, "list api keys")
		}
		out = append(out, k)
	}
	return out, translate(rows.Err(), "list api keys")
}

// RevokeAPIKey revokes one of a tenant's keys; another tenant's key is NotFound.
func (s *Store) RevokeAPIKey(ctx context.Context, tenant, id string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
		WHERE id = $1 AND tenant = $2`, id, tenant)
	if err != nil {
		return translate(err, "revoke api key")
	}
	if tag.RowsAffected() == 0 {
		return fault.New(fault.NotFound, "api key %q not found", id)
	}
	return nil
}
