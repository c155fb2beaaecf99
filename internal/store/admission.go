package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// Admission says how an accepted async execution is admitted: with its Idempotency-Key's
// claim, and under its tenant's cap on async work queued or running.
type Admission struct {
	Key         string // the Idempotency-Key; "" for none
	RequestHash string
	KeyTTL      time.Duration
	// MaxOpen is how many async executions the tenant may have queued or running; one
	// more is RateLimited. 0: no cap.
	MaxOpen int
	// Origin, when set, is written in the same transaction: the callback the work asked
	// for and the schedule that started it.
	Origin *Origin
}

// EnqueueExecution writes an accepted async execution's queued row, its key's claim and
// the check of its tenant's cap in one transaction, so a key never names an execution
// that was not written, whatever fails or crashes in between. When the key is already
// claimed it writes nothing and returns the owner's id (created=false); when the tenant
// is at its cap it writes nothing and answers RateLimited.
func (s *Store) EnqueueExecution(ctx context.Context, e *Execution, a Admission) (owner string, created bool, err error) {
	args, err := executionArgs(e)
	if err != nil {
		return "", false, err
	}
	if a.Key == "" && a.MaxOpen <= 0 && a.Origin == nil { // one statement: no transaction needed
		if _, err := s.pool.Exec(ctx, upsertExecution, args...); err != nil {
			return "", false, translate(err, "enqueue execution")
		}
		return e.ID, true, nil
	}
	if a.oneStatement() {
		if ok, err := s.admitFarFromCap(ctx, enqueueFarFromCap, args, a.MaxOpen); err != nil {
			return "", false, translate(err, "enqueue execution")
		} else if ok {
			return e.ID, true, nil
		}
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		capped, err := lockUnlessFarFromCap(ctx, tx, e.Tenant, a.MaxOpen)
		if err != nil {
			return err
		}
		if a.Key != "" {
			id, claimed, err := claimIdempotencyKey(ctx, tx, e.Tenant, a.Key, e.ID, a.RequestHash, a.KeyTTL, 0)
			if err != nil || !claimed {
				owner = id
				return err
			}
		}
		if capped {
			n, err := openAsync(ctx, tx, e.Tenant, a.MaxOpen)
			if err != nil {
				return err
			}
			if n >= a.MaxOpen {
				return fault.New(fault.RateLimited,
					"the tenant has %d async executions queued or running, its limit (LAMBDA_TENANT_ASYNC_MAX); retry once some finish", n)
			}
		}
		if _, err := tx.Exec(ctx, upsertExecution, args...); err != nil {
			return err
		}
		if err := insertOrigin(ctx, tx, e.Tenant, e.ID, KindExecution, a.Origin); err != nil {
			return err
		}
		owner, created = e.ID, true
		return nil
	})
	if err != nil {
		if fault.KindOf(err) != fault.Internal {
			return "", false, err
		}
		return "", false, translate(err, "enqueue execution")
	}
	return owner, created, nil
}

// enqueueFarFromCap is upsertExecution admitted far from the tenant's cap in one statement.
var enqueueFarFromCap = farFromCapSQL(executionHead, executionValues, executionOnConflict, "$7", executionParams)

// UnlockedMargin is how far below its cap (LAMBDA_TENANT_ASYNC_MAX) a tenant's async
// work must be for an admission to skip the tenant's admission lock. The lock serialises
// a tenant's admissions through their commits (a disk flush each), which held async
// starts to ~150/s; an admission far below the cap does not need it. Each admission's
// transaction counts first, unlocked; at least UnlockedMargin below the cap it goes on
// without the lock, else it takes the lock and counts again. The cap still holds
// exactly: unlocked admissions can only overshoot by those whose transactions counted
// before the others committed, all in flight at once on connections of their own — and
// PostgreSQL's max_connections (100 by default) is below UnlockedMargin. A cap of
// UnlockedMargin or less always locks.
const UnlockedMargin = 256

// lockUnlessFarFromCap starts an admission in tx under a cap of maxOpen (0: none): it
// reports whether the cap must be checked (capped), having taken the tenant's lock, or
// the tenant is at least UnlockedMargin below it and nothing more is needed.
func lockUnlessFarFromCap(ctx context.Context, tx pgx.Tx, tenant string, maxOpen int) (capped bool, err error) {
	if maxOpen <= 0 {
		return false, nil
	}
	if maxOpen > UnlockedMargin {
		n, err := openAsync(ctx, tx, tenant, maxOpen-UnlockedMargin+1)
		if err != nil {
			return false, err
		}
		if n+UnlockedMargin <= maxOpen {
			return false, nil
		}
	}
	return true, lockAdmissions(ctx, tx, tenant)
}

