package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// Run is a pipeline run: the API's run envelope and the runs row.
type Run struct {
	ID         string          `json:"id"`
	Pipeline   string          `json:"pipeline"`
	Version    int             `json:"version"`
	Mode       string          `json:"mode"`
	Status     string          `json:"status"`
	Input      json.RawMessage `json:"input"`
	Output     json.RawMessage `json:"output"`
	Error      *pipeline.Error `json:"error"`
	Steps      []RunStep       `json:"steps,omitempty"` // not in lists
	RetryOf    string          `json:"retry_of,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at"`
	// Live, on a durable run not yet final, tells whether its steps include the live
	// state of its workflow (true) or only the recorded one (false: Temporal did not
	// answer in time). Absent on final and sync runs.
	Live     *bool      `json:"live,omitempty"`
	Tenant   string     `json:"-"`
	SHA256   string     `json:"-"`
	Options  RunOptions `json:"-"`
	Key      string     `json:"-"` // its Idempotency-Key
	Callback string     `json:"-"`
	// Schedule and CallbackState annotate the envelope (Store.Annotate*).
	Schedule      string         `json:"schedule,omitempty"`
	CallbackState *CallbackState `json:"callback,omitempty"`
}

// RunOptions are what a run's interpreter starts with besides its seeds (runs.options).
type RunOptions struct {
	// Versions are the functions' latest versions resolved at run start.
	Versions map[string]int `json:"versions,omitempty"`
}

// RunStep is one step of a run as recorded.
type RunStep struct {
	ID          string               `json:"id"`
	Status      string               `json:"status"`
	Attempts    int                  `json:"attempts"`
	ExecutionID string               `json:"execution_id,omitempty"`
	Output      json.RawMessage      `json:"output"`
	Error       *pipeline.Error      `json:"error"`
	StartedAt   *time.Time           `json:"started_at"`
	FinishedAt  *time.Time           `json:"finished_at"`
	Items       *pipeline.ItemCounts `json:"items,omitempty"`
	// Until is when a sleep step in flight wakes up (live state only).
	Until         *time.Time `json:"until,omitempty"`
	WaitingSignal string     `json:"-"`
}

// Run statuses besides the execution ones.
const (
	RunWaiting = "waiting"
)

// RunFinished reports whether a run's status is final.
func RunFinished(status string) bool {
	switch status {
	case StatusSucceeded, StatusFailed, StatusCanceled:
		return true
	}
	return false
}

const runCols = `id, tenant, pipeline, version, sha256, mode, status, input, output, error, options,
	coalesce(idempotency_key, ''), coalesce(callback_url, ''), coalesce(retry_of::text, ''), created_at, started_at, finished_at`

func scanRun(row pgx.Row) (Run, error) {
	var r Run
	var id uuid.UUID
	var input, output, errJSON, opts []byte
	if err := row.Scan(&id, &r.Tenant, &r.Pipeline, &r.Version, &r.SHA256, &r.Mode, &r.Status, &input, &output,
		&errJSON, &opts, &r.Key, &r.Callback, &r.RetryOf, &r.CreatedAt, &r.StartedAt, &r.FinishedAt); err != nil {
		return Run{}, err
	}
	r.ID = id.String()
	r.Input = rawOrNull(input)
	if len(output) > 0 {
		r.Output = output
	} else {
		r.Output = json.RawMessage("null")
	}
	if len(errJSON) > 0 {
		r.Error = &pipeline.Error{}
		if err := json.Unmarshal(errJSON, r.Error); err != nil {
			return Run{}, err
		}
	}
	if len(opts) > 0 {
		if err := json.Unmarshal(opts, &r.Options); err != nil {
			return Run{}, err
		}
	}
	return r, nil
}

func rawOrNull(b []byte) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return json.RawMessage(b)
}

func jsonArg(b json.RawMessage) any {
	if b == nil {
		return nil
	}
	return string(b)
}

