package store

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

// revokedChannel is the channel api_keys' trigger notifies with the id of a key the
// moment its revocation commits (migration 00005), whoever revoked it.
const revokedChannel = "lambda_key_revoked"

// RevocationFeedApplication is the application_name of the feed's connection.
const RevocationFeedApplication = "lambda key revocations"

// RevocationFeed tells a process the moment any replica revokes an API key, so it stops
// honouring the key at once instead of when its cache of verified keys expires. One
// connection LISTENs on the trigger's channel. While it is down nothing is delivered:
// Listening reports false, and once it is back forgetAll is called, since a revocation
// may have been missed.
type RevocationFeed struct {
	cfg       *pgx.ConnConfig
	log       *zap.Logger
	forget    func(keyID string)
	forgetAll func()
	idleCheck time.Duration
	listening atomic.Bool
}

// NewRevocationFeed returns a feed that calls forget with each revoked key's id, and
// forgetAll whenever it (re)connects; call Run to start it.
func (s *Store) NewRevocationFeed(log *zap.Logger, forget func(keyID string), forgetAll func()) *RevocationFeed {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = RevocationFeedApplication
	return &RevocationFeed{cfg: cfg, log: log, forget: forget, forgetAll: forgetAll, idleCheck: 30 * time.Second}
}

// Listening reports whether revocations are being received now.
func (f *RevocationFeed) Listening() bool { return f.listening.Load() }

// Run listens until ctx ends, reconnecting with backoff while PostgreSQL is unavailable.
func (f *RevocationFeed) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		established, err := f.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		if established {
			backoff = 100 * time.Millisecond
		}
		f.log.Warn("key revocation feed is not listening; cached keys expire by their TTL meanwhile",
			logging.Err(translate(err, "listen for key revocations")), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (f *RevocationFeed) listen(ctx context.Context) (established bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(cctx, f.cfg)
	cancel()
	if err != nil {
		return false, err
	}
	defer func() {
		f.listening.Store(false)
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+revokedChannel); err != nil {
		return false, err
	}
	f.forgetAll() // anything revoked while the feed was down
	f.listening.Store(true)
	for {
		wctx, cancel := context.WithTimeout(ctx, f.idleCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err == nil {
			f.forget(n.Payload)
			continue
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return true, err
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return true, err
		}
	}
}
