package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

// finishedChannel is the channel request_logs' trigger notifies with the id of an async
// execution whose row, committed unfinished before, was just committed final (migrations
// 00004 and 00011; the runs' trigger uses it too). A row first written final notifies
// nobody: no long-poll can be waiting for it.
const finishedChannel = "lambda_execution_finished"

// FinishFeedApplication is the application_name of the feed's connection (pg_stat_activity).
const FinishFeedApplication = "lambda finish feed"

// FinishFeed tells waiters the moment an async execution's final row commits. One
// connection per process LISTENs on the trigger's channel and wakes the subscribers of
// that id. While the connection is down nothing is delivered: Listening reports false, and
// every subscriber is woken once it is back, since a finish may have been missed.
type FinishFeed struct {
	cfg       *pgx.ConnConfig
	log       *zap.Logger
	idleCheck time.Duration // a quiet connection is checked this often (half-open TCP)
	listening atomic.Bool

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
}

// NewFinishFeed returns a feed on the store's database; call Run to start it.
func (s *Store) NewFinishFeed(log *zap.Logger) *FinishFeed {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = FinishFeedApplication
	return &FinishFeed{cfg: cfg, log: log, idleCheck: 30 * time.Second,
		waiters: map[string]map[chan struct{}]struct{}{}}
}

// Subscribe returns a channel that receives a value when execution id finishes (or when
// the feed reconnected and the caller should look again), and a func that unsubscribes.
// Subscribe before reading the execution, so a finish between the two is not missed.
func (f *FinishFeed) Subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	set := f.waiters[id]
	if set == nil {
		set = map[chan struct{}]struct{}{}
		f.waiters[id] = set
	}
	set[ch] = struct{}{}
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(set, ch)
		if len(f.waiters[id]) == 0 {
			delete(f.waiters, id)
		}
		f.mu.Unlock()
	}
}

// Listening reports whether notifications are being received now.
func (f *FinishFeed) Listening() bool { return f.listening.Load() }

// wake signals the subscribers of id, or every subscriber when id is "".
func (f *FinishFeed) wake(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	signal := func(set map[chan struct{}]struct{}) {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	if id != "" {
		signal(f.waiters[id])
		return
	}
	for _, set := range f.waiters {
		signal(set)
	}
}

// Run listens until ctx ends, reconnecting with backoff while PostgreSQL is unavailable.
func (f *FinishFeed) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		established, err := f.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		if established { // a session that worked: start the backoff over
			backoff = 100 * time.Millisecond
		}
		f.log.Warn("execution finish feed is not listening; long-polls fall back to polling",
			logging.Err(translate(err, "listen for finished executions")), zap.Duration("backoff", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// listen runs one LISTEN session until its connection breaks; established reports
// whether it got as far as listening.
func (f *FinishFeed) listen(ctx context.Context) (established bool, err error) {
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
	if _, err := conn.Exec(ctx, "LISTEN "+finishedChannel); err != nil {
		return false, err
	}
	f.wake("") // anything that finished while the feed was down looks again
	f.listening.Store(true)
	for {
		wctx, cancel := context.WithTimeout(ctx, f.idleCheck)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err == nil {
			f.wake(n.Payload)
			continue
		}
		if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return true, err
		}
		// Nothing for a while: make sure the connection is alive, since a half-open one
		// would report nothing forever while finishes go unnoticed.
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return true, err
		}
	}
}