func errArg(e *pipeline.Error) (any, error) {
	if e == nil {
		return nil, nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

const insertRun = runHead + "\n\tVALUES (" + runValues + ")"

// The parts of insertRun: its columns and its row (the tenant is $2).
const (
	runHead = `INSERT INTO runs (id, tenant, pipeline, version, sha256, mode, status, input, output, error, options,
	idempotency_key, callback_url, retry_of, created_at, started_at, finished_at)`
	runValues = `$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17`
	runParams = 17
)

// insertRunFarFromCap is insertRun admitted far from the tenant's cap in one statement.
var insertRunFarFromCap = farFromCapSQL(runHead, runValues, "", "$2", runParams)

func runArgs(r *Run) ([]any, error) {
	opts, err := json.Marshal(r.Options)
	if err != nil {
		return nil, err
	}
	errJSON, err := errArg(r.Error)
	if err != nil {
		return nil, err
	}
	var retryOf any
	if r.RetryOf != "" {
		retryOf = r.RetryOf
	}
	return []any{r.ID, r.Tenant, r.Pipeline, r.Version, r.SHA256, r.Mode, r.Status, jsonArg(r.Input), jsonArg(nilIfNull(r.Output)),
		errJSON, string(opts), nullIfEmpty(r.Key), nullIfEmpty(r.Callback), retryOf, r.CreatedAt, r.StartedAt, r.FinishedAt}, nil
}

// RecordRunning writes a sync run's row as it is while it runs, unless the row exists
// already (the run finished or was handed over meanwhile).
func (s *Store) RecordRunning(ctx context.Context, r *Run) error {
	args, err := runArgs(r)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, insertRun+` ON CONFLICT (id) DO NOTHING`, args...)
	return translate(err, "record running run")
}

// InsertRun writes a new run's row (and r.Steps: the seeds of a retried run), with its
// Idempotency-Key's claim and, for an async
// run, the check of its tenant's cap on async work (a.MaxOpen), in one transaction. When
// the key is already claimed it writes nothing and returns the owner's id (created=false).
func (s *Store) InsertRun(ctx context.Context, r *Run, a Admission) (owner string, created bool, err error) {
	args, err := runArgs(r)
	if err != nil {
		return "", false, err
	}
	const sql = insertRun
	if a.Key == "" && a.MaxOpen <= 0 && len(r.Steps) == 0 && a.Origin == nil {
		if _, err := s.pool.Exec(ctx, sql, args...); err != nil {
			return "", false, translate(err, "insert run")
		}
		return r.ID, true, nil
	}
	if a.oneStatement() && len(r.Steps) == 0 {
		if ok, err := s.admitFarFromCap(ctx, insertRunFarFromCap, args, a.MaxOpen); err != nil {
			return "", false, translate(err, "insert run")
		} else if ok {
			return r.ID, true, nil
		}
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		capped, err := lockUnlessFarFromCap(ctx, tx, r.Tenant, a.MaxOpen)
		if err != nil {
			return err
		}
		if a.Key != "" {
			id, claimed, err := claimIdempotencyKey(ctx, tx, r.Tenant, a.Key, r.ID, a.RequestHash, a.KeyTTL, 0)
			if err != nil || !claimed {
				owner = id
				return err
			}
		}
		if capped {
			n, err := openAsync(ctx, tx, r.Tenant, a.MaxOpen)
			if err != nil {
				return err
			}
			if n >= a.MaxOpen {
				return fault.New(fault.RateLimited,
					"the tenant has %d async executions and runs queued or running, its limit (LAMBDA_TENANT_ASYNC_MAX); retry once some finish", n)
			}
		}
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return err
		}
		if err := insertOrigin(ctx, tx, r.Tenant, r.ID, KindRun, a.Origin); err != nil {
			return err
		}
		if len(r.Steps) > 0 {
			b := &pgx.Batch{}
			for _, st := range r.Steps {
				args, err := stepArgs(r.ID, st)
				if err != nil {
					return err
				}
				b.Queue(upsertStep, args...)
			}
			if err := tx.SendBatch(ctx, b).Close(); err != nil {
				return err
			}
		}
		owner, created = r.ID, true
		return nil
	})
	if err != nil {
		if fault.KindOf(err) != fault.Internal {
			return "", false, err
		}
		return "", false, translate(err, "insert run")
	}
	return owner, created, nil
}

