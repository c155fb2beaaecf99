// Package runtimehost is the runtime host: the HTTP server every runtime image runs (the
// OpenFaaS function on port 8080). It builds scripts once per sha256, keeps a bounded pool
// of warm language worker processes (each bound to ONE script version for its whole life),
// talks to them over framed pipes, and enforces timeouts, output caps and the worker
// environment. Nothing here names a language: the runtime registry entry says how to build
// and start a worker, the bootstrap in runtimes/<title>/ speaks the frame protocol. Every
// process starts through the spawner seam of package sandbox (plain, or confined).
package runtimehost

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
	"github.com/lambda-microservice/lambda/internal/runtimehost/sandbox"
)

// Config is the runtime host's configuration, read from the environment by cmd/lambda-runtime.
type Config struct {
	// Runtime is the registry title (or alias) this host serves.
	Runtime string `env:"LAMBDA_RUNTIME"`
	// RuntimesFile is the registry path; empty loads the registry bundled in the binary.
	RuntimesFile string `env:"LAMBDA_RUNTIMES_FILE"`
	// Addr is the listen address.
	Addr string `env:"LAMBDA_RUNTIME_ADDR" envDefault:":8080"`
	// Workers bounds the live worker processes, the spare included.
	Workers int `env:"LAMBDA_RUNTIME_WORKERS" envDefault:"8"`
	// CacheDir holds the per-sha256 build folders; empty means
	// os.UserCacheDir()/lambda-microservice/builds/<title>.
	CacheDir string `env:"LAMBDA_RUNTIME_CACHE_DIR"`
	// OutputLimit caps the captured bytes of each of stdout and stderr per execution.
	OutputLimit int `env:"LAMBDA_RUNTIME_OUTPUT_LIMIT" envDefault:"65536"`
	// QueueLength bounds the requests waiting for a worker; more are refused (503).
	QueueLength int `env:"LAMBDA_RUNTIME_QUEUE" envDefault:"256"`
	// TenantShare is the largest fraction of Workers one tenant holds at once (at least
	// one worker; 0 or 1: no bound): a tenant at its share waits for one of its own workers
	// while other tenants' calls still find one. The tenant is the api's (authenticated call).
	TenantShare float64 `env:"LAMBDA_RUNTIME_TENANT_SHARE" envDefault:"0.5"`
	// QueueWait bounds how long a request waits for a worker before 503.
	QueueWait time.Duration `env:"LAMBDA_RUNTIME_QUEUE_WAIT" envDefault:"5s"`
	// Builds bounds the builds running at once (0: the number of CPUs).
	Builds int `env:"LAMBDA_RUNTIME_BUILDS" envDefault:"0"`
	// BuildTimeout bounds one build (a Rust compile, say).
	BuildTimeout time.Duration `env:"LAMBDA_RUNTIME_BUILD_TIMEOUT" envDefault:"120s"`
	// IdleTimeout stops a version's worker unused for this long (0 keeps it until evicted).
	IdleTimeout time.Duration `env:"LAMBDA_RUNTIME_IDLE_TIMEOUT" envDefault:"10m"`
	// StartTimeout bounds a worker's start until its hello frame.
	StartTimeout time.Duration `env:"LAMBDA_RUNTIME_START_TIMEOUT" envDefault:"30s"`
	// DefaultTimeout applies to requests without timeout_ms.
	DefaultTimeout time.Duration `env:"LAMBDA_RUNTIME_DEFAULT_TIMEOUT" envDefault:"30s"`
	// MaxTimeout caps a request's timeout_ms.
	MaxTimeout time.Duration `env:"LAMBDA_RUNTIME_MAX_TIMEOUT" envDefault:"15m"`
	// MaxBody bounds a request body (event plus source plus envelope).
	MaxBody int64 `env:"LAMBDA_RUNTIME_MAX_BODY" envDefault:"8388608"`
	// AdvertiseURL is this replica's own base URL as the api should call it for the
	// sessions it holds; "auto" is this host's first non-loopback IPv4 address and the
	// listen port (a Kubernetes pod's address); empty lets the api use the address it
	// reached the replica at.
	AdvertiseURL string `env:"LAMBDA_RUNTIME_ADVERTISE_URL"`
	// MaxSessions bounds the notebook sessions (one worker each, outside Workers) this
	// host holds at once; more are refused (503).
	MaxSessions int `env:"LAMBDA_RUNTIME_MAX_SESSIONS" envDefault:"32"`
	// SessionIdle stops a session's worker after this long without a cell when its opener
	// gave no idle time (the api passes LAMBDA_SESSION_IDLE plus a margin).
	SessionIdle time.Duration `env:"LAMBDA_RUNTIME_SESSION_IDLE" envDefault:"30m"`
	// FileSizeLimit is the workers' RLIMIT_FSIZE in bytes.
	FileSizeLimit uint64 `env:"LAMBDA_RUNTIME_FILE_SIZE_LIMIT" envDefault:"134217728"`

	// Sandbox is off, auto (every isolation layer that works here) or strict (all layers,
	// or the host refuses to start naming what is missing). See runtimes/README.md.
	Sandbox string `env:"LAMBDA_SANDBOX" envDefault:"auto"`
	// SandboxUIDBase and SandboxUIDs are the worker uid range: each live worker runs as its
	// own uid from it (hosts sharing a machine coordinate through lock files).
	SandboxUIDBase int `env:"LAMBDA_SANDBOX_UID_BASE" envDefault:"61000"`
	SandboxUIDs    int `env:"LAMBDA_SANDBOX_UIDS" envDefault:"1000"`
	// SandboxTmpMB is the size of each worker's private /tmp (a tmpfs, memory-backed).
	SandboxTmpMB int `env:"LAMBDA_SANDBOX_TMP_MB" envDefault:"64"`
	// SandboxPids bounds a worker's processes and threads (pids.max and RLIMIT_NPROC).
	SandboxPids int `env:"LAMBDA_SANDBOX_PIDS" envDefault:"256"`
	// SandboxMemoryMB is the memory of a worker whose request has no memory_mb.
	SandboxMemoryMB int `env:"LAMBDA_SANDBOX_MEMORY_MB" envDefault:"256"`
	// SandboxNetwork leaves workers the host's network (no network namespace).
	SandboxNetwork bool `env:"LAMBDA_SANDBOX_NETWORK" envDefault:"false"`
	// SandboxBwrap is the bubblewrap binary.
	SandboxBwrap string `env:"LAMBDA_SANDBOX_BWRAP" envDefault:"bwrap"`

	// SecretFile holds the deployment's invoke secret (a Kubernetes Secret's file); Secret
	// is the same value given inline. POST / answers 401 and runs nothing unless the call
	// carries it in the X-Lambda-Runtime-Secret header (the api sends it). Auth=none turns
	// the check off explicitly (a trusted test bench); a host with neither refuses to start.
	SecretFile string `env:"LAMBDA_RUNTIME_SECRET_FILE"`
	Secret     string `env:"LAMBDA_RUNTIME_SECRET"`
	Auth       string `env:"LAMBDA_RUNTIME_AUTH" envDefault:"secret"`

	secret []byte // the invoke secret, loaded by Validate

	Log logging.Config
}

