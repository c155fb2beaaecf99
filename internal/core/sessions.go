package core

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/runtimes"
)

// Notebook sessions (DESIGN.md §11): a session is one kernel worker on one replica of its
// language's runtime function, found again by the replica address its row records. Its
// cells are request_logs rows; when its worker is gone (crash, OOM kill, replica restart)
// the next cell replays the session's successful cells into a new worker first and says
// so (replayed). Idle expiry: every cell stamps the session in a Redis sorted set; the
// sweeper ends sessions whose stamp is older than SessionConfig.Idle and stops their worker.

// SessionConfig holds the sessions' limits.
type SessionConfig struct {
	Idle            time.Duration `env:"LAMBDA_SESSION_IDLE" envDefault:"15m"`
	MaxPerTenant    int           `env:"LAMBDA_SESSION_MAX_PER_TENANT" envDefault:"5"`
	DefaultMemoryMB int           `env:"LAMBDA_SESSION_MEMORY_MB" envDefault:"256"`
	MaxMemoryMB     int           `env:"LAMBDA_SESSION_MAX_MEMORY_MB" envDefault:"1024"`
	CellTimeout     time.Duration `env:"LAMBDA_SESSION_CELL_TIMEOUT" envDefault:"30s"`
	MaxSourceBytes  int           `env:"LAMBDA_SESSION_MAX_SOURCE_BYTES" envDefault:"262144"`
}

// SessionStore is what sessions need from PostgreSQL (*store.Store).
type SessionStore interface {
	OpenSession(ctx context.Context, s *store.Session, max int) error
	GetSession(ctx context.Context, tenant, id string) (store.Session, error)
	LoadSession(ctx context.Context, id string) (store.Session, error)
	SetSessionReplica(ctx context.Context, id, replica string) error
	EndSession(ctx context.Context, id, status string) (bool, error)
	AddCell(ctx context.Context, c *store.Cell) error
	Cells(ctx context.Context, sessionID string) ([]store.Cell, error)
}

// Kernels reaches the replicas that hold sessions' workers (*faas.Client).
type Kernels interface {
	Replica(ctx context.Context, fn string) string
	OpenSession(ctx context.Context, base string, req faas.SessionOpen) (string, error)
	RunCell(ctx context.Context, base, id string, call faas.CellCall) (faas.Result, error)
	CloseSession(ctx context.Context, base, id, tenant string) error
}

// IdleClock stamps sessions' last use in Redis (cache.IdleClock).
type IdleClock interface {
	Touch(ctx context.Context, id string, at time.Time) error
	// Due lists sessions last used before before, at most n.
	Due(ctx context.Context, before time.Time, n int) ([]string, error)
	// Claim removes id's stamp; true for the one caller that removed it.
	Claim(ctx context.Context, id string) (bool, error)
}

// Registrar registers a function (*Service): promote's last step.
type Registrar interface {
	RegisterFunction(ctx context.Context, spec FunctionSpec) (store.Function, error)
}

// Sessions is the notebook sessions' use cases.
type Sessions struct {
	cfg     SessionConfig
	store   SessionStore
	kernels Kernels
	idle    IdleClock
	reg     *runtimes.Registry
	funcs   Registrar
	log     *zap.Logger
	locks   sync.Map // session id → *sync.Mutex: one cell at a time per session here
}

// NewSessions returns the sessions' use cases.
func NewSessions(cfg SessionConfig, st SessionStore, k Kernels, idle IdleClock, reg *runtimes.Registry, funcs Registrar, log *zap.Logger) *Sessions {
	if cfg.Idle <= 0 {
		cfg.Idle = 15 * time.Minute
	}
	if cfg.CellTimeout <= 0 {
		cfg.CellTimeout = 30 * time.Second
	}
	if cfg.DefaultMemoryMB <= 0 {
		cfg.DefaultMemoryMB = 256
	}
	if cfg.MaxSourceBytes <= 0 {
		cfg.MaxSourceBytes = 256 << 10
	}
	return &Sessions{cfg: cfg, store: st, kernels: k, idle: idle, reg: reg, funcs: funcs, log: log}
}

