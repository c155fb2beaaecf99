package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/faas"
	"github.com/lambda-microservice/lambda/invoke"
	"github.com/lambda-microservice/lambda/logging"
	"github.com/lambda-microservice/lambda/metrics"
	"github.com/lambda-microservice/lambda/worker"
	"github.com/lambda-microservice/lambda/workflows"
)

func init() { subcommands = append(subcommands, newWorkerCmd) }

type workerConfig struct {
	Core       invoke.Config
	FaaS       faas.Config
	Log        logging.Config
	Data       dataConfig
	Temporal   worker.TemporalConfig
	Worker     worker.Config
	Activities activities.Config
	// MetricsAddr serves /metrics (platform and Temporal SDK metrics), /healthz and /readyz.
	MetricsAddr string `env:"LAMBDA_METRICS_ADDR" envDefault:"127.0.0.1:9101"`
	LogWriters  int    `env:"LAMBDA_LOG_WRITERS" envDefault:"2"`
	// DebugAddr, when set, serves net/http/pprof there (keep it on loopback).
	DebugAddr string `env:"LAMBDA_WORKER_DEBUG_ADDR"`
}

func (c workerConfig) validate() error {
	if c.LogWriters < 1 {
		return errors.New("LAMBDA_LOG_WRITERS must be at least 1")
	}
	if c.Temporal.Addr == "" || c.Temporal.Namespace == "" {
		return errors.New("LAMBDA_TEMPORAL_ADDR and LAMBDA_TEMPORAL_NAMESPACE must not be empty")
	}
	return c.Data.Cache.Validate()
}

func newWorkerCmd(e Env, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run the Temporal worker of async executions (task queue " + workflows.TaskQueue + ")",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var cfg workerConfig
			if err := e.parse(&cfg); err != nil {
				return fmt.Errorf("worker config: %w", err)
			}
			if err := cfg.validate(); err != nil {
				return err
			}
			log, err := logging.New(cfg.Log, "worker", stderr)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			e.defaultGC()
			return runWorker(cmd.Context(), cfg, log)
		},
	}
}

func runWorker(ctx context.Context, cfg workerConfig, log *zap.Logger) error {
	reg := metrics.NewRegistry()
	im := metrics.NewInvoke(reg)
	wm := metrics.NewWorkflow(reg)
	mh := worker.MetricsHandler(reg)

	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("worker: listen %s: %w", cfg.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	// Ready once the worker polls its task queue and PostgreSQL and Temporal answer.
	var ready atomic.Pointer[func(context.Context) error]
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		check := ready.Load()
		if check == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":"starting"}`)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := (*check)(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "unready", "error": err.Error()})
			return
		}
		_, _ = io.WriteString(w, `{"status":"ready"}`)
	})
	msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = msrv.Serve(ln) }()
	defer func() { _ = msrv.Close() }()
	log.Info("worker metrics listening", zap.String("addr", ln.Addr().String()))
	if cfg.DebugAddr != "" {
		go serveDebug(cfg.DebugAddr, log)
	}

	c, err := openCore(ctx, cfg.Data, cfg.FaaS, cfg.Core, cfg.LogWriters, im, log)
	if err != nil {
		return err
	}
	defer c.close()

	tc, err := worker.Dial(ctx, cfg.Temporal, log, mh)
	if err != nil {
		return err
	}
	defer tc.Close()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = worker.EnsureSearchAttributes(sctx, tc, cfg.Temporal.Namespace)
	cancel()
	if err != nil {
		// Starts register them too; the worker can run without them.
		log.Warn("search attributes not registered", logging.Err(err))
	}

	acts := activities.New(cfg.Activities, c.service, c.store, c.cache, wm, im, log)
	w := worker.New(tc, cfg.Worker, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	check := func(ctx context.Context) error {
		if err := c.store.Ping(ctx); err != nil {
			return err
		}
		_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	}
	ready.Store(&check)
	log.Info("worker started", zap.String("temporal.address", cfg.Temporal.Addr),
		zap.String("temporal.namespace", cfg.Temporal.Namespace), zap.String("temporal.task_queue", workflows.TaskQueue))
	<-ctx.Done()
	log.Info("worker stopping")
	w.Stop()
	return nil
}
