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

// Kinds of work an origin, a callback or a schedule start names.
const (
	KindExecution = "execution"
	KindRun       = "run"
)

// Callback delivery states.
const (
	CallbackPending   = "pending"
	CallbackDelivered = "delivered"
	CallbackFailed    = "failed"
)

// Origin is where an async execution or run came from and where it reports to: the
// schedule that started it and the callback URL it asked for (either may be empty).
type Origin struct {
	Schedule    string
	CallbackURL string
}

// CallbackState is a completion callback's delivery as the envelope shows it.
type CallbackState struct {
	State      string `json:"state"`
	Attempts   int    `json:"attempts"`
	LastStatus int    `json:"last_status,omitempty"`
	Reason     string `json:"reason,omitempty"`
	URL        string `json:"url"`
}

// Callback is one callback's row.
type Callback struct {
	ID, Tenant, Kind string
	CallbackState
}

func insertOrigin(ctx context.Context, tx pgx.Tx, tenant, id, kind string, o *Origin) error {
	if o == nil {
		return nil
	}
	uid, err := uuid.Parse(id)
	if err != nil {
		return err
	}
	if o.CallbackURL != "" {
		if _, err := tx.Exec(ctx, `INSERT INTO callbacks (id, tenant, kind, url) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING`, uid, tenant, kind, o.CallbackURL); err != nil {
			return err
		}
	}
	if o.Schedule != "" {
		if _, err := tx.Exec(ctx, `INSERT INTO schedule_starts (id, tenant, schedule, kind) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING`, uid, tenant, o.Schedule, kind); err != nil {
			return err
		}
	}
	return nil
}

// GetCallback returns the callback of execution or run id; NotFound when it asked for none.
func (s *Store) GetCallback(ctx context.Context, id string) (Callback, error) {
	uid, err := uuid.Parse(id)
	if err != nil {
		return Callback{}, fault.New(fault.NotFound, "callback %q not found", id)
	}
	var c Callback
	var last *int
	err = s.pool.QueryRow(ctx, `SELECT tenant, kind, url, state, attempts, last_status, reason FROM callbacks WHERE id = $1`, uid).
		Scan(&c.Tenant, &c.Kind, &c.URL, &c.State, &c.Attempts, &last, &c.Reason)
	if err != nil {
		return Callback{}, notFound(err, "get callback", "callback %q not found", id)
	}
	c.ID = id
	if last != nil {
		c.LastStatus = *last
	}
	return c, nil
}

// RecordCallbackAttempt records a delivery attempt: its number, the HTTP status it got (0
// for none), the state it leaves (pending while retries go on) and the reason. A final
// state is not changed again.
func (s *Store) RecordCallbackAttempt(ctx context.Context, id string, attempt, status int, state, reason string) error {
	uid, err := uuid.Parse(id)
	if err != nil {
		return fault.New(fault.NotFound, "callback %q not found", id)
	}
	var last any
	if status > 0 {
		last = status
	}
	_, err = s.pool.Exec(ctx, `UPDATE callbacks SET attempts = greatest(attempts, $2), last_status = coalesce($3, last_status),
		state = $4, reason = $5, updated_at = now() WHERE id = $1 AND state = 'pending'`, uid, attempt, last, state, reason)
	return translate(err, "record callback attempt")
}

// origins reads the schedule and callback of the given ids, in one round trip.
func (s *Store) origins(ctx context.Context, ids []string) (map[string]string, map[string]*CallbackState, error) {
	uids := make([]uuid.UUID, 0, len(ids))
	for _, id := range ids {
		if u, err := uuid.Parse(id); err == nil {
			uids = append(uids, u)
		}
	}
	if len(uids) == 0 {
		return map[string]string{}, map[string]*CallbackState{}, nil
	}
	b := &pgx.Batch{}
	queueOrigins(b, uids)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	scheds, cbs, err := readOrigins(br)
	if err != nil {
		return nil, nil, err
	}
	return scheds, cbs, translate(br.Close(), "read origins")
}

// queueOrigins queues on b the reads of the schedules and callbacks of uids; readOrigins
// reads their results, in that order.
func queueOrigins(b *pgx.Batch, uids []uuid.UUID) {
	b.Queue(`SELECT id, schedule FROM schedule_starts WHERE id = ANY($1)`, uids)
	b.Queue(`SELECT id, url, state, attempts, last_status, reason FROM callbacks WHERE id = ANY($1)`, uids)
}