// CellResult is one cell's answer.
type CellResult struct {
	Index      int              `json:"index"`
	Status     string           `json:"status"`
	Result     json.RawMessage  `json:"result"`
	Stdout     string           `json:"stdout"`
	Stderr     string           `json:"stderr"`
	Truncated  bool             `json:"truncated,omitempty"`
	Error      *store.ExecError `json:"error"`
	DurationMS float64          `json:"duration_ms"`
	// Replayed says the session's worker had stopped and its state was rebuilt by running
	// its earlier successful cells again before this one.
	Replayed bool `json:"replayed,omitempty"`
}

// sessionRuntime resolves a session language.
func (s *Sessions) sessionRuntime(language string) (*runtimes.Runtime, error) {
	rt, ok := s.reg.Lookup(language)
	if !ok {
		return nil, fault.New(fault.Invalid, "unknown language %q; supported: %s", language, strings.Join(s.reg.Titles(), ", "))
	}
	if len(rt.Session) == 0 {
		return nil, fault.New(fault.Invalid, "sessions not supported for %s: its runtime registry entry declares no session bootstrap", rt.Title)
	}
	return rt, nil
}

// Open starts a session of language for tenant.
func (s *Sessions) Open(ctx context.Context, tenant, language string, memoryMB int) (store.Session, error) {
	rt, err := s.sessionRuntime(language)
	if err != nil {
		return store.Session{}, err
	}
	if memoryMB == 0 {
		memoryMB = s.cfg.DefaultMemoryMB
	}
	if memoryMB < 16 || (s.cfg.MaxMemoryMB > 0 && memoryMB > s.cfg.MaxMemoryMB) {
		return store.Session{}, fault.New(fault.Invalid, "memory_mb must be between 16 and %d", s.cfg.MaxMemoryMB)
	}
	ss := store.Session{ID: uuid.NewString(), Tenant: tenant, Language: rt.Title, RuntimeFunction: rt.Function,
		MemoryMB: memoryMB}
	ss.Replica = s.kernels.Replica(ctx, rt.Function)
	if err := s.store.OpenSession(ctx, &ss, s.cfg.MaxPerTenant); err != nil {
		return store.Session{}, err
	}
	replica, err := s.start(ctx, &ss)
	if err != nil {
		if _, e := s.store.EndSession(context.WithoutCancel(ctx), ss.ID, store.SessionClosed); e != nil {
			s.log.Warn("session not marked closed", logging.Err(e))
		}
		return store.Session{}, err
	}
	ss.Replica = replica
	return s.withExpiry(ss), nil
}

// withExpiry sets when an open session expires without another cell.
func (s *Sessions) withExpiry(ss store.Session) store.Session {
	if ss.Status == store.SessionOpen {
		at := ss.LastUsedAt.Add(s.cfg.Idle)
		ss.ExpiresAt = &at
	}
	return ss
}

// start opens the session's worker on ss.Replica and records where it runs.
func (s *Sessions) start(ctx context.Context, ss *store.Session) (string, error) {
	replica, err := s.kernels.OpenSession(ctx, ss.Replica, faas.SessionOpen{ID: ss.ID, Tenant: ss.Tenant,
		MemoryMB: ss.MemoryMB, IdleMS: (s.cfg.Idle + time.Minute).Milliseconds()})
	if err != nil {
		return "", err
	}
	if replica != ss.Replica {
		if err := s.store.SetSessionReplica(ctx, ss.ID, replica); err != nil {
			return "", err
		}
	}
	s.touch(ctx, ss.ID)
	return replica, nil
}

func (s *Sessions) touch(ctx context.Context, id string) {
	if s.idle == nil {
		return
	}
	if err := s.idle.Touch(context.WithoutCancel(ctx), id, time.Now()); err != nil {
		s.log.Warn("session idle stamp not written", zap.String("session", id), logging.Err(err))
	}
}

