// Package invoke is the invocation core: the one place that resolves a function version,
// checks the result cache, runs the script on its runtime function and records the
// execution. The HTTP fast path and the Temporal activities are thin adapters over it.
package invoke

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/cache"
	"github.com/lambda-microservice/lambda/faas"
	"github.com/lambda-microservice/lambda/fault"
	"github.com/lambda-microservice/lambda/logging"
	"github.com/lambda-microservice/lambda/metrics"
	"github.com/lambda-microservice/lambda/runtimes"
	"github.com/lambda-microservice/lambda/store"
)

// Store is what the core needs from PostgreSQL.
type Store interface {
	GetVersion(ctx context.Context, tenant, name string, version int) (store.Version, error)
	GetExecution(ctx context.Context, tenant, id string, withPayload bool) (store.Execution, error)
	ClaimIdempotencyKey(ctx context.Context, tenant, key, executionID, requestHash string, ttl time.Duration) (string, bool, error)
	ReleaseIdempotencyKey(ctx context.Context, tenant, key, executionID string) error
}

// ResultCache is the Redis result cache.
type ResultCache interface {
	Get(ctx context.Context, key string) (cache.Entry, bool, error)
	Set(ctx context.Context, key string, e cache.Entry, ttl time.Duration) error
}

// Runner calls a runtime function.
type Runner interface {
	Run(ctx context.Context, fn string, call faas.Call) (faas.Result, error)
}

// LogWriter durably records an execution (group commit).
type LogWriter interface {
	Write(ctx context.Context, e *store.Execution) error
}

// Config holds the core's limits.
type Config struct {
	SyncTimeoutMax   time.Duration `env:"LAMBDA_SYNC_TIMEOUT_MAX" envDefault:"60s"`
	IdempotencyTTL   time.Duration `env:"LAMBDA_IDEMPOTENCY_TTL" envDefault:"24h"`
	VersionCacheTTL  time.Duration `env:"LAMBDA_VERSION_CACHE_TTL" envDefault:"1s"`
	RuntimeCallSlack time.Duration `env:"LAMBDA_RUNTIME_CALL_SLACK" envDefault:"5s"`
}

// Service is the invocation core.
type Service struct {
	cfg      Config
	store    Store
	cache    ResultCache
	runner   Runner
	logs     LogWriter
	reg      *runtimes.Registry
	m        *metrics.Invoke
	log      *zap.Logger
	versions sync.Map // versionKey → cachedVersion
}

// New returns the invocation core.
func New(cfg Config, st Store, c ResultCache, r Runner, logs LogWriter, reg *runtimes.Registry, m *metrics.Invoke, log *zap.Logger) *Service {
	return &Service{cfg: cfg, store: st, cache: c, runner: r, logs: logs, reg: reg, m: m, log: log}
}

// Registry returns the runtime registry.
func (s *Service) Registry() *runtimes.Registry { return s.reg }

