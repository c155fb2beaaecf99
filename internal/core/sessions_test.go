package core_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/runtimes"
)

// memSessions is an in-memory SessionStore (unit tests only; the e2e tests use PostgreSQL).
type memSessions struct {
	mu       sync.Mutex
	sessions map[string]store.Session
	cells    map[string][]store.Cell
}

func (m *memSessions) OpenSession(_ context.Context, s *store.Session, max int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, x := range m.sessions {
		if x.Tenant == s.Tenant && x.Status == store.SessionOpen {
			n++
		}
	}
	if n >= max {
		return fault.New(fault.RateLimited, "too many")
	}
	s.Status = store.SessionOpen
	m.sessions[s.ID] = *s
	return nil
}

func (m *memSessions) GetSession(_ context.Context, tenant, id string) (store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[id]
	if !ok || s.Tenant != tenant {
		return s, fault.New(fault.NotFound, "no session")
	}
	return s, nil
}

func (m *memSessions) LoadSession(_ context.Context, id string) (store.Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sessions[id], nil
}

func (m *memSessions) SetSessionReplica(_ context.Context, id, replica string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[id]
	s.Replica = replica
	m.sessions[id] = s
	return nil
}

func (m *memSessions) EndSession(_ context.Context, id, status string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.sessions[id]
	if s.Status != store.SessionOpen {
		return false, nil
	}
	s.Status = status
	m.sessions[id] = s
	return true, nil
}

func (m *memSessions) AddCell(_ context.Context, c *store.Cell) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c.Index = len(m.cells[c.SessionID]) + 1
	m.cells[c.SessionID] = append(m.cells[c.SessionID], *c)
	return nil
}

func (m *memSessions) Cells(_ context.Context, id string) ([]store.Cell, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]store.Cell(nil), m.cells[id]...), nil
}

// fakeKernels records the cells each live worker ran; a source starting with "fail" fails.
type fakeKernels struct {
	mu     sync.Mutex
	live   map[string][]string // session id → sources run in its current worker
	opened int
	closed []string
	// replicas are picked in turn (default: one, http://replica); gone ones refuse.
	replicas []string
	next     int
	gone     map[string]bool
}

func (k *fakeKernels) Replica(context.Context, string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.replicas) == 0 {
		return "http://replica"
	}
	k.next++
	return k.replicas[(k.next-1)%len(k.replicas)]
}

func (k *fakeKernels) OpenSession(_ context.Context, base string, req faas.SessionOpen) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.gone[base] {
		return "", fault.New(fault.NotFound, "the session's replica is gone")
	}
	k.live[req.ID] = nil
	k.opened++
	return base, nil
}

func (k *fakeKernels) RunCell(_ context.Context, _, id string, call faas.CellCall) (faas.Result, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	ran, ok := k.live[id]
	if !ok {
		return faas.Result{}, fault.New(fault.NotFound, "not here")
	}
	k.live[id] = append(ran, call.Source)
	if strings.HasPrefix(call.Source, "fail") {
		return faas.Result{Status: "failed", Error: &faas.Error{Type: "Boom", Message: "boom"}}, nil
	}
	return faas.Result{Status: "succeeded", Result: json.RawMessage("1")}, nil
}

func (k *fakeKernels) CloseSession(_ context.Context, _, id, _ string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.live, id)
	k.closed = append(k.closed, id)
	return nil
}

type fakeClock struct {
	mu    sync.Mutex
	stamp map[string]time.Time
}

func (c *fakeClock) Touch(_ context.Context, id string, at time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stamp[id] = at
	return nil
}

