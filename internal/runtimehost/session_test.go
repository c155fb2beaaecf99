package runtimehost_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
)

func (h *harness) sessionCall(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var r *http.Request
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = httptest.NewRequest(method, path, bytes.NewReader(b))
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	r.Header.Set(platformsecret.RuntimeHeader, testSecret)
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, r)
	return rec.Code, rec.Body.Bytes()
}

func (h *harness) cell(t *testing.T, id, tenant, source string) (int, response) {
	t.Helper()
	code, b := h.sessionCall(t, http.MethodPost, "/_/sessions/"+id+"/cells", map[string]any{"tenant": tenant, "source": source, "timeout_ms": 10000})
	var r response
	require.NoError(t, json.Unmarshal(b, &r), "body %s", b)
	return code, r
}

func (h *harness) openSession(t *testing.T, id, tenant string) {
	t.Helper()
	code, b := h.sessionCall(t, http.MethodPost, "/_/sessions", map[string]any{"id": id, "tenant": tenant, "memory_mb": 128})
	require.Equal(t, http.StatusCreated, code, "%s", b)
}

type sessionCase struct {
	title                       string
	define, print, use, failing string
	await                       string // a cell using top-level await, answering 42
	result                      string // what `use` answers
	errType, stackHas           string
}

func TestSessionsKeepStateAndAreIsolated(t *testing.T) {
	cases := []sessionCase{{
		title:   "python",
		define:  "x = 21\ndef double(v):\n    return v * 2",
		print:   "import sys\nprint('x is', x)\nprint('warn', file=sys.stderr)",
		use:     "y = double(x)\ny",
		result:  "42",
		failing: "def f():\n    raise ValueError('bad ' + str(x))\nf()",
		errType: "ValueError", stackHas: "raise ValueError",
		await: "import asyncio\nawait asyncio.sleep(0)\nx * 2",
	}, {
		title:   "node",
		define:  "let x = 21\nfunction double(v) { return v * 2 }",
		print:   "console.log('x is', x)\nconsole.error('warn')",
		use:     "const y = double(x)\ny",
		result:  "42",
		failing: "function f() { throw new TypeError('bad ' + x) }\nf()",
		errType: "TypeError", stackHas: "at f",
		await: "const z = await Promise.resolve(x * 2)\nz",
	}}
	for _, c := range cases {
		t.Run(c.title, func(t *testing.T) {
			h := newHarness(t, bundledRegistry, c.title, "", nil)
			h.openSession(t, "s1", "t1")
			h.openSession(t, "s2", "t1")

			code, r := h.cell(t, "s1", "t1", c.define)
			require.Equal(t, 200, code)
			require.Equal(t, "succeeded", r.Status, "%+v", r.Error)
			code, r = h.cell(t, "s1", "t1", c.print)
			require.Equal(t, 200, code)
			require.Equal(t, "x is 21\n", r.Stdout)
			require.Equal(t, "warn\n", r.Stderr)
			_, r = h.cell(t, "s1", "t1", c.use)
			require.Equal(t, "succeeded", r.Status, "%+v", r.Error)
			require.JSONEq(t, c.result, string(r.Result))

			_, r = h.cell(t, "s1", "t1", c.failing)
			require.Equal(t, "failed", r.Status)
			require.Equal(t, c.errType, r.Error.Type)
			require.Contains(t, r.Error.Message, "bad 21")
			require.Contains(t, r.Error.Stack, c.stackHas)

			_, r = h.cell(t, "s1", "t1", c.await)
			require.Equal(t, "succeeded", r.Status, "%+v", r.Error)
			require.JSONEq(t, "42", string(r.Result))

			// The other session of the same tenant does not see x; another tenant cannot use s1.
			_, r = h.cell(t, "s2", "t1", "x")
			require.Equal(t, "failed", r.Status)
			require.Contains(t, r.Error.Type+r.Error.Message, "x")
			code, _ = h.sessionCall(t, http.MethodPost, "/_/sessions/s1/cells", map[string]any{"tenant": "t2", "source": "x"})
			require.Equal(t, http.StatusNotFound, code)

			// A killed worker: the session is gone (the api replays into a new one).
			var list struct {
				Sessions []struct {
					ID  string `json:"id"`
					PID int    `json:"pid"`
				} `json:"sessions"`
			}
			_, b := h.sessionCall(t, http.MethodGet, "/_/sessions", nil)
			require.NoError(t, json.Unmarshal(b, &list))
			require.Len(t, list.Sessions, 2)
			for _, s := range list.Sessions {
				if s.ID == "s1" {
					require.NoError(t, syscall.Kill(s.PID, syscall.SIGKILL))
				}
			}
			require.Eventually(t, func() bool {
				code, _ := h.sessionCall(t, http.MethodPost, "/_/sessions/s1/cells", map[string]any{"tenant": "t1", "source": "1"})
				return code == http.StatusNotFound
			}, 5*time.Second, 20*time.Millisecond)

			code, _ = h.sessionCall(t, http.MethodDelete, "/_/sessions/s2?tenant=t1", nil)
			require.Equal(t, http.StatusNoContent, code)
			_, b = h.sessionCall(t, http.MethodGet, "/_/sessions", nil)
			require.JSONEq(t, `{"sessions":[]}`, strings.TrimSpace(string(b)))
		})
	}
}