// admissionLocks is the advisory lock space (pg_advisory_xact_lock's first key) of the
// per-tenant admission of async work.
const admissionLocks = 0x4c4d4144 // "LMAD"

// lockAdmissions serialises a tenant's admissions of async work until tx ends, so the
// count openAsync takes is exact. Whatever admits async work for a tenant (an execution,
// a pipeline run) takes it before counting.
func lockAdmissions(ctx context.Context, tx pgx.Tx, tenant string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, admissionLocks, tenant)
	return err
}

// openAsync counts a tenant's async work queued or running, up to limit: its async
// executions (request_logs, partial index request_logs_async_open) and its async pipeline
// runs not final (runs_open; a sync run handed over to a workflow becomes async).
func openAsync(ctx context.Context, q rowQuerier, tenant string, limit int) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT `+openAsyncCount("$1", "$2"), tenant, limit).Scan(&n)
	return n, err
}

// openAsyncCount is openAsync's count as an SQL expression over the placeholders of the
// tenant and the limit.
func openAsyncCount(tenant, limit string) string {
	return `(SELECT count(*) FROM (SELECT 1 FROM request_logs
		WHERE tenant = ` + tenant + ` AND mode = 'async' AND status IN ('queued', 'running') LIMIT ` + limit + `) o)
		+ (SELECT count(*) FROM (SELECT 1 FROM runs
		WHERE tenant = ` + tenant + ` AND mode = 'async' AND status IN ('queued', 'running', 'waiting') LIMIT ` + limit + `) r)`
}

// farFromCapSQL turns an insert of one row, `head VALUES (values) tail`, into one
// statement that inserts it only when its tenant's open async work is at least
// UnlockedMargin below the cap: lockUnlessFarFromCap's unlocked path, its count and its
// insert in one round trip and one implicit transaction instead of four (BEGIN, count,
// insert, COMMIT). Its two extra placeholders, after the row's n, are the count's limit
// and the cap (Store.admitFarFromCap passes them). Nothing inserted: the admission
// takes the locked path.
func farFromCapSQL(head, values, tail, tenant string, n int) string {
	limit, maxOpen := fmt.Sprintf("$%d", n+1), fmt.Sprintf("$%d", n+2)
	return head + "\nSELECT " + values + "\nWHERE " + openAsyncCount(tenant, limit) +
		fmt.Sprintf(" + %d <= ", UnlockedMargin) + maxOpen + "\n" + tail
}

// oneStatement says whether the admission may try farFromCapSQL's one statement: a
// cap far enough above the margin, no key to claim and no origin to write with it.
func (a Admission) oneStatement() bool {
	return a.Key == "" && a.MaxOpen > UnlockedMargin && a.Origin == nil
}

// admitFarFromCap runs a farFromCapSQL statement over a row's args under a cap of
// maxOpen: whether it wrote the row.
func (s *Store) admitFarFromCap(ctx context.Context, sql string, args []any, maxOpen int) (bool, error) {
	tag, err := s.pool.Exec(ctx, sql, append(args, maxOpen-UnlockedMargin+1, maxOpen)...)
	return err == nil && tag.RowsAffected() == 1, err
}

// OpenAsync is an async execution that is not final: what the sweeper looks at.
type OpenAsync struct {
	ID            string
	Tenant        string
	Function      string
	Version       int
	LanguageTitle string
	Status        string
	CreatedAt     time.Time
}

// OpenAsyncExecutions lists async executions queued or running that were accepted before
// before, oldest first, at most limit.
func (s *Store) OpenAsyncExecutions(ctx context.Context, before time.Time, limit int) ([]OpenAsync, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tenant, function, version, language_title, status, timestamp
		FROM request_logs WHERE mode = 'async' AND status IN ('queued', 'running') AND timestamp < $1
		ORDER BY timestamp LIMIT $2`, before, limit)
	if err != nil {
		return nil, translate(err, "list open async executions")
	}
	defer rows.Close()
	var out []OpenAsync
	for rows.Next() {
		var o OpenAsync
		var id uuid.UUID
		if err := rows.Scan(&id, &o.Tenant, &o.Function, &o.Version, &o.LanguageTitle, &o.Status, &o.CreatedAt); err != nil {
			return nil, translate(err, "list open async executions")
		}
		o.ID = id.String()
		out = append(out, o)
	}
	return out, translate(rows.Err(), "list open async executions")
}
