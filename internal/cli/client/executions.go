package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Execution statuses.
const (
	StatusQueued    = "queued"
	StatusRunning   = "running"
	StatusWaiting   = "waiting" // runs only
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusTimeout   = "timeout"
	StatusCanceled  = "canceled"
	StatusSkipped   = "skipped" // pipeline steps only
)

// Finished reports whether status is final (for executions, runs and steps).
func Finished(status string) bool {
	switch status {
	case StatusSucceeded, StatusFailed, StatusTimeout, StatusCanceled, StatusSkipped:
		return true
	}
	return false
}

// Execution is the execution envelope.
type Execution struct {
	ID         string          `json:"id"`
	Function   string          `json:"function,omitempty"`
	Version    int             `json:"version,omitempty"`
	Language   string          `json:"language,omitempty"`
	Mode       string          `json:"mode,omitempty"`
	Status     string          `json:"status"`
	Result     json.RawMessage `json:"result"`
	Error      *ExecError      `json:"error"`
	Stdout     string          `json:"stdout,omitempty"`
	Stderr     string          `json:"stderr,omitempty"`
	Truncated  bool            `json:"truncated,omitempty"`
	DurationMS float64         `json:"duration_ms,omitempty"`
	Cached     bool            `json:"cached,omitempty"`
	Attempts   int             `json:"attempts,omitempty"`
	CreatedAt  *time.Time      `json:"created_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	// RunID and StepID name the pipeline run step that made this execution, if any.
	RunID  string `json:"run_id,omitempty"`
	StepID string `json:"step_id,omitempty"`
	// Replayed is set from the Idempotent-Replayed header, not the body.
	Replayed bool `json:"-"`
}

// Finished reports whether the execution has reached a final status.
func (e Execution) Finished() bool { return Finished(e.Status) }

// ExecError is a handler's failure.
type ExecError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

// GetExecution returns one execution; wait > 0 long-polls until it is finished or
// wait has passed.
func (c *Client) GetExecution(ctx context.Context, id string, wait time.Duration) (Execution, error) {
	var e Execution
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/executions/" + url.PathEscape(id), query: waitQuery(wait)}, &e)
	return e, err
}

// WaitExecution long-polls an execution until it is finished, each call waiting up
// to poll, and hands every state it reads to update (which may be nil).
func (c *Client) WaitExecution(ctx context.Context, id string, poll time.Duration, update func(Execution)) (Execution, error) {
	return waitLoop(ctx, poll,
		func(d time.Duration) (Execution, error) { return c.GetExecution(ctx, id, d) },
		Execution.Finished, update)
}

// ExecutionFilter selects executions; zero values select everything.
type ExecutionFilter struct {
	Function string
	Status   string
	Limit    int
	Cursor   string
}

// ExecutionPage is one page of executions, newest first.
type ExecutionPage struct {
	Executions []Execution `json:"executions"`
	NextCursor string      `json:"next_cursor,omitempty"`
}

// ListExecutions lists executions, newest first; NextCursor fetches the older ones.
func (c *Client) ListExecutions(ctx context.Context, f ExecutionFilter) (ExecutionPage, error) {
	q := url.Values{}
	set(q, "function", f.Function)
	set(q, "status", f.Status)
	set(q, "cursor", f.Cursor)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var p ExecutionPage
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/executions", query: q}, &p)
	return p, err
}

// CancelExecution asks for a queued or running async execution to stop (409 when it
// has finished).
func (c *Client) CancelExecution(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: "/v1/executions/" + url.PathEscape(id)}, nil)
	return err
}

func set(q url.Values, k, v string) {
	if v != "" {
		q.Set(k, v)
	}
}
