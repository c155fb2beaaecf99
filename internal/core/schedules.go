package core

import (
	"bytes"
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/store"
)

// ScheduleDurable runs schedules; the Temporal side implements it (workflows.Starter)
// with Temporal Schedules, id "sched-<tenant>-<name>". Errors about the definition
// (a cron expression Temporal refuses) are fault.Invalid; a schedule that is not there is
// fault.NotFound; one that already is, fault.Conflict.
type ScheduleDurable interface {
	CreateSchedule(ctx context.Context, tenant string, spec ScheduleSpec) error
	DescribeSchedule(ctx context.Context, tenant, name string) (ScheduleInfo, error)
	PauseSchedule(ctx context.Context, tenant, name string, paused bool) error
	TriggerSchedule(ctx context.Context, tenant, name string) error
	DeleteSchedule(ctx context.Context, tenant, name string) error
}

// ScheduleTarget names exactly one of a function or a pipeline.
type ScheduleTarget struct {
	Function string `json:"function,omitempty"`
	Pipeline string `json:"pipeline,omitempty"`
}

// Crons are a schedule's cron expressions: one string or a list in JSON.
type Crons []string

// UnmarshalJSON accepts "expr" or ["expr", ...].
func (c *Crons) UnmarshalJSON(b []byte) error {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		var l []string
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		*c = l
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	if one == "" {
		*c = nil
		return nil
	}
	*c = Crons{one}
	return nil
}

// MarshalJSON writes one expression as a string, several as a list.
func (c Crons) MarshalJSON() ([]byte, error) {
	if len(c) == 1 {
		return json.Marshal(c[0])
	}
	return json.Marshal([]string(c))
}

