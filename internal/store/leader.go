package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lease is leadership held through a PostgreSQL session advisory lock on a connection of
// its own: it lasts while that connection does, so a leader that dies (or loses
// PostgreSQL) frees it for another process without any timeout of ours.
type Lease struct {
	conn *pgx.Conn
}

// TryLead takes the session advisory lock key unless another session holds it
// (ok=false). Leadership ends with Release, or with the lease's connection.
func (s *Store) TryLead(ctx context.Context, application string, key int64) (*Lease, bool, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = application
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, false, translate(err, "lead")
	}
	var ok bool
	if err := conn.QueryRow(cctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil || !ok {
		_ = conn.Close(context.Background())
		return nil, false, translate(err, "lead")
	}
	return &Lease{conn: conn}, true, nil
}

// Alive checks that the lease's connection, and with it the lock, is still there.
func (l *Lease) Alive(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return l.conn.Ping(ctx) == nil
}

// Release ends leadership.
func (l *Lease) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = l.conn.Close(ctx)
}
