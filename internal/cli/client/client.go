// Package client is a typed Go client of the lambda platform's public HTTP API (v1):
// functions and versions, invoke (sync, async, idempotent), executions, pipelines and
// runs, schedules and sessions. Errors the platform answers as problem+json come back
// as *Error; a sync invoke or run that failed comes back as its envelope, not an error.
// It imports nothing from the platform: the HTTP contract is all it shares with it.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-retry"
)

// Client calls one platform with one API key. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	token     string
	http      *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the default keep-alive client (tests, proxies, custom TLS).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client of the platform at baseURL (e.g. http://127.0.0.1:8000) that
// authenticates with token (sent as a bearer token when not empty).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid API URL %q: want http(s)://host[:port]", baseURL)
	}
	c := &Client{base: u, token: token, userAgent: "lambda-cli"}
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = &http.Client{Transport: defaultTransport()}
	}
	return c, nil
}

// defaultTransport keeps connections alive across the many small calls of a watch or
// a follow; no overall timeout, since long-polls last up to their wait (the context
// bounds every call instead).
func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 8
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = 0
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	return t
}

// BaseURL is the platform's address as given to New.
func (c *Client) BaseURL() string { return c.base.String() }

// Error is a problem+json answer (RFC 9457), or any other non-2xx answer described as one.
type Error struct {
	Type      string `json:"type"`
	Title     string `json:"title"`
	Status    int    `json:"status"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	// Method and Path are the request's, for messages under -v.
	Method string `json:"-"`
	Path   string `json:"-"`

	retryAfter time.Duration // the answer's Retry-After
}

// Error is the detail (or title) and the status: `function "x" not found (404)`.
func (e *Error) Error() string {
	msg := e.Detail
	if msg == "" {
		msg = e.Title
	}
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%s (%d)", msg, e.Status)
}

// IsStatus reports whether err is an *Error with the given HTTP status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// request is one call: what to send and which answers are not errors.
type request struct {
	method, path string
	query        url.Values
	header       http.Header
	body         any // json.RawMessage is sent as is; nil sends no body
	// envelope lists non-2xx statuses whose JSON body is a result (a failed sync
	// invoke's envelope), not a problem.
	envelope []int
}

// response is what do read: status, headers, body.
type response struct {
	status int
	header http.Header
	body   []byte
}

// Reads (GET) answered 429, 502, 503 or 504 — a platform briefly overloaded or a
// dependency briefly away — are tried again readRetries times, readBackoff apart and
// doubling, or after the answer's Retry-After when longer (at most maxRetryAfter).
// Writes are never repeated: the caller decides (an Idempotency-Key makes it safe).
var (
	readRetries   uint64 = 3
	readBackoff          = 250 * time.Millisecond
	maxRetryAfter        = 5 * time.Second
)

// transient reports whether an answer to a read is worth another try.
func transient(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (c *Client) do(ctx context.Context, r request) (*response, error) {
	if r.method != http.MethodGet {
		return c.once(ctx, r)
	}
	var after time.Duration // the last answer's Retry-After
	exp := retry.NewExponential(readBackoff)
	b := retry.WithMaxRetries(readRetries, retry.BackoffFunc(func() (time.Duration, bool) {
		d, stop := exp.Next()
		return max(d, after), stop
	}))
	return retry.DoValue(ctx, b, func(ctx context.Context) (*response, error) {
		resp, err := c.once(ctx, r)
		var e *Error
		if errors.As(err, &e) && transient(e.Status) {
			after = min(e.retryAfter, maxRetryAfter)
			return nil, retry.RetryableError(err)
		}
		return resp, err
	})
}

// once makes one request.
func (c *Client) once(ctx context.Context, r request) (*response, error) {
	// r.path holds escaped segments (url.PathEscape): keep them as sent.
	u := *c.base
	u.RawPath = c.base.EscapedPath() + r.path
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = r.query.Encode()
	var body io.Reader
	if r.body != nil {
		raw, ok := r.body.(json.RawMessage)
		if !ok {
			var err error
			if raw, err = json.Marshal(r.body); err != nil {
				return nil, fmt.Errorf("encode %s %s: %w", r.method, r.path, err)
			}
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), body)
	if err != nil {
		return nil, err
	}
	addHeaders(req.Header, r.header)
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", r.method, r.path, err)
	}
	out := &response{status: resp.StatusCode, header: resp.Header, body: raw}
	if resp.StatusCode < 300 {
		return out, nil
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	for _, s := range r.envelope {
		if resp.StatusCode == s && mt == "application/json" {
			return out, nil
		}
	}
	return nil, problem(r, out, mt)
}

func addHeaders(dst, src http.Header) {
	for k, vs := range src {
		for _, v := range vs {
			dst.Add(k, v)
		}
	}
}

// problem decodes an error answer; a body that is not problem+json (a proxy's HTML
// page) still gives the status and the request id.
func problem(r request, resp *response, mediaType string) *Error {
	e := &Error{}
	if mediaType == "application/problem+json" || mediaType == "application/json" {
		_ = json.Unmarshal(resp.body, e)
	}
	if e.Status == 0 {
		e.Status = resp.status
	}
	if e.Title == "" {
		e.Title = http.StatusText(resp.status)
	}
	if id := resp.header.Get("X-Request-Id"); id != "" {
		e.RequestID = id
	}
	e.Method, e.Path = r.method, r.path
	e.retryAfter = retryAfter(resp.header.Get("Retry-After"))
	return e
}

// retryAfter reads a Retry-After header: seconds or an HTTP date (0 when absent).
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// call does r and decodes a JSON answer into out (when out is not nil).
func (c *Client) call(ctx context.Context, r request, out any) (*response, error) {
	resp, err := c.do(ctx, r)
	if err != nil {
		return nil, err
	}
	if out != nil && len(bytes.TrimSpace(resp.body)) > 0 {
		if err := json.Unmarshal(resp.body, out); err != nil {
			return nil, fmt.Errorf("%s %s: decoding the answer: %w", r.method, r.path, err)
		}
	}
	return resp, nil
}

// waitQuery is the long-poll parameter: whole seconds or milliseconds, as Go durations.
func waitQuery(d time.Duration) url.Values {
	if d <= 0 {
		return nil
	}
	return url.Values{"wait": {d.Round(time.Millisecond).String()}}
}

// minPoll spaces the calls of a wait loop against a server that answers a long-poll at
// once (an older server, or a proxy that drops the parameter).
const minPoll = 100 * time.Millisecond

// waitLoop calls get until done says so, handing every answer to update.
func waitLoop[T any](ctx context.Context, poll time.Duration, get func(time.Duration) (T, error), done func(T) bool, update func(T)) (T, error) {
	for {
		start := time.Now()
		v, err := get(poll)
		if err != nil {
			return v, err
		}
		if update != nil {
			update(v)
		}
		if done(v) {
			return v, nil
		}
		if wait := minPoll - time.Since(start); wait > 0 {
			select {
			case <-ctx.Done():
				return v, ctx.Err()
			case <-time.After(wait):
			}
		}
	}
}

// idFromLocation is the last path segment of a Location header (/v1/runs/{id}).
func idFromLocation(h http.Header) string {
	loc := h.Get("Location")
	if i := strings.LastIndexByte(loc, '/'); i >= 0 {
		return loc[i+1:]
	}
	return loc
}

// asyncHeader builds the headers shared by invoke and run starts.
func asyncHeader(async bool, idempotencyKey, callbackURL string) http.Header {
	h := http.Header{}
	if async {
		h.Set("Prefer", "respond-async")
	}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	if callbackURL != "" {
		h.Set("X-Callback-Url", callbackURL)
	}
	return h
}