// ScheduleSpec is a schedule as created (POST /v1/schedules).
type ScheduleSpec struct {
	Name       string          `json:"name"`
	Target     ScheduleTarget  `json:"target"`
	Cron       Crons           `json:"cron,omitempty"`
	IntervalMS int64           `json:"interval_ms,omitempty"`
	Timezone   string          `json:"timezone,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	Overlap    string          `json:"overlap"`
	Paused     bool            `json:"paused"`
}

// ScheduleAction is one start Temporal made for a schedule.
type ScheduleAction struct {
	ScheduledAt time.Time `json:"scheduled_at"`
	StartedAt   time.Time `json:"started_at"`
	WorkflowID  string    `json:"workflow_id"`
}

// ScheduleInfo is a schedule's state as Temporal describes it.
type ScheduleInfo struct {
	Paused        bool
	NextRuns      []time.Time
	RecentActions []ScheduleAction
	Actions       int64
}

// Schedule is a schedule as the API shows it.
type Schedule struct {
	ScheduleSpec
	ID            string           `json:"id"` // the Temporal schedule's id
	NextRunAt     *time.Time       `json:"next_run_at,omitempty"`
	NextRuns      []time.Time      `json:"next_runs"`
	RecentActions []ScheduleAction `json:"recent_actions"`
	Actions       int64            `json:"actions"`
	CreatedAt     time.Time        `json:"created_at"`
	// Live tells whether Temporal described the schedule in time: always set in a list;
	// elsewhere only when it did not (false: next_runs, recent_actions, actions and paused
	// are as recorded at creation).
	Live *bool `json:"live,omitempty"`
}

// ScheduleRun is one execution or run a schedule started.
type ScheduleRun struct {
	ExecutionID string    `json:"execution_id,omitempty"`
	RunID       string    `json:"run_id,omitempty"`
	Status      string    `json:"status"`
	StartedAt   time.Time `json:"started_at"`
}

// Overlap policies.
var overlaps = []string{"skip", "buffer_one", "allow_all", "cancel_other"}

// DefaultOverlap is a schedule's overlap policy when none is given.
const DefaultOverlap = "skip"

// ScheduleID is the Temporal schedule id of a tenant's schedule.
func ScheduleID(tenant, name string) string { return "sched-" + tenant + "-" + name }

var cronField = regexp.MustCompile(`^[0-9A-Za-z*/,\-?LW#]+$`)

// validCron is a first check of a cron expression (Temporal's parser has the last word):
// 5 to 7 fields, or an @descriptor.
func validCron(expr string) bool {
	expr = strings.TrimSpace(expr)
	if strings.HasPrefix(expr, "@") {
		return len(expr) > 1
	}
	f := strings.Fields(expr)
	if len(f) < 5 || len(f) > 7 {
		return false
	}
	for _, x := range f {
		if !cronField.MatchString(x) {
			return false
		}
	}
	return true
}

func (s *Service) schedulesOn() error {
	if s.schedules == nil {
		return fault.New(fault.Unavailable, "schedules are not enabled on this server")
	}
	return nil
}

// validate checks a schedule before anything is created: name, exactly one target that
// exists for the tenant, exactly one of cron and interval, the timezone, the overlap.
func (s *Service) validateSchedule(ctx context.Context, tenant string, spec *ScheduleSpec) error {
	if !NameRE.MatchString(spec.Name) {
		return fault.New(fault.Invalid, "name must match %s, got %q", NameRE, spec.Name)
	}
	switch {
	case (spec.Target.Function == "") == (spec.Target.Pipeline == ""):
		return fault.New(fault.Invalid, `target must name exactly one of "function" or "pipeline"`)
	case spec.Target.Function != "":
		if _, err := s.store.GetFunction(ctx, tenant, spec.Target.Function); err != nil {
			if fault.Is(err, fault.NotFound) {
				return fault.New(fault.Unprocessable, "target function %q does not exist", spec.Target.Function)
			}
			return err
		}
	default:
		if _, err := s.store.GetPipeline(ctx, tenant, spec.Target.Pipeline, 0); err != nil {
			if fault.Is(err, fault.NotFound) {
				return fault.New(fault.Unprocessable, "target pipeline %q does not exist", spec.Target.Pipeline)
			}
			return err
		}
	}
	if (len(spec.Cron) == 0) == (spec.IntervalMS == 0) {
		return fault.New(fault.Invalid, `give exactly one of "cron" or "interval_ms"`)
	}
	for _, c := range spec.Cron {
		if !validCron(c) {
			return fault.New(fault.Invalid, "invalid cron expression %q", c)
		}
	}
	if spec.IntervalMS != 0 && (spec.IntervalMS < 1000 || spec.IntervalMS%1000 != 0) {
		return fault.New(fault.Invalid, "interval_ms must be a whole number of seconds, at least 1000, got %d", spec.IntervalMS)
	}
	if spec.Timezone != "" {
		if spec.Timezone == "Local" {
			return fault.New(fault.Invalid, "unknown timezone %q: give an IANA name such as Europe/Paris", spec.Timezone)
		}
		if _, err := time.LoadLocation(spec.Timezone); err != nil {
			return fault.New(fault.Invalid, "unknown timezone %q: give an IANA name such as Europe/Paris", spec.Timezone)
		}
	}
	if spec.Overlap == "" {
		spec.Overlap = DefaultOverlap
	}
	ok := false
	for _, o := range overlaps {
		ok = ok || o == spec.Overlap
	}
	if !ok {
		return fault.New(fault.Invalid, "overlap must be one of %s, got %q", strings.Join(overlaps, ", "), spec.Overlap)
	}
	if len(spec.Input) > 0 && !json.Valid(spec.Input) {
		return fault.New(fault.Invalid, "input is not valid JSON")
	}
	return nil
}

// CreateSchedule validates and creates a schedule: its row, then its Temporal schedule.
// Nothing stays behind when either refuses it (a name in use is a Conflict; a cron
// expression Temporal refuses is Invalid).
func (s *Service) CreateSchedule(ctx context.Context, tenant string, spec ScheduleSpec) (Schedule, error) {
	if err := s.schedulesOn(); err != nil {
		return Schedule{}, err
	}
	if err := s.validateSchedule(ctx, tenant, &spec); err != nil {
		return Schedule{}, err
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return Schedule{}, err
	}
	row, err := s.store.CreateSchedule(ctx, store.ScheduleRow{Tenant: tenant, Name: spec.Name, Spec: raw})
	if err != nil {
		return Schedule{}, err
	}
	if err := s.schedules.CreateSchedule(ctx, tenant, spec); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if derr := s.store.DeleteSchedule(dctx, tenant, spec.Name); derr != nil {
			s.log.Warn("remove schedule row after a failed create: " + derr.Error())
		}
		if k := fault.KindOf(err); k == fault.Invalid || k == fault.Conflict {
			return Schedule{}, err
		}
		return Schedule{}, fault.Wrap(fault.Unavailable, err, "the durable execution service (Temporal) is unavailable")
	}
	return s.schedule(ctx, row)
}

func (s *Service) schedule(ctx context.Context, row store.ScheduleRow) (Schedule, error) {
	sc, err := recordedSchedule(row)
	if err != nil {
		return Schedule{}, err
	}
	dctx, cancel := context.WithTimeout(ctx, scheduleDescribeTimeout)
	defer cancel()
	info, err := s.schedules.DescribeSchedule(dctx, row.Tenant, row.Name)
	switch {
	case err == nil:
		sc.describe(info)
	case fault.Is(err, fault.NotFound):
		return Schedule{}, err // being deleted
	default:
		// A slow or unreachable Temporal degrades the live fields, as in a list.
		s.log.Warn("describe schedule: answering with its recorded fields", zap.String("schedule", row.Name), logging.Err(err))
		live := false
		sc.Live = &live
	}
	return sc, nil
}

// scheduleDescribeTimeout bounds the describe of one schedule (get, create, pause).
const scheduleDescribeTimeout = 2 * time.Second

// recordedSchedule is a schedule as PostgreSQL records it (its spec as created).
func recordedSchedule(row store.ScheduleRow) (Schedule, error) {
	var sc Schedule
	if err := json.Unmarshal(row.Spec, &sc.ScheduleSpec); err != nil {
		return Schedule{}, err
	}
	sc.ID, sc.CreatedAt = ScheduleID(row.Tenant, row.Name), row.CreatedAt
	sc.NextRuns, sc.RecentActions = []time.Time{}, []ScheduleAction{}
	return sc, nil
}

// describe sets Temporal's live fields of a schedule.
func (sc *Schedule) describe(info ScheduleInfo) {
	sc.Paused, sc.Actions = info.Paused, info.Actions
	if info.NextRuns != nil {
		sc.NextRuns = info.NextRuns
	}
	if info.RecentActions != nil {
		sc.RecentActions = info.RecentActions
	}
	if len(sc.NextRuns) > 0 && !sc.Paused {
		sc.NextRunAt = &sc.NextRuns[0]
	}
}

// GetSchedule returns a tenant's schedule with its next run times and recent actions.
func (s *Service) GetSchedule(ctx context.Context, tenant, name string) (Schedule, error) {
	if err := s.schedulesOn(); err != nil {
		return Schedule{}, err
	}
	row, err := s.store.GetSchedule(ctx, tenant, name)
	if err != nil {
		return Schedule{}, err
	}
	return s.schedule(ctx, row)
}

// List bounds of ListSchedules: at most listDescribes describes in flight, each given
// listDescribeTimeout.
const (
	listDescribes       = 8
	listDescribeTimeout = time.Second
)

// ListSchedules lists a tenant's schedules from what PostgreSQL records, with Temporal's
// live fields (next run times, recent actions, paused state) described in parallel —
// at most listDescribes at once, each within listDescribeTimeout. A describe that fails
// or times out leaves that schedule's recorded fields, with Live false: a slow Temporal
// degrades fields, never the list.
func (s *Service) ListSchedules(ctx context.Context, tenant string) ([]Schedule, error) {
	if err := s.schedulesOn(); err != nil {
		return nil, err
	}
	rows, err := s.store.ListSchedules(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]Schedule, len(rows))
	gone := make([]bool, len(rows))
	for i, row := range rows {
		sc, err := recordedSchedule(row)
		if err != nil {
			return nil, err
		}
		out[i] = sc
	}
	sem := make(chan struct{}, listDescribes)
	var wg sync.WaitGroup
	for i, row := range rows {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			dctx, cancel := context.WithTimeout(ctx, listDescribeTimeout)
			defer cancel()
			info, err := s.schedules.DescribeSchedule(dctx, row.Tenant, row.Name)
			live := err == nil
			switch {
			case fault.Is(err, fault.NotFound):
				gone[i] = true // being deleted
			case live:
				out[i].describe(info)
			}
			out[i].Live = &live
		}()
	}
	wg.Wait()
	kept := out[:0]
	for i, sc := range out {
		if !gone[i] {
			kept = append(kept, sc)
		}
	}
	return kept, nil
}

