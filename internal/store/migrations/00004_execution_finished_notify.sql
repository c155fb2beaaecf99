-- +goose Up
-- A final row of an async execution notifies channel lambda_execution_finished with its id,
-- in the transaction that writes it (delivered at commit): long-polls of
-- GET /v1/executions/{id}?wait= wake on it instead of polling. Sync rows never notify.
-- +goose StatementBegin
CREATE FUNCTION notify_execution_finished() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('lambda_execution_finished', NEW.id::text);
    RETURN NULL;
END
$$;
-- +goose StatementEnd
CREATE TRIGGER request_logs_finished
    AFTER INSERT OR UPDATE OF status ON request_logs
    FOR EACH ROW
    WHEN (NEW.mode <> 'sync' AND NEW.status NOT IN ('queued', 'running'))
    EXECUTE FUNCTION notify_execution_finished();

-- +goose Down
DROP TRIGGER request_logs_finished ON request_logs;
DROP FUNCTION notify_execution_finished();
