package faas

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
)

// Notebook sessions live on one replica of a runtime function (its kernel worker is a
// process of that replica), so their calls go to that replica's base URL, never through a
// balancer: Replica picks one for a new session, and the session's row keeps it.

// SessionOpen opens a session on a replica (the runtime host's POST /_/sessions).
type SessionOpen struct {
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	MemoryMB int    `json:"memory_mb"`
	IdleMS   int64  `json:"idle_ms"`
}

// CellCall runs one cell (POST /_/sessions/{id}/cells).
type CellCall struct {
	Tenant    string `json:"tenant"`
	Source    string `json:"source"`
	TimeoutMS int64  `json:"timeout_ms"`
}

// Replica returns the base URL of a replica of fn for a new session: one from the direct
// route's list, else the function's URL on the gateway (then the replica answers with its
// own address when it advertises one, LAMBDA_RUNTIME_ADVERTISE_URL).
func (c *Client) Replica(ctx context.Context, fn string) string {
	if c.direct != nil {
		if base := c.direct.pick(ctx, fn); base != "" {
			return base
		}
	}
	return strings.TrimRight(c.gateway, "/") + "/function/" + url.PathEscape(fn+"."+c.namespace)
}

// OpenSession starts the session's worker on the replica at base; it returns the replica's
// advertised address, or base.
func (c *Client) OpenSession(ctx context.Context, base string, req SessionOpen) (string, error) {
	var ans struct {
		Replica string `json:"replica"`
	}
	if err := c.sessionCall(ctx, http.MethodPost, base+"/_/sessions", req, &ans); err != nil {
		return "", err
	}
	if ans.Replica != "" {
		return ans.Replica, nil
	}
	return base, nil
}

// RunCell runs a cell in session id on the replica at base. A session the replica does not
// hold (its worker died, the replica restarted or is gone) is fault.NotFound.
func (c *Client) RunCell(ctx context.Context, base, id string, call CellCall) (Result, error) {
	var res Result
	err := c.sessionCall(ctx, http.MethodPost, base+"/_/sessions/"+url.PathEscape(id)+"/cells", call, &res)
	return res, err
}

// CloseSession stops session id's worker on the replica at base.
func (c *Client) CloseSession(ctx context.Context, base, id, tenant string) error {
	return c.sessionCall(ctx, http.MethodDelete, base+"/_/sessions/"+url.PathEscape(id)+"?tenant="+url.QueryEscape(tenant), nil, nil)
}

func (c *Client) sessionCall(ctx context.Context, method, u string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fault.Wrap(fault.Invalid, err, "session request cannot be encoded")
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fault.Wrap(fault.Invalid, err, "session request")
	}
	req.Header.Set("Content-Type", "application/json")
	if c.secret != "" {
		req.Header.Set(platformsecret.RuntimeHeader, c.secret)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if dialFailed(err) { // the replica is gone: so is the session's worker
			return fault.Wrap(fault.NotFound, err, "the session's replica is gone")
		}
		return fault.Wrap(fault.Unavailable, err, "session replica unreachable")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fault.Wrap(fault.Unavailable, err, "session replica: reading answer")
	}
	if resp.StatusCode/100 == 2 {
		if out != nil && len(raw) > 0 {
			if err := json.Unmarshal(raw, out); err != nil {
				return fault.Wrap(fault.Unavailable, err, "session replica: malformed answer")
			}
		}
		return nil
	}
	var doc struct {
		Error Error `json:"error"`
	}
	_ = json.Unmarshal(raw, &doc)
	msg := doc.Error.Message
	if msg == "" {
		msg = strings.TrimSpace(string(raw))
	}
	switch {
	case resp.StatusCode == http.StatusNotFound && doc.Error.Type == "SessionNotFound":
		return fault.New(fault.NotFound, "%s", msg)
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadGateway:
		// A gateway with no such replica (any more): the session is gone with it.
		return fault.New(fault.NotFound, "the session's replica is gone: %s", msg)
	case resp.StatusCode == http.StatusBadRequest:
		return fault.New(fault.Invalid, "%s", msg)
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		return fault.New(fault.TooLarge, "%s", msg)
	case resp.StatusCode == http.StatusServiceUnavailable && doc.Error.Type == "Overloaded":
		return fault.New(fault.Overloaded, "%s", msg)
	case resp.StatusCode == http.StatusTooManyRequests && doc.Error.Type == "TenantShare":
		// The tenant's own calls and sessions hold its share of the replica's workers.
		return fault.New(fault.TenantShare, "%s", msg)
	}
	return fault.New(fault.Unavailable, "session replica answered %d: %s", resp.StatusCode, msg)
}
