-- +goose Up
CREATE TABLE functions (
    tenant         text        NOT NULL DEFAULT 'default',
    name           text        NOT NULL,
    language       text        NOT NULL,
    latest_version integer     NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name)
);

-- Versions are immutable: a new source or new settings make a new version.
CREATE TABLE function_versions (
    tenant      text        NOT NULL,
    name        text        NOT NULL,
    version     integer     NOT NULL,
    language    text        NOT NULL,
    source      text        NOT NULL,
    sha256      text        NOT NULL,
    timeout_ms  integer     NOT NULL,
    memory_mb   integer     NOT NULL,
    cache_ttl_s integer     NOT NULL,
    env         jsonb       NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name, version),
    FOREIGN KEY (tenant, name) REFERENCES functions (tenant, name) ON DELETE CASCADE
);

-- One row per execution; the seed's columns first. Rows outlive their function.
CREATE TABLE request_logs (
    id             uuid             PRIMARY KEY,
    timestamp      timestamptz      NOT NULL,
    language_title text             NOT NULL,
    payload        json,
    status         text             NOT NULL,
    duration       double precision,
    tenant         text             NOT NULL DEFAULT 'default',
    function       text             NOT NULL,
    version        integer          NOT NULL,
    mode           text             NOT NULL,
    result         json,
    error          jsonb,
    stdout         text             NOT NULL DEFAULT '',
    stderr         text             NOT NULL DEFAULT '',
    truncated      boolean          NOT NULL DEFAULT false,
    cached         boolean          NOT NULL DEFAULT false,
    attempts       integer          NOT NULL DEFAULT 0,
    workflow_id    text,
    finished_at    timestamptz,
    CONSTRAINT request_logs_status_check
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'timeout', 'canceled'))
);
CREATE INDEX request_logs_tenant_time ON request_logs (tenant, timestamp DESC, id DESC);
CREATE INDEX request_logs_function_time ON request_logs (tenant, function, timestamp DESC, id DESC);

-- Idempotency-Key → the execution it started (kept 24 h).
CREATE TABLE idempotency_keys (
    tenant       text        NOT NULL,
    key          text        NOT NULL,
    execution_id uuid        NOT NULL,
    request_hash text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, key)
);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE request_logs;
DROP TABLE function_versions;
DROP TABLE functions;
