package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/callback"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/health"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/worker"
	"github.com/lambda-microservice/lambda/workflows"
)

type workerConfig struct {
	Core       core.Config
	FaaS       faas.Config
	Log        logging.Config
	Data       dataConfig
	Temporal   worker.TemporalConfig
	Worker     worker.Config
	Activities activities.Config
	// Start is how the sweeper starts an execution left queued again; Sweep how often
	// and after how long it looks.
	Start workflows.StarterConfig
	Sweep worker.SweepConfig
	// MetricsAddr serves /metrics (platform and Temporal SDK metrics), /healthz and /readyz.
	MetricsAddr string `env:"LAMBDA_METRICS_ADDR" envDefault:"127.0.0.1:9101"`
	// DebugAddr, when set, serves net/http/pprof there (keep it on loopback).
	DebugAddr string `env:"LAMBDA_WORKER_DEBUG_ADDR"`
}

func (c workerConfig) logConfig() logging.Config { return c.Log }

func (c *workerConfig) setEnv(e Env) { c.Data.env = e }

func (c workerConfig) validate() error {
	if _, err := callback.ParseCIDRs(c.Core.CallbackAllowCIDRs); err != nil {
		return fmt.Errorf("LAMBDA_CALLBACK_ALLOW_CIDRS: %w", err)
	}
	if c.Temporal.Addr == "" || c.Temporal.Namespace == "" {
		return errors.New("LAMBDA_TEMPORAL_ADDR and LAMBDA_TEMPORAL_NAMESPACE must not be empty")
	}
	return c.Data.validate()
}

func newWorkerCmd(e Env, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run the Temporal worker of async executions (task queue " + workflows.TaskQueue + ")",
		Args:  cobra.NoArgs,
		RunE:  serve(e, stderr, "worker", runWorker),
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
	// Ready once the worker polls its task queue and PostgreSQL and Temporal answer.
	ready := health.NewReadiness(false)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", health.Live())
	mux.Handle("GET /readyz", ready.Ready())
	msrv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = msrv.Serve(ln) }()
	defer func() { _ = msrv.Close() }()
	log.Info("worker metrics listening", zap.String("addr", ln.Addr().String()))
	if cfg.DebugAddr != "" {
		go serveDebug(cfg.DebugAddr, log)
	}

	b, err := openBackends(ctx, cfg.Data, cfg.FaaS, im, log)
	if err != nil {
		return err
	}
	defer b.close()

	tc, err := worker.Dial(ctx, cfg.Temporal, log, mh)
	if err != nil {
		return err
	}
	defer tc.Close()
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = workflows.EnsureSearchAttributes(sctx, tc, cfg.Temporal.Namespace)
	cancel()
	if err != nil {
		// Starts register them too; the worker can run without them.
		log.Warn("search attributes not registered", logging.Err(err))
	}

	start := cfg.Start
	start.Eager = false
	starter := workflows.NewStarter(start, tc, cfg.Temporal.Namespace)
	c := b.core(cfg.Core, starter, im, log)
	acts := activities.WithRuns(activities.New(cfg.Activities, c, wm, log), activities.RunsOf(c))
	w := worker.New(tc, cfg.Worker, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	// One worker at a time (a PostgreSQL advisory lock) finishes or restarts async
	// executions a crash left queued with no workflow.
	swctx, stopSweeper := context.WithCancel(context.Background())
	sweeperDone := make(chan struct{})
	go func() {
		defer close(sweeperDone)
		tasks := []worker.SweepTask{{Name: "executions",
			Sweep: func(ctx context.Context, olderThan time.Duration) (int, error) {
				out, err := c.SweepExecutions(ctx, starter, olderThan, 100)
				return out.Restarted + out.Failed, err
			}}}
		if _, ok := any(starter).(core.RunDurable); ok {
			// Runs queued with no workflow, and sync runs whose api died mid-run.
			tasks = append(tasks, worker.SweepTask{Name: "runs", Sweep: func(ctx context.Context, olderThan time.Duration) (int, error) {
				return c.SweepRuns(ctx, olderThan, 100)
			}})
		}
		worker.NewSweeper(cfg.Sweep, b.store, tasks, log).Run(swctx)
	}()
	defer func() { stopSweeper(); <-sweeperDone }()
	ready.Set([]health.Check{
		{Name: "postgres", Required: true, Probe: b.store.Ping},
		{Name: "temporal", Required: true, Probe: func(ctx context.Context) error {
			_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}},
	})
	log.Info("worker started", zap.String("temporal.address", cfg.Temporal.Addr),
		zap.String("temporal.namespace", cfg.Temporal.Namespace), zap.String("temporal.task_queue", workflows.TaskQueue))
	<-ctx.Done()
	log.Info("worker stopping")
	w.Stop()
	return nil
}
