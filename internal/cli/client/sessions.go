package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Session is a notebook-like interpreter whose state persists across cells.
type Session struct {
	ID        string     `json:"id"`
	Language  string     `json:"language"`
	Cells     []Cell     `json:"cells,omitempty"`
	CreatedAt *time.Time `json:"created_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Cell is one piece of code run in a session and what it gave.
type Cell struct {
	ID         string          `json:"id,omitempty"`
	Source     string          `json:"source,omitempty"`
	Status     string          `json:"status,omitempty"`
	Result     json.RawMessage `json:"result"`
	Error      *ExecError      `json:"error"`
	Stdout     string          `json:"stdout,omitempty"`
	Stderr     string          `json:"stderr,omitempty"`
	DurationMS float64         `json:"duration_ms,omitempty"`
	// Replayed: the session's worker was lost and its state rebuilt before this cell.
	Replayed bool `json:"replayed,omitempty"`
}

func sessionPath(id string) string { return "/v1/sessions/" + url.PathEscape(id) }

// CreateSession starts a session in language.
func (c *Client) CreateSession(ctx context.Context, language string) (Session, error) {
	var s Session
	_, err := c.call(ctx, request{method: http.MethodPost, path: "/v1/sessions",
		body: map[string]string{"language": language}}, &s)
	return s, err
}

// RunCell runs source in a session; a cell whose code raised is its envelope with
// Error set, not an error.
func (c *Client) RunCell(ctx context.Context, id, source string) (Cell, error) {
	var cell Cell
	_, err := c.call(ctx, request{method: http.MethodPost, path: sessionPath(id) + "/cells",
		body: map[string]string{"source": source}, envelope: []int{http.StatusInternalServerError, http.StatusGatewayTimeout}}, &cell)
	return cell, err
}

// GetSession returns a session with its cells.
func (c *Client) GetSession(ctx context.Context, id string) (Session, error) {
	var s Session
	_, err := c.call(ctx, request{method: http.MethodGet, path: sessionPath(id)}, &s)
	return s, err
}

// DeleteSession ends a session and frees its worker.
func (c *Client) DeleteSession(ctx context.Context, id string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: sessionPath(id)}, nil)
	return err
}