func nilIfNull(b json.RawMessage) json.RawMessage {
	if string(b) == "null" {
		return nil
	}
	return b
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// GetRun returns a tenant's run without its steps.
func (s *Store) GetRun(ctx context.Context, tenant, id string) (Run, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return Run{}, fault.New(fault.NotFound, "run %q not found", id)
	}
	r, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = $1 AND tenant = $2`, uid, tenant))
	if err != nil {
		return Run{}, notFound(err, "get run", "run %q not found", id)
	}
	return r, nil
}

// RunStatus is the status of a tenant's run (NotFound for another tenant's): what a
// long-poll reads while it waits for the run to end.
func (s *Store) RunStatus(ctx context.Context, tenant, id string) (string, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return "", fault.New(fault.NotFound, "run %q not found", id)
	}
	var status string
	if err := s.pool.QueryRow(ctx, `SELECT status FROM runs WHERE id = $1 AND tenant = $2`, uid, tenant).Scan(&status); err != nil {
		return "", notFound(err, "run status", "run %q not found", id)
	}
	return status, nil
}

// GetRunWithSteps is GetRun and RunSteps in one round trip; with annotate, also the
// run's schedule and callback (AnnotateRuns).
func (s *Store) GetRunWithSteps(ctx context.Context, tenant, id string, annotate bool) (Run, []RunStep, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return Run{}, nil, fault.New(fault.NotFound, "run %q not found", id)
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT `+runCols+` FROM runs WHERE id = $1 AND tenant = $2`, uid, tenant)
	b.Queue(`SELECT `+stepCols+` FROM run_steps WHERE run_id = $1`, uid)
	if annotate {
		queueOrigins(b, []uuid.UUID{uid})
	}
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	r, err := scanRun(br.QueryRow())
	if err != nil {
		return Run{}, nil, notFound(err, "get run", "run %q not found", id)
	}
	steps, err := collectSteps(br.Query())
	if err != nil {
		return Run{}, nil, err
	}
	if annotate {
		scheds, cbs, err := readOrigins(br)
		if err != nil {
			return Run{}, nil, err
		}
		r.Schedule, r.CallbackState = scheds[r.ID], cbs[r.ID]
	}
	return r, steps, translate(br.Close(), "get run")
}

// LoadRun returns a run by id alone (the durable side's step operations name a run by
// its id).
func (s *Store) LoadRun(ctx context.Context, id string) (Run, error) {
	return s.loadRun(ctx, id, runCols)
}

// LoadRunMarkingRunning is MarkRunRunning then LoadRun in one round trip and one
// implicit transaction: a durable run's first step operation.
func (s *Store) LoadRunMarkingRunning(ctx context.Context, id string) (Run, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return Run{}, fault.New(fault.NotFound, "run %q not found", id)
	}
	b := &pgx.Batch{}
	b.Queue(markRunRunning, uid)
	b.Queue(`SELECT `+runCols+` FROM runs WHERE id = $1`, uid)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return Run{}, translate(err, "mark run running")
	}
	r, err := scanRun(br.QueryRow())
	if err != nil {
		return Run{}, notFound(err, "load run", "run %q not found", id)
	}
	if err := br.Close(); err != nil {
		return Run{}, translate(err, "load run")
	}
	return r, nil
}

// LoadRunHead is LoadRun without the run's input and output (Input and Output nil): a
// step call reads only what its input needs (RunInput, RunStepsOf).
func (s *Store) LoadRunHead(ctx context.Context, id string) (Run, error) {
	r, err := s.loadRun(ctx, id, runHeadCols)
	r.Input, r.Output = nil, nil
	return r, err
}

// loadRun reads a run by id alone with the columns cols (runCols or runHeadCols).
func (s *Store) loadRun(ctx context.Context, id, cols string) (Run, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return Run{}, fault.New(fault.NotFound, "run %q not found", id)
	}
	r, err := scanRun(s.pool.QueryRow(ctx, `SELECT `+cols+` FROM runs WHERE id = $1`, uid))
	if err != nil {
		return Run{}, notFound(err, "load run", "run %q not found", id)
	}
	return r, nil
}

var runHeadCols = strings.Replace(runCols, "input, output,", "NULL::jsonb, NULL::jsonb,", 1)

// RunInput is a run's input.
func (s *Store) RunInput(ctx context.Context, id string) (json.RawMessage, error) {
	var in []byte
	if err := s.pool.QueryRow(ctx, `SELECT input FROM runs WHERE id = $1`, id).Scan(&in); err != nil {
		return nil, notFound(err, "run input", "run %q not found", id)
	}
	return rawOrNull(in), nil
}

