package core

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/runtimes"
)

// Request is an invocation as the transports receive it.
type Request struct {
	Tenant         string
	Function       string
	Version        int // 0 = latest
	LanguageTitle  string
	Event          json.RawMessage
	IdempotencyKey string
	// CallbackURL (X-Callback-Url, async only) receives the finished envelope, signed.
	CallbackURL string
}

// Runtime resolves a Language-Title value against the registry.
func (s *Service) Runtime(title string) (*runtimes.Runtime, error) {
	if strings.TrimSpace(title) == "" {
		return nil, fault.New(fault.Invalid, "the Language-Title header is required; supported titles: %s",
			strings.Join(s.reg.Titles(), ", "))
	}
	rt, ok := s.reg.Lookup(title)
	if !ok {
		return nil, fault.New(fault.Invalid, "unknown Language-Title %q; supported titles: %s",
			title, strings.Join(s.reg.Titles(), ", "))
	}
	return rt, nil
}

// resolve finds the version to run and checks the Language-Title against its language.
func (s *Service) resolve(ctx context.Context, tenant, name string, version int, title string) (store.Version, *runtimes.Runtime, error) {
	rt, err := s.Runtime(title)
	if err != nil {
		return store.Version{}, nil, err
	}
	v, err := s.version(ctx, tenant, name, version)
	if err != nil {
		return store.Version{}, nil, err
	}
	if v.Language != rt.Title {
		return store.Version{}, nil, fault.New(fault.Invalid,
			"function %q is written in %s but Language-Title %q names %s", name, v.Language, title, rt.Title)
	}
	return v, rt, nil
}

type cachedVersion struct {
	v       store.Version
	expires time.Time
}

func versionKey(tenant, name string, version int) string {
	return tenant + "/" + name + "/" + strconv.Itoa(version)
}

// version reads a version through a short-lived in-process cache: a hot function costs
// one PostgreSQL read per VersionCacheTTL instead of one per call.
func (s *Service) version(ctx context.Context, tenant, name string, version int) (store.Version, error) {
	key := versionKey(tenant, name, version)
	now := time.Now()
	if c, ok := s.versions.Load(key); ok && now.Before(c.(cachedVersion).expires) {
		return c.(cachedVersion).v, nil
	}
	v, err := s.store.GetVersion(ctx, tenant, name, version)
	if err != nil {
		return store.Version{}, err
	}
	if s.cfg.VersionCacheTTL > 0 {
		s.versions.Store(key, cachedVersion{v: v, expires: now.Add(s.cfg.VersionCacheTTL)})
	}
	return v, nil
}

// forget drops a function's cached versions after it changed (new version, deletion).
func (s *Service) forget(tenant, name string) {
	prefix := tenant + "/" + name + "/"
	s.versions.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), prefix) {
			s.versions.Delete(k)
		}
		return true
	})
}

// NewExecutionID returns a time-ordered execution id (UUIDv7).
func NewExecutionID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// requestHash fingerprints an invocation for Idempotency-Key reuse checks.
func requestHash(mode, name string, version int, title string, event json.RawMessage) string {
	h := sha256.New()
	h.Write([]byte(mode + "\x00" + name + "\x00" + strconv.Itoa(version) + "\x00" + strings.ToLower(title) + "\x00"))
	h.Write(event)
	return hex.EncodeToString(h.Sum(nil))
}

// errInProgress is the cause of a Conflict for a key whose execution is not recorded yet.
var errInProgress = errors.New("in progress")

// inProgress is the Conflict answered while a key's execution has no row yet.
func inProgress(key string) error {
	return fault.Wrap(fault.Conflict, errInProgress, "a request with Idempotency-Key %q is still in progress", key)
}

// claimSync claims an Idempotency-Key for a sync call that may take up to timeout. The
// claim is pending until the call's row is written: should the api die mid-call, the key
// is free again once the call could no longer be running (timeout, runtime slack, margin).
// While another call holds the key, claimSync waits for that call's row — up to as long
// as the call may still take — and returns it (replayed=true); Conflict when it is still
// running by then. It claims the key itself when the holder released it meanwhile.
func (s *Service) claimSync(ctx context.Context, tenant, key, id, hash string, timeout time.Duration) (store.Execution, bool, error) {
	pending := timeout + s.cfg.RuntimeCallSlack + s.cfg.IdempotencyPendingMargin
	deadline := time.Now().Add(timeout + s.cfg.RuntimeCallSlack)
	poll := 20 * time.Millisecond
	for {
		owner, claimed, err := s.store.ClaimPendingIdempotencyKey(ctx, tenant, key, id, hash, s.cfg.IdempotencyTTL, pending)
		if err != nil || claimed {
			return store.Execution{}, false, err
		}
		e, err := s.store.GetExecution(ctx, tenant, owner, false)
		if !fault.Is(err, fault.NotFound) {
			return e, err == nil, err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return store.Execution{}, false, inProgress(key)
		}
		select {
		case <-ctx.Done():
			return store.Execution{}, false, ctx.Err()
		case <-time.After(min(poll, left)):
		}
		poll = min(2*poll, 250*time.Millisecond)
	}
}

