package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// NewcomerHandler is the function a newcomer registers first (README walkthrough style):
// the sum of two fields of the event.
const NewcomerHandler = "def handler(e, context):\n    return e['a'] + e['b']\n"

// NewcomerEvent is its event.
var NewcomerEvent = []byte(`{"a":1,"b":2}`)

// NewcomerClient is the client a newcomer writes: net/http with its default transport,
// which keeps at most 2 idle connections per host — a request that finds none idle opens
// a new connection, and a connection that finds 2 idle ones on return is closed.
func NewcomerClient() *http.Client {
	return &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
}

// Tenant creates a tenant with the platform's (admin) token and returns the platform as
// that tenant's first API key sees it.
func (p *Platform) Tenant(ctx context.Context, name string) (*Platform, error) {
	body, _ := json.Marshal(map[string]string{"name": name})
	status, resp, err := Do(ctx, p.client(), http.MethodPost, p.APIURL+"/v1/tenants", p.Header(), body)
	if err != nil {
		return nil, fmt.Errorf("create tenant %s: %w", name, err)
	}
	if status != http.StatusCreated {
		return nil, fmt.Errorf("create tenant %s: %w", name, StatusError(status, resp))
	}
	var out struct {
		Key string `json:"api_key"`
	}
	if err := json.Unmarshal(resp, &out); err != nil || out.Key == "" {
		return nil, fmt.Errorf("create tenant %s: no api_key in %q", name, resp)
	}
	return &Platform{APIURL: p.APIURL, ProviderURL: p.ProviderURL, Token: out.Key, Client: NewClient(16)}, nil
}

// Keys mints n more API keys of the platform token's tenant (POST /v1/keys).
func (p *Platform) Keys(ctx context.Context, n int) ([]string, error) {
	var keys []string
	for range n {
		status, resp, err := Do(ctx, p.client(), http.MethodPost, p.APIURL+"/v1/keys", p.Header(), nil)
		if err == nil && status != http.StatusCreated {
			err = StatusError(status, resp)
		}
		var out struct {
			Key string `json:"api_key"`
		}
		if err == nil {
			err = json.Unmarshal(resp, &out)
		}
		if err != nil {
			return nil, fmt.Errorf("create an api key: %w", err)
		}
		keys = append(keys, out.Key)
	}
	return keys, nil
}

// RotateKeys returns an Op sending r with each key in turn (a client spreading its load
// over several keys of its tenant, each with its own rate limit).
func RotateKeys(c *Client, r Request, keys []string) Op {
	ops := make([]Op, len(keys))
	for i, k := range keys {
		rk := r
		rk.Header = r.Header.Clone()
		rk.Header.Set("Authorization", "Bearer "+k)
		ops[i] = HTTPOp(c, rk)
	}
	var next atomic.Uint64
	return func(ctx context.Context) error {
		return ops[(next.Add(1)-1)%uint64(len(ops))](ctx)
	}
}

// NetHTTPOp sends r with a net/http client (the newcomer's), reading the whole body.
func NetHTTPOp(c *http.Client, r Request) Op {
	want := r.Want
	if want == 0 {
		want = http.StatusOK
	}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, bytes.NewReader(r.Body))
		if err != nil {
			return err
		}
		for k, vs := range r.Header {
			req.Header[k] = vs
		}
		if r.Body != nil && req.Header.Get("Content-Type") == "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode != want {
			return StatusError(resp.StatusCode, body)
		}
		if r.Check != nil {
			return r.Check(body)
		}
		return nil
	}
}