// RunStepsOf is RunSteps restricted to the steps ids.
func (s *Store) RunStepsOf(ctx context.Context, runID string, ids []string) ([]RunStep, error) {
	return collectSteps(s.pool.Query(ctx, `SELECT `+stepCols+` FROM run_steps WHERE run_id = $1 AND step_id = ANY($2)`, runID, ids))
}

// collectSteps reads the step rows of a query (its rows and error, as Query returns them).
func collectSteps(rows pgx.Rows, err error) ([]RunStep, error) {
	if err != nil {
		return nil, translate(err, "run steps")
	}
	defer rows.Close()
	var out []RunStep
	for rows.Next() {
		st, err := scanStep(rows)
		if err != nil {
			return nil, translate(err, "run steps")
		}
		out = append(out, st)
	}
	return out, translate(rows.Err(), "run steps")
}

const stepCols = `step_id, status, attempts, coalesce(execution_id::text, ''), output, error, items_total,
	items_succeeded, items_failed, coalesce(waiting_signal, ''), started_at, finished_at`

func scanStep(row pgx.Row) (RunStep, error) {
	var st RunStep
	var output, errJSON []byte
	var total, ok, failed *int
	if err := row.Scan(&st.ID, &st.Status, &st.Attempts, &st.ExecutionID, &output, &errJSON, &total, &ok, &failed,
		&st.WaitingSignal, &st.StartedAt, &st.FinishedAt); err != nil {
		return RunStep{}, err
	}
	st.Output = rawOrNull(output)
	if len(errJSON) > 0 {
		st.Error = &pipeline.Error{}
		if err := json.Unmarshal(errJSON, st.Error); err != nil {
			return RunStep{}, err
		}
	}
	if total != nil {
		st.Items = &pipeline.ItemCounts{Total: *total}
		if ok != nil {
			st.Items.Succeeded = *ok
		}
		if failed != nil {
			st.Items.Failed = *failed
		}
	}
	return st, nil
}

// RunSteps returns a run's recorded steps.
func (s *Store) RunSteps(ctx context.Context, runID string) ([]RunStep, error) {
	return collectSteps(s.pool.Query(ctx, `SELECT `+stepCols+` FROM run_steps WHERE run_id = $1`, runID))
}

const upsertStep = `INSERT INTO run_steps AS s (run_id, step_id, status, attempts, execution_id, output, error,
	items_total, items_succeeded, items_failed, waiting_signal, started_at, finished_at)
VALUES ($1, $2, $3, $4, NULLIF($5, '')::uuid, $6, $7, $8, $9, $10, NULLIF($11, ''), $12, $13)
ON CONFLICT (run_id, step_id) DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts,
	execution_id = EXCLUDED.execution_id, output = EXCLUDED.output, error = EXCLUDED.error,
	items_total = EXCLUDED.items_total, items_succeeded = EXCLUDED.items_succeeded, items_failed = EXCLUDED.items_failed,
	waiting_signal = EXCLUDED.waiting_signal, started_at = coalesce(s.started_at, EXCLUDED.started_at),
	finished_at = EXCLUDED.finished_at
WHERE s.status NOT IN ('succeeded', 'failed', 'skipped', 'canceled')`

func stepArgs(runID string, st RunStep) ([]any, error) {
	e, err := errArg(st.Error)
	if err != nil {
		return nil, err
	}
	var total, ok, failed any
	if st.Items != nil {
		total, ok, failed = st.Items.Total, st.Items.Succeeded, st.Items.Failed
	}
	return []any{runID, st.ID, st.Status, st.Attempts, st.ExecutionID, jsonArg(st.Output), e, total, ok, failed,
		st.WaitingSignal, st.StartedAt, st.FinishedAt}, nil
}

// SaveCallStep upserts a function step's row with the result of its execution execID
// as its output (null unless it succeeded), in one statement; a final row is never
// rewritten.
func (s *Store) SaveCallStep(ctx context.Context, runID string, st RunStep, execID string) error {
	args, err := stepArgs(runID, st)
	if err != nil {
		return err
	}
	args[5] = execID
	_, err = s.pool.Exec(ctx, saveCallStep, args...)
	return translate(err, "save run step")
}

var saveCallStep = strings.Replace(upsertStep, "NULLIF($5, '')::uuid, $6,",
	"NULLIF($5, '')::uuid, coalesce((SELECT l.result FROM request_logs l WHERE l.id = NULLIF($6, '')::uuid AND l.status = 'succeeded')::jsonb, 'null'::jsonb),", 1)