// PauseSchedule pauses or resumes a schedule.
func (s *Service) PauseSchedule(ctx context.Context, tenant, name string, paused bool) (Schedule, error) {
	if err := s.schedulesOn(); err != nil {
		return Schedule{}, err
	}
	row, err := s.store.GetSchedule(ctx, tenant, name)
	if err != nil {
		return Schedule{}, err
	}
	if err := s.schedules.PauseSchedule(ctx, tenant, name, paused); err != nil {
		return Schedule{}, err
	}
	sc, err := s.schedule(ctx, row)
	if err == nil && sc.Live != nil {
		sc.Paused = paused // not described: what was just set
	}
	return sc, err
}

// TriggerSchedule starts a schedule's target once, now (paused or not).
func (s *Service) TriggerSchedule(ctx context.Context, tenant, name string) error {
	if err := s.schedulesOn(); err != nil {
		return err
	}
	if _, err := s.store.GetSchedule(ctx, tenant, name); err != nil {
		return err
	}
	return s.schedules.TriggerSchedule(ctx, tenant, name)
}

// DeleteSchedule deletes a schedule: first its Temporal schedule (no more starts), then
// its row. What it started stays, and still names it.
func (s *Service) DeleteSchedule(ctx context.Context, tenant, name string) error {
	if err := s.schedulesOn(); err != nil {
		return err
	}
	if _, err := s.store.GetSchedule(ctx, tenant, name); err != nil {
		return err
	}
	if err := s.schedules.DeleteSchedule(ctx, tenant, name); err != nil && !fault.Is(err, fault.NotFound) {
		return err
	}
	return s.store.DeleteSchedule(ctx, tenant, name)
}

