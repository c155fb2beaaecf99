-- +goose Up
-- A finish notifies only when a row that was committed unfinished turns final. A long-poll
-- waits only for a row it has read unfinished (an unknown id is a 404 at once), so a row
-- whose first committed version is already final — a sync run recorded once at its end,
-- its calls' executions, a step's call recorded with its outcome — wakes nobody. Its
-- NOTIFY was not free: PostgreSQL serializes the commits of notifying transactions, the
-- WAL flush included, behind one lock for the whole cluster, and wakes every listener.
DROP TRIGGER request_logs_finished ON request_logs;
CREATE TRIGGER request_logs_finished
    AFTER UPDATE OF status ON request_logs
    FOR EACH ROW
    WHEN (NEW.mode <> 'sync' AND NEW.status NOT IN ('queued', 'running') AND OLD.status IN ('queued', 'running'))
    EXECUTE FUNCTION notify_execution_finished();

DROP TRIGGER runs_finished ON runs;
CREATE TRIGGER runs_finished
    AFTER UPDATE OF status ON runs
    FOR EACH ROW
    WHEN (NEW.status NOT IN ('queued', 'running', 'waiting') AND OLD.status IN ('queued', 'running', 'waiting'))
    EXECUTE FUNCTION notify_run_finished();

-- +goose Down
DROP TRIGGER runs_finished ON runs;
CREATE TRIGGER runs_finished
    AFTER INSERT OR UPDATE OF status ON runs
    FOR EACH ROW
    WHEN (NEW.status NOT IN ('queued', 'running', 'waiting'))
    EXECUTE FUNCTION notify_run_finished();

DROP TRIGGER request_logs_finished ON request_logs;
CREATE TRIGGER request_logs_finished
    AFTER INSERT OR UPDATE OF status ON request_logs
    FOR EACH ROW
    WHEN (NEW.mode <> 'sync' AND NEW.status NOT IN ('queued', 'running'))
    EXECUTE FUNCTION notify_execution_finished();
