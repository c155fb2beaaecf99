package store

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

// upsertExecution writes an execution row. A row that is already final is never changed,
// so a retried activity or a duplicate write records an execution exactly once — except
// by a later attempt of a pipeline step's call: the attempts of a step under its retry
// policy share one execution id (pipeline.StepExecutionID), and the row shows the last.
const upsertExecution = executionHead + "\nVALUES (" + executionValues + ")\n" + executionOnConflict

// The parts of upsertExecution: its columns, its row (executionParams placeholders; the
// tenant is $7) and what a row already there keeps.
const (
	executionHead = `INSERT INTO request_logs AS r (id, timestamp, language_title, payload, status,
	duration, tenant, function, version, mode, result, error, stdout, stderr, truncated, cached, attempts,
	workflow_id, finished_at, language, run_id, step_id)`
	executionValues     = `$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,NULLIF($18,''),$19,$20,NULLIF($21,'')::uuid,NULLIF($22,'')`
	executionParams     = 22
	executionOnConflict = `ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, duration = EXCLUDED.duration,
	result = EXCLUDED.result, error = EXCLUDED.error, stdout = EXCLUDED.stdout, stderr = EXCLUDED.stderr,
	truncated = EXCLUDED.truncated, cached = EXCLUDED.cached, attempts = EXCLUDED.attempts,
	workflow_id = coalesce(EXCLUDED.workflow_id, r.workflow_id), finished_at = EXCLUDED.finished_at
WHERE r.status IN ('queued', 'running') OR (r.run_id IS NOT NULL AND r.attempts < EXCLUDED.attempts)`
)

func executionArgs(e *Execution) ([]any, error) {
	var errJSON []byte
	if e.Error != nil {
		var err error
		if errJSON, err = json.Marshal(e.Error); err != nil {
			return nil, err
		}
	}
	var payload, result any
	if e.Payload != nil {
		payload = string(e.Payload)
	}
	if e.Result != nil {
		result = string(e.Result)
	}
	var errArg any
	if errJSON != nil {
		errArg = string(errJSON)
	}
	return []any{e.ID, e.CreatedAt, e.LanguageTitle, payload, e.Status, e.DurationMS, e.Tenant, e.Function,
		e.Version, e.Mode, result, errArg, e.Stdout, e.Stderr, e.Truncated, e.Cached, e.Attempts, e.WorkflowID,
		e.FinishedAt, e.Language, e.RunID, e.StepID}, nil
}

// SaveExecution writes one execution row now (not group-committed): used for async rows
// that must exist before the workflow starts.
func (s *Store) SaveExecution(ctx context.Context, e *Execution) error {
	args, err := executionArgs(e)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, upsertExecution, args...)
	return translate(err, "save execution")
}

// StartAttempt marks a queued or running execution running with attempt n — or, when
// the row is already running (an earlier attempt died with its worker), with one more than
// the attempt it records if that is higher — and returns the row with its payload, in one
// statement. A final row is left as it is and returned without its payload.
func (s *Store) StartAttempt(ctx context.Context, tenant, id string, attempt int) (Execution, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return Execution{}, fault.New(fault.NotFound, "execution %q not found", id)
	}
	e, err := scanExecution(s.pool.QueryRow(ctx, `UPDATE request_logs SET status = 'running',
		attempts = greatest($3, CASE WHEN status = 'running' THEN attempts + 1 ELSE 0 END)
		WHERE id = $1 AND tenant = $2 AND status IN ('queued', 'running')
		RETURNING `+execCols+`, payload`, uid, tenant, attempt), true)
	if errors.Is(err, pgx.ErrNoRows) {
		return s.GetExecution(ctx, tenant, id, false) // final, or not there
	}
	if err != nil {
		return Execution{}, translate(err, "start attempt")
	}
	return e, nil
}

// UndoAttempt takes attempt n of a running execution back when nothing ran (the runtime
// refused the call because the tenant's own calls hold its share of the workers), so that
// waiting for a share never counts as an attempt. A row that moved on is left as it is.
func (s *Store) UndoAttempt(ctx context.Context, tenant, id string, attempt int) error {
	uid, err := uuid.Parse(id)
	if err != nil {
		return fault.New(fault.NotFound, "execution %q not found", id)
	}
	_, err = s.pool.Exec(ctx, `UPDATE request_logs SET attempts = attempts - 1
		WHERE id = $1 AND tenant = $2 AND status = 'running' AND attempts = $3 AND attempts > 0`, uid, tenant, attempt)
	return translate(err, "undo attempt")
}

// LogWriterConfig tunes group commit.
type LogWriterConfig struct {
	MaxBatch int           // rows per commit
	Writers  int           `env:"LAMBDA_LOG_WRITERS" envDefault:"2"` // commits in flight at once
	RetryFor time.Duration // how long a row is retried while PostgreSQL is unavailable
}

// LogWriter group-commits execution rows: concurrent Write calls are batched into one
// transaction, and each Write returns only once its row is durable.
type LogWriter struct {
	store    *Store
	cfg      LogWriterConfig
	reqs     chan *logReq
	log      *zap.Logger
	observe  func(wait time.Duration, rows int)
	stopOnce sync.Once
	done     chan struct{}
}

