package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Rates are the load's requests per second per kind (open loop: sent on schedule
// whether or not earlier ones were answered); cells go one at a time per session.
type Rates map[Kind]float64

// DefaultRates are a mixed load this 2-core machine carries with room for the faults.
func DefaultRates() Rates {
	return Rates{SyncPython: 4, SyncNode: 4, SyncRust: 3, CacheHit: 3, Async: 2, RunSync: 1, RunAsync: 0.5, Cell: 1}
}

// Target is what the load calls: the api processes and what the setup registered.
type Target struct {
	APIs  []string // base URLs; requests go round robin, as a load balancer would spread them
	Token string
	// Functions per kind (SyncPython, SyncNode, SyncRust, CacheHit, Async), their
	// languages (the Language-Title header) and pipelines (RunSync, RunAsync).
	Functions map[Kind]string
	Languages map[Kind]string
	Pipelines map[Kind]string
	// Sessions are open notebook sessions, each fed cells one at a time.
	Sessions []string
}

// Load sends the mixed load to the target and records every request.
type Load struct {
	T       Target
	Rates   Rates
	H       *History
	Timeout time.Duration // per attempt
	// MaxInFlight bounds the requests open at once; beyond it a request is recorded as
	// refused by the client (the load would no longer be open-loop).
	MaxInFlight int
	RunID       string // makes the keys unique across soaks on one database

	client   *http.Client
	seq      atomic.Int64
	next     atomic.Uint64
	inflight atomic.Int64
}

func (l *Load) init() {
	if l.Timeout == 0 {
		l.Timeout = 30 * time.Second
	}
	if l.MaxInFlight == 0 {
		l.MaxInFlight = 512
	}
	if l.RunID == "" {
		l.RunID = strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	l.client = &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second,
		DisableCompression: true,
	}}
}

// Run sends the load until ctx ends and waits for the requests in flight.
func (l *Load) Run(ctx context.Context) {
	l.init()
	var wg sync.WaitGroup
	for _, k := range Kinds {
		rate := l.Rates[k]
		if rate <= 0 {
			continue
		}
		if k == Cell {
			for _, s := range l.T.Sessions {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l.cells(ctx, s, rate)
				}()
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.open(ctx, k, rate, &wg)
		}()
	}
	wg.Wait()
}

// open sends kind k at rate on a fixed schedule.
func (l *Load) open(ctx context.Context, k Kind, rate float64, wg *sync.WaitGroup) {
	interval := time.Duration(float64(time.Second) / rate)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seq := l.seq.Add(1)
		if l.inflight.Load() >= int64(l.MaxInFlight) {
			l.H.Add(Record{Seq: seq, Sent: time.Now(), Kind: k, Err: "client: too many requests in flight"})
			continue
		}
		l.inflight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer l.inflight.Add(-1)
			l.H.Add(l.one(k, seq))
		}()
	}
}

// Retries are the waits before a request's further attempts, each on the next api with
// the same Idempotency-Key, when no envelope came back: a client behind a load balancer
// riding out a restart (~1.75 s in all).
var Retries = []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second}

