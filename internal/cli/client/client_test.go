package client

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// server answers with h and counts new connections.
func server(t *testing.T, h http.HandlerFunc) (*Client, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := New(srv.URL+"/", "tok", WithUserAgent("test/1"))
	require.NoError(t, err)
	return c, &conns
}

func writeJSON(w http.ResponseWriter, status int, contentType, body string, headers ...string) {
	for i := 0; i+1 < len(headers); i += 2 {
		w.Header().Set(headers[i], headers[i+1])
	}
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "127.0.0.1:8000", "ftp://x", "http://"} {
		_, err := New(bad, "")
		require.Error(t, err, bad)
	}
	c, err := New("https://lambda.example.com/prefix/", "")
	require.NoError(t, err)
	require.Equal(t, "https://lambda.example.com/prefix", c.BaseURL())
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		contentType string
		body        string
		want        Error
		wantMsg     string
	}{
		{"problem", 404, "application/problem+json",
			`{"type":"urn:lambda:problem:not_found","title":"Not Found","status":404,"detail":"function \"x\" not found","instance":"/v1/functions/x","request_id":"body-id"}`,
			Error{Type: "urn:lambda:problem:not_found", Title: "Not Found", Status: 404, Detail: `function "x" not found`,
				Instance: "/v1/functions/x", RequestID: "req-9", Method: "GET", Path: "/v1/functions/x"},
			`function "x" not found (404)`},
		{"proxy page", 502, "text/html", "<html>Bad Gateway</html>",
			Error{Title: "Bad Gateway", Status: 502, RequestID: "req-9", Method: "GET", Path: "/v1/functions/x"},
			"Bad Gateway (502)"},
		{"json error without problem fields", 500, "application/json", `{"oops":true}`,
			Error{Title: "Internal Server Error", Status: 500, RequestID: "req-9", Method: "GET", Path: "/v1/functions/x"},
			"Internal Server Error (500)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := server(t, func(w http.ResponseWriter, _ *http.Request) {
				writeJSON(w, tt.status, tt.contentType, tt.body, "X-Request-Id", "req-9")
			})
			_, err := c.GetFunction(context.Background(), "x")
			var e *Error
			require.ErrorAs(t, err, &e)
			require.Equal(t, tt.want, *e)
			require.Equal(t, tt.wantMsg, err.Error())
			require.True(t, IsStatus(err, tt.status))
		})
	}
}

func TestRequestHeadersAndKeepAlive(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []*http.Request
	c, conns := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		writeJSON(w, 200, "application/json", `{"functions":[{"name":"a b","language":"python","version":1}]}`)
	})
	ctx := context.Background()
	for range 5 {
		fns, err := c.ListFunctions(ctx)
		require.NoError(t, err)
		require.Equal(t, "a b", fns[0].Name)
	}
	_, _ = c.GetFunction(ctx, "a b/c")
	require.EqualValues(t, 1, conns.Load(), "one kept-alive connection for all calls")
	r := got[0]
	require.Equal(t, "Bearer tok", r.Header.Get("Authorization"))
	require.Equal(t, "test/1", r.Header.Get("User-Agent"))
	require.Contains(t, r.Header.Get("Accept"), "application/problem+json")
	require.Empty(t, r.Header.Get("Content-Type"), "no body, no content type")
	require.Equal(t, "/v1/functions/a%20b%2Fc", got[5].URL.EscapedPath())
}