type logReq struct {
	e    *Execution
	step *stepWrite // a pipeline step settled with its call, in the same commit
	enq  time.Time
	done chan error
}

// stepWrite is a function step's row written with its execution (SaveCallStep's upsert).
type stepWrite struct {
	runID string
	row   RunStep
}

// NewLogWriter returns a group-commit writer; call Run to start it. observe, when set,
// receives each row's enqueue-to-commit time and each batch's size.
func (s *Store) NewLogWriter(cfg LogWriterConfig, log *zap.Logger, observe func(time.Duration, int)) *LogWriter {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 256
	}
	if cfg.Writers <= 0 {
		cfg.Writers = 2
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 30 * time.Second
	}
	return &LogWriter{store: s, cfg: cfg, reqs: make(chan *logReq, cfg.MaxBatch*cfg.Writers*4),
		log: log, observe: observe, done: make(chan struct{})}
}

// Run commits batches until ctx is canceled, then drains what was already queued.
func (w *LogWriter) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx)
		}()
	}
	wg.Wait()
	close(w.done)
}

// Write queues e and waits until it is committed (or ctx ends).
func (w *LogWriter) Write(ctx context.Context, e *Execution) error {
	return w.write(ctx, &logReq{e: e, enq: time.Now(), done: make(chan error, 1)})
}

// WriteWithStep is Write plus the row of the pipeline step e settles (run runID): the
// step's upsert, its output copied from e's result (SaveCallStep), commits in the same
// transaction as e — a durable run's function step costs one commit, not two.
func (w *LogWriter) WriteWithStep(ctx context.Context, e *Execution, runID string, step RunStep) error {
	step.ExecutionID = e.ID
	return w.write(ctx, &logReq{e: e, step: &stepWrite{runID: runID, row: step}, enq: time.Now(), done: make(chan error, 1)})
}

func (w *LogWriter) write(ctx context.Context, r *logReq) error {
	select {
	case w.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		return fault.New(fault.Unavailable, "request log writer stopped")
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *LogWriter) loop(ctx context.Context) {
	batch := make([]*logReq, 0, w.cfg.MaxBatch)
	for {
		var first *logReq
		select {
		case first = <-w.reqs:
		case <-ctx.Done():
			// Drain: rows already queued are still written, with a fresh deadline.
			select {
			case first = <-w.reqs:
			default:
				return
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < w.cfg.MaxBatch {
			select {
			case r := <-w.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		w.commit(batch)
	}
}

// commit writes a batch in one implicit transaction, retrying while PostgreSQL is
// unavailable; a batch rejected for its data is split so one bad row fails alone.
func (w *LogWriter) commit(batch []*logReq) {
	deadline := batch[0].enq.Add(w.cfg.RetryFor)
	backoff := 20 * time.Millisecond
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		err := w.send(ctx, batch)
		cancel()
		if err == nil {
			now := time.Now()
			for _, r := range batch {
				if w.observe != nil {
					w.observe(now.Sub(r.enq), 0)
				}
				r.done <- nil
			}
			if w.observe != nil {
				w.observe(-1, len(batch))
			}
			return
		}
		kind := fault.KindOf(translate(err, "write request log"))
		if kind != fault.Unavailable && !errors.Is(err, context.DeadlineExceeded) {
			if len(batch) > 1 {
				for _, r := range batch {
					w.commit([]*logReq{r})
				}
				return
			}
			w.log.Error("request log row rejected", logging.Err(err), zap.String(logging.FieldExecutionID, batch[0].e.ID))
			batch[0].done <- translate(err, "write request log")
			return
		}
		if time.Now().Add(backoff).After(deadline) {
			w.log.Error("request log write gave up", logging.Err(err), zap.Int("rows", len(batch)))
			for _, r := range batch {
				r.done <- fault.Wrap(fault.Unavailable, err, "request log not durable: postgresql unavailable")
			}
			return
		}
		w.log.Warn("request log write failed; retrying", logging.Err(err), zap.Duration("backoff", backoff))
		time.Sleep(backoff)
		backoff = min(backoff*2, time.Second)
	}
}

func (w *LogWriter) send(ctx context.Context, batch []*logReq) error {
	b := &pgx.Batch{}
	for _, r := range batch {
		args, err := executionArgs(r.e)
		if err != nil {
			return err
		}
		b.Queue(upsertExecution, args...)
		if r.step != nil {
			// After its execution's upsert in the same transaction: the step's output is
			// the result that statement wrote.
			sargs, err := stepArgs(r.step.runID, r.step.row)
			if err != nil {
				return err
			}
			sargs[5] = r.step.row.ExecutionID
			b.Queue(saveCallStep, sargs...)
		}
	}
	// Without an explicit transaction, pgx sends the batch as one pipeline ending in a
	// single Sync: PostgreSQL runs it as one implicit transaction, one commit.
	return w.store.pool.SendBatch(ctx, b).Close()
}