// release frees a key whose execution never ran (platform failure), so a retry runs. It
// is called only once nothing runs for the key any more: the runtime call has returned.
func (s *Service) release(tenant, key, id string) {
	if key == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.ReleaseIdempotencyKey(ctx, tenant, key, id); err != nil {
		s.log.Warn("release idempotency key", logging.Err(err))
	}
}

// Invoke runs a synchronous invocation on the fast path and returns the recorded
// execution. Handler failures and timeouts are executions, not errors; an error means
// the platform could not run or record it.
//
// With an Idempotency-Key the call runs to its end and is recorded even when its caller
// goes away (a client that timed out): the key stays claimed until then, and a retry with
// it waits for this execution instead of running the script a second time.
func (s *Service) Invoke(ctx context.Context, req Request) (store.Execution, bool, error) {
	start := time.Now()
	v, rt, err := s.resolve(ctx, req.Tenant, req.Function, req.Version, req.LanguageTitle)
	if err != nil {
		return store.Execution{}, false, err
	}
	e := store.Execution{
		ID: NewExecutionID(), Tenant: req.Tenant, Function: v.Name, Version: v.Version, Language: v.Language,
		LanguageTitle: req.LanguageTitle, Mode: "sync", Payload: req.Event, CreatedAt: start.UTC(),
	}
	timeout := min(time.Duration(v.TimeoutMS)*time.Millisecond, s.cfg.SyncTimeoutMax)
	if req.IdempotencyKey != "" {
		hash := requestHash("sync", req.Function, req.Version, rt.Title, req.Event)
		prev, replayed, err := s.claimSync(ctx, req.Tenant, req.IdempotencyKey, e.ID, hash, timeout)
		if err != nil || replayed {
			return prev, replayed, err
		}
		// The runtime call is bounded by timeout + slack in run, the write by the log
		// writer's retry window.
		ctx = context.WithoutCancel(ctx)
	}
	err = s.execute(ctx, v, rt, &e, timeout)
	if err == nil {
		err = s.logs.Write(ctx, &e)
	}
	if err != nil {
		s.release(req.Tenant, req.IdempotencyKey, e.ID)
		s.m.Invocations.WithLabelValues(rt.Title, "fast", "error").Inc()
		return store.Execution{}, false, err
	}
	s.m.Invocations.WithLabelValues(rt.Title, "fast", e.Status).Inc()
	s.m.Duration.WithLabelValues(rt.Title, "fast").Observe(time.Since(start).Seconds())
	return e, false, nil
}

// execute fills e from the cache or by running the script within timeout (sync path).
func (s *Service) execute(ctx context.Context, v store.Version, rt *runtimes.Runtime, e *store.Execution, timeout time.Duration) error {
	var key string
	if v.CacheTTLS > 0 {
		var hit bool
		var entry cache.Entry
		key, entry, hit = s.cacheLookup(ctx, v.Tenant, resultScope(v.Name, v.Version, v.SHA256), e.Payload)
		if hit {
			now := time.Now().UTC()
			e.Status, e.Result, e.Stdout, e.Stderr, e.Cached, e.Attempts = store.StatusSucceeded, entry.Result, entry.Stdout, entry.Stderr, true, 0
			e.DurationMS = float64(now.Sub(e.CreatedAt).Microseconds()) / 1000
			e.FinishedAt = &now
			return nil
		}
	}
	if err := s.run(ctx, v, rt.Function, rt.Title, e, timeout); err != nil {
		return err
	}
	e.Attempts = 1
	if key != "" && e.Status == store.StatusSucceeded {
		s.cacheStore(key, time.Duration(v.CacheTTLS)*time.Second, e)
	}
	return nil
}

// resultScope names what a cached result belongs to: the function's version — its name
// and number reach the handler in its context — and the version's sha256, which covers
// its build and every setting (versionHash).
func resultScope(function string, version int, sha string) string {
	return function + ":" + strconv.Itoa(version) + ":" + sha
}

