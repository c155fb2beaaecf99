package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Schedule is a recurring start of a function or a pipeline (also the body of a create).
type Schedule struct {
	Name       string          `json:"name"`
	Target     ScheduleTarget  `json:"target"`
	Cron       Crons           `json:"cron,omitempty"`
	IntervalMS int64           `json:"interval_ms,omitempty"`
	Timezone   string          `json:"timezone,omitempty"`
	Input      json.RawMessage `json:"input,omitempty"`
	Overlap    string          `json:"overlap,omitempty"`
	Paused     bool            `json:"paused"`
	// Read-only; filled by the server when it reports them.
	ID            string           `json:"id,omitempty"`
	NextRunAt     *time.Time       `json:"next_run_at,omitempty"`
	NextRuns      []time.Time      `json:"next_runs,omitempty"`
	RecentActions []ScheduleAction `json:"recent_actions,omitempty"`
	Actions       int64            `json:"actions,omitempty"`
	CreatedAt     *time.Time       `json:"created_at,omitempty"`
}

// Crons are a schedule's cron expressions: the API writes one as a string, several
// as a list, and takes either.
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
	*c = nil
	if one != "" {
		*c = Crons{one}
	}
	return nil
}

// MarshalJSON writes one expression as a string, several as a list.
func (c Crons) MarshalJSON() ([]byte, error) {
	if len(c) == 1 {
		return json.Marshal(c[0])
	}
	return json.Marshal([]string(c))
}

// ScheduleAction is one start the schedule made, as Temporal recorded it.
type ScheduleAction struct {
	ScheduledAt *time.Time `json:"scheduled_at,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	WorkflowID  string     `json:"workflow_id,omitempty"`
}

// ScheduleTarget names exactly one of a function or a pipeline.
type ScheduleTarget struct {
	Function string `json:"function,omitempty"`
	Pipeline string `json:"pipeline,omitempty"`
}

// ScheduleRun is one start a schedule made: an execution or a run.
type ScheduleRun struct {
	StartedAt   *time.Time `json:"started_at,omitempty"`
	ExecutionID string     `json:"execution_id,omitempty"`
	RunID       string     `json:"run_id,omitempty"`
	Status      string     `json:"status,omitempty"`
}

func schedulePath(name string) string { return "/v1/schedules/" + url.PathEscape(name) }

// CreateSchedule creates a schedule (4xx for a bad cron, timezone, target or a used name).
func (c *Client) CreateSchedule(ctx context.Context, s Schedule) (Schedule, error) {
	var out Schedule
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/schedules", body: s}, &out)
	return out, err
}

// GetSchedule returns one schedule.
func (c *Client) GetSchedule(ctx context.Context, name string) (Schedule, error) {
	var out Schedule
	_, err := c.call(ctx, request{method: http.MethodGet, path: schedulePath(name)}, &out)
	return out, err
}

// ListSchedules lists the tenant's schedules.
func (c *Client) ListSchedules(ctx context.Context) ([]Schedule, error) {
	var out struct {
		Schedules []Schedule `json:"schedules"`
	}
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/schedules"}, &out)
	return out.Schedules, err
}

// SetSchedulePaused pauses or resumes a schedule.
func (c *Client) SetSchedulePaused(ctx context.Context, name string, paused bool) (Schedule, error) {
	var out Schedule
	_, err := c.call(ctx, request{method: http.MethodPatch, path: schedulePath(name),
		body: map[string]bool{"paused": paused}}, &out)
	return out, err
}

// TriggerSchedule starts the schedule's target once, now.
func (c *Client) TriggerSchedule(ctx context.Context, name string) error {
	_, err := c.call(ctx, request{method: http.MethodPost, path: schedulePath(name) + "/trigger"}, nil)
	return err
}

// DeleteSchedule deletes a schedule; what it started stays.
func (c *Client) DeleteSchedule(ctx context.Context, name string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: schedulePath(name)}, nil)
	return err
}

// ScheduleRuns lists the recent starts of a schedule.
func (c *Client) ScheduleRuns(ctx context.Context, name string) ([]ScheduleRun, error) {
	var out struct {
		Runs []ScheduleRun `json:"runs"`
	}
	_, err := c.call(ctx, request{method: http.MethodGet, path: schedulePath(name) + "/runs"}, &out)
	return out.Runs, err
}