func TestInvoke(t *testing.T) {
	t.Parallel()
	const env = `{"id":"e1","function":"add","version":2,"status":"%s","result":null,"error":%s}`
	tests := []struct {
		name        string
		opts        InvokeOptions
		event       json.RawMessage
		handler     func(w http.ResponseWriter)
		want        Execution
		wantErr     int
		wantHeaders map[string]string
		wantQuery   string
		wantBody    string
	}{
		{name: "sync succeeded", opts: InvokeOptions{Language: "python"}, event: json.RawMessage(`{"a":1}`),
			handler: func(w http.ResponseWriter) {
				writeJSON(w, 200, "application/json", `{"id":"e1","status":"succeeded","result":{"sum":3}}`)
			},
			want:        Execution{ID: "e1", Status: "succeeded", Result: json.RawMessage(`{"sum":3}`)},
			wantHeaders: map[string]string{"Language-Title": "python", "Prefer": "", "Content-Type": "application/json"},
			wantBody:    `{"a":1}`},
		{name: "sync handler failed is an envelope", opts: InvokeOptions{Language: "py", Version: 2},
			handler: func(w http.ResponseWriter) {
				writeJSON(w, 500, "application/json", `{"id":"e1","status":"failed","error":{"type":"ValueError","message":"bad"}}`)
			},
			want:      Execution{ID: "e1", Status: "failed", Error: &ExecError{Type: "ValueError", Message: "bad"}},
			wantQuery: "version=2"},
		{name: "sync timeout is an envelope", opts: InvokeOptions{Language: "py"},
			handler: func(w http.ResponseWriter) { writeJSON(w, 504, "application/json", `{"id":"e1","status":"timeout"}`) },
			want:    Execution{ID: "e1", Status: "timeout"}},
		{name: "platform 504 is an error", opts: InvokeOptions{Language: "py"},
			handler: func(w http.ResponseWriter) {
				writeJSON(w, 504, "application/problem+json", `{"status":504,"detail":"gateway timed out"}`)
			},
			wantErr: 504},
		{name: "async queued, replayed", opts: InvokeOptions{Language: "py", Async: true, IdempotencyKey: "k", CallbackURL: "https://cb"},
			handler: func(w http.ResponseWriter) {
				writeJSON(w, 202, "application/json", `{"id":"e7","status":"queued"}`, "Location", "/v1/executions/e7", "Idempotent-Replayed", "true")
			},
			want:        Execution{ID: "e7", Status: "queued", Replayed: true},
			wantHeaders: map[string]string{"Prefer": "respond-async", "Idempotency-Key": "k", "X-Callback-Url": "https://cb"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var req *http.Request
			var body []byte
			c, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
				req = r
				body, _ = io.ReadAll(r.Body)
				tt.handler(w)
			})
			e, err := c.Invoke(context.Background(), "add", tt.event, tt.opts)
			if tt.wantErr != 0 {
				require.True(t, IsStatus(err, tt.wantErr), "%v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, e)
			require.Equal(t, "/v1/functions/add/invoke", req.URL.Path)
			require.Equal(t, tt.wantQuery, req.URL.RawQuery)
			for k, v := range tt.wantHeaders {
				require.Equal(t, v, req.Header.Get(k), k)
			}
			require.Equal(t, tt.wantBody, string(body))
		})
	}
}

func TestWaitExecution(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var queries []string
	n := 0
	c, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		n++
		status := map[bool]string{true: "running", false: "succeeded"}[n < 3]
		mu.Unlock()
		writeJSON(w, 200, "application/json", `{"id":"e1","status":"`+status+`"}`)
	})
	var seen []string
	start := time.Now()
	e, err := c.WaitExecution(context.Background(), "e1", 1500*time.Millisecond, func(e Execution) { seen = append(seen, e.Status) })
	require.NoError(t, err)
	require.Equal(t, "succeeded", e.Status)
	require.Equal(t, []string{"running", "running", "succeeded"}, seen)
	require.Equal(t, []string{"wait=1.5s", "wait=1.5s", "wait=1.5s"}, queries)
	require.GreaterOrEqual(t, time.Since(start), 2*minPoll, "a server answering at once is not hammered")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.WaitExecution(ctx, "e1", time.Second, nil)
	require.ErrorIs(t, err, context.Canceled)
}

