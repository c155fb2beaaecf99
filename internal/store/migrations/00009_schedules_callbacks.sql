-- +goose Up
-- Completion callbacks and schedules (DESIGN.md §10).

-- A tenant's webhook signing secret: created on first read; a rotation keeps the previous
-- one, which still signs (and so verifies) for 24 h after rotated_at.
CREATE TABLE webhook_secrets (
    tenant     text        PRIMARY KEY,
    current    text        NOT NULL,
    previous   text,
    rotated_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per async execution or run that asked for a callback (X-Callback-Url), written
-- in the transaction that writes the execution's or run's row; the delivery's state.
CREATE TABLE callbacks (
    id          uuid        PRIMARY KEY,
    tenant      text        NOT NULL,
    kind        text        NOT NULL,
    url         text        NOT NULL,
    state       text        NOT NULL DEFAULT 'pending',
    attempts    integer     NOT NULL DEFAULT 0,
    last_status integer,
    reason      text        NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT callbacks_kind_check CHECK (kind IN ('execution', 'run')),
    CONSTRAINT callbacks_state_check CHECK (state IN ('pending', 'delivered', 'failed'))
);

-- A tenant's schedules; the Temporal schedule sched-<tenant>-<name> runs it. spec is the
-- schedule as created (target, cron or interval, timezone, input, overlap).
CREATE TABLE schedules (
    tenant     text        NOT NULL,
    name       text        NOT NULL,
    spec       jsonb       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name)
);

-- The executions and runs a schedule started (their id), written with their row.
CREATE TABLE schedule_starts (
    id         uuid        PRIMARY KEY,
    tenant     text        NOT NULL,
    schedule   text        NOT NULL,
    kind       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT schedule_starts_kind_check CHECK (kind IN ('execution', 'run'))
);
CREATE INDEX schedule_starts_by_schedule ON schedule_starts (tenant, schedule, created_at DESC);

-- +goose Down
DROP TABLE schedule_starts;
DROP TABLE schedules;
DROP TABLE callbacks;
DROP TABLE webhook_secrets;