func TestSessionIdleTimeFreesTheWorker(t *testing.T) {
	h := newHarness(t, bundledRegistry, "python", "", nil)
	code, b := h.sessionCall(t, http.MethodPost, "/_/sessions", map[string]any{"id": "idle", "tenant": "t", "idle_ms": 300})
	require.Equal(t, http.StatusCreated, code, "%s", b)
	require.Eventually(t, func() bool {
		_, b := h.sessionCall(t, http.MethodGet, "/_/sessions", nil)
		return strings.Contains(string(b), `"sessions":[]`)
	}, 5*time.Second, 50*time.Millisecond)
	code, _ = h.cell(t, "idle", "t", "1")
	require.Equal(t, http.StatusNotFound, code)
}

func TestSessionRoutesNeedThePlatformSecret(t *testing.T) {
	h := newHarness(t, bundledRegistry, "python", "", nil)
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/_/sessions", strings.NewReader(`{"id":"x","tenant":"t"}`)),
		httptest.NewRequest(http.MethodGet, "/_/sessions", nil),
		httptest.NewRequest(http.MethodPost, "/_/sessions/x/cells", strings.NewReader(`{"tenant":"t","source":"1"}`)),
		httptest.NewRequest(http.MethodDelete, "/_/sessions/x?tenant=t", nil),
	} {
		rec := httptest.NewRecorder()
		h.handler.ServeHTTP(rec, r)
		require.Equal(t, http.StatusUnauthorized, rec.Code, "%s %s", r.Method, r.URL)
	}
	require.Empty(t, h.host.SessionIDs())
}

func TestSessionsNotSupported(t *testing.T) {
	h := newHarness(t, testRegistry, "perl", "", nil)
	code, b := h.sessionCall(t, http.MethodPost, "/_/sessions", map[string]any{"id": "x", "tenant": "t"})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, string(b), "sessions not supported")
}

// A cell over its timeout is stopped (504 at the api) and takes the session's worker with
// it: the next cell finds the session gone, which is what makes the api replay.
func TestSessionCellTimeoutStopsTheWorker(t *testing.T) {
	h := newHarness(t, bundledRegistry, "python", "", nil)
	h.openSession(t, "slow", "t")
	code, b := h.sessionCall(t, http.MethodPost, "/_/sessions/slow/cells",
		map[string]any{"tenant": "t", "source": "print('started')\nwhile True:\n    pass", "timeout_ms": 300})
	require.Equal(t, http.StatusOK, code, "%s", b)
	var r response
	require.NoError(t, json.Unmarshal(b, &r))
	require.Equal(t, "timeout", r.Status)
	require.Equal(t, "Timeout", r.Error.Type)
	require.Equal(t, "started\n", r.Stdout)
	code, _ = h.cell(t, "slow", "t", "1")
	require.Equal(t, http.StatusNotFound, code)
}