// SaveSteps upserts steps of a run; a step already final is never rewritten.
func (s *Store) SaveSteps(ctx context.Context, runID string, steps []RunStep) error {
	if len(steps) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, st := range steps {
		args, err := stepArgs(runID, st)
		if err != nil {
			return err
		}
		b.Queue(upsertStep, args...)
	}
	return translate(s.pool.SendBatch(ctx, b).Close(), "save run steps")
}

// FinishSyncRun records a sync run's executions, its steps and its row, final, in one
// batch — one implicit transaction, one commit per sync run whatever its number of calls.
// The row may not exist yet (a short run is recorded only at its end); a row that is no
// longer a sync run in progress (handed over) is left as it is.
func (s *Store) FinishSyncRun(ctx context.Context, r *Run, steps []RunStep, execs []*Execution) error {
	args, err := runArgs(r)
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	if err := queueExecutions(b, execs); err != nil {
		return err
	}
	b.Queue(insertRun+` ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, output = EXCLUDED.output,
		error = EXCLUDED.error, finished_at = EXCLUDED.finished_at
		WHERE runs.mode = 'sync' AND runs.status IN ('queued', 'running', 'waiting')`, args...)
	if err := queueSteps(b, r.ID, steps); err != nil {
		return err
	}
	return translate(s.pool.SendBatch(ctx, b).Close(), "finish sync run")
}

// queueExecutions queues the upsert of execs as one statement (a row per execution, the
// same values and conflict rule as upsertExecution): one statement instead of one per
// call keeps a long sync run's commit short. Attempts of a call under its step's retry
// policy share an execution id; only the last (the row would keep it) is written.
func queueExecutions(b *pgx.Batch, execs []*Execution) error {
	last := make(map[string]int, len(execs))
	for i, x := range execs {
		if j, ok := last[x.ID]; !ok || execs[j].Attempts <= x.Attempts {
			last[x.ID] = i
		}
	}
	rows := make([][]any, 0, len(last))
	for i, x := range execs {
		if last[x.ID] != i {
			continue
		}
		args, err := executionArgs(x)
		if err != nil {
			return err
		}
		rows = append(rows, args)
	}
	if len(rows) > 0 {
		b.Queue(upsertExecutions, columns(rows)...)
	}
	return nil
}

// queueSteps queues the upsert of a run's steps as one statement (upsertStep's values
// and conflict rule).
func queueSteps(b *pgx.Batch, runID string, steps []RunStep) error {
	rows := make([][]any, 0, len(steps))
	for _, st := range steps {
		args, err := stepArgs(runID, st)
		if err != nil {
			return err
		}
		rows = append(rows, args)
	}
	if len(rows) > 0 {
		b.Queue(upsertSteps, columns(rows)...)
	}
	return nil
}

// columns turns rows of statement arguments into one array argument per column (unnest).
func columns(rows [][]any) []any {
	cols := make([]any, len(rows[0]))
	for c := range cols {
		col := make([]any, len(rows))
		for r, row := range rows {
			col[r] = row[c]
		}
		cols[c] = col
	}
	return cols
}

// upsertExecutions is upsertExecution for many rows: $1…$22 are arrays, one element per row.
var upsertExecutions = `INSERT INTO request_logs AS r (id, timestamp, language_title, payload, status,
	duration, tenant, function, version, mode, result, error, stdout, stderr, truncated, cached, attempts,
	workflow_id, finished_at, language, run_id, step_id)
SELECT u.id, u.ts, u.title, u.payload::json, u.status, u.duration, u.tenant, u.function, u.version, u.mode,
	u.result::json, u.error::jsonb, u.stdout, u.stderr, u.truncated, u.cached, u.attempts, NULLIF(u.workflow, ''),
	u.finished, u.language, NULLIF(u.run, '')::uuid, NULLIF(u.step, '')
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::float8[], $7::text[], $8::text[],
	$9::int4[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bool[], $16::bool[], $17::int4[],
	$18::text[], $19::timestamptz[], $20::text[], $21::text[], $22::text[])
	AS u(id, ts, title, payload, status, duration, tenant, function, version, mode, result, error, stdout, stderr,
	truncated, cached, attempts, workflow, finished, language, run, step)
` + upsertExecution[strings.Index(upsertExecution, "ON CONFLICT"):]