func readOrigins(br pgx.BatchResults) (map[string]string, map[string]*CallbackState, error) {
	scheds, cbs := map[string]string{}, map[string]*CallbackState{}
	rows, err := br.Query()
	if err != nil {
		return nil, nil, translate(err, "read schedule starts")
	}
	for rows.Next() {
		var id uuid.UUID
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			rows.Close()
			return nil, nil, translate(err, "read schedule starts")
		}
		scheds[id.String()] = name
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, translate(err, "read schedule starts")
	}
	rows, err = br.Query()
	if err != nil {
		return nil, nil, translate(err, "read callbacks")
	}
	defer rows.Close()
	for rows.Next() {
		var id uuid.UUID
		var c CallbackState
		var last *int
		if err := rows.Scan(&id, &c.URL, &c.State, &c.Attempts, &last, &c.Reason); err != nil {
			return nil, nil, translate(err, "read callbacks")
		}
		if last != nil {
			c.LastStatus = *last
		}
		cbs[id.String()] = &c
	}
	return scheds, cbs, translate(rows.Err(), "read callbacks")
}

// AnnotateExecutions fills the Schedule and CallbackState of es.
func (s *Store) AnnotateExecutions(ctx context.Context, es []Execution) error {
	ids := make([]string, len(es))
	for i := range es {
		ids[i] = es[i].ID
	}
	scheds, cbs, err := s.origins(ctx, ids)
	if err != nil {
		return err
	}
	for i := range es {
		es[i].Schedule, es[i].CallbackState = scheds[es[i].ID], cbs[es[i].ID]
	}
	return nil
}

// AnnotateRuns fills the Schedule and CallbackState of rs.
func (s *Store) AnnotateRuns(ctx context.Context, rs []Run) error {
	ids := make([]string, len(rs))
	for i := range rs {
		ids[i] = rs[i].ID
	}
	scheds, cbs, err := s.origins(ctx, ids)
	if err != nil {
		return err
	}
	for i := range rs {
		rs[i].Schedule, rs[i].CallbackState = scheds[rs[i].ID], cbs[rs[i].ID]
	}
	return nil
}

// WebhookSecret is a tenant's signing secret and, within its grace period, the previous one.
type WebhookSecret struct {
	Current   string
	Previous  string
	RotatedAt *time.Time
	CreatedAt time.Time
}

// WebhookSecret returns the tenant's secret, creating it with fresh() on first read.
func (s *Store) WebhookSecret(ctx context.Context, tenant string, fresh func() string) (WebhookSecret, error) {
	var w WebhookSecret
	var prev *string
	var err error
	// Two first reads racing: the loser's statement sees neither row; its second try does.
	for try := 0; try < 2; try++ {
		err = s.pool.QueryRow(ctx, `WITH ins AS (
		INSERT INTO webhook_secrets (tenant, current) VALUES ($1, $2) ON CONFLICT (tenant) DO NOTHING
		RETURNING current, previous, rotated_at, created_at)
	SELECT current, previous, rotated_at, created_at FROM ins
	UNION ALL SELECT current, previous, rotated_at, created_at FROM webhook_secrets WHERE tenant = $1
	LIMIT 1`, tenant, fresh()).Scan(&w.Current, &prev, &w.RotatedAt, &w.CreatedAt)
		if !errors.Is(err, pgx.ErrNoRows) {
			break
		}
	}
	if err != nil {
		return WebhookSecret{}, translate(err, "webhook secret")
	}
	if prev != nil {
		w.Previous = *prev
	}
	return w, nil
}

// RotateWebhookSecret makes next the tenant's secret and keeps the current one as the
// previous (rotated now).
func (s *Store) RotateWebhookSecret(ctx context.Context, tenant, next string) (WebhookSecret, error) {
	var w WebhookSecret
	var prev *string
	err := s.pool.QueryRow(ctx, `INSERT INTO webhook_secrets AS w (tenant, current) VALUES ($1, $2)
		ON CONFLICT (tenant) DO UPDATE SET previous = w.current, current = EXCLUDED.current, rotated_at = now()
		RETURNING current, previous, rotated_at, created_at`, tenant, next).Scan(&w.Current, &prev, &w.RotatedAt, &w.CreatedAt)
	if err != nil {
		return WebhookSecret{}, translate(err, "rotate webhook secret")
	}
	if prev != nil {
		w.Previous = *prev
	}
	return w, nil
}

