package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// FunctionSpec is the body of a registration (POST) or a new version (PUT).
// Settings left nil keep the server's default (POST) or the current value (PUT).
type FunctionSpec struct {
	Name         string            `json:"name"`
	Language     string            `json:"language,omitempty"`
	Source       string            `json:"source"`
	TimeoutMS    *int              `json:"timeout_ms,omitempty"`
	MemoryMB     *int              `json:"memory_mb,omitempty"`
	CacheTTLS    *int              `json:"cache_ttl_s,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	Dependencies map[string]string `json:"dependencies,omitempty"`
}

// Function is a function's metadata with its latest version (or one version, with
// its source, from GetVersion).
type Function struct {
	Name              string            `json:"name"`
	Language          string            `json:"language"`
	Version           int               `json:"version"`
	SHA256            string            `json:"sha256"`
	Source            string            `json:"source,omitempty"`
	TimeoutMS         int               `json:"timeout_ms"`
	MemoryMB          int               `json:"memory_mb"`
	CacheTTLS         int               `json:"cache_ttl_s"`
	Env               map[string]string `json:"env,omitempty"`
	Dependencies      map[string]string `json:"dependencies,omitempty"`
	Lock              *Lock             `json:"lock,omitempty"`
	CreatedAt         time.Time         `json:"created_at"`
	FunctionCreatedAt *time.Time        `json:"function_created_at,omitempty"`
}

// Lock summarises the lock a version's dependencies resolved to.
type Lock struct {
	Hash     string `json:"hash"`
	Packages int    `json:"packages"`
}

// CreateFunction registers a new function (version 1); 409 when the name exists.
func (c *Client) CreateFunction(ctx context.Context, spec FunctionSpec) (Function, error) {
	var f Function
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/functions", body: spec}, &f)
	return f, err
}

// PutFunction adds a version; created is false when the source and settings equal
// the latest version's (no new version was made).
func (c *Client) PutFunction(ctx context.Context, name string, spec FunctionSpec) (f Function, created bool, err error) {
	resp, err := c.call(ctx, request{method: http.MethodPut, path: "/v1/functions/" + url.PathEscape(name), body: spec}, &f)
	if err != nil {
		return f, false, err
	}
	return f, resp.status == http.StatusCreated, nil
}

// GetFunction returns the latest version's metadata.
func (c *Client) GetFunction(ctx context.Context, name string) (Function, error) {
	var f Function
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/functions/" + url.PathEscape(name)}, &f)
	return f, err
}

// ListFunctions lists the tenant's functions.
func (c *Client) ListFunctions(ctx context.Context) ([]Function, error) {
	var out struct {
		Functions []Function `json:"functions"`
	}
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/functions"}, &out)
	return out.Functions, err
}

// ListVersions lists a function's versions.
func (c *Client) ListVersions(ctx context.Context, name string) ([]Function, error) {
	var out struct {
		Versions []Function `json:"versions"`
	}
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/v1/functions/" + url.PathEscape(name) + "/versions"}, &out)
	return out.Versions, err
}

// GetVersion returns one version with its source.
func (c *Client) GetVersion(ctx context.Context, name string, version int) (Function, error) {
	var f Function
	_, err := c.call(ctx, request{method: http.MethodGet,
		path: "/v1/functions/" + url.PathEscape(name) + "/versions/" + strconv.Itoa(version)}, &f)
	return f, err
}

// DeleteFunction deletes a function; its executions stay.
func (c *Client) DeleteFunction(ctx context.Context, name string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: "/v1/functions/" + url.PathEscape(name)}, nil)
	return err
}

// InvokeOptions are an invoke's parameters besides the function and the event.
type InvokeOptions struct {
	// Language is the Language-Title header: the function's language or an alias.
	Language string
	// Version pins a version (0: the latest).
	Version int
	// Async asks for a durable run (Prefer: respond-async): the answer is queued.
	Async          bool
	IdempotencyKey string
	CallbackURL    string
}

// Invoke runs a function with event (nil sends no body: the event is null). A sync
// call that the handler failed or timed out is its envelope, not an error; an async
// call is the queued execution (ID and Status, or the whole envelope when an
// Idempotency-Key replays a finished one).
func (c *Client) Invoke(ctx context.Context, name string, event json.RawMessage, o InvokeOptions) (Execution, error) {
	var q url.Values
	if o.Version > 0 {
		q = url.Values{"version": {strconv.Itoa(o.Version)}}
	}
	h := asyncHeader(o.Async, o.IdempotencyKey, o.CallbackURL)
	h.Set("Language-Title", o.Language)
	var body any
	if event != nil {
		body = event
	}
	var e Execution
	resp, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/functions/" + url.PathEscape(name) + "/invoke",
		query: q, header: h, body: body, envelope: []int{http.StatusInternalServerError, http.StatusGatewayTimeout}}, &e)
	if err != nil {
		return e, err
	}
	if e.ID == "" {
		e.ID = idFromLocation(resp.header)
	}
	e.Replayed = resp.header.Get("Idempotent-Replayed") == "true"
	return e, nil
}
