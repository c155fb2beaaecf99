package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Pipeline is a pipeline version: its metadata and definition.
type Pipeline struct {
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Version     int               `json:"version"`
	SHA256      string            `json:"sha256"`
	Steps       []json.RawMessage `json:"steps,omitempty"`
	Output      json.RawMessage   `json:"output,omitempty"`
	TimeoutMS   int               `json:"timeout_ms,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
}

func pipelinePath(name string) string { return "/v1/pipelines/" + url.PathEscape(name) }

// CreatePipeline registers a pipeline from its JSON definition (which names it).
func (c *Client) CreatePipeline(ctx context.Context, definition json.RawMessage) (Pipeline, error) {
	var p Pipeline
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/pipelines", body: definition}, &p)
	return p, err
}

// PutPipeline adds a version; created is false when the definition equals the latest.
func (c *Client) PutPipeline(ctx context.Context, name string, definition json.RawMessage) (p Pipeline, created bool, err error) {
	resp, err := c.call(ctx, request{method: http.MethodPut, path: pipelinePath(name), body: definition}, &p)
	if err != nil {
		return p, false, err
	}
	return p, resp.status == http.StatusCreated, nil
}

// GetPipeline returns the latest version.
func (c *Client) GetPipeline(ctx context.Context, name string) (Pipeline, error) {
	var p Pipeline
	_, err := c.call(ctx, request{method: http.MethodGet, path: pipelinePath(name)}, &p)
	return p, err
}

// ListPipelines lists the tenant's pipelines.
func (c *Client) ListPipelines(ctx context.Context) ([]Pipeline, error) {
	var out struct {
		Pipelines []Pipeline `json:"pipelines"`
	}
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/pipelines"}, &out)
	return out.Pipelines, err
}

// ListPipelineVersions lists a pipeline's versions.
func (c *Client) ListPipelineVersions(ctx context.Context, name string) ([]Pipeline, error) {
	var out struct {
		Versions []Pipeline `json:"versions"`
	}
	_, err := c.call(ctx, request{method: http.MethodGet, path: pipelinePath(name) + "/versions"}, &out)
	return out.Versions, err
}

// DeletePipeline deletes a pipeline; its runs stay.
func (c *Client) DeletePipeline(ctx context.Context, name string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: pipelinePath(name)}, nil)
	return err
}

// Run is the run envelope.
type Run struct {
	ID         string          `json:"id"`
	Pipeline   string          `json:"pipeline,omitempty"`
	Version    int             `json:"version,omitempty"`
	Mode       string          `json:"mode,omitempty"`
	Status     string          `json:"status"`
	Input      json.RawMessage `json:"input,omitempty"`
	Output     json.RawMessage `json:"output"`
	Error      *RunError       `json:"error"`
	Steps      []Step          `json:"steps,omitempty"`
	CreatedAt  *time.Time      `json:"created_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	// Replayed is set from the Idempotent-Replayed header, not the body.
	Replayed bool `json:"-"`
}

// Finished reports whether the run has reached a final status.
func (r Run) Finished() bool { return Finished(r.Status) }

// Step is one step's state in a run.
type Step struct {
	ID          string          `json:"id"`
	Status      string          `json:"status"`
	Attempts    int             `json:"attempts,omitempty"`
	ExecutionID string          `json:"execution_id,omitempty"`
	Output      json.RawMessage `json:"output,omitempty"`
	Error       *RunError       `json:"error,omitempty"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
	Items       *StepItems      `json:"items,omitempty"`
	// Until is when a sleeping step wakes up (a run in flight's live state).
	Until *time.Time `json:"until,omitempty"`
}

// StepItems counts a map step's items.
type StepItems struct {
	Total     int `json:"total"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// RunError is why a run or a step failed. A plain JSON string is accepted as the message.
type RunError struct {
	Type    string `json:"type,omitempty"`
	Message string `json:"message"`
	Step    string `json:"step,omitempty"`
	Stack   string `json:"stack,omitempty"`
}

// UnmarshalJSON accepts an object or a string.
func (e *RunError) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*e = RunError{Message: s}
		return nil
	}
	type plain RunError
	return json.Unmarshal(b, (*plain)(e))
}