// Request is an invocation as the transports receive it.
type Request struct {
	Tenant         string
	Function       string
	Version        int // 0 = latest
	LanguageTitle  string
	Event          json.RawMessage
	IdempotencyKey string
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

// Resolve finds the version to run and checks the Language-Title against its language.
func (s *Service) Resolve(ctx context.Context, tenant, name string, version int, title string) (store.Version, *runtimes.Runtime, error) {
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

// Forget drops a function's cached versions after it changed (new version, deletion).
func (s *Service) Forget(tenant, name string) {
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

// RequestHash fingerprints an invocation for Idempotency-Key reuse checks.
func RequestHash(mode, name string, version int, title string, event json.RawMessage) string {
	h := sha256.New()
	h.Write([]byte(mode + "\x00" + name + "\x00" + strconv.Itoa(version) + "\x00" + strings.ToLower(title) + "\x00"))
	h.Write(event)
	return hex.EncodeToString(h.Sum(nil))
}

// errInProgress is the cause of a Conflict for a key whose execution is not recorded yet.
var errInProgress = errors.New("in progress")

// ClaimKey claims an Idempotency-Key for a new execution id. When the key is already
// held it returns the stored execution instead (replayed=true); a sync execution still
// running under the key is a Conflict.
func (s *Service) ClaimKey(ctx context.Context, tenant, key, id, hash string) (store.Execution, bool, error) {
	owner, claimed, err := s.store.ClaimIdempotencyKey(ctx, tenant, key, id, hash, s.cfg.IdempotencyTTL)
	if err != nil || claimed {
		return store.Execution{}, false, err
	}
	e, err := s.store.GetExecution(ctx, tenant, owner, false)
	if fault.Is(err, fault.NotFound) {
		return store.Execution{}, false, fault.Wrap(fault.Conflict, errInProgress,
			"a request with Idempotency-Key %q is still in progress", key)
	}
	return e, err == nil, err
}

// ReleaseKey frees a key whose execution never ran (platform failure), so a retry runs.
func (s *Service) ReleaseKey(tenant, key, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.store.ReleaseIdempotencyKey(ctx, tenant, key, id); err != nil {
		s.log.Warn("release idempotency key", logging.Err(err))
	}
}

// Invoke runs a synchronous invocation on the fast path and returns the recorded
// execution. Handler failures and timeouts are executions, not errors; an error means
// the platform could not run or record it.
func (s *Service) Invoke(ctx context.Context, req Request) (store.Execution, bool, error) {
	start := time.Now()
	v, rt, err := s.Resolve(ctx, req.Tenant, req.Function, req.Version, req.LanguageTitle)
	if err != nil {
		return store.Execution{}, false, err
	}
	e := store.Execution{
		ID: NewExecutionID(), Tenant: req.Tenant, Function: v.Name, Version: v.Version, Language: v.Language,
		LanguageTitle: req.LanguageTitle, Mode: "sync", Payload: req.Event, CreatedAt: start.UTC(),
	}
	if req.IdempotencyKey != "" {
		hash := RequestHash("sync", req.Function, req.Version, rt.Title, req.Event)
		prev, replayed, err := s.ClaimKey(ctx, req.Tenant, req.IdempotencyKey, e.ID, hash)
		if err != nil || replayed {
			return prev, replayed, err
		}
	}
	err = s.execute(ctx, v, rt, &e, "fast")
	if err == nil {
		err = s.Record(ctx, &e)
	}
	if err != nil {
		if req.IdempotencyKey != "" {
			s.ReleaseKey(req.Tenant, req.IdempotencyKey, e.ID)
		}
		s.m.Invocations.WithLabelValues(rt.Title, "fast", "error").Inc()
		return store.Execution{}, false, err
	}
	s.m.Invocations.WithLabelValues(rt.Title, "fast", e.Status).Inc()
	s.m.Duration.WithLabelValues(rt.Title, "fast").Observe(time.Since(start).Seconds())
	return e, false, nil
}

// execute fills e from the cache or by running the script (sync path).
func (s *Service) execute(ctx context.Context, v store.Version, rt *runtimes.Runtime, e *store.Execution, path string) error {
	var key string
	if v.CacheTTLS > 0 {
		var hit bool
		var entry cache.Entry
		key, entry, hit = s.CacheLookup(ctx, v, e.Payload)
		if hit {
			now := time.Now().UTC()
			e.Status, e.Result, e.Stdout, e.Stderr, e.Cached, e.Attempts = store.StatusSucceeded, entry.Result, entry.Stdout, entry.Stderr, true, 0
			e.DurationMS = float64(now.Sub(e.CreatedAt).Microseconds()) / 1000
			e.FinishedAt = &now
			return nil
		}
	}
	timeout := time.Duration(v.TimeoutMS) * time.Millisecond
	if path == "fast" && timeout > s.cfg.SyncTimeoutMax {
		timeout = s.cfg.SyncTimeoutMax
	}
	if err := s.Run(ctx, v, rt, e, timeout); err != nil {
		return err
	}
	e.Attempts = 1
	if key != "" && e.Status == store.StatusSucceeded {
		s.CacheStore(key, v, e)
	}
	return nil
}

// CacheLookup checks the result cache for (version, event); Redis errors are misses.
func (s *Service) CacheLookup(ctx context.Context, v store.Version, event json.RawMessage) (string, cache.Entry, bool) {
	key, err := cache.Key(v.Tenant, v.SHA256, event)
	if err != nil {
		return "", cache.Entry{}, false
	}
	entry, hit, err := s.cache.Get(ctx, key)
	switch {
	case err != nil:
		s.m.Cache.WithLabelValues("error").Inc()
		s.log.Warn("result cache unavailable; running the script", logging.Err(err))
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

// CacheStore saves a successful result in the background, off the response path.
func (s *Service) CacheStore(key string, v store.Version, e *store.Execution) {
	entry := cache.Entry{Result: e.Result, Stdout: e.Stdout, Stderr: e.Stderr}
	ttl := time.Duration(v.CacheTTLS) * time.Second
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.cache.Set(ctx, key, entry, ttl); err != nil {
			s.log.Warn("result cache store failed", logging.Err(err))
		}
	}()
}

// Run calls the runtime function for e and fills its outcome. A handler failure or a
// timeout is an outcome; an error is a platform fault (runtime down, overloaded).
func (s *Service) Run(ctx context.Context, v store.Version, rt *runtimes.Runtime, e *store.Execution, timeout time.Duration) error {
	callCtx, cancel := context.WithTimeout(ctx, timeout+s.cfg.RuntimeCallSlack)
	defer cancel()
	t0 := time.Now()
	res, err := s.runner.Run(callCtx, rt.Function, faas.Call{
		ExecutionID: e.ID, Tenant: e.Tenant, Function: v.Name, Version: v.Version, SHA256: v.SHA256, Source: v.Source,
		Event: e.Payload, TimeoutMS: int(timeout / time.Millisecond), MemoryMB: v.MemoryMB, Env: v.Env,
	})
	s.m.RuntimeCall.WithLabelValues(rt.Title).Observe(time.Since(t0).Seconds())
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
		return fault.New(fault.Unavailable, "runtime %s answered an unknown status %q", rt.Function, res.Status)
	}
	if res.Status == store.StatusSucceeded {
		e.Result = res.Result
		if e.Result == nil {
			e.Result = json.RawMessage("null")
		}
	} else {
		e.Result = nil
	}
	if res.Error != nil {
		e.Error = &store.ExecError{Type: clean(res.Error.Type), Message: clean(res.Error.Message), Stack: clean(res.Error.Stack)}
	}
	e.Stdout, e.Stderr = clean(res.Stdout), clean(res.Stderr)
	e.Truncated = res.StdoutTruncated || res.StderrTruncated
	e.DurationMS = res.DurationMS
	e.FinishedAt = &now
	return nil
}

// clean makes captured text storable: valid UTF-8 and no NUL bytes (PostgreSQL text).
func clean(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// Record writes e durably (group commit).
func (s *Service) Record(ctx context.Context, e *store.Execution) error {
	return s.logs.Write(ctx, e)
}

// Build checks that a script builds on its runtime (syntax check, Rust compile) before it
// is registered; a build failure is Unprocessable with the compiler's diagnostics. The host
// keeps the worker it initialised warm for exactly this (tenant, function, version, memory,
// env), so v.Version must be the version the store will assign.
func (s *Service) Build(ctx context.Context, rt *runtimes.Runtime, v store.Version) error {
	_, err := s.runner.Run(ctx, rt.Function, faas.Call{
		ExecutionID: "build-" + v.SHA256[:12], Tenant: v.Tenant, Function: v.Name, Version: v.Version, SHA256: v.SHA256,
		Source: v.Source, Event: json.RawMessage("null"), TimeoutMS: v.TimeoutMS, MemoryMB: v.MemoryMB, Env: v.Env,
		BuildOnly: true,
	})
	return err
}