func TestRuns(t *testing.T) {
	t.Parallel()
	var got []*http.Request
	var bodies []string
	c, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, bodies = append(got, r), append(bodies, string(b))
		switch r.URL.Path {
		case "/v1/pipelines/etl/runs":
			writeJSON(w, 202, "application/json", ``, "Location", "/v1/runs/r1")
		case "/v1/runs/r1/retry":
			writeJSON(w, 202, "application/json", `{"status":"queued"}`, "Location", "/v1/runs/r2")
		case "/v1/runs/r1":
			writeJSON(w, 200, "application/json", `{"id":"r1","status":"failed","error":"boom","steps":[{"id":"a","status":"failed","error":{"message":"x","type":"HandlerFailed"}}]}`)
		default:
			writeJSON(w, 202, "application/json", `{}`)
		}
	})
	ctx := context.Background()
	r, err := c.StartRun(ctx, "etl", nil, RunOptions{Async: true, Version: 3})
	require.NoError(t, err)
	require.Equal(t, Run{ID: "r1", Status: "queued"}, r)
	require.Equal(t, "version=3", got[0].URL.RawQuery)
	require.Equal(t, "respond-async", got[0].Header.Get("Prefer"))

	r, err = c.GetRun(ctx, "r1", 0)
	require.NoError(t, err)
	require.Equal(t, &RunError{Message: "boom"}, r.Error, "a plain string error is its message")
	require.Equal(t, &RunError{Type: "HandlerFailed", Message: "x"}, r.Steps[0].Error)
	require.True(t, r.Finished())

	r, err = c.RetryRun(ctx, "r1", "")
	require.NoError(t, err)
	require.Equal(t, "r2", r.ID)
	require.Equal(t, `{}`, bodies[2])

	require.NoError(t, c.SignalRun(ctx, "r1", "approve", nil))
	require.Equal(t, "/v1/runs/r1/signals/approve", got[3].URL.Path)
	require.Equal(t, "null", bodies[3])

	require.NoError(t, c.CancelRun(ctx, "r1"))
	require.Equal(t, http.MethodDelete, got[4].Method)
}

func TestFinished(t *testing.T) {
	t.Parallel()
	for status, want := range map[string]bool{"queued": false, "running": false, "waiting": false,
		"succeeded": true, "failed": true, "timeout": true, "canceled": true, "skipped": true} {
		require.Equal(t, want, Finished(status), status)
	}
}

// A read answered 503 or 429 is tried again (after Retry-After when given); a write is not.
func TestTransientReadsAreRetried(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := map[string]int{}
	c, _ := server(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.Method+" "+r.URL.Path]++
		n := calls[r.Method+" "+r.URL.Path]
		mu.Unlock()
		switch {
		case r.URL.Path == "/v1/functions" && r.Method == "GET" && n <= 2:
			writeJSON(w, 503, "application/problem+json", `{"status":503,"detail":"the durable execution service (Temporal) is unavailable"}`)
		case r.URL.Path == "/v1/schedules" && n == 1:
			writeJSON(w, 429, "application/problem+json", `{"status":429,"detail":"slow down"}`, "Retry-After", "1")
		case r.URL.Path == "/v1/functions/gone":
			writeJSON(w, 503, "application/problem+json", `{"status":503,"detail":"schedules are not enabled"}`)
		case r.Method == "POST":
			writeJSON(w, 503, "application/problem+json", `{"status":503,"detail":"busy"}`)
		default:
			writeJSON(w, 200, "application/json", `{"functions":[],"schedules":[]}`)
		}
	})
	ctx := context.Background()
	_, err := c.ListFunctions(ctx)
	require.NoError(t, err, "the third try answers")
	start := time.Now()
	_, err = c.ListSchedules(ctx)
	require.NoError(t, err)
	require.GreaterOrEqual(t, time.Since(start), time.Second, "after Retry-After")
	_, err = c.GetFunction(ctx, "gone")
	require.True(t, IsStatus(err, 503), "%v", err)
	_, err = c.CreateFunction(ctx, FunctionSpec{Name: "x", Language: "python", Source: "x"})
	require.True(t, IsStatus(err, 503), "%v", err)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, map[string]int{"GET /v1/functions": 3, "GET /v1/schedules": 2, "GET /v1/functions/gone": 1 + int(readRetries),
		"POST /v1/functions": 1}, calls)
}