// cacheLookup checks the result cache for (version scope, event); Redis errors are
// misses, and so is an entry over the result cap (stored before the cap was lowered).
func (s *Service) cacheLookup(ctx context.Context, tenant, scope string, event json.RawMessage) (string, cache.Entry, bool) {
	key, err := cache.Key(tenant, scope, event)
	if err != nil {
		return "", cache.Entry{}, false
	}
	entry, hit, err := s.cache.Get(ctx, key)
	switch {
	case err != nil:
		s.m.Cache.WithLabelValues("error").Inc()
		s.log.Warn("result cache unavailable; running the script", logging.Err(err))
		return key, cache.Entry{}, false
	case hit && len(entry.Result) > s.maxResult():
		s.m.Cache.WithLabelValues("miss").Inc()
		return key, cache.Entry{}, false
	case hit:
		s.m.Cache.WithLabelValues("hit").Inc()
		if entry.Local {
			s.m.CacheLocal.Inc()
		}
	default:
		s.m.Cache.WithLabelValues("miss").Inc()
	}
	return key, entry, hit
}

// cacheStore saves a successful result in the background, off the response path.
func (s *Service) cacheStore(key string, ttl time.Duration, e *store.Execution) {
	entry := cache.Entry{Result: e.Result, Stdout: e.Stdout, Stderr: e.Stderr}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.cache.Set(ctx, key, entry, ttl); err != nil {
			s.log.Warn("result cache store failed", logging.Err(err))
		}
	}()
}

// run calls runtime function fn for e and fills its outcome. A handler failure or a
// timeout is an outcome; an error is a platform fault (runtime down, overloaded).
func (s *Service) run(ctx context.Context, v store.Version, fn, title string, e *store.Execution, timeout time.Duration) error {
	callCtx, cancel := context.WithTimeout(ctx, timeout+s.cfg.RuntimeCallSlack)
	defer cancel()
	t0 := time.Now()
	res, err := s.runner.Run(callCtx, fn, faas.Call{
		ExecutionID: e.ID, Tenant: e.Tenant, Function: v.Name, Version: v.Version, SHA256: v.Build(), Source: v.Source,
		Lock: v.Lock, Event: e.Payload, TimeoutMS: int(timeout / time.Millisecond), MemoryMB: v.MemoryMB, Env: v.Env,
		MaxResultBytes: s.maxResult(),
	})
	s.m.RuntimeCall.WithLabelValues(title).Observe(time.Since(t0).Seconds())
	now := time.Now().UTC()
	if err != nil {
		if ctx.Err() != nil {
			return fault.Wrap(fault.Unavailable, ctx.Err(), "invocation abandoned")
		}
		if errors.Is(err, context.DeadlineExceeded) {
			// The host enforces the timeout itself; no answer by then means it is stuck.
			e.Status = store.StatusTimeout
			e.Error = &store.ExecError{Type: "Timeout", Message: "no answer from the runtime within " + timeout.String()}
			e.DurationMS = float64(now.Sub(t0).Microseconds()) / 1000
			e.FinishedAt = &now
			return nil
		}
		if fault.Is(err, fault.Unprocessable) {
			// The script no longer builds on this runtime: a failed execution, not a fault.
			e.Status = store.StatusFailed
			e.Error = &store.ExecError{Type: "CompileError", Message: fault.Detail(err)}
			e.FinishedAt = &now
			return nil
		}
		return err
	}
	e.Status = res.Status
	switch res.Status {
	case store.StatusSucceeded, store.StatusFailed, store.StatusTimeout:
	default:
		return fault.New(fault.Unavailable, "runtime %s answered an unknown status %q", fn, res.Status)
	}
	e.Result, e.Error = nil, nil
	if res.Status == store.StatusSucceeded {
		e.Result = res.Result
		if e.Result == nil {
			e.Result = json.RawMessage("null")
		}
	}
	if res.Error != nil {
		e.Error = &store.ExecError{Type: clip(clean(res.Error.Type), 256), Message: clip(clean(res.Error.Message), maxErrorText),
			Stack: clip(clean(res.Error.Stack), maxErrorText)}
	}
	// The one place an outcome's size is checked, for every path (sync, async, pipeline
	// steps): nothing larger is stored, cached or answered. The runtime host may refuse
	// it first (faas.ResultTooLarge, the same outcome).
	if n := len(e.Result); n > s.maxResult() {
		e.Status, e.Result = store.StatusFailed, nil
		e.Error = &store.ExecError{Type: faas.ResultTooLarge,
			Message: fmt.Sprintf("the result is %d bytes; the limit is %d (LAMBDA_MAX_RESULT_BYTES)", n, s.maxResult())}
	}
	e.Stdout, e.Stderr = clean(res.Stdout), clean(res.Stderr)
	e.Truncated = res.StdoutTruncated || res.StderrTruncated
	e.DurationMS = res.DurationMS
	e.FinishedAt = &now
	return nil
}

// maxErrorText bounds a handler error's message and its stack each.
const maxErrorText = 64 << 10

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "\n[truncated]"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// clean makes captured text storable: valid UTF-8 and no NUL bytes (PostgreSQL text).
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
