-- +goose Up
-- Pipelines (DESIGN.md §9). A definition is stored once per tenant under its sha256 (the
-- canonical definition without its name): versions point at it, and so do runs, so a run
-- keeps its pinned definition after its pipeline is deleted.
CREATE TABLE pipeline_definitions (
    tenant     text        NOT NULL,
    sha256     text        NOT NULL,
    definition text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, sha256)
);

CREATE TABLE pipelines (
    tenant         text        NOT NULL,
    name           text        NOT NULL,
    latest_version integer     NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name)
);

-- Versions are immutable.
CREATE TABLE pipeline_versions (
    tenant     text        NOT NULL,
    name       text        NOT NULL,
    version    integer     NOT NULL,
    sha256     text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name, version),
    FOREIGN KEY (tenant, name) REFERENCES pipelines (tenant, name) ON DELETE CASCADE,
    FOREIGN KEY (tenant, sha256) REFERENCES pipeline_definitions (tenant, sha256)
);

-- One row per run. input and output are the claim check: the durable side carries the
-- run's id only. options holds what the interpreter is started with besides the seeds
-- (the functions' versions resolved at run start).
CREATE TABLE runs (
    id              uuid        PRIMARY KEY,
    tenant          text        NOT NULL,
    pipeline        text        NOT NULL,
    version         integer     NOT NULL,
    sha256          text        NOT NULL,
    mode            text        NOT NULL,
    status          text        NOT NULL,
    input           json,
    output          json,
    error           jsonb,
    options         jsonb       NOT NULL DEFAULT '{}',
    idempotency_key text,
    callback_url    text,
    retry_of        uuid,
    created_at      timestamptz NOT NULL,
    started_at      timestamptz,
    finished_at     timestamptz,
    CONSTRAINT runs_mode_check CHECK (mode IN ('sync', 'async')),
    CONSTRAINT runs_status_check
        CHECK (status IN ('queued', 'running', 'waiting', 'succeeded', 'failed', 'canceled')),
    FOREIGN KEY (tenant, sha256) REFERENCES pipeline_definitions (tenant, sha256)
);
CREATE INDEX runs_tenant_time ON runs (tenant, created_at DESC, id DESC);
CREATE INDEX runs_pipeline_time ON runs (tenant, pipeline, created_at DESC, id DESC);
-- Runs not final: counted with async executions by the tenant's admission, and scanned by
-- the sweeper (a sync run whose api died, an async run whose start never happened).
CREATE INDEX runs_open ON runs (tenant, created_at) WHERE status IN ('queued', 'running', 'waiting');

-- A run's steps as they settle (and wait_for steps while they wait). output is the step's
-- output (claim check); a final row never changes again.
CREATE TABLE run_steps (
    run_id          uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id         text        NOT NULL,
    status          text        NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    execution_id    uuid,
    output          json,
    error           jsonb,
    items_total     integer,
    items_succeeded integer,
    items_failed    integer,
    waiting_signal  text,
    started_at      timestamptz,
    finished_at     timestamptz,
    PRIMARY KEY (run_id, step_id),
    CONSTRAINT run_steps_status_check
        CHECK (status IN ('pending', 'running', 'waiting', 'succeeded', 'failed', 'skipped', 'canceled'))
);

-- The item list a map step's items expression gave (claim check for its item calls).
CREATE TABLE run_items (
    run_id  uuid  NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step_id text  NOT NULL,
    items   jsonb NOT NULL,
    PRIMARY KEY (run_id, step_id)
);

-- Signals received for a run, in order; a wait_for step takes the oldest one of its name
-- not taken yet (step_id records which step took it).
CREATE TABLE run_signals (
    run_id      uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq         bigserial,
    signal      text        NOT NULL,
    payload     json        NOT NULL,
    step_id     text,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, seq)
);

-- An execution made by a pipeline step names its run and step.
ALTER TABLE request_logs ADD COLUMN run_id uuid;
ALTER TABLE request_logs ADD COLUMN step_id text;
CREATE INDEX request_logs_run ON request_logs (run_id) WHERE run_id IS NOT NULL;

-- A run turning final notifies the channel executions use, with the run's id: long-polls
-- of GET /v1/runs/{id}?wait= wake on it (ids are UUIDs, never shared with executions).
-- +goose StatementBegin
CREATE FUNCTION notify_run_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lambda_execution_finished', NEW.id::text);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER runs_finished
    AFTER INSERT OR UPDATE OF status ON runs
    FOR EACH ROW
    WHEN (NEW.status NOT IN ('queued', 'running', 'waiting'))
    EXECUTE FUNCTION notify_run_finished();

-- +goose Down
DROP TRIGGER runs_finished ON runs;
DROP FUNCTION notify_run_finished();
DROP INDEX request_logs_run;
ALTER TABLE request_logs DROP COLUMN step_id;
ALTER TABLE request_logs DROP COLUMN run_id;
DROP TABLE run_signals;
DROP TABLE run_items;
DROP TABLE run_steps;
DROP TABLE runs;
DROP TABLE pipeline_versions;
DROP TABLE pipelines;
DROP TABLE pipeline_definitions;