// Validate checks the configuration and fills derived defaults.
func (c *Config) Validate() error {
	var errs []error
	if c.Runtime == "" {
		errs = append(errs, errors.New("LAMBDA_RUNTIME is required (a runtime registry title)"))
	}
	if c.Addr == "" {
		errs = append(errs, errors.New("LAMBDA_RUNTIME_ADDR must not be empty"))
	}
	if c.Workers < 1 || c.Workers > 4096 {
		errs = append(errs, fmt.Errorf("LAMBDA_RUNTIME_WORKERS=%d: want 1..4096", c.Workers))
	}
	if c.OutputLimit < 0 {
		errs = append(errs, fmt.Errorf("LAMBDA_RUNTIME_OUTPUT_LIMIT=%d: want ≥ 0", c.OutputLimit))
	}
	if c.TenantShare < 0 || c.TenantShare > 1 {
		errs = append(errs, fmt.Errorf("LAMBDA_RUNTIME_TENANT_SHARE=%g: want 0..1", c.TenantShare))
	}
	if c.QueueLength < 0 {
		errs = append(errs, fmt.Errorf("LAMBDA_RUNTIME_QUEUE=%d: want ≥ 0", c.QueueLength))
	}
	for name, d := range map[string]time.Duration{
		"LAMBDA_RUNTIME_BUILD_TIMEOUT": c.BuildTimeout, "LAMBDA_RUNTIME_START_TIMEOUT": c.StartTimeout,
		"LAMBDA_RUNTIME_DEFAULT_TIMEOUT": c.DefaultTimeout, "LAMBDA_RUNTIME_MAX_TIMEOUT": c.MaxTimeout,
	} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%s: want > 0", name, d))
		}
	}
	if c.QueueWait < 0 || c.IdleTimeout < 0 {
		errs = append(errs, errors.New("LAMBDA_RUNTIME_QUEUE_WAIT and LAMBDA_RUNTIME_IDLE_TIMEOUT must not be negative"))
	}
	switch c.Sandbox {
	case sandbox.Off, sandbox.Auto, sandbox.Strict:
	default:
		errs = append(errs, fmt.Errorf("LAMBDA_SANDBOX=%q: want off, auto or strict", c.Sandbox))
	}
	if c.Sandbox != sandbox.Off {
		if c.SandboxUIDBase < 1000 || c.SandboxUIDs < 1 || c.SandboxUIDBase+c.SandboxUIDs > 1<<31-2 {
			errs = append(errs, fmt.Errorf("LAMBDA_SANDBOX_UID_BASE=%d, LAMBDA_SANDBOX_UIDS=%d: want an unprivileged range (base ≥ 1000)", c.SandboxUIDBase, c.SandboxUIDs))
		}
		if c.SandboxTmpMB < 1 || c.SandboxPids < 8 || c.SandboxMemoryMB < 16 {
			errs = append(errs, errors.New("LAMBDA_SANDBOX_TMP_MB ≥ 1, LAMBDA_SANDBOX_PIDS ≥ 8 and LAMBDA_SANDBOX_MEMORY_MB ≥ 16 required"))
		}
	}
	switch c.Auth {
	case AuthSecret:
		secret, err := platformsecret.Load(c.Secret, c.SecretFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("LAMBDA_RUNTIME_SECRET(_FILE): %w", err))
		} else if secret == "" {
			errs = append(errs, errors.New("LAMBDA_RUNTIME_SECRET_FILE (or LAMBDA_RUNTIME_SECRET) is required: the host runs calls only with the deployment's secret (LAMBDA_RUNTIME_AUTH=none accepts any caller)"))
		}
		c.secret = []byte(secret)
	case AuthNone:
		c.secret = nil
	default:
		errs = append(errs, fmt.Errorf("LAMBDA_RUNTIME_AUTH=%q: want secret or none", c.Auth))
	}
	if c.MaxBody < 1024 {
		errs = append(errs, fmt.Errorf("LAMBDA_RUNTIME_MAX_BODY=%d: want ≥ 1024", c.MaxBody))
	}
	return errors.Join(errs...)
}