// RunOptions are a run's parameters besides the pipeline and the input.
type RunOptions struct {
	Version        int
	Async          bool
	IdempotencyKey string
	CallbackURL    string
}

// StartRun runs a pipeline with input (nil: null). A sync run answers with the whole
// envelope (also when a step failed); an async one — asked for, or because the
// pipeline sleeps or waits — with the queued run (check Finished).
func (c *Client) StartRun(ctx context.Context, pipeline string, input json.RawMessage, o RunOptions) (Run, error) {
	var q url.Values
	if o.Version > 0 {
		q = url.Values{"version": {strconv.Itoa(o.Version)}}
	}
	var body any
	if input != nil {
		body = input
	}
	var r Run
	resp, err := c.call(ctx, request{method: http.MethodPost, path: pipelinePath(pipeline) + "/runs", query: q,
		header: asyncHeader(o.Async, o.IdempotencyKey, o.CallbackURL), body: body,
		envelope: []int{http.StatusInternalServerError, http.StatusGatewayTimeout}}, &r)
	if err != nil {
		return r, err
	}
	if r.ID == "" {
		r.ID = idFromLocation(resp.header)
	}
	if r.Status == "" {
		r.Status = StatusQueued
	}
	r.Replayed = resp.header.Get("Idempotent-Replayed") == "true"
	return r, nil
}

func runPath(id string) string { return "/v1/runs/" + url.PathEscape(id) }

// GetRun returns a run; wait > 0 long-polls until it is finished or wait has passed.
func (c *Client) GetRun(ctx context.Context, id string, wait time.Duration) (Run, error) {
	var r Run
	_, err := c.call(ctx, request{method: http.MethodGet, path: runPath(id), query: waitQuery(wait)}, &r)
	return r, err
}

// WaitRun long-polls a run until it is finished, each call waiting up to poll, and
// hands every state it reads to update (which may be nil).
func (c *Client) WaitRun(ctx context.Context, id string, poll time.Duration, update func(Run)) (Run, error) {
	return waitLoop(ctx, poll, func(d time.Duration) (Run, error) { return c.GetRun(ctx, id, d) }, Run.Finished, update)
}

// RunFilter selects runs; zero values select everything.
type RunFilter struct {
	Pipeline string
	Status   string
	Limit    int
	Cursor   string
}

// RunPage is one page of runs, newest first.
type RunPage struct {
	Runs       []Run  `json:"runs"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// ListRuns lists runs, newest first.
func (c *Client) ListRuns(ctx context.Context, f RunFilter) (RunPage, error) {
	q := url.Values{}
	set(q, "pipeline", f.Pipeline)
	set(q, "status", f.Status)
	set(q, "cursor", f.Cursor)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	var p RunPage
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/runs", query: q}, &p)
	return p, err
}

// SignalRun sends a named signal with payload (nil: null) to a waiting run.
func (c *Client) SignalRun(ctx context.Context, id, signal string, payload json.RawMessage) error {
	var body any = json.RawMessage("null")
	if payload != nil {
		body = payload
	}
	_, err := c.call(ctx, request{method: http.MethodPost, path: runPath(id) + "/signals/" + url.PathEscape(signal), body: body}, nil)
	return err
}

// CancelRun asks a run to stop (409 when it has finished).
func (c *Client) CancelRun(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: runPath(id)}, nil)
	return err
}

// RetryRun starts a new run from a failed one's failed step (or fromStep), reusing
// the outputs recorded before it; it returns the new run as queued.
func (c *Client) RetryRun(ctx context.Context, id, fromStep string) (Run, error) {
	body := map[string]string{}
	if fromStep != "" {
		body["from_step"] = fromStep
	}
	var r Run
	resp, err := c.call(ctx, request{method: http.MethodPost, path: runPath(id) + "/retry", body: body}, &r)
	if err != nil {
		return r, err
	}
	if loc := idFromLocation(resp.header); loc != "" {
		r.ID = loc
	}
	if r.Status == "" {
		r.Status = StatusQueued
	}
	return r, nil
}
