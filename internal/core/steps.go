package core

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

// The steps of an accepted (async) execution, which the durable side runs one by one and
// may retry, on any worker. The execution's row carries the state between them: it is
// queued when accepted; RunAttempt marks it running (with the attempt number) and stages
// the runtime's outcome in it while it stays running; Finish makes it final. A final row
// never changes again, so however often a step runs, an execution is recorded once.

// Pin resolves the version an execution runs by name, number and Language-Title: for
// executions whose durable run was started without its pinned version.
func (s *Service) Pin(ctx context.Context, tenant, name string, version int, title string) (Pinned, error) {
	v, rt, err := s.resolve(ctx, tenant, name, version, title)
	if err != nil {
		return Pinned{}, err
	}
	return pin(v, rt.Function), nil
}

// CheckCache looks the execution's event up in the result cache. On a hit it stages the
// cached result in the row (still running) for Finish. It returns the cache key; Redis
// errors are misses, and a row that is already final is neither looked up nor changed.
func (s *Service) CheckCache(ctx context.Context, id string, p Pinned) (key string, hit bool, err error) {
	e, err := s.store.GetExecution(ctx, p.Tenant, id, true)
	if err != nil {
		return "", false, err
	}
	if store.Finished(e.Status) {
		return "", false, nil
	}
	key, entry, hit := s.cacheLookup(ctx, p.Tenant, resultScope(p.Function, p.Version, p.SHA256), e.Payload)
	if !hit {
		return key, false, nil
	}
	now := time.Now().UTC()
	e.Status, e.Result, e.Error, e.Stdout, e.Stderr, e.Cached = store.StatusRunning, entry.Result, nil, entry.Stdout, entry.Stderr, true
	e.DurationMS = float64(now.Sub(e.CreatedAt).Microseconds()) / 1000
	e.FinishedAt = &now
	e.Payload = nil
	if err := s.logs.Write(ctx, &e); err != nil {
		return "", false, err
	}
	return key, true, nil
}

// Attempt is the outcome of one attempt at running an execution's script.
type Attempt struct {
	Number int              // the attempt, counted across workers
	Status string           // succeeded, failed or timeout; the row's own when Final
	Error  *store.ExecError // the handler's error, if any
	Final  bool             // the row was already final: nothing ran
	// Recorded: this attempt made the row final (RunAttempt's final), so the durable
	// side's Finish of the same status finds it final and records nothing.
	Recorded bool
}

// RunAttempt runs attempt n of an execution on its runtime function and stages the
// outcome in its row. The attempt number counts across workers: when the row is already
// running, an earlier attempt died with its worker, and this one counts after it. started
// is called with that number once the row says running, right before the runtime call
// (the durable side heartbeats from then on). A succeeded result is stored in the result
// cache when the version caches results. An error is a platform fault (runtime
// unreachable, PostgreSQL down, ctx ended); a handler failure or timeout is an Attempt.
// With final, the outcome is recorded final instead of staged — what Finish with the
// attempt's status would record, one commit earlier (the durable side persists that
// status next; its Finish then finds the row final).
// A refusal because the tenant holds its share of the runtime's workers is waited out
// (shareBackoff) while ctx's deadline leaves room for the call; past that it is returned
// as a fault.TenantShare with the attempt taken back (Number 0): waiting never counts.
func (s *Service) RunAttempt(ctx context.Context, id string, p Pinned, n int, timeout time.Duration, final bool, started func(n int)) (Attempt, error) {
	v, err := s.version(ctx, p.Tenant, p.Function, p.Version)
	if err != nil {
		return Attempt{}, err
	}
	e, err := s.store.StartAttempt(ctx, p.Tenant, id, n)
	if err != nil {
		return Attempt{}, err
	}
	if store.Finished(e.Status) {
		return Attempt{Number: e.Attempts, Status: e.Status, Final: true}, nil
	}
	a := Attempt{Number: e.Attempts}
	if started != nil {
		started(a.Number)
	}
	err = s.run(ctx, v, p.Runtime, p.Language, &e, timeout)
	var waiting *atomic.Int32 // this call's place among its tenant's waiters here
	defer func() {
		if waiting != nil {
			waiting.Add(-1)
		}
	}()
	for try := 0; fault.Is(err, fault.TenantShare); try++ {
		// The tenant's own calls hold its share of the runtime's workers: nothing ran. Ask
		// again after a backoff while ctx leaves room for the whole call; past that, the
		// attempt is taken back and the durable side waits on (workflows: share-wait).
		// Room for the call: the host may hold it in its queue (LAMBDA_RUNTIME_QUEUE_WAIT, as
		// long as the slack by default) before the handler's timeout starts, then the slack.
		wait := shareBackoff(try)
		if waiting == nil {
			waiting = s.shareWaiter(p.Tenant)
		}
		if dl, ok := ctx.Deadline(); waiting == nil || !ok || time.Until(dl) < wait+timeout+2*s.cfg.RuntimeCallSlack {
			_ = s.store.UndoAttempt(ctx, p.Tenant, id, a.Number) // failing, it over-counts one attempt
			return Attempt{}, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return a, fault.Wrap(fault.Unavailable, ctx.Err(), "invocation abandoned")
		case <-t.C:
		}
		err = s.run(ctx, v, p.Runtime, p.Language, &e, timeout)
	}
	if err != nil {
		return a, err
	}
	// Stage the outcome: the row stays running until Finish makes it final.
	a.Status, a.Error = e.Status, e.Error
	if a.Status == store.StatusSucceeded && p.CacheTTLS > 0 {
		if key, err := cache.Key(p.Tenant, resultScope(p.Function, p.Version, p.SHA256), e.Payload); err == nil {
			s.cacheStore(key, time.Duration(p.CacheTTLS)*time.Second, &e)
		}
	}
	e.Payload = nil
	if final {
		now := time.Now().UTC()
		if e.Status != store.StatusSucceeded {
			e.Result = nil
		}
		e.Cached = false
		if e.FinishedAt == nil {
			e.FinishedAt = &now
			if e.DurationMS == 0 {
				e.DurationMS = float64(now.Sub(e.CreatedAt).Microseconds()) / 1000
			}
		}
		if err := s.logs.Write(ctx, &e); err != nil {
			return a, fmt.Errorf("record the outcome: %w", err)
		}
		a.Recorded = true
		if s.m != nil {
			s.m.Invocations.WithLabelValues(e.Language, "workflow", e.Status).Inc()
			s.m.Duration.WithLabelValues(e.Language, "workflow").Observe(now.Sub(e.CreatedAt).Seconds())
		}
		return a, nil
	}
	e.Status = store.StatusRunning
	if err := s.logs.Write(ctx, &e); err != nil {
		return a, fmt.Errorf("stage the outcome: %w", err)
	}
	return a, nil
}