func (s *Sessions) lock(id string) func() {
	m, _ := s.locks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// open reads a tenant's session that is still open.
func (s *Sessions) open(ctx context.Context, tenant, id string) (store.Session, error) {
	ss, err := s.store.GetSession(ctx, tenant, id)
	if err != nil {
		return ss, err
	}
	if ss.Status != store.SessionOpen {
		return ss, fault.New(fault.NotFound, "session %s has %s; start a new one", id, map[string]string{
			store.SessionExpired: "expired after LAMBDA_SESSION_IDLE without a cell", store.SessionClosed: "been deleted"}[ss.Status])
	}
	return ss, nil
}

// RunCell runs source in a tenant's session and records it.
func (s *Sessions) RunCell(ctx context.Context, tenant, id, source string) (CellResult, error) {
	if len(source) > s.cfg.MaxSourceBytes {
		return CellResult{}, fault.New(fault.TooLarge, "source exceeds %d bytes", s.cfg.MaxSourceBytes)
	}
	ss, err := s.open(ctx, tenant, id)
	if err != nil {
		return CellResult{}, err
	}
	defer s.lock(id)()
	s.touch(ctx, id)
	call := faas.CellCall{Tenant: tenant, Source: source, TimeoutMS: s.cfg.CellTimeout.Milliseconds()}
	created := time.Now()
	res, err := s.kernels.RunCell(ctx, ss.Replica, id, call)
	replayed := false
	if fault.KindOf(err) == fault.NotFound {
		// The worker is gone: rebuild the state in a new one, then run the cell.
		if err := s.replay(ctx, &ss); err != nil {
			return CellResult{}, err
		}
		replayed = true
		created = time.Now()
		res, err = s.kernels.RunCell(ctx, ss.Replica, id, call)
	}
	if err != nil {
		return CellResult{}, err
	}
	c := store.Cell{ID: uuid.NewString(), SessionID: id, Tenant: tenant, Language: ss.Language, Source: source,
		Status: res.Status, Result: res.Result, Stdout: res.Stdout, Stderr: res.Stderr,
		Truncated: res.StdoutTruncated || res.StderrTruncated, DurationMS: res.DurationMS, CreatedAt: created}
	if res.Error != nil {
		c.Error = &store.ExecError{Type: res.Error.Type, Message: res.Error.Message, Stack: res.Error.Stack}
	}
	if len(c.Result) == 0 {
		c.Result = nil
	}
	if err := s.store.AddCell(context.WithoutCancel(ctx), &c); err != nil {
		return CellResult{}, err
	}
	s.touch(ctx, id)
	return CellResult{Index: c.Index, Status: c.Status, Result: c.Result, Stdout: c.Stdout, Stderr: c.Stderr,
		Truncated: c.Truncated, Error: c.Error, DurationMS: c.DurationMS, Replayed: replayed}, nil
}

// replay starts a new worker for ss (on any replica) and runs its successful cells in it.
func (s *Sessions) replay(ctx context.Context, ss *store.Session) error {
	cells, err := s.store.Cells(ctx, ss.ID)
	if err != nil {
		return err
	}
	// The replica picked may be the one that went away with the worker (the replica list
	// is not refreshed yet): the next pick is another one.
	var replica string
	for attempt := 0; ; attempt++ {
		ss.Replica = s.kernels.Replica(ctx, ss.RuntimeFunction)
		replica, err = s.start(ctx, ss)
		if err == nil || fault.KindOf(err) != fault.NotFound || attempt == 2 {
			break
		}
	}
	if err != nil {
		return err
	}
	ss.Replica = replica
	if err := s.store.SetSessionReplica(ctx, ss.ID, replica); err != nil {
		return err
	}
	for _, c := range cells {
		if c.Status != store.StatusSucceeded {
			continue
		}
		res, err := s.kernels.RunCell(ctx, replica, ss.ID, faas.CellCall{Tenant: ss.Tenant, Source: c.Source,
			TimeoutMS: s.cfg.CellTimeout.Milliseconds()})
		if err != nil {
			return err
		}
		if res.Status != store.StatusSucceeded {
			msg := ""
			if res.Error != nil {
				msg = res.Error.Type + ": " + res.Error.Message
			}
			return fault.New(fault.Conflict, "the session's worker had stopped and replaying cell %d failed (%s): its state cannot be rebuilt; start a new session", c.Index, msg)
		}
	}
	s.log.Info("session replayed", zap.String("session", ss.ID), zap.Int("cells", len(cells)))
	return nil
}

// Get returns a tenant's session and its cells.
func (s *Sessions) Get(ctx context.Context, tenant, id string) (store.Session, []store.Cell, error) {
	ss, err := s.store.GetSession(ctx, tenant, id)
	if err != nil {
		return ss, nil, err
	}
	cells, err := s.store.Cells(ctx, id)
	return s.withExpiry(ss), cells, err
}

// Close ends a tenant's session and stops its worker.
func (s *Sessions) Close(ctx context.Context, tenant, id string) error {
	ss, err := s.store.GetSession(ctx, tenant, id)
	if err != nil {
		return err
	}
	return s.end(ctx, ss, store.SessionClosed)
}

func (s *Sessions) end(ctx context.Context, ss store.Session, status string) error {
	if _, err := s.store.EndSession(ctx, ss.ID, status); err != nil {
		return err
	}
	if s.idle != nil {
		_, _ = s.idle.Claim(ctx, ss.ID)
	}
	s.locks.Delete(ss.ID)
	if err := s.kernels.CloseSession(ctx, ss.Replica, ss.ID, ss.Tenant); err != nil && fault.KindOf(err) != fault.NotFound {
		// The replica's own idle backstop stops it later.
		s.log.Warn("session worker not stopped", zap.String("session", ss.ID), logging.Err(err))
	}
	return nil
}

// ExpireIdle ends the sessions unused for longer than the idle time; several api replicas
// may run it at once (the Redis claim gives each session to one of them).
func (s *Sessions) ExpireIdle(ctx context.Context) (int, error) {
	if s.idle == nil {
		return 0, nil
	}
	ids, err := s.idle.Due(ctx, time.Now().Add(-s.cfg.Idle), 100)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if ok, err := s.idle.Claim(ctx, id); err != nil || !ok {
			continue
		}
		ss, err := s.store.LoadSession(ctx, id)
		if err != nil {
			continue
		}
		if ss.Status == store.SessionOpen {
			if err := s.end(ctx, ss, store.SessionExpired); err != nil {
				s.log.Warn("session not expired", zap.String("session", id), logging.Err(err))
				continue
			}
			n++
		}
	}
	return n, nil
}