// Invoke authentication modes (LAMBDA_RUNTIME_AUTH).
const (
	AuthSecret = "secret" // POST / needs the deployment's secret
	AuthNone   = "none"   // any caller may invoke (a trusted bench only)
)

// sandboxConfig is the Sandbox configuration of the host.
func (c *Config) sandboxConfig() sandbox.Config {
	return sandbox.Config{
		Mode: c.Sandbox, UIDBase: c.SandboxUIDBase, UIDCount: c.SandboxUIDs, TmpMB: c.SandboxTmpMB,
		Pids: c.SandboxPids, MemoryMB: c.SandboxMemoryMB, Network: c.SandboxNetwork, Bwrap: c.SandboxBwrap,
		MaxTimeout: c.MaxTimeout,
	}
}

// tenantShare is the number of workers one tenant may hold (0: no bound).
func (c *Config) tenantShare() int {
	if c.TenantShare <= 0 || c.TenantShare >= 1 {
		return 0
	}
	n := int(math.Ceil(c.TenantShare * float64(c.Workers)))
	if n >= c.Workers {
		return 0
	}
	return max(1, n)
}

// cacheDir returns the build cache folder for the runtime titled title.
func (c *Config) cacheDir(title string) (string, error) {
	if c.CacheDir != "" {
		return filepath.Abs(c.CacheDir)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "lambda-microservice", "builds", title), nil
}