func (c *fakeClock) Due(_ context.Context, before time.Time, _ int) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ids []string
	for id, at := range c.stamp {
		if at.Before(before) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (c *fakeClock) Claim(_ context.Context, id string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.stamp[id]
	delete(c.stamp, id)
	return ok, nil
}

func newSessionsUnderTest(t *testing.T, idle time.Duration) (*core.Sessions, *fakeKernels, *fakeClock) {
	t.Helper()
	reg, err := runtimes.Load("../../runtimes/runtimes.yaml")
	require.NoError(t, err)
	k := &fakeKernels{live: map[string][]string{}}
	clock := &fakeClock{stamp: map[string]time.Time{}}
	st := &memSessions{sessions: map[string]store.Session{}, cells: map[string][]store.Cell{}}
	return core.NewSessions(core.SessionConfig{Idle: idle, MaxPerTenant: 2}, st, k, clock, reg, nil, zap.NewNop()), k, clock
}

func TestSessionReplaysOnlySuccessfulCellsIntoANewWorker(t *testing.T) {
	s, k, _ := newSessionsUnderTest(t, time.Minute)
	ctx := context.Background()
	ss, err := s.Open(ctx, "t", "py", 0)
	require.NoError(t, err)
	require.Equal(t, "python", ss.Language)
	for _, src := range []string{"a = 1", "fail here", "b = 2"} {
		_, err := s.RunCell(ctx, "t", ss.ID, src)
		require.NoError(t, err)
	}
	delete(k.live, ss.ID) // the worker died
	res, err := s.RunCell(ctx, "t", ss.ID, "a + b")
	require.NoError(t, err)
	require.True(t, res.Replayed)
	require.Equal(t, 4, res.Index)
	require.Equal(t, []string{"a = 1", "b = 2", "a + b"}, k.live[ss.ID])
	res, err = s.RunCell(ctx, "t", ss.ID, "a")
	require.NoError(t, err)
	require.False(t, res.Replayed)

	// Another tenant does not find it.
	_, err = s.RunCell(ctx, "other", ss.ID, "a")
	require.Equal(t, fault.NotFound, fault.KindOf(err))
}

func TestSessionLimitsAndUnsupportedLanguages(t *testing.T) {
	s, _, _ := newSessionsUnderTest(t, time.Minute)
	ctx := context.Background()
	_, err := s.Open(ctx, "t", "rust", 0)
	require.Equal(t, fault.Invalid, fault.KindOf(err))
	require.Contains(t, err.Error(), "sessions not supported")
	_, err = s.Open(ctx, "t", "python", 4)
	require.Equal(t, fault.Invalid, fault.KindOf(err), "memory below 16 MB")
	for i := 0; i < 2; i++ {
		_, err = s.Open(ctx, "t", "node", 0)
		require.NoError(t, err)
	}
	_, err = s.Open(ctx, "t", "node", 0)
	require.Equal(t, fault.RateLimited, fault.KindOf(err))
}

func TestSessionIdleExpiryStopsTheWorker(t *testing.T) {
	s, k, clock := newSessionsUnderTest(t, time.Minute)
	ctx := context.Background()
	ss, err := s.Open(ctx, "t", "python", 0)
	require.NoError(t, err)
	n, err := s.ExpireIdle(ctx)
	require.NoError(t, err)
	require.Zero(t, n, "just used")
	clock.stamp[ss.ID] = time.Now().Add(-2 * time.Minute)
	n, err = s.ExpireIdle(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{ss.ID}, k.closed)
	_, err = s.RunCell(ctx, "t", ss.ID, "1")
	require.Equal(t, fault.NotFound, fault.KindOf(err))
	require.Contains(t, err.Error(), "expired")
}

func TestPromotedSourceRunsTheCells(t *testing.T) {
	reg, err := runtimes.Load("../../runtimes/runtimes.yaml")
	require.NoError(t, err)
	dir := t.TempDir()
	for _, c := range []struct {
		title, file string
		cells       []string
		run         []string
	}{
		{"python", "handler.py", []string{"def add(e):\n    return {'sum': e['a'] + e['b']}", "import asyncio\nawait asyncio.sleep(0)", "add(event)"},
			[]string{"python3", "-c", "import json, handler; print(json.dumps(handler.handler({'a': 1, 'b': 2}, None)))"}},
		{"node", "handler.js", []string{"function add(e) { return { sum: e.a + e.b } }", "await Promise.resolve(1)", "add(event)"},
			[]string{"node", "-e", "require('./handler.js').handler({a: 1, b: 2}, {}).then((r) => console.log(JSON.stringify(r)))"}},
	} {
		rt, _ := reg.Lookup(c.title)
		src, err := core.PromotedSource(rt, c.cells)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, c.file), []byte(src), 0o644))
		cmd := exec.Command(c.run[0], c.run[1:]...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.JSONEq(t, `{"sum":3}`, strings.TrimSpace(string(out)), c.title)
	}
	rust, _ := reg.Lookup("rust")
	_, err = core.PromotedSource(rust, []string{"1"})
	require.Equal(t, fault.Invalid, fault.KindOf(err))
}

// TestSessionReplaysOnAnotherReplicaWhenThePickedOneIsGone: the replica that held the
// session was killed, and the list still names it; the replay tries the next one rather
// than failing the cell (the soak saw a cell answered 404 after a replica's kill -9).
func TestSessionReplaysOnAnotherReplicaWhenThePickedOneIsGone(t *testing.T) {
	s, k, _ := newSessionsUnderTest(t, time.Minute)
	ctx := context.Background()
	ss, err := s.Open(ctx, "t", "py", 0)
	require.NoError(t, err)
	_, err = s.RunCell(ctx, "t", ss.ID, "a = 1")
	require.NoError(t, err)

	k.mu.Lock()
	delete(k.live, ss.ID) // the replica and its worker were killed
	k.replicas, k.next, k.gone = []string{"http://dead", "http://alive"}, 0, map[string]bool{"http://dead": true}
	k.mu.Unlock()
	res, err := s.RunCell(ctx, "t", ss.ID, "a")
	require.NoError(t, err)
	require.True(t, res.Replayed)
	require.Equal(t, []string{"a = 1", "a"}, k.live[ss.ID])

	k.mu.Lock()
	delete(k.live, ss.ID)
	k.replicas, k.next = []string{"http://dead"}, 0 // no replica left: the cell fails
	k.mu.Unlock()
	_, err = s.RunCell(ctx, "t", ss.ID, "a")
	require.Equal(t, fault.NotFound, fault.KindOf(err))
}
