package runtimehost

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/frame"
	"github.com/lambda-microservice/lambda/internal/runtimehost/sandbox"
	"github.com/lambda-microservice/lambda/runtimes"
)

// A notebook session is one worker started with the registry entry's `session` command
// (a kernel that keeps its state between cells). It is outside the pool: it serves that
// session only, for its whole life, one cell at a time, and is never handed to another
// session, function or tenant. It stops on DELETE, after its idle time without a cell, or
// when it dies; the caller then gets "session not found" and may start a new one (the api
// replays the session's successful cells into it).

// SessionOpen is the body of POST /_/sessions.
type SessionOpen struct {
	ID       string `json:"id"`
	Tenant   string `json:"tenant"`
	MemoryMB int    `json:"memory_mb"`
	// IdleMS stops the session's worker after this long without a cell (a backstop for
	// the api's own idle expiry); 0 means the host's LAMBDA_RUNTIME_SESSION_IDLE.
	IdleMS int64 `json:"idle_ms"`
}

// CellRequest is the body of POST /_/sessions/{id}/cells.
type CellRequest struct {
	Tenant    string `json:"tenant"`
	Source    string `json:"source"`
	TimeoutMS int64  `json:"timeout_ms"`
}

// CellOutcome is one cell's answer.
type CellOutcome struct {
	Status          string          `json:"status"`
	Result          json.RawMessage `json:"result"`
	Error           json.RawMessage `json:"error"`
	Stdout          string          `json:"stdout"`
	Stderr          string          `json:"stderr"`
	StdoutTruncated bool            `json:"stdout_truncated"`
	StderrTruncated bool            `json:"stderr_truncated"`
	DurationMS      float64         `json:"duration_ms"`
}