// upsertSteps is upsertStep for many rows of one run.
var upsertSteps = `INSERT INTO run_steps AS s (run_id, step_id, status, attempts, execution_id, output, error,
	items_total, items_succeeded, items_failed, waiting_signal, started_at, finished_at)
SELECT u.run, u.step, u.status, u.attempts, NULLIF(u.execution, '')::uuid, u.output::json, u.error::jsonb,
	u.total, u.succeeded, u.failed, NULLIF(u.signal, ''), u.started, u.finished
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int4[], $5::text[], $6::text[], $7::text[], $8::int4[],
	$9::int4[], $10::int4[], $11::text[], $12::timestamptz[], $13::timestamptz[])
	AS u(run, step, status, attempts, execution, output, error, total, succeeded, failed, signal, started, finished)
` + upsertStep[strings.Index(upsertStep, "ON CONFLICT"):]

// HandOver records the calls and the steps a sync run finished and makes it an async
// run, queued for a workflow, in one transaction (its row is written when it was not yet).
// It reports false when the run is no longer a running sync run (handed over already, or
// final): then it changed nothing.
func (s *Store) HandOver(ctx context.Context, r *Run, steps []RunStep, execs []*Execution) (bool, error) {
	q := *r
	q.Mode, q.Status, q.Output, q.Error, q.FinishedAt = "async", StatusQueued, nil, nil, nil
	args, err := runArgs(&q)
	if err != nil {
		return false, err
	}
	var moved bool
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, insertRun+` ON CONFLICT (id) DO UPDATE SET mode = 'async', status = 'queued'
			WHERE runs.mode = 'sync' AND runs.status = 'running'`, args...)
		if err != nil || tag.RowsAffected() == 0 {
			return err
		}
		moved = true
		b := &pgx.Batch{}
		if err := queueExecutions(b, execs); err != nil {
			return err
		}
		if err := queueSteps(b, r.ID, steps); err != nil {
			return err
		}
		return tx.SendBatch(ctx, b).Close()
	})
	return moved, translate(err, "hand over run")
}

// MarkRunRunning moves a queued run to running (started_at).
func (s *Store) MarkRunRunning(ctx context.Context, runID string) error {
	_, err := s.pool.Exec(ctx, markRunRunning, runID)
	return translate(err, "mark run running")
}

const markRunRunning = `UPDATE runs SET status = 'running', started_at = coalesce(started_at, now())
	WHERE id = $1 AND status = 'queued'`