// ScheduleRow is a schedule as stored: its spec is the core's.
type ScheduleRow struct {
	Tenant    string
	Name      string
	Spec      json.RawMessage
	CreatedAt time.Time
}

// CreateSchedule records a schedule; a name in use is a Conflict.
func (s *Store) CreateSchedule(ctx context.Context, r ScheduleRow) (ScheduleRow, error) {
	err := s.pool.QueryRow(ctx, `INSERT INTO schedules (tenant, name, spec) VALUES ($1, $2, $3)
		ON CONFLICT (tenant, name) DO NOTHING RETURNING created_at`, r.Tenant, r.Name, string(r.Spec)).Scan(&r.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return ScheduleRow{}, fault.New(fault.Conflict, "schedule %q already exists", r.Name)
	}
	return r, translate(err, "create schedule")
}

// GetSchedule returns one schedule.
func (s *Store) GetSchedule(ctx context.Context, tenant, name string) (ScheduleRow, error) {
	r := ScheduleRow{Tenant: tenant, Name: name}
	var spec string
	err := s.pool.QueryRow(ctx, `SELECT spec, created_at FROM schedules WHERE tenant = $1 AND name = $2`, tenant, name).
		Scan(&spec, &r.CreatedAt)
	if err != nil {
		return ScheduleRow{}, notFound(err, "get schedule", "schedule %q not found", name)
	}
	r.Spec = json.RawMessage(spec)
	return r, nil
}

// ListSchedules lists a tenant's schedules by name.
func (s *Store) ListSchedules(ctx context.Context, tenant string) ([]ScheduleRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, spec, created_at FROM schedules WHERE tenant = $1 ORDER BY name`, tenant)
	if err != nil {
		return nil, translate(err, "list schedules")
	}
	defer rows.Close()
	out := []ScheduleRow{}
	for rows.Next() {
		r := ScheduleRow{Tenant: tenant}
		var spec string
		if err := rows.Scan(&r.Name, &spec, &r.CreatedAt); err != nil {
			return nil, translate(err, "list schedules")
		}
		r.Spec = json.RawMessage(spec)
		out = append(out, r)
	}
	return out, translate(rows.Err(), "list schedules")
}

// DeleteSchedule removes a schedule's row (what it started stays); NotFound when absent.
func (s *Store) DeleteSchedule(ctx context.Context, tenant, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM schedules WHERE tenant = $1 AND name = $2`, tenant, name)
	if err != nil {
		return translate(err, "delete schedule")
	}
	if tag.RowsAffected() == 0 {
		return fault.New(fault.NotFound, "schedule %q not found", name)
	}
	return nil
}

// ScheduleStart is one execution or run a schedule started.
type ScheduleStart struct {
	ID        string
	Kind      string
	Status    string
	CreatedAt time.Time
}

// ScheduleStarts lists the newest starts of a schedule (at most limit) with their status.
func (s *Store) ScheduleStarts(ctx context.Context, tenant, schedule string, limit int) ([]ScheduleStart, error) {
	rows, err := s.pool.Query(ctx, `SELECT s.id, s.kind, coalesce(l.status, r.status, ''), s.created_at
		FROM schedule_starts s
		LEFT JOIN request_logs l ON s.kind = 'execution' AND l.id = s.id
		LEFT JOIN runs r ON s.kind = 'run' AND r.id = s.id
		WHERE s.tenant = $1 AND s.schedule = $2 ORDER BY s.created_at DESC LIMIT $3`, tenant, schedule, limit)
	if err != nil {
		return nil, translate(err, "list schedule starts")
	}
	defer rows.Close()
	out := []ScheduleStart{}
	for rows.Next() {
		var st ScheduleStart
		var id uuid.UUID
		if err := rows.Scan(&id, &st.Kind, &st.Status, &st.CreatedAt); err != nil {
			return nil, translate(err, "list schedule starts")
		}
		st.ID = id.String()
		out = append(out, st)
	}
	return out, translate(rows.Err(), "list schedule starts")
}