type session struct {
	id, tenant string
	idle       time.Duration
	w          *worker
	mu         sync.Mutex // one cell at a time
	lastUsed   time.Time  // guarded by sessions.mu
	busy       bool       // guarded by sessions.mu
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func (h *Host) sessionsSupported() error {
	if len(h.rt.Session) == 0 {
		return fault.New(fault.Invalid, "sessions not supported by the %s runtime", h.rt.Title)
	}
	return nil
}

// OpenSession starts the worker of a new session. Opening an id that is open already (for
// the same tenant) is a no-op.
func (h *Host) OpenSession(req SessionOpen) error {
	if err := h.sessionsSupported(); err != nil {
		return err
	}
	if req.ID == "" || len(req.ID) > 100 {
		return fault.New(fault.Invalid, "id is required (at most 100 characters)")
	}
	if req.MemoryMB < 0 || req.IdleMS < 0 {
		return fault.New(fault.Invalid, "memory_mb and idle_ms must not be negative")
	}
	h.sess.mu.Lock()
	if s, ok := h.sess.m[req.ID]; ok {
		h.sess.mu.Unlock()
		if s.tenant != req.Tenant {
			return fault.New(fault.Invalid, "session %s belongs to another tenant", req.ID)
		}
		return nil
	}
	if n := len(h.sess.m); n >= h.cfg.MaxSessions {
		h.sess.mu.Unlock()
		return fault.New(fault.Overloaded, "this replica holds its maximum of %d sessions", h.cfg.MaxSessions)
	}
	s := &session{id: req.ID, tenant: req.Tenant, idle: time.Duration(req.IdleMS) * time.Millisecond, lastUsed: time.Now(), busy: true}
	if s.idle == 0 {
		s.idle = h.cfg.SessionIdle
	}
	h.sess.m[req.ID] = s // reserved while it starts
	h.sess.mu.Unlock()

	w, err := h.startSessionWorker(req.MemoryMB, func(w *worker) { h.sessionExited(req.ID, w) })
	h.sess.mu.Lock()
	defer h.sess.mu.Unlock()
	if err != nil {
		delete(h.sess.m, req.ID)
		return err
	}
	s.w, s.busy, s.lastUsed = w, false, time.Now()
	h.m.sessions.Set(float64(len(h.sess.m)))
	h.log.Info("session opened", zap.String("session", req.ID), zap.String("tenant", req.Tenant))
	return nil
}

// sessionExited forgets a session whose worker ended (killed, crashed, out of memory)
// while it sat idle; a busy one is forgotten by its cell.
func (h *Host) sessionExited(id string, w *worker) {
	h.sess.mu.Lock()
	defer h.sess.mu.Unlock()
	if s, ok := h.sess.m[id]; ok && s.w == w && !s.busy {
		delete(h.sess.m, id)
		h.m.sessions.Set(float64(len(h.sess.m)))
	}
}

func (h *Host) startSessionWorker(memoryMB int, onExit func(*worker)) (*worker, error) {
	w, err := startWorker(&startSpec{
		argv:        h.rt.ExpandVars(h.rt.Session, runtimes.Vars{CacheDir: h.cacheDir}),
		tmpBase:     h.tmpBase,
		outputLimit: h.cfg.OutputLimit,
		limits:      sandbox.Limits{FileSize: h.cfg.FileSizeLimit, OpenFiles: 1024, Processes: 4096},
		timeout:     h.cfg.StartTimeout,
		spawner:     h.spawner,
		onExit:      onExit,
	})
	if err != nil {
		return nil, fault.Wrap(fault.Unavailable, err, "cannot start the session's worker")
	}
	deadline := time.Now().Add(h.cfg.StartTimeout)
	b, start := frame.Begin(w.wbuf[:0])
	b = append(b, `{"type":"init","memory_mb":`...)
	b = appendInt(b, int64(memoryMB))
	b = append(b, `,"sentinel":`...)
	b = appendString(b, w.sentinel)
	b = append(b, `,"env":{}}`...)
	frame.End(b, start)
	w.wbuf = b
	if c, ok := w.proc.(sandbox.Confiner); ok {
		if err := c.Confine(memoryMB); err != nil {
			w.kill()
			return nil, fault.New(fault.Unavailable, "cannot confine the session's worker: %v", err)
		}
	}
	if err := w.write(deadline); err != nil {
		w.kill()
		return nil, fault.Wrap(fault.Unavailable, w.describe(err), "session worker init")
	}
	reply, err := w.read(deadline)
	if err != nil || reply.Type != "ready" {
		w.kill()
		if err == nil {
			err = fmt.Errorf("unexpected %q frame", reply.Type)
		}
		return nil, fault.Wrap(fault.Unavailable, w.describe(err), "session worker init")
	}
	w.assigned = true
	return w, nil
}

// take finds an open session of tenant whose worker is alive and marks it busy.
func (h *Host) take(id, tenant string) (*session, error) {
	h.sess.mu.Lock()
	defer h.sess.mu.Unlock()
	s, ok := h.sess.m[id]
	if !ok || s.tenant != tenant || s.w == nil {
		return nil, fault.New(fault.NotFound, "session %s is not open on this replica", id)
	}
	select {
	case <-s.w.exited:
		delete(h.sess.m, id)
		h.m.sessions.Set(float64(len(h.sess.m)))
		return nil, fault.New(fault.NotFound, "session %s: its worker has stopped (%s)", id, s.w.exitStatus())
	default:
	}
	s.busy = true
	return s, nil
}

func (h *Host) untake(s *session, alive bool) {
	h.sess.mu.Lock()
	defer h.sess.mu.Unlock()
	s.busy, s.lastUsed = false, time.Now()
	if !alive {
		if h.sess.m[s.id] == s {
			delete(h.sess.m, s.id)
		}
		h.m.sessions.Set(float64(len(h.sess.m)))
	}
}

// RunCell runs one cell in session id. A session that is not open here (never opened,
// closed, expired, or its worker died) is fault.NotFound and runs nothing.
func (h *Host) RunCell(id string, req CellRequest) (CellOutcome, error) {
	var out CellOutcome
	if err := h.sessionsSupported(); err != nil {
		return out, err
	}
	var timeout time.Duration
	switch {
	case req.TimeoutMS < 0:
		return out, fault.New(fault.Invalid, "timeout_ms must not be negative")
	case req.TimeoutMS == 0:
		timeout = h.cfg.DefaultTimeout
	case req.TimeoutMS > h.cfg.MaxTimeout.Milliseconds():
		return out, fault.New(fault.Invalid, "timeout_ms exceeds the maximum of %d", h.cfg.MaxTimeout.Milliseconds())
	default:
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	s, err := h.take(id, req.Tenant)
	if err != nil {
		return out, err
	}
	s.mu.Lock()
	start := time.Now()
	alive, sent := h.cell(s.w, req.Source, start.Add(timeout), timeout, &out)
	out.DurationMS = float64(time.Since(start).Microseconds()) / 1000
	s.mu.Unlock()
	h.untake(s, alive)
	if !sent { // the worker was dead before the cell reached it: nothing ran
		return CellOutcome{}, fault.New(fault.NotFound, "session %s: its worker has stopped", id)
	}
	h.m.execution(out.Status, time.Since(start).Seconds())
	return out, nil
}

// cell sends one cell frame and reads its answer; it reports whether the worker is still
// usable (a timeout or a death kills it: the session's state is gone) and whether the
// frame reached the worker at all.
func (h *Host) cell(w *worker, source string, deadline time.Time, timeout time.Duration, out *CellOutcome) (alive, sent bool) {
	b, start := frame.Begin(w.wbuf[:0])
	b = append(b, `{"type":"cell","source":`...)
	b = appendString(b, source)
	b = append(b, '}')
	frame.End(b, start)
	w.wbuf = b
	var reply workerReply
	if err := w.write(deadline); err != nil {
		w.kill()
		return false, false
	}
	reply, err := w.read(deadline)
	timer := time.NewTimer(collectGrace)
	defer timer.Stop()
	if err != nil {
		timedOut := errors.Is(err, os.ErrDeadlineExceeded)
		if !timedOut {
			err = w.describe(err)
		}
		w.kill()
		grace := time.NewTimer(500 * time.Millisecond)
		o, e, _ := w.collect(grace.C)
		grace.Stop()
		out.Stdout, out.Stderr = string(o.data), string(e.data)
		w.release(o, e)
		if timedOut {
			out.Status = statusTimeout
			out.Error = errorDoc("Timeout", fmt.Sprintf("the cell exceeded its timeout of %d ms; the session's state is lost", timeout.Milliseconds()), "")
		} else {
			out.Status = statusFailed
			out.Error = errorDoc("RuntimeExit", "the session's worker died during the cell: "+w.exitStatus(), "")
		}
		return false, true
	}
	ok := true
	switch {
	case reply.Type != "result":
		out.Status, out.Error, ok = statusFailed, errorDoc("ProtocolError", "the worker sent a malformed reply", ""), false
	case reply.Status == statusSucceeded:
		out.Status, out.Result = statusSucceeded, append(json.RawMessage(nil), reply.Result...)
	default:
		out.Status, out.Error = statusFailed, append(json.RawMessage(nil), reply.Error...)
	}
	o, e, complete := w.collect(timer.C)
	out.Stdout, out.Stderr = string(o.data), string(e.data)
	out.StdoutTruncated, out.StderrTruncated = o.truncated, e.truncated
	w.release(o, e)
	if !complete || !ok {
		w.kill()
		return false, true
	}
	return true, true
}

// CloseSession stops a session's worker; closing one that is not open is not an error.
func (h *Host) CloseSession(id, tenant string) {
	h.sess.mu.Lock()
	s, ok := h.sess.m[id]
	if ok && s.tenant == tenant {
		delete(h.sess.m, id)
		h.m.sessions.Set(float64(len(h.sess.m)))
	}
	h.sess.mu.Unlock()
	if ok && s.tenant == tenant && s.w != nil {
		s.w.kill()
		h.log.Info("session closed", zap.String("session", id))
	}
}

// SessionIDs lists the open sessions (GET /_/sessions: tests and operators).
func (h *Host) SessionIDs() []string {
	h.sess.mu.Lock()
	defer h.sess.mu.Unlock()
	ids := make([]string, 0, len(h.sess.m))
	for id, s := range h.sess.m {
		if s.w != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// reapSessions stops sessions idle for longer than their idle time, and forgets dead ones.
func (h *Host) reapSessions(now time.Time) {
	var victims []*session
	h.sess.mu.Lock()
	for id, s := range h.sess.m {
		if s.w == nil || s.busy {
			continue
		}
		dead := false
		select {
		case <-s.w.exited:
			dead = true
		default:
		}
		if dead || now.Sub(s.lastUsed) > s.idle {
			delete(h.sess.m, id)
			victims = append(victims, s)
		}
	}
	h.m.sessions.Set(float64(len(h.sess.m)))
	h.sess.mu.Unlock()
	for _, s := range victims {
		s.w.kill()
		h.log.Info("session stopped after its idle time", zap.String("session", s.id))
	}
}

// closeSessions stops every session (Host.Close).
func (h *Host) closeSessions() {
	h.sess.mu.Lock()
	victims := h.sess.m
	h.sess.m = map[string]*session{}
	h.sess.mu.Unlock()
	for _, s := range victims {
		if s.w != nil {
			s.w.kill()
		}
	}
}
