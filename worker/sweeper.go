package worker

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/store"
)

// SweepConfig tunes the sweeper of async work left behind by a crash.
type SweepConfig struct {
	// Interval is how often the leading worker sweeps (and the others try to lead).
	Interval time.Duration `env:"LAMBDA_SWEEP_INTERVAL" envDefault:"30s"`
	// After is how long work must have stayed unfinished before a sweep looks at it:
	// well past how long a start may take, so nothing on its way is touched.
	After time.Duration `env:"LAMBDA_SWEEP_AFTER" envDefault:"1m"`
}

// SweepTask is one kind of work a sweep makes whole: async executions (core's
// SweepExecutions); pipeline runs add theirs. It returns how many it changed.
type SweepTask struct {
	Name  string
	Sweep func(ctx context.Context, olderThan time.Duration) (int, error)
}

// Leader is how a sweeper becomes the only one sweeping (*store.Store).
type Leader interface {
	TryLead(ctx context.Context, application string, key int64) (*store.Lease, bool, error)
}

// sweeperLock is the PostgreSQL advisory lock the sweeping worker holds.
const sweeperLock int64 = 0x4c4d53574545 // "LMSWEE"

// Sweeper runs the sweep tasks in one worker process at a time: the one that holds the
// sweeper's advisory lock, on a connection of its own. A leader that dies frees it with
// its connection, and another worker takes over within an interval.
type Sweeper struct {
	cfg    SweepConfig
	leader Leader
	tasks  []SweepTask
	log    *zap.Logger
}

// NewSweeper returns a sweeper of tasks; call Run.
func NewSweeper(cfg SweepConfig, leader Leader, tasks []SweepTask, log *zap.Logger) *Sweeper {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	return &Sweeper{cfg: cfg, leader: leader, tasks: tasks, log: log.Named("sweeper")}
}

// Run tries to lead, then sweeps every interval while it leads, until ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	var lease *store.Lease
	defer func() {
		if lease != nil {
			lease.Release()
		}
	}()
	for {
		if lease != nil && !lease.Alive(ctx) {
			lease.Release()
			lease = nil
			s.log.Warn("sweeper lost its lease")
		}
		if lease == nil {
			l, ok, err := s.leader.TryLead(ctx, "lambda sweeper", sweeperLock)
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Warn("sweeper cannot try to lead", logging.Err(err))
			case ok:
				lease = l
				s.log.Info("sweeper leads")
			}
		}
		if lease != nil {
			s.sweep(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sweeper) sweep(ctx context.Context) {
	for _, task := range s.tasks {
		n, err := task.Sweep(ctx, s.cfg.After)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("sweep failed; the next one goes on", zap.String("task", task.Name), logging.Err(err))
		}
		if n > 0 {
			s.log.Info("swept", zap.String("task", task.Name), zap.Int("changed", n))
		}
	}
}
