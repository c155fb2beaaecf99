package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// Client is the load generator's HTTP/1.1 client. It is fasthttp's, not net/http's: a
// net/http request hands off between three goroutines (caller, writeLoop, readLoop), and
// on two cores shared with the platform under test that cost is not the platform's to
// pay. Measured against the whole stack at 1,000 req/s: 245 µs of CPU per request with
// net/http, 170 µs with fasthttp (BENCHMARKS.md, run 7). A request is never retried.
type Client struct{ c *fasthttp.Client }

// NewClient returns a client keeping up to conns keep-alive connections per host, so that
// a run with that many workers never waits for a connection nor opens one per request.
func NewClient(conns int) *Client {
	return &Client{c: &fasthttp.Client{
		MaxConnsPerHost:           conns,
		MaxConnWaitTimeout:        time.Minute, // wait for a free connection, never fail for lack of one
		MaxIdleConnDuration:       time.Minute,
		MaxIdemponentCallAttempts: 1,
		NoDefaultUserAgentHeader:  true,
		DisablePathNormalizing:    true,
		Dial:                      (&fasthttp.TCPDialer{Concurrency: 0}).Dial,
	}}
}

// CloseIdleConnections closes the pool's idle keep-alive connections.
func (c *Client) CloseIdleConnections() { c.c.CloseIdleConnections() }

// Request describes one HTTP request of a load.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
	// NewBody, when set, gives each request its own body (unique ids).
	NewBody func() []byte
	// Want is the expected status (default 200); anything else is an error.
	Want int
	// Check, when set, validates the response body of a request with the wanted status.
	Check func(body []byte) error
}

// HTTPOp turns r into an Op sending it with c.
func HTTPOp(c *Client, r Request) Op {
	want := r.Want
	if want == 0 {
		want = http.StatusOK
	}
	return func(ctx context.Context) error {
		body := r.Body
		if r.NewBody != nil {
			body = r.NewBody()
		}
		status, resp, err := Do(ctx, c, r.Method, r.URL, r.Header, body)
		if err != nil {
			return err
		}
		if status != want {
			return StatusError(status, resp)
		}
		if r.Check != nil {
			return r.Check(resp)
		}
		return nil
	}
}

// Do sends one request and reads the whole response. ctx's deadline bounds it (fasthttp
// has no cancellation; every request of the generator has a deadline).
func Do(ctx context.Context, c *Client, method, url string, header http.Header, body []byte) (int, []byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod(method)
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if body != nil {
		if header.Get("Content-Type") == "" {
			req.Header.SetContentType("application/json")
		}
		req.SetBodyRaw(body)
	}
	var err error
	if dl, ok := ctx.Deadline(); ok {
		err = c.c.DoDeadline(req, resp, dl)
	} else {
		err = c.c.Do(req, resp)
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, nil, ctx.Err()
		}
		return 0, nil, transportError(err)
	}
	return resp.StatusCode(), bytes.Clone(resp.Body()), nil
}

// StatusError names an unexpected status with the start of its body (a problem's
// detail, when the body is one).
func StatusError(status int, body []byte) error {
	var p struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil && p.Detail != "" {
		body = []byte(p.Detail)
	}
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return fmt.Errorf("status %d: %s", status, s)
}

// transportError makes fasthttp's timeouts context.DeadlineExceeded, so that error kinds
// group with the deadline of the request's context.
func transportError(err error) error {
	if errors.Is(err, fasthttp.ErrTimeout) || errors.Is(err, fasthttp.ErrDialTimeout) {
		return context.DeadlineExceeded
	}
	return err
}
