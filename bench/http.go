package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// NewClient returns an HTTP/1.1 client keeping up to conns keep-alive connections per host,
// so that a run with that many workers never waits for a connection nor opens a new one
// per request.
func NewClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns * 2,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     2 * time.Minute,
		ForceAttemptHTTP2:   false,
		DisableCompression:  true,
	}}
}

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
func HTTPOp(c *http.Client, r Request) Op {
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

// Do sends one request and reads the whole response.
func Do(ctx context.Context, c *http.Client, method, url string, header http.Header, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, transportError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, transportError(err)
	}
	return resp.StatusCode, b, nil
}

// StatusError names an unexpected status with the start of its body.
func StatusError(status int, body []byte) error {
	s := strings.Join(strings.Fields(string(body)), " ")
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return fmt.Errorf("status %d: %s", status, s)
}

// transportError drops the URL (and so the variable parts) from a client error, keeping
// its cause, so that error kinds group; timeouts become context.DeadlineExceeded.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return context.DeadlineExceeded
		}
		return ue.Err
	}
	return err
}