// ScheduleRuns lists the newest executions and runs a schedule started (at most 100);
// a schedule that is gone is NotFound (what it started still names it).
func (s *Service) ScheduleRuns(ctx context.Context, tenant, name string) ([]ScheduleRun, error) {
	if _, err := s.store.GetSchedule(ctx, tenant, name); err != nil {
		return nil, err
	}
	starts, err := s.store.ScheduleStarts(ctx, tenant, name, 100)
	if err != nil {
		return nil, err
	}
	out := make([]ScheduleRun, 0, len(starts))
	for _, st := range starts {
		r := ScheduleRun{Status: st.Status, StartedAt: st.CreatedAt}
		if st.Kind == store.KindRun {
			r.RunID = st.ID
		} else {
			r.ExecutionID = st.ID
		}
		out = append(out, r)
	}
	return out, nil
}

// ScheduledStart is what one firing of a schedule started: an execution or a run,
// recorded queued and naming the schedule, for the schedule's workflow to run.
type ScheduledStart struct {
	Execution *AsyncExecution `json:"execution,omitempty"`
	Run       *RunStart       `json:"run,omitempty"`
}

// StartScheduled records the execution or run of one firing of a tenant's schedule:
// admitted as an async one is (the tenant's cap, the pinned version), its row naming the
// schedule. key identifies the firing: a repeat returns what the first call recorded.
func (s *Service) StartScheduled(ctx context.Context, tenant, name, key string) (ScheduledStart, error) {
	row, err := s.store.GetSchedule(ctx, tenant, name)
	if err != nil {
		return ScheduledStart{}, err
	}
	var spec ScheduleSpec
	if err := json.Unmarshal(row.Spec, &spec); err != nil {
		return ScheduledStart{}, err
	}
	input := spec.Input
	if len(input) == 0 {
		input = json.RawMessage("null")
	}
	if spec.Target.Pipeline != "" {
		r, _, err := s.StartRun(ctx, RunRequest{Tenant: tenant, Pipeline: spec.Target.Pipeline, Input: input,
			Async: true, IdempotencyKey: key, Schedule: name})
		if err != nil {
			return ScheduledStart{}, err
		}
		st := runStart(r)
		return ScheduledStart{Run: &st}, nil
	}
	fn, err := s.store.GetFunction(ctx, tenant, spec.Target.Function)
	if err != nil {
		return ScheduledStart{}, err
	}
	x, e, created, err := s.admitExecution(ctx, Request{Tenant: tenant, Function: spec.Target.Function,
		LanguageTitle: fn.Language, Event: input, IdempotencyKey: key}, name)
	if err != nil {
		return ScheduledStart{}, err
	}
	if !created {
		// The firing's execution, recorded by an earlier attempt: its own version.
		p, err := s.Pin(ctx, tenant, e.Function, e.Version, e.Language)
		if err != nil {
			return ScheduledStart{}, err
		}
		x = AsyncExecution{ID: e.ID, LanguageTitle: e.LanguageTitle, Pinned: p}
	}
	s.countAsync(x.Language, "scheduled")
	return ScheduledStart{Execution: &x}, nil
}
