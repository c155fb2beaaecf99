// Package store persists functions, their immutable versions and the request log in
// PostgreSQL (pgx v5). It translates driver errors into fault kinds at this seam, so no
// caller ever sees pgx.ErrNoRows or a PostgreSQL error code.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the PostgreSQL store.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects a pool to url and checks the connection.
func Open(ctx context.Context, url string, maxConns int32) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fault.Wrap(fault.Unavailable, err, "postgresql unreachable")
	}
	return &Store{pool: pool}, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks PostgreSQL for readiness probes.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fault.Wrap(fault.Unavailable, err, "postgresql unreachable")
	}
	return nil
}

// Migrate applies the embedded migrations to the database at url.
func Migrate(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	// A session advisory lock serialises api and worker replicas migrating at the same time.
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Settings are a version's execution settings.
type Settings struct {
	TimeoutMS int               `json:"timeout_ms"`
	MemoryMB  int               `json:"memory_mb"`
	CacheTTLS int               `json:"cache_ttl_s"`
	Env       map[string]string `json:"env"`
}

// Version is one immutable version of a function.
type Version struct {
	Tenant   string `json:"-"`
	Name     string `json:"name"`
	Language string `json:"language"`
	Version  int    `json:"version"`
	// SHA256 identifies what the version answers: its build, language and settings, env
	// included (core's versionHash). BuildSHA256 is what a runtime host builds and caches
	// it by: its source (and, with dependencies, its lock).
	SHA256      string `json:"sha256"`
	BuildSHA256 string `json:"-"`
	Source      string `json:"source,omitempty"`
	Settings
	// Dependencies are the third-party packages the registration asked for (package →
	// version spec); Lock is what they resolved to, installed for every run of the version
	// and part of its hashes; LockInfo is the lock's summary the API shows.
	Dependencies map[string]string `json:"dependencies,omitempty"`
	Lock         *deps.Lock        `json:"-"`
	LockInfo     *LockInfo         `json:"lock,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
}

// LockInfo summarises a version's lock: its hash (the install directory it shares with
// every version locked the same way) and how many packages it holds, transitive included.
type LockInfo struct {
	Hash     string `json:"hash"`
	Packages int    `json:"packages"`
}

// SetLock sets v's lock and its summary.
func (v *Version) SetLock(l *deps.Lock) {
	v.Lock, v.LockInfo = l, nil
	if l != nil {
		v.LockInfo = &LockInfo{Hash: l.Hash, Packages: l.Packages}
	}
}

// Build is the hash a runtime host builds v by: BuildSHA256, or the sha256 of a version
// that has none of its own (made before the two were told apart, or by a test).
func (v Version) Build() string {
	if v.BuildSHA256 != "" {
		return v.BuildSHA256
	}
	return v.SHA256
}

// Function is a function's metadata with its latest version.
type Function struct {
	Version
	FunctionCreatedAt time.Time `json:"function_created_at"`
}

// Execution is one execution: the API's envelope and the request_logs row.
type Execution struct {
	ID         string          `json:"id"`
	Function   string          `json:"function"`
	Version    int             `json:"version"`
	Language   string          `json:"language"`
	Mode       string          `json:"mode"`
	Status     string          `json:"status"`
	Result     json.RawMessage `json:"result"`
	Error      *ExecError      `json:"error"`
	Stdout     string          `json:"stdout"`
	Stderr     string          `json:"stderr"`
	Truncated  bool            `json:"truncated"`
	DurationMS float64         `json:"duration_ms"`
	Cached     bool            `json:"cached"`
	Attempts   int             `json:"attempts"`
	CreatedAt  time.Time       `json:"created_at"`
	FinishedAt *time.Time      `json:"finished_at"`
	// RunID and StepID name the pipeline run and step whose call this execution is.
	RunID  string `json:"run_id,omitempty"`
	StepID string `json:"step_id,omitempty"`
	// Schedule names the schedule that started the execution; CallbackState is its
	// completion callback's delivery (Store.AnnotateExecutions).
	Schedule      string         `json:"schedule,omitempty"`
	CallbackState *CallbackState `json:"callback,omitempty"`

	Tenant        string          `json:"-"`
	LanguageTitle string          `json:"-"` // the Language-Title header as sent
	Payload       json.RawMessage `json:"-"` // the event
	WorkflowID    string          `json:"-"`
}

// ExecError is a handler's failure as the runtime reported it.
type ExecError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// Execution statuses.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusTimeout   = "timeout"
	StatusCanceled  = "canceled"
)

// Finished reports whether status is final.
func Finished(status string) bool {
	switch status {
	case StatusSucceeded, StatusFailed, StatusTimeout, StatusCanceled:
		return true
	}
	return false
}

// translate maps driver errors to fault kinds.
func translate(err error, op string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fault.Wrap(fault.NotFound, err, "%s: not found", op)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return fault.Wrap(fault.Conflict, err, "%s: already exists", op)
		case "57P01", "57P02", "57P03", "53300":
			return fault.Wrap(fault.Unavailable, err, "%s: postgresql unavailable", op)
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if pgconn.SafeToRetry(err) || isConnErr(err) {
		return fault.Wrap(fault.Unavailable, err, "%s: postgresql unavailable", op)
	}
	return fmt.Errorf("%s: %w", op, err)
}

func isConnErr(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) || errors.Is(err, pgx.ErrTxClosed) || pgconn.Timeout(err)
}