// SetWaiting records a wait_for step waiting for signal (or no longer waiting) and the
// run waiting while any of its steps waits, running otherwise.
func (s *Store) SetWaiting(ctx context.Context, runID, stepID, signal string, waiting bool) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		status, sig := "running", ""
		if waiting {
			status, sig = RunWaiting, signal
		}
		if _, err := tx.Exec(ctx, `INSERT INTO run_steps AS s (run_id, step_id, status, waiting_signal, started_at)
			VALUES ($1, $2, $3, NULLIF($4, ''), now())
			ON CONFLICT (run_id, step_id) DO UPDATE SET status = EXCLUDED.status, waiting_signal = EXCLUDED.waiting_signal
			WHERE s.status NOT IN ('succeeded', 'failed', 'skipped', 'canceled')`, runID, stepID, status, sig); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE runs SET status = CASE WHEN EXISTS (SELECT 1 FROM run_steps
				WHERE run_id = $1 AND status = 'waiting') THEN 'waiting' ELSE 'running' END,
				started_at = coalesce(started_at, now())
			WHERE id = $1 AND status IN ('queued', 'running', 'waiting')`, runID)
		return err
	})
	return translate(err, "set run waiting")
}

// FinishRun makes a run final once; it returns the run's final status (this call's, or
// the one recorded before: a final status is never rewritten) and whether this call
// recorded it. NotFound when there is no such run.
func (s *Store) FinishRun(ctx context.Context, runID, status string, output json.RawMessage, e *pipeline.Error, at time.Time) (string, bool, error) {
	ea, err := errArg(e)
	if err != nil {
		return "", false, err
	}
	// The status recorded: this call's, or the final status an earlier call recorded.
	var final string
	var recorded bool
	err = s.pool.QueryRow(ctx, `WITH u AS (UPDATE runs SET status = $2, output = $3, error = $4, finished_at = $5,
		started_at = coalesce(started_at, $5)
		WHERE id = $1 AND status IN ('queued', 'running', 'waiting') RETURNING status)
		SELECT coalesce((SELECT status FROM u), r.status), EXISTS (SELECT 1 FROM u)
		FROM runs r WHERE r.id = $1`, runID, status, jsonArg(nilIfNull(output)), ea, at).Scan(&final, &recorded)
	if err != nil {
		return "", false, notFound(err, "run", "run %s not found", runID)
	}
	return final, recorded, nil
}

// SaveItems stores a map step's item list (the first list stored stays).
func (s *Store) SaveItems(ctx context.Context, runID, stepID string, items json.RawMessage) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO run_items (run_id, step_id, items) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, runID, stepID, string(items))
	return translate(err, "save run items")
}

// Item returns item i of a map step's stored list.
func (s *Store) Item(ctx context.Context, runID, stepID string, i int) (json.RawMessage, error) {
	var item []byte
	err := s.pool.QueryRow(ctx, `SELECT items->($3::int) FROM run_items WHERE run_id = $1 AND step_id = $2`,
		runID, stepID, i).Scan(&item)
	if err != nil {
		return nil, notFound(err, "run item", "no items stored for step %q of run %s", stepID, runID)
	}
	return rawOrNull(item), nil
}

// AddSignal stores a signal's payload for a run, but only while one of its steps waits
// for that signal: Conflict otherwise.
func (s *Store) AddSignal(ctx context.Context, runID, signal string, payload json.RawMessage) error {
	var seq int64
	err := s.pool.QueryRow(ctx, `INSERT INTO run_signals (run_id, signal, payload)
		SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM run_steps WHERE run_id = $1 AND status = 'waiting'
			AND waiting_signal = $2)
		RETURNING seq`, runID, signal, string(payload)).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return fault.New(fault.Conflict, "run %s is not waiting for signal %q", runID, signal)
	}
	return translate(err, "add signal")
}

// TakeSignal returns the payload of the signal a wait_for step received: the one it took
// before, else the oldest of that name nobody took (which it takes now). NotFound when
// there is none.
func (s *Store) TakeSignal(ctx context.Context, runID, stepID, signal string) (json.RawMessage, error) {
	var payload []byte
	err := s.pool.QueryRow(ctx, `WITH prev AS (SELECT payload FROM run_signals WHERE run_id = $1 AND step_id = $2
			ORDER BY seq LIMIT 1),
		took AS (UPDATE run_signals SET step_id = $2 WHERE (run_id, seq) = (SELECT run_id, seq FROM run_signals
			WHERE run_id = $1 AND signal = $3 AND step_id IS NULL AND NOT EXISTS (SELECT 1 FROM prev)
			ORDER BY seq LIMIT 1 FOR UPDATE) RETURNING payload)
		SELECT payload FROM prev UNION ALL SELECT payload FROM took`, runID, stepID, signal).Scan(&payload)
	if err != nil {
		return nil, notFound(err, "take signal", "no signal %q stored for run %s", signal, runID)
	}
	return rawOrNull(payload), nil
}

// ExecutionResults returns the results of the succeeded executions among ids.
func (s *Store) ExecutionResults(ctx context.Context, ids []string) (map[string]json.RawMessage, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text, result FROM request_logs WHERE id = ANY($1::uuid[]) AND status = 'succeeded'`, ids)
	if err != nil {
		return nil, translate(err, "execution results")
	}
	defer rows.Close()
	out := make(map[string]json.RawMessage, len(ids))
	for rows.Next() {
		var id string
		var res []byte
		if err := rows.Scan(&id, &res); err != nil {
			return nil, translate(err, "execution results")
		}
		out[id] = rawOrNull(res)
	}
	return out, translate(rows.Err(), "execution results")
}

// RunFilter selects runs for listing.
type RunFilter struct {
	Tenant   string
	Pipeline string
	Status   string
	Limit    int
	Cursor   string
}

