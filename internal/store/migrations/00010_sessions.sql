-- +goose Up
-- Notebook sessions (DESIGN.md §11). A session's kernel is one worker on one replica of its
-- language's runtime function: `replica` is that replica's base URL, which every cell of the
-- session is sent to (pinning); after a replay into a new worker it names the new replica.
CREATE TABLE sessions (
    id               uuid        PRIMARY KEY,
    tenant           text        NOT NULL,
    language         text        NOT NULL,
    runtime_function text        NOT NULL,
    replica          text        NOT NULL DEFAULT '',
    memory_mb        integer     NOT NULL,
    status           text        NOT NULL DEFAULT 'open',
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz NOT NULL DEFAULT now(),
    closed_at        timestamptz,
    CONSTRAINT sessions_status_check CHECK (status IN ('open', 'closed', 'expired'))
);
CREATE INDEX sessions_tenant_open ON sessions (tenant) WHERE status = 'open';

-- A session's cells are request_logs rows with mode 'session' and its id in session_id;
-- `version` holds the cell's number in the session (1, 2, ...) and `payload` {"source"}.
ALTER TABLE request_logs ADD COLUMN session_id uuid;
CREATE INDEX request_logs_session ON request_logs (session_id, version) WHERE session_id IS NOT NULL;

-- +goose Down
DROP INDEX request_logs_session;
ALTER TABLE request_logs DROP COLUMN session_id;
DROP TABLE sessions;
