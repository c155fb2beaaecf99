-- +goose Up
-- build_sha256 is what a runtime host builds and caches a version by (its source; with
-- dependencies, its lock too); sha256 becomes the version's identity: build, language and
-- every setting, env included (core.versionHash). Versions stored before kept a sha256 of
-- their source alone, which is exactly their build hash.
ALTER TABLE function_versions ADD COLUMN build_sha256 text;
UPDATE function_versions SET build_sha256 = sha256;
ALTER TABLE function_versions ALTER COLUMN build_sha256 SET NOT NULL;

-- An Idempotency-Key claimed by a sync call is pending until the call's row is written:
-- when the api that claimed it dies first, another request may take the key over once
-- pending_until has passed and no row exists for its execution. NULL: held for the whole
-- TTL (async claims are written with their queued row, in one transaction).
ALTER TABLE idempotency_keys ADD COLUMN pending_until timestamptz;

-- Async executions queued or running, per tenant: counted when one is admitted (the
-- per-tenant cap) and scanned by the worker's sweeper.
CREATE INDEX request_logs_async_open ON request_logs (tenant, timestamp)
    WHERE mode = 'async' AND status IN ('queued', 'running');

-- A revoked API key is announced on lambda_key_revoked with its id, at commit, so every
-- api replica drops it from its cache of verified keys at once.
-- +goose StatementBegin
CREATE FUNCTION notify_key_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lambda_key_revoked', NEW.id);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER api_keys_revoked
    AFTER UPDATE OF revoked_at ON api_keys
    FOR EACH ROW
    WHEN (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL)
    EXECUTE FUNCTION notify_key_revoked();

-- +goose Down
DROP TRIGGER api_keys_revoked ON api_keys;
DROP FUNCTION notify_key_revoked();
DROP INDEX request_logs_async_open;
ALTER TABLE idempotency_keys DROP COLUMN pending_until;
ALTER TABLE function_versions DROP COLUMN build_sha256;