// ListRuns lists runs newest first (without their steps); it returns the next page's cursor or "".
func (s *Store) ListRuns(ctx context.Context, f RunFilter) ([]Run, string, error) {
	var w filter
	w.eq("tenant", f.Tenant)
	w.eqUnlessEmpty("pipeline", f.Pipeline)
	w.eqUnlessEmpty("status", f.Status)
	return listPage(ctx, s, "list runs", `SELECT `+runCols+` FROM runs`, "created_at", w, f.Cursor, f.Limit,
		scanRun, func(r Run) (time.Time, string) { return r.CreatedAt, r.ID })
}

// OpenRun is a run that is not final, as the sweeper sees it.
type OpenRun struct {
	ID, Tenant, Mode, Status string
	CreatedAt                time.Time
}

// OpenRuns lists runs not final created before before, oldest first, at most limit.
func (s *Store) OpenRuns(ctx context.Context, before time.Time, limit int) ([]OpenRun, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text, tenant, mode, status, created_at FROM runs
		WHERE status IN ('queued', 'running', 'waiting') AND created_at < $1 ORDER BY created_at LIMIT $2`, before, limit)
	if err != nil {
		return nil, translate(err, "open runs")
	}
	defer rows.Close()
	var out []OpenRun
	for rows.Next() {
		var o OpenRun
		if err := rows.Scan(&o.ID, &o.Tenant, &o.Mode, &o.Status, &o.CreatedAt); err != nil {
			return nil, translate(err, "open runs")
		}
		out = append(out, o)
	}
	return out, translate(rows.Err(), "open runs")
}

// CallWant names what a pipeline step's call reads before it runs.
type CallWant struct {
	Tenant, RunID, StepID string
	// ExecutionID is the call's execution: found already final, the call is a repeat.
	ExecutionID string
	// Item is the map item the call runs on (-1: none).
	Item int
	// Input asks for the run's input; Steps for the named steps' rows, AllSteps for all.
	Input    bool
	Steps    []string
	AllSteps bool
}

// CallReads is what ReadForCall found.
type CallReads struct {
	Prev  *Execution      // the call's execution when recorded (nil: not yet)
	Item  json.RawMessage // with Item >= 0
	Input json.RawMessage // with Input
	Steps []RunStep       // with Steps or AllSteps
}

// ReadForCall reads what a step's call needs — its execution if recorded, its map item,
// the run's input, the steps its input references — in one round trip.
func (s *Store) ReadForCall(ctx context.Context, w CallWant) (CallReads, error) {
	var out CallReads
	execID, err := uuid.Parse(w.ExecutionID)
	if err != nil {
		return out, fmt.Errorf("read for call: execution id %q: %w", w.ExecutionID, err)
	}
	b := &pgx.Batch{}
	b.Queue(`SELECT `+execCols+` FROM request_logs WHERE id = $1 AND tenant = $2`, execID, w.Tenant)
	if w.Item >= 0 {
		b.Queue(`SELECT items->($3::int) FROM run_items WHERE run_id = $1 AND step_id = $2`, w.RunID, w.StepID, w.Item)
	}
	if w.Input {
		b.Queue(`SELECT input FROM runs WHERE id = $1`, w.RunID)
	}
	switch {
	case w.AllSteps:
		b.Queue(`SELECT `+stepCols+` FROM run_steps WHERE run_id = $1`, w.RunID)
	case len(w.Steps) > 0:
		b.Queue(`SELECT `+stepCols+` FROM run_steps WHERE run_id = $1 AND step_id = ANY($2)`, w.RunID, w.Steps)
	}
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	prev, err := scanExecution(br.QueryRow(), false)
	switch {
	case err == nil:
		out.Prev = &prev
	case !errors.Is(err, pgx.ErrNoRows):
		return out, translate(err, "get execution")
	}
	if w.Item >= 0 {
		var item []byte
		if err := br.QueryRow().Scan(&item); err != nil {
			return out, notFound(err, "run item", "no items stored for step %q of run %s", w.StepID, w.RunID)
		}
		out.Item = rawOrNull(item)
	}
	if w.Input {
		var in []byte
		if err := br.QueryRow().Scan(&in); err != nil {
			return out, notFound(err, "run input", "run %q not found", w.RunID)
		}
		out.Input = rawOrNull(in)
	}
	if w.AllSteps || len(w.Steps) > 0 {
		if out.Steps, err = collectSteps(br.Query()); err != nil {
			return out, err
		}
	}
	return out, translate(br.Close(), "read for call")
}