// RunExpiry calls ExpireIdle every interval until ctx ends.
func (s *Sessions) RunExpiry(ctx context.Context) {
	every := min(max(s.cfg.Idle/10, 200*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.ExpireIdle(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("session expiry", logging.Err(err))
			}
		}
	}
}

// Promote registers a function made of chosen cells of a tenant's session (all its
// successful cells when cells is empty), in their order; see PromotedSource.
func (s *Sessions) Promote(ctx context.Context, tenant, id, name string, chosen []int) (store.Function, error) {
	ss, cells, err := s.Get(ctx, tenant, id)
	if err != nil {
		return store.Function{}, err
	}
	byIndex := map[int]store.Cell{}
	for _, c := range cells {
		byIndex[c.Index] = c
	}
	var sources []string
	if len(chosen) == 0 {
		for _, c := range cells {
			if c.Status == store.StatusSucceeded {
				sources = append(sources, c.Source)
			}
		}
	}
	for _, i := range chosen {
		c, ok := byIndex[i]
		if !ok {
			return store.Function{}, fault.New(fault.Invalid, "cells: the session has no cell %d", i)
		}
		sources = append(sources, c.Source)
	}
	if len(sources) == 0 {
		return store.Function{}, fault.New(fault.Invalid, "the session has no successful cell to promote")
	}
	rt, err := s.sessionRuntime(ss.Language)
	if err != nil {
		return store.Function{}, err
	}
	src, err := PromotedSource(rt, sources)
	if err != nil {
		return store.Function{}, err
	}
	return s.funcs.RegisterFunction(ctx, FunctionSpec{Tenant: tenant, Name: name, Language: rt.Title, Source: &src})
}

// PromotedSource fills the language's promote template (the registry entry's
// session_promote file, runtimes/<title>/promote.*) with the cells' sources: a handler that
// runs the cells in order the way the session ran them, with `event` and `context`
// defined, the last cell's trailing expression being the result.
func PromotedSource(rt *runtimes.Runtime, cells []string) (string, error) {
	if rt.SessionPromote == "" {
		return "", fault.New(fault.Invalid, "promote: the %s runtime declares no session_promote template", rt.Title)
	}
	tmpl, err := rt.PromoteTemplate()
	if err != nil {
		return "", fmt.Errorf("promote template of %s: %w", rt.Title, err)
	}
	list, err := json.Marshal(cells)
	if err != nil {
		return "", err
	}
	return strings.Replace(string(tmpl), "__CELLS__", string(list), 1), nil
}
