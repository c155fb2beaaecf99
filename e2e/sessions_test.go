package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/faas"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
)

// sessionUser is a fresh tenant calling /v1/sessions with its own key.
type sessionUser struct {
	t   *testing.T
	key string
}

func newSessionUser(t *testing.T, tenant string) *sessionUser {
	t.Helper()
	r := call(t, "POST", "/v1/tenants", fmt.Sprintf(`{"name":%q}`, tenant))
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	return &sessionUser{t: t, key: r.body["api_key"].(string)}
}

func (u *sessionUser) do(method, path string, body any) reply {
	u.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(u.t, err)
		rd = strings.NewReader(string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, stack.APIURL+path, rd)
	require.NoError(u.t, err)
	req.Header.Set("Authorization", "Bearer "+u.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(u.t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (u *sessionUser) open(language string) string {
	u.t.Helper()
	r := u.do("POST", "/v1/sessions", map[string]any{"language": language})
	require.Equal(u.t, http.StatusCreated, r.status, r.raw)
	id, _ := r.body["id"].(string)
	require.NotEmpty(u.t, id, r.raw)
	u.t.Cleanup(func() { u.do("DELETE", "/v1/sessions/"+id, nil) })
	return id
}

func (u *sessionUser) cell(id, source string) reply {
	u.t.Helper()
	return u.do("POST", "/v1/sessions/"+id+"/cells", map[string]any{"source": source})
}

// okCell runs a cell that must succeed and returns its answer.
func (u *sessionUser) okCell(id, source string) reply {
	u.t.Helper()
	r := u.cell(id, source)
	require.Equal(u.t, http.StatusOK, r.status, r.raw)
	require.Equal(u.t, "succeeded", r.body["status"], r.raw)
	return r
}

// sessionWorker finds the runtime replica holding session id and its worker's pid.
func sessionWorker(t *testing.T, fn, id string) (replica string, pid int) {
	t.Helper()
	urls, err := faas.FetchEndpoints(context.Background(), http.DefaultClient, stack.ProviderURL, fn)
	require.NoError(t, err)
	secret, err := os.ReadFile(stack.RuntimeSecretFile)
	require.NoError(t, err)
	for _, u := range urls {
		req, err := http.NewRequest(http.MethodGet, u+"/_/sessions", nil)
		require.NoError(t, err)
		req.Header.Set(platformsecret.RuntimeHeader, strings.TrimSpace(string(secret)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			t.Fatalf("GET %s/_/sessions: %s", u, resp.Status)
		}
		var list struct {
			Sessions []struct {
				ID  string `json:"id"`
				PID int    `json:"pid"`
			} `json:"sessions"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		for _, s := range list.Sessions {
			if s.ID == id {
				return u, s.PID
			}
		}
	}
	return "", 0
}

// TestSessionsKeepStateAcrossCells: three cells in Python and in Node share their state,
// the trailing expression is the result, output and errors (with traceback) come back
// per cell, Node awaits at top level, and the cells are recorded in order.
func TestSessionsKeepStateAcrossCells(t *testing.T) {
	t.Parallel()
	u := newSessionUser(t, "sessions-state")
	for _, c := range []struct {
		language, define, use, last, failing, errType, stackHas string
	}{
		{"python", "x = 21\nfactor = 2", "import sys\nprint('x is', x)\nprint('careful', file=sys.stderr)\ny = x * factor",
			"y", "def f():\n    raise KeyError('nope')\nf()", "KeyError", `raise KeyError('nope')`},
		{"node", "let x = 21\nconst factor = 2", "console.log('x is', x)\nconsole.error('careful')\nvar y = x * factor",
			"const z = await Promise.resolve(y)\nz", "function f() { throw new RangeError('nope') }\nf()", "RangeError", "at f"},
	} {
		t.Run(c.language, func(t *testing.T) {
			id := u.open(c.language)
			r := u.okCell(id, c.define)
			require.EqualValues(t, 1, r.body["index"])
			r = u.okCell(id, c.use)
			require.Equal(t, "x is 21\n", r.body["stdout"])
			require.Equal(t, "careful\n", r.body["stderr"])
			r = u.okCell(id, c.last)
			require.EqualValues(t, 42, r.body["result"], r.raw)
			require.Nil(t, r.body["replayed"])

			r = u.cell(id, c.failing)
			require.Equal(t, http.StatusInternalServerError, r.status, r.raw)
			require.Equal(t, "failed", r.body["status"])
			e := errorOf(r)
			require.Equal(t, c.errType, e["type"], r.raw)
			require.Contains(t, e["stack"], c.stackHas)
			// The failure did not lose the state.
			r = u.okCell(id, "y + 0")
			require.EqualValues(t, 42, r.body["result"])

			g := u.do("GET", "/v1/sessions/"+id, nil)
			require.Equal(t, http.StatusOK, g.status, g.raw)
			require.Equal(t, "open", g.body["status"])
			cells, _ := g.body["cells"].([]any)
			require.Len(t, cells, 5, g.raw)
			require.Equal(t, c.define, cells[0].(map[string]any)["source"])
			require.Equal(t, "failed", cells[3].(map[string]any)["status"])
		})
	}
}

// TestSessionsAreIsolated: two sessions of one tenant and the sessions of two tenants do
// not see each other's state; another tenant's session is 404; Rust has no sessions.
func TestSessionsAreIsolated(t *testing.T) {
	t.Parallel()
	a := newSessionUser(t, "sessions-iso-a")
	b := newSessionUser(t, "sessions-iso-b")
	s1 := a.open("python")
	s2 := a.open("python")
	s3 := b.open("python")
	a.okCell(s1, "secret = 'a1'")
	for _, probe := range []struct {
		u  *sessionUser
		id string
	}{{a, s2}, {b, s3}} {
		r := probe.u.cell(probe.id, "secret")
		require.Equal(t, http.StatusInternalServerError, r.status, r.raw)
		require.Equal(t, "NameError", errorOf(r)["type"], r.raw)
	}
	// Tenant b cannot reach tenant a's session at all.
	for _, r := range []reply{b.do("GET", "/v1/sessions/"+s1, nil), b.cell(s1, "secret"), b.do("DELETE", "/v1/sessions/"+s1, nil)} {
		require.Equal(t, http.StatusNotFound, r.status, r.raw)
		require.Contains(t, r.header.Get("Content-Type"), "application/problem+json")
	}
	r := a.okCell(s1, "secret")
	require.Equal(t, "a1", r.body["result"])
	// Each session has a worker of its own.
	_, p1 := sessionWorker(t, "runtime-python", s1)
	_, p2 := sessionWorker(t, "runtime-python", s2)
	require.NotZero(t, p1)
	require.NotZero(t, p2)
	require.NotEqual(t, p1, p2)

	r = a.do("POST", "/v1/sessions", map[string]any{"language": "rust"})
	require.Equal(t, http.StatusBadRequest, r.status, r.raw)
	require.Contains(t, r.raw, "sessions not supported")
	// Bad input: a clear 4xx problem, nothing opened.
	for _, bad := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"POST", "/v1/sessions", map[string]any{"language": "cobol"}, http.StatusBadRequest},
		{"POST", "/v1/sessions", map[string]any{}, http.StatusBadRequest},
		{"POST", "/v1/sessions", map[string]any{"language": "python", "memory_mb": 1}, http.StatusBadRequest},
		{"POST", "/v1/sessions/" + s1 + "/cells", map[string]any{}, http.StatusBadRequest},
		{"POST", "/v1/sessions/not-a-session/cells", map[string]any{"source": "1"}, http.StatusNotFound},
		{"POST", "/v1/sessions/" + s1 + "/promote", map[string]any{"name": "nb-bad", "cells": []int{99}}, http.StatusBadRequest},
	} {
		r := a.do(bad.method, bad.path, bad.body)
		require.Equal(t, bad.status, r.status, "%s %s: %s", bad.method, bad.path, r.raw)
		require.Contains(t, r.header.Get("Content-Type"), "application/problem+json", r.raw)
	}
	g := a.do("GET", "/v1/sessions/"+s1, nil)
	require.Len(t, g.body["cells"], 2, g.raw) // the bad requests ran nothing
}

// TestSessionCLI drives a session with the real bin/lambda: new, exec, get, rm.
func TestSessionCLI(t *testing.T) {
	t.Parallel()
	u := newCLIUser(t, "sessions-cli")
	r := u.run(t, "session", "new", "--language", "python")
	require.Equal(t, 0, r.code, r.stderr)
	id := strings.TrimSpace(r.stdout)
	require.Regexp(t, `^[0-9a-f-]{36}$`, id)
	require.Equal(t, cliResult{code: 0}, u.run(t, "session", "exec", id, "x = 40"))
	r = u.run(t, "session", "exec", id, "print('hi')\nx + 2")
	require.Equal(t, 0, r.code, r.stderr)
	require.Equal(t, "42\n", r.stdout)
	require.Contains(t, r.stderr, "hi")
	r = u.run(t, "session", "exec", id, "1/0")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "ZeroDivisionError")
	r = u.run(t, "session", "get", id)
	require.Equal(t, 0, r.code, r.stderr)
	require.Contains(t, r.stdout, "x = 40")
	require.Equal(t, cliResult{stdout: "ended session " + id + "\n", code: 0}, u.run(t, "session", "rm", id))
	r = u.run(t, "session", "exec", id, "x")
	require.NotEqual(t, 0, r.code)
	require.Contains(t, r.stderr, "deleted")
}

// TestSessionWorkerKilledReplays: kill -9 of a session's worker; the next cell rebuilds the
// state in a fresh worker from the successful cells and says replayed.
func TestSessionWorkerKilledReplays(t *testing.T) {
	t.Parallel()
	u := newSessionUser(t, "sessions-replay")
	for _, c := range []struct{ language, fn, define, bad string }{
		{"python", "runtime-python", "import random\nx = 40\nx += 1", "oops_undefined"},
		{"node", "runtime-node", "let x = 40\nx += 1", "oopsUndefined"},
	} {
		t.Run(c.language, func(t *testing.T) {
			id := u.open(c.language)
			u.okCell(id, c.define)
			r := u.cell(id, c.bad) // a failed cell is not replayed
			require.Equal(t, http.StatusInternalServerError, r.status, r.raw)
			_, pid := sessionWorker(t, c.fn, id)
			require.NotZero(t, pid)
			require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
			require.Eventually(t, func() bool { _, p := sessionWorker(t, c.fn, id); return p == 0 }, 10*time.Second, 50*time.Millisecond)

			r = u.okCell(id, "x + 1")
			require.Equal(t, true, r.body["replayed"], r.raw)
			require.EqualValues(t, 42, r.body["result"], r.raw)
			_, pid2 := sessionWorker(t, c.fn, id)
			require.NotZero(t, pid2)
			require.NotEqual(t, pid, pid2)
			r = u.okCell(id, "x")
			require.Nil(t, r.body["replayed"])
			require.EqualValues(t, 41, r.body["result"]) // the define cell ran once more, not twice
		})
	}
}

// TestSessionIdleExpiryFreesTheWorker: the e2e api runs with LAMBDA_SESSION_IDLE=4s.
func TestSessionIdleExpiryFreesTheWorker(t *testing.T) {
	t.Parallel()
	u := newSessionUser(t, "sessions-idle")
	id := u.open("python")
	u.okCell(id, "x = 1")
	_, pid := sessionWorker(t, "runtime-python", id)
	require.NotZero(t, pid)
	require.Eventually(t, func() bool { _, p := sessionWorker(t, "runtime-python", id); return p == 0 }, 30*time.Second, 200*time.Millisecond,
		"the idle session's worker is stopped")
	g := u.do("GET", "/v1/sessions/"+id, nil)
	require.Equal(t, "expired", g.body["status"], g.raw)
	r := u.cell(id, "x")
	require.Equal(t, http.StatusNotFound, r.status, r.raw)
	require.Contains(t, r.raw, "expired")
}

// TestSessionPromote: chosen cells become a registered function that answers invokes.
func TestSessionPromote(t *testing.T) {
	t.Parallel()
	u := newSessionUser(t, "sessions-promote")
	for _, c := range []struct {
		language string
		cells    []string
	}{
		{"python", []string{"event = {'a': 2, 'b': 40}", "def add(e):\n    return {'sum': e['a'] + e['b']}", "add(event)"}},
		{"node", []string{"var event = {a: 2, b: 40}", "function add(e) { return { sum: e.a + e.b } }", "add(event)"}},
	} {
		t.Run(c.language, func(t *testing.T) {
			id := u.open(c.language)
			for _, src := range c.cells {
				u.okCell(id, src)
			}
			name := "nb-" + c.language
			r := u.do("POST", "/v1/sessions/"+id+"/promote", map[string]any{"name": name, "cells": []int{2, 3}})
			require.Equal(t, http.StatusCreated, r.status, r.raw)
			req, err := http.NewRequest("POST", stack.APIURL+"/v1/functions/"+name+"/invoke", strings.NewReader(`{"a": 5, "b": 6}`))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+u.key)
			req.Header.Set("Language-Title", c.language)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
			require.Contains(t, string(raw), `"result":{"sum":11}`)
		})
	}
}
