package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

const execCols = `id, timestamp, language_title, status, coalesce(duration, 0), tenant, function, version,
	mode, result, error, stdout, stderr, truncated, cached, attempts, coalesce(workflow_id, ''), finished_at, language,
	coalesce(run_id::text, ''), coalesce(step_id, '')`

func scanExecution(row pgx.Row, withPayload bool) (Execution, error) {
	var e Execution
	var id uuid.UUID
	var result, errJSON []byte
	dest := []any{&id, &e.CreatedAt, &e.LanguageTitle, &e.Status, &e.DurationMS, &e.Tenant, &e.Function,
		&e.Version, &e.Mode, &result, &errJSON, &e.Stdout, &e.Stderr, &e.Truncated, &e.Cached, &e.Attempts,
		&e.WorkflowID, &e.FinishedAt, &e.Language, &e.RunID, &e.StepID}
	if withPayload {
		dest = append(dest, &e.Payload)
	}
	if err := row.Scan(dest...); err != nil {
		return Execution{}, err
	}
	e.ID = id.String()
	if len(result) > 0 {
		e.Result = result
	}
	if len(errJSON) > 0 {
		e.Error = &ExecError{}
		if err := json.Unmarshal(errJSON, e.Error); err != nil {
			return Execution{}, err
		}
	}
	return e, nil
}

// GetExecution returns one execution of a tenant (with its payload when withPayload).
func (s *Store) GetExecution(ctx context.Context, tenant, id string, withPayload bool) (Execution, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return Execution{}, fault.New(fault.NotFound, "execution %q not found", id)
	}
	cols := execCols
	if withPayload {
		cols += ", payload"
	}
	e, err := scanExecution(s.pool.QueryRow(ctx, `SELECT `+cols+` FROM request_logs
		WHERE id = $1 AND tenant = $2`, uid, tenant), withPayload)
	if err != nil {
		return Execution{}, notFound(err, "get execution", "execution %q not found", id)
	}
	return e, nil
}

// ExecutionFilter selects executions for listing.
type ExecutionFilter struct {
	Tenant   string
	Function string
	Status   string
	Limit    int
	Cursor   string // opaque, from the previous page
}

// ListExecutions lists executions newest first; it returns the next page's cursor or "".
func (s *Store) ListExecutions(ctx context.Context, f ExecutionFilter) ([]Execution, string, error) {
	var w filter
	w.eq("tenant", f.Tenant)
	w.where = append(w.where, "session_id IS NULL") // notebook cells are listed with their session
	w.eqUnlessEmpty("function", f.Function)
	w.eqUnlessEmpty("status", f.Status)
	return listPage(ctx, s, "list executions", `SELECT `+execCols+` FROM request_logs`, "timestamp", w, f.Cursor, f.Limit,
		func(row pgx.Row) (Execution, error) { return scanExecution(row, false) },
		func(e Execution) (time.Time, string) { return e.CreatedAt, e.ID })
}

// ClaimIdempotencyKey records key → executionID for a tenant unless the key is already
// held (and younger than ttl); it returns the execution id that owns the key and whether
// this call claimed it. A key reused with a different request hash is Unprocessable. The
// claim holds for the whole ttl: make it in the transaction that writes its execution's
// row (EnqueueExecution does), or use ClaimPendingIdempotencyKey.
func (s *Store) ClaimIdempotencyKey(ctx context.Context, tenant, key, executionID, requestHash string, ttl time.Duration) (string, bool, error) {
	return claimIdempotencyKey(ctx, s.pool, tenant, key, executionID, requestHash, ttl, 0)
}

// ClaimPendingIdempotencyKey is ClaimIdempotencyKey for an execution whose row is written
// only once it has run (a sync call): until then the claim is pending, and once pending
// has passed with still no row for its execution — the api that claimed it died mid-call
// — the key may be claimed again. With its row the claim holds for ttl.
func (s *Store) ClaimPendingIdempotencyKey(ctx context.Context, tenant, key, executionID, requestHash string,
	ttl, pending time.Duration) (string, bool, error) {
	return claimIdempotencyKey(ctx, s.pool, tenant, key, executionID, requestHash, ttl, pending)
}

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func claimIdempotencyKey(ctx context.Context, q querier, tenant, key, executionID, requestHash string,
	ttl, pending time.Duration) (string, bool, error) {
	var owner uuid.UUID
	var hash string
	var claimed bool
	var err error
	// A concurrent claim that commits after this statement's snapshot is seen by ON
	// CONFLICT but not by the SELECT: that returns no row, and the next attempt sees it.
	for attempt := 0; attempt < 3; attempt++ {
		err = claimKey(ctx, q, tenant, key, executionID, requestHash, ttl, pending, &owner, &hash, &claimed)
		if !errors.Is(err, pgx.ErrNoRows) {
			break
		}
	}
	if err != nil {
		return "", false, translate(err, "claim idempotency key")
	}
	if !claimed && hash != requestHash {
		return "", false, fault.New(fault.Unprocessable,
			"Idempotency-Key %q was used with a different request", key)
	}
	return owner.String(), claimed, nil
}

// claimKey takes the key when it is free, expired (older than ttl), or pending past its
// time with no row for its execution. A pending of 0 claims for the whole ttl.
func claimKey(ctx context.Context, q querier, tenant, key, executionID, requestHash string, ttl, pending time.Duration,
	owner *uuid.UUID, hash *string, claimed *bool) error {
	var pendingFor any
	if pending > 0 {
		pendingFor = pending.String()
	}
	return q.QueryRow(ctx, `WITH ins AS (
			INSERT INTO idempotency_keys AS k (tenant, key, execution_id, request_hash, pending_until)
			VALUES ($1, $2, $3, $4, now() + $6::interval)
			ON CONFLICT (tenant, key) DO UPDATE
			  SET execution_id = EXCLUDED.execution_id, request_hash = EXCLUDED.request_hash, created_at = now(),
			      pending_until = EXCLUDED.pending_until
			  WHERE k.created_at < now() - $5::interval
			     OR (k.pending_until < now() AND NOT EXISTS (SELECT 1 FROM request_logs r WHERE r.id = k.execution_id))
			RETURNING execution_id, request_hash, true AS claimed)
		SELECT execution_id, request_hash, claimed FROM ins
		UNION ALL
		SELECT execution_id, request_hash, false FROM idempotency_keys
		WHERE tenant = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM ins)`,
		tenant, key, executionID, requestHash, ttl.String(), pendingFor).Scan(owner, hash, claimed)
}

// ReleaseIdempotencyKey forgets a key whose execution could not be run, so a retry may
// claim it again.
func (s *Store) ReleaseIdempotencyKey(ctx context.Context, tenant, key, executionID string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE tenant = $1 AND key = $2 AND execution_id = $3`,
		tenant, key, executionID)
	return translate(err, "release idempotency key")
}