// checkSum accepts a succeeded envelope whose result is 3 (NewcomerEvent's a + b).
func checkSum(body []byte) error {
	var e struct {
		Status string          `json:"status"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return fmt.Errorf("envelope: %w", err)
	}
	if e.Status != "succeeded" {
		return fmt.Errorf("execution %s", e.Status)
	}
	if strings.TrimSpace(string(e.Result)) != "3" {
		return fmt.Errorf("result %s, want 3", e.Result)
	}
	return nil
}

// Newcomer is scenario 10 on its own, for a running stack (`make run`'s): a fresh tenant
// made with the admin token, the sum function registered with the tenant's key, three
// warm-up calls, warm-up at the rate, then the measured open loop with a net/http client.
func (r *Runner) Newcomer(ctx context.Context, rep *Report) {
	name := fmt.Sprintf("newcomer-%d", time.Now().UnixNano()%1e9)
	tp, err := r.P.Tenant(ctx, name)
	var f Function
	if err == nil {
		f, err = tp.Register(ctx, "sum", "python", NewcomerHandler, nil)
	}
	if err != nil {
		rep.add(Row{Section: "10 newcomer", Case: "python sum", Note: "setup failed: " + err.Error(), Verdict: "FAIL"})
		return
	}
	c := NewcomerClient()
	defer c.CloseIdleConnections()
	req := tp.InvokeRequest(f, NewcomerEvent)
	req.Header = tp.Header("Language-Title", "python") // the README's call: no ?version=, the latest
	req.URL = tp.APIURL + "/v1/functions/" + url.PathEscape(f.Name) + "/invoke"
	req.Check = checkSum
	op := NetHTTPOp(c, req)
	for i := range 3 {
		if err := op(ctx); err != nil {
			rep.add(Row{Section: "10 newcomer", Case: "python sum", Note: fmt.Sprintf("warm-up call %d failed: %v", i+1, err), Verdict: "FAIL"})
			return
		}
	}
	r.logf("10 newcomer: tenant %s, warm-up %s, then %.0f/s for %s (net/http client)", name, r.S.NewcomerWarmup, r.S.NewcomerRate, r.S.NewcomerDuration)
	Run(ctx, Load{Rate: r.S.NewcomerRate, Duration: r.S.NewcomerWarmup, Timeout: 10 * time.Second}, op)
	var prof chan string
	if r.During != nil && rep.Profile == "" { // scenario 1 profiles when it runs
		prof = make(chan string, 1)
		go func() { prof <- r.During(ctx, r.S.NewcomerDuration) }()
	}
	conns0, connsOK := r.P.AcceptedConnections(ctx)
	res := Run(ctx, Load{Rate: r.S.NewcomerRate, Duration: r.S.NewcomerDuration, Timeout: 10 * time.Second}, op)
	if conns1, ok := r.P.AcceptedConnections(ctx); ok && connsOK {
		rep.notef("Scenario 10: the api accepted %.0f TCP connections during the measured %s (%d requests): "+
			"the default client keeps 2 idle connections per host and dials whenever more calls are in flight.",
			conns1-conns0, r.S.NewcomerDuration, res.Sent)
	}
	if prof != nil {
		rep.Profile, rep.ProfileOf = <-prof, "scenario 10"
	}
	row := Row{Section: "10 newcomer", Case: "python sum (`e['a'] + e['b']`), a tenant's key, net/http default client, " + r.StackName,
		Offered: r.S.NewcomerRate, Result: &res, Budget: "p50 ≤ 2 ms, p99 ≤ 10 ms, 0 errors"}
	row.Verdict = verdict(res.Quantile(50) <= 2 && res.Quantile(99) <= 10 && res.Errors == 0)
	rep.add(row)
	r.pause(ctx)
}

// AcceptedConnections reads the api's count of accepted TCP connections
// (lambda_http_connections_total on its /metrics); false when it does not export it.
func (p *Platform) AcceptedConnections(ctx context.Context) (float64, bool) {
	status, body, err := Do(ctx, p.client(), http.MethodGet, p.APIURL+"/metrics", nil, nil)
	if err != nil || status != http.StatusOK {
		return 0, false
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "lambda_http_connections_total "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return n, err == nil
		}
	}
	return 0, false
}
