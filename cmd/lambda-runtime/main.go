// Command lambda-runtime is the runtime host: the entrypoint of every runtime image (the
// OpenFaaS function on port 8080). LAMBDA_RUNTIME names the registry entry it serves.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/caarlos0/env/v11"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/runtimehost"
	"github.com/lambda-microservice/lambda/runtimes"
)

// gcPercent is the garbage collector's target unless GOGC is set.
const gcPercent = 400

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], environ(os.Environ()), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lambda-runtime:", err)
		os.Exit(1)
	}
}

func environ(kv []string) map[string]string {
	e := make(map[string]string, len(kv))
	for _, s := range kv {
		if k, v, ok := strings.Cut(s, "="); ok {
			e[k] = v
		}
	}
	return e
}

func run(ctx context.Context, args []string, environment map[string]string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprintln(stdout, "usage: lambda-runtime (configured by LAMBDA_RUNTIME, LAMBDA_RUNTIME_ADDR, ...: see runtimes/README.md)")
		return nil
	}
	// Descriptors inherited from whoever started the host must not reach the workers.
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	// Not dumpable: the host's /proc/<pid>/environ, mem and fd (its invoke secret when
	// given inline) are root's, and it cannot be traced, even by workers that run as its
	// own uid (a replica pinned to one tenant). Workers become dumpable again at execve.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE): %w", err)
	}
	var cfg runtimehost.Config
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: environment}); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	reg, err := runtimes.Load(cfg.RuntimesFile)
	if err != nil {
		return err
	}
	rt, ok := reg.Lookup(cfg.Runtime)
	if !ok {
		return fmt.Errorf("config: LAMBDA_RUNTIME=%q is not in the registry (%s)", cfg.Runtime, strings.Join(reg.Titles(), ", "))
	}
	log, err := logging.New(cfg.Log, "runtime-"+rt.Title, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	// Fewer collections under load, unless the operator set GOGC: the host's live heap is
	// small and every request allocates its decode and output buffers (BENCHMARKS.md, run 13).
	if _, set := environment["GOGC"]; !set {
		debug.SetGCPercent(gcPercent)
	}

	promReg := metrics.NewRegistry()
	host, err := runtimehost.New(runtimehost.Options{
		Config:   cfg,
		Runtime:  rt,
		BuildEnv: runtimehost.BuildEnviron(rt, func(k string) string { return environment[k] }),
		Metrics:  metrics.NewRuntime(promReg),
		HTTP:     metrics.NewHTTP(promReg),
		Logger:   log,
	})
	if err != nil {
		return err
	}
	defer host.Close()
	if host.Direct() {
		// Workers kept apart by their uids alone share /tmp: what they create there is
		// their own (0600), whatever the umask of the image.
		unix.Umask(0o077)
	}
	host.Start()

	srv := &http.Server{
		Handler:           runtimehost.NewServer(host, promReg),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ErrorLog:          zap.NewStdLog(log),
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	log.Info("runtime host listening", zap.String("addr", ln.Addr().String()), zap.String(logging.FieldRuntime, rt.Title),
		zap.Int("workers", cfg.Workers))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log.Info("runtime host shutting down")
	return srv.Shutdown(shutdown)
}