// shareWaiter takes a place among tenant's calls waiting for its share in this process,
// or answers nil when ShareWaitersPerTenant of them already wait (the caller's refusal then
// goes back to its workflow, which waits on a timer and holds no slot of the worker's).
func (s *Service) shareWaiter(tenant string) *atomic.Int32 {
	limit := int32(s.cfg.ShareWaitersPerTenant)
	if limit <= 0 {
		limit = DefaultShareWaitersPerTenant
	}
	c, _ := s.shareWaiters.LoadOrStore(tenant, new(atomic.Int32))
	n := c.(*atomic.Int32)
	if n.Add(1) > limit {
		n.Add(-1)
		return nil
	}
	return n
}

// DefaultShareWaitersPerTenant is ShareWaitersPerTenant when it is not set.
const DefaultShareWaitersPerTenant = 4

// shareBackoff is how long an async call refused for its tenant's share waits before it
// asks again: 200 ms doubling to 5 s, drawn from the upper half of that (jitter), so a
// backlog's calls do not come back in step. A refused call has already waited in the
// runtime host's queue (LAMBDA_RUNTIME_QUEUE_WAIT) unless that queue was full.
func shareBackoff(try int) time.Duration {
	d := min(200*time.Millisecond<<min(try, 5), 5*time.Second)
	return d/2 + rand.N(d/2+1)
}

// Final is how the durable side ends an execution.
type Final struct {
	Status   string
	Attempts int // 0 keeps the row's
	Cached   bool
	// ErrorType and ErrorMessage record why the platform gave up (or canceled); empty for
	// outcomes the runtime produced, which RunAttempt staged in the row.
	ErrorType    string
	ErrorMessage string
	// Notify: the execution asked for a completion callback; once it is final, its
	// delivery is started (again, harmlessly, when Finish is retried).
	Notify bool
}

// Finish makes an execution final with f's status. The staged outcome (result, error,
// output) stays; a platform failure or a cancel replaces it with f's error. A row that is
// already final is left as it is and returned with recorded=false.
func (s *Service) Finish(ctx context.Context, tenant, id string, f Final) (e store.Execution, recorded bool, err error) {
	e, err = s.store.GetExecution(ctx, tenant, id, false)
	if err != nil {
		return store.Execution{}, false, err
	}
	if store.Finished(e.Status) {
		if f.Notify {
			if err := s.notify(ctx, store.KindExecution, tenant, id); err != nil {
				return store.Execution{}, false, err
			}
		}
		return e, false, nil
	}
	now := time.Now().UTC()
	e.Status = f.Status
	if f.Attempts > 0 {
		e.Attempts = f.Attempts
	}
	e.Cached = f.Cached
	if f.ErrorType != "" {
		e.Result, e.Stdout, e.Stderr, e.Truncated = nil, "", "", false
		e.Error = &store.ExecError{Type: f.ErrorType, Message: f.ErrorMessage}
		e.FinishedAt = nil
	}
	if e.Status != store.StatusSucceeded {
		e.Result = nil
	}
	if e.FinishedAt == nil {
		e.FinishedAt = &now
		if e.DurationMS == 0 {
			e.DurationMS = float64(now.Sub(e.CreatedAt).Microseconds()) / 1000
		}
	}
	if err := s.logs.Write(ctx, &e); err != nil {
		return store.Execution{}, false, err
	}
	if f.Notify {
		if err := s.notify(ctx, store.KindExecution, tenant, id); err != nil {
			return store.Execution{}, false, err
		}
	}
	if s.m != nil {
		s.m.Invocations.WithLabelValues(e.Language, "workflow", e.Status).Inc()
		s.m.Duration.WithLabelValues(e.Language, "workflow").Observe(now.Sub(e.CreatedAt).Seconds())
	}
	return e, true, nil
}

// StoreResult saves a succeeded execution's result in the result cache under key: the
// last step of executions whose durable run was started without their pinned version
// (RunAttempt stores it for the others).
func (s *Service) StoreResult(ctx context.Context, tenant, id, key string, ttl time.Duration) error {
	e, err := s.store.GetExecution(ctx, tenant, id, false)
	if err != nil {
		return err
	}
	if e.Status != store.StatusSucceeded || e.Cached {
		return nil
	}
	return s.cache.Set(ctx, key, cache.Entry{Result: e.Result, Stdout: e.Stdout, Stderr: e.Stderr}, ttl)
}