// one sends one request of kind k, retried (Retries) when no envelope came back.
func (l *Load) one(k Kind, seq int64) Record {
	key := fmt.Sprintf("soak-%s-%d", l.RunID, seq)
	api := int(l.next.Add(1)-1) % len(l.T.APIs)
	r := Record{Seq: seq, Sent: time.Now(), API: api, Kind: k, Key: key}
	var path string
	var body []byte
	h := http.Header{}
	h.Set("Idempotency-Key", key)
	switch k {
	case SyncPython, SyncNode, SyncRust, Async:
		path = "/v1/functions/" + url.PathEscape(l.T.Functions[k]) + "/invoke"
		h.Set("Language-Title", l.T.Languages[k])
		body = fmt.Appendf(nil, `{"n":%d,"k":%q}`, seq, key)
		if k == Async {
			h.Set("Prefer", "respond-async")
		}
	case CacheHit:
		path = "/v1/functions/" + url.PathEscape(l.T.Functions[k]) + "/invoke"
		h.Set("Language-Title", l.T.Languages[k])
		body = []byte(`{"n":0}`)
	case RunSync, RunAsync:
		path = "/v1/pipelines/" + url.PathEscape(l.T.Pipelines[k]) + "/runs"
		body = fmt.Appendf(nil, `{"k":%q,"items":[{"n":1},{"n":2},{"n":3}]}`, key)
		if k == RunAsync {
			h.Set("Prefer", "respond-async")
		}
	}
	for attempt := 0; attempt <= len(Retries); attempt++ {
		if attempt > 0 {
			time.Sleep(Retries[attempt-1])
		}
		r.Attempts++
		base := l.T.APIs[(api+attempt)%len(l.T.APIs)]
		status, resp, err := l.do(http.MethodPost, base+path, h, body)
		r.HTTP, r.Err = status, ""
		if err != nil {
			r.Err = err.Error()
		}
		var env struct {
			ID     string          `json:"id"`
			Status string          `json:"status"`
			Result json.RawMessage `json:"result"`
			Output json.RawMessage `json:"output"`
		}
		if err == nil && json.Unmarshal(resp, &env) == nil && env.ID != "" {
			r.ID, r.Status = env.ID, env.Status
			r.Result = env.Result
			if !k.Execution() {
				r.Result = env.Output
			}
		} else if err == nil {
			r.Err = fmt.Sprintf("%d %s", status, truncate(resp, 200))
		}
		if attempt == 0 {
			r.FirstOK = r.OK()
			if !r.FirstOK {
				r.FirstErr = r.Err
				if r.FirstErr == "" {
					r.FirstErr = fmt.Sprintf("%d %s", status, r.Status)
				}
			}
		}
		if r.ID != "" || status == http.StatusBadRequest || status == http.StatusUnprocessableEntity {
			break
		}
	}
	r.LatencyMS = float64(time.Since(r.Sent).Microseconds()) / 1000
	return r
}

// cells feeds one session a cell at a time, at most rate per second: cell i sets v = i
// and answers v * 2, so that its result is known and a replay leaves it the same.
func (l *Load) cells(ctx context.Context, session string, rate float64) {
	interval := time.Duration(float64(time.Second) / rate)
	t := time.NewTicker(interval)
	defer t.Stop()
	h := http.Header{}
	for i := 1; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seq := l.seq.Add(1)
		api := int(l.next.Add(1)-1) % len(l.T.APIs)
		r := Record{Seq: seq, Sent: time.Now(), API: api, Kind: Cell, Session: session, Attempts: 1}
		body, _ := json.Marshal(map[string]string{"source": fmt.Sprintf("v = %d\nv * 2", seq)})
		status, resp, err := l.do(http.MethodPost, l.T.APIs[api]+"/v1/sessions/"+session+"/cells", h, body)
		r.HTTP = status
		var c struct {
			Index  int             `json:"index"`
			Status string          `json:"status"`
			Result json.RawMessage `json:"result"`
		}
		switch {
		case err != nil:
			r.Err = err.Error()
		case json.Unmarshal(resp, &c) == nil && c.Index > 0:
			r.Cell, r.Status, r.Result = c.Index, c.Status, c.Result
			if c.Status == "succeeded" && !sameJSON(c.Result, fmt.Appendf(nil, "%d", 2*seq)) {
				r.Err = fmt.Sprintf("cell answered %s, want %d", c.Result, 2*seq)
			}
		default:
			r.Err = fmt.Sprintf("%d %s", status, truncate(resp, 200))
		}
		r.FirstOK = r.OK()
		r.LatencyMS = float64(time.Since(r.Sent).Microseconds()) / 1000
		l.H.Add(r)
	}
}

func (l *Load) do(method, u string, h http.Header, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+l.T.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
