package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// Session is a notebook session's row.
type Session struct {
	ID              string     `json:"id"`
	Tenant          string     `json:"-"`
	Language        string     `json:"language"`
	RuntimeFunction string     `json:"-"`
	Replica         string     `json:"-"`
	MemoryMB        int        `json:"memory_mb"`
	Status          string     `json:"status"`
	CreatedAt       time.Time  `json:"created_at"`
	LastUsedAt      time.Time  `json:"last_used_at"`
	ClosedAt        *time.Time `json:"closed_at,omitempty"`
	// ExpiresAt is when an open session expires unless a cell runs before (set by core).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Session statuses.
const (
	SessionOpen    = "open"
	SessionClosed  = "closed"
	SessionExpired = "expired"
)

// Cell is one cell a session ran: a request_logs row with mode 'session'.
type Cell struct {
	ID         string          `json:"id"`
	SessionID  string          `json:"-"`
	Tenant     string          `json:"-"`
	Language   string          `json:"-"`
	Index      int             `json:"index"`
	Source     string          `json:"source"`
	Status     string          `json:"status"`
	Result     json.RawMessage `json:"result"`
	Error      *ExecError      `json:"error"`
	Stdout     string          `json:"stdout"`
	Stderr     string          `json:"stderr"`
	Truncated  bool            `json:"truncated"`
	DurationMS float64         `json:"duration_ms"`
	CreatedAt  time.Time       `json:"created_at"`
}

// sessionLocks is the advisory lock space of a tenant's session admissions.
const sessionLocks = 0x4c4d5345 // "LMSE"

// OpenSession writes a new open session unless its tenant has max open already
// (RateLimited, nothing written).
func (s *Store) OpenSession(ctx context.Context, ss *Session, max int) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, sessionLocks, ss.Tenant); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM sessions WHERE tenant = $1 AND status = 'open'`, ss.Tenant).Scan(&n); err != nil {
			return err
		}
		if max > 0 && n >= max {
			return fault.New(fault.RateLimited,
				"the tenant has %d notebook sessions open, its limit (LAMBDA_SESSION_MAX_PER_TENANT); delete one or let it expire", n)
		}
		return tx.QueryRow(ctx, `INSERT INTO sessions (id, tenant, language, runtime_function, replica, memory_mb)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING status, created_at, last_used_at`,
			ss.ID, ss.Tenant, ss.Language, ss.RuntimeFunction, ss.Replica, ss.MemoryMB).Scan(&ss.Status, &ss.CreatedAt, &ss.LastUsedAt)
	})
	if err != nil && fault.KindOf(err) == fault.Internal {
		return translate(err, "open session")
	}
	return err
}

const sessionCols = `id, tenant, language, runtime_function, replica, memory_mb, status, created_at, last_used_at, closed_at`

func scanSession(row pgx.Row) (Session, error) {
	var ss Session
	var id uuid.UUID
	err := row.Scan(&id, &ss.Tenant, &ss.Language, &ss.RuntimeFunction, &ss.Replica, &ss.MemoryMB, &ss.Status,
		&ss.CreatedAt, &ss.LastUsedAt, &ss.ClosedAt)
	ss.ID = id.String()
	return ss, err
}

// GetSession reads a tenant's session; another tenant's is NotFound.
func (s *Store) GetSession(ctx context.Context, tenant, id string) (Session, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Session{}, fault.New(fault.NotFound, "session %s not found", id)
	}
	ss, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1 AND tenant = $2`, id, tenant))
	if err != nil {
		return ss, translate(err, "session "+id)
	}
	return ss, nil
}

// LoadSession reads a session by id alone (the expiry sweeper).
func (s *Store) LoadSession(ctx context.Context, id string) (Session, error) {
	ss, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if err != nil {
		return ss, translate(err, "session "+id)
	}
	return ss, nil
}

// SetSessionReplica records the replica that now holds the session's worker.
func (s *Store) SetSessionReplica(ctx context.Context, id, replica string) error {
	_, err := s.pool.Exec(ctx, `UPDATE sessions SET replica = $2 WHERE id = $1`, id, replica)
	return translate(err, "set session replica")
}

// EndSession marks an open session closed or expired; it reports whether it was open.
func (s *Store) EndSession(ctx context.Context, id, status string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET status = $2, closed_at = now() WHERE id = $1 AND status = 'open'`, id, status)
	if err != nil {
		return false, translate(err, "end session")
	}
	return tag.RowsAffected() == 1, nil
}

// AddCell records a cell (a request_logs row with the session's id) and the session's use.
func (s *Store) AddCell(ctx context.Context, c *Cell) error {
	var errJSON []byte
	if c.Error != nil {
		var err error
		if errJSON, err = json.Marshal(c.Error); err != nil {
			return err
		}
	}
	payload, _ := json.Marshal(map[string]string{"source": c.Source})
	var result any
	if c.Result != nil {
		result = string(c.Result)
	}
	var errArg any
	if errJSON != nil {
		errArg = string(errJSON)
	}
	// The cell's number: one more than the session's last (cells of a session run one at a
	// time, and the row lock on the session serialises two api replicas).
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE sessions SET last_used_at = now() WHERE id = $1`, c.SessionID); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO request_logs (id, timestamp, language_title, payload, status, duration, tenant,
			function, version, mode, result, error, stdout, stderr, truncated, attempts, finished_at, language, session_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, '',
				(SELECT coalesce(max(version), 0) + 1 FROM request_logs WHERE session_id = $13),
				'session', $8, $9, $10, $11, $12, 1, now(), $3, $13) RETURNING version`,
			c.ID, c.CreatedAt, c.Language, string(payload), c.Status, c.DurationMS, c.Tenant, result, errArg,
			c.Stdout, c.Stderr, c.Truncated, c.SessionID).Scan(&c.Index)
	})
	return translate(err, "record cell")
}

// Cells lists a session's cells in order.
func (s *Store) Cells(ctx context.Context, sessionID string) ([]Cell, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, version, payload->>'source', status, coalesce(duration, 0), result, error,
		stdout, stderr, truncated, timestamp FROM request_logs WHERE session_id = $1 ORDER BY version`, sessionID)
	if err != nil {
		return nil, translate(err, "list cells")
	}
	defer rows.Close()
	out := []Cell{}
	for rows.Next() {
		var c Cell
		var id uuid.UUID
		var result, errJSON []byte
		if err := rows.Scan(&id, &c.Index, &c.Source, &c.Status, &c.DurationMS, &result, &errJSON, &c.Stdout, &c.Stderr,
			&c.Truncated, &c.CreatedAt); err != nil {
			return nil, translate(err, "list cells")
		}
		c.ID, c.SessionID = id.String(), sessionID
		if result != nil {
			c.Result = json.RawMessage(result)
		}
		if errJSON != nil {
			c.Error = &ExecError{}
			_ = json.Unmarshal(errJSON, c.Error)
		}
		out = append(out, c)
	}
	return out, translate(rows.Err(), "list cells")
}
