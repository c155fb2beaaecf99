-- +goose Up
CREATE TABLE tenants (
    name       text        PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO tenants (name) VALUES ('default');

-- API keys are stored as SHA-256 of their secret part; the id part is the lookup key.
CREATE TABLE api_keys (
    id         text        PRIMARY KEY,
    tenant     text        NOT NULL REFERENCES tenants (name) ON DELETE CASCADE,
    hash       bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX api_keys_tenant ON api_keys (tenant);

-- +goose Down
DROP TABLE api_keys;
DROP TABLE tenants;
