// Package worker builds the Temporal side of the platform's processes: the client (with
// the zap logger and Prometheus metrics handed to the SDK) and the worker on task queue
// lambda-executions running the ExecuteFunction workflow and its activities — in the
// worker process, and in the api for the runs it starts eagerly (a worker that starts in
// the background once Temporal answers). The search attributes the Web UI filters by are
// the workflows' (workflows.EnsureSearchAttributes).
package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/workflows"
)

// TemporalConfig locates the Temporal frontend; shared by the api and the worker.
type TemporalConfig struct {
	Addr      string `env:"LAMBDA_TEMPORAL_ADDR" envDefault:"127.0.0.1:7233"`
	Namespace string `env:"LAMBDA_TEMPORAL_NAMESPACE" envDefault:"default"`
	// Gzip compresses the gRPC requests to Temporal (the SDK's default). Off: the api and
	// the workers reach Temporal over a loopback or a cluster network, where gzip spends
	// CPU on both ends for nothing (10 % of the api's CPU in durable runs, run 27).
	Gzip bool `env:"LAMBDA_TEMPORAL_GZIP" envDefault:"false"`
}

// Config tunes the worker.
type Config struct {
	// MaxActivities bounds concurrent Invoke activities (each mostly waits on a runtime).
	MaxActivities int `env:"LAMBDA_WORKER_MAX_ACTIVITIES" envDefault:"256"`
	// MaxWorkflowTasks bounds concurrent workflow tasks (which run the local activities).
	MaxWorkflowTasks int `env:"LAMBDA_WORKER_MAX_WORKFLOW_TASKS" envDefault:"64"`
	// HeartbeatThrottle caps how long the SDK holds back a heartbeat: a cancel reaches a
	// running Invoke within about this long.
	HeartbeatThrottle time.Duration `env:"LAMBDA_HEARTBEAT_THROTTLE" envDefault:"1s"`
	// StopTimeout is how long a stopping worker lets running activities finish.
	StopTimeout time.Duration `env:"LAMBDA_WORKER_STOP_TIMEOUT" envDefault:"10s"`
}

func clientOptions(cfg TemporalConfig, log *zap.Logger, mh client.MetricsHandler) client.Options {
	o := client.Options{HostPort: cfg.Addr, Namespace: cfg.Namespace, Logger: Logger(log.Named("temporal"))}
	if !cfg.Gzip {
		o.ConnectionOptions.GrpcCompression = &client.GrpcCompressionNone{}
	}
	if mh != nil {
		o.MetricsHandler = mh
	}
	return o
}

// NewLazyClient returns a client that connects on first use: the api starts and serves
// sync calls whether or not Temporal is up.
func NewLazyClient(cfg TemporalConfig, log *zap.Logger, mh client.MetricsHandler) (client.Client, error) {
	c, err := client.NewLazyClient(clientOptions(cfg, log, mh))
	if err != nil {
		return nil, fmt.Errorf("temporal client: %w", err)
	}
	return c, nil
}

// Dial connects to Temporal, retrying until it answers or ctx ends.
func Dial(ctx context.Context, cfg TemporalConfig, log *zap.Logger, mh client.MetricsHandler) (client.Client, error) {
	var c client.Client
	err := retry(ctx, 200*time.Millisecond, 5*time.Second, func() error {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		c, err = client.DialContext(dctx, clientOptions(cfg, log, mh))
		return err
	}, func(err error, backoff time.Duration) {
		log.Warn("temporal unreachable; retrying", zap.String("temporal.address", cfg.Addr), logging.Err(err),
			zap.Duration("backoff", backoff))
	})
	if err != nil {
		return nil, fmt.Errorf("dial temporal %s: %w", cfg.Addr, err)
	}
	return c, nil
}

// retry calls try until it succeeds or ctx ends, waiting first, then twice as long each
// time up to most, between attempts; failed is told of each failure. It returns the last
// error when ctx ends first.
func retry(ctx context.Context, first, most time.Duration, try func() error, failed func(error, time.Duration)) error {
	backoff := first
	for {
		err := try()
		if err == nil {
			return nil
		}
		failed(err, backoff)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, most)
	}
}

// Register registers the workflow and the activities on r.
func Register(r sdkworker.Registry, acts *activities.Activities) {
	r.RegisterWorkflowWithOptions(workflows.ExecuteFunction, workflow.RegisterOptions{Name: workflows.WorkflowName})
	r.RegisterWorkflowWithOptions(workflows.RunPipeline, workflow.RegisterOptions{Name: workflows.RunWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.RunPipelineChunk, workflow.RegisterOptions{Name: workflows.ChunkWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.DeliverCallback, workflow.RegisterOptions{Name: workflows.CallbackWorkflowName})
	r.RegisterWorkflowWithOptions(workflows.ScheduledStart, workflow.RegisterOptions{Name: workflows.ScheduledWorkflowName})
	r.RegisterActivity(acts)
}

// New returns a worker on the lambda-executions task queue with the workflow and acts
// registered; Run or Start it.
func New(c client.Client, cfg Config, acts *activities.Activities) sdkworker.Worker {
	return newWorker(c, cfg, acts, false)
}

// NewLocal returns a worker that runs workflow tasks and local activities only (no
// activity tasks): the api's worker, which takes the first workflow task of the
// executions it starts eagerly.
func NewLocal(c client.Client, cfg Config, acts *activities.Activities) sdkworker.Worker {
	return newWorker(c, cfg, acts, true)
}

func newWorker(c client.Client, cfg Config, acts *activities.Activities, localOnly bool) sdkworker.Worker {
	w := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{
		LocalActivityWorkerOnly:                 localOnly,
		MaxConcurrentActivityExecutionSize:      cfg.MaxActivities,
		MaxConcurrentWorkflowTaskExecutionSize:  cfg.MaxWorkflowTasks,
		MaxConcurrentLocalActivityExecutionSize: cfg.MaxWorkflowTasks * 2,
		MaxHeartbeatThrottleInterval:            cfg.HeartbeatThrottle,
		DefaultHeartbeatThrottleInterval:        cfg.HeartbeatThrottle,
		WorkerStopTimeout:                       cfg.StopTimeout,
	})
	Register(w, acts)
	return w
}

// Background is a worker that StartWhenReachable keeps trying to start.
type Background struct {
	cancel  context.CancelFunc
	mu      sync.Mutex
	running sdkworker.Worker
	stopped bool
}

// Running reports whether the worker has started (it polls its task queue).
func (b *Background) Running() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.running != nil
}

// Stop stops the worker if it has started, and any further attempt to start it.
func (b *Background) Stop() {
	b.cancel()
	b.mu.Lock()
	b.stopped = true
	w := b.running
	b.running = nil
	b.mu.Unlock()
	if w != nil {
		w.Stop()
	}
}

// StartWhenReachable starts the worker build returns, retrying with a new one (a worker
// starts only once) until Temporal answers or ctx ends, so its process can start while
// Temporal is down.
func StartWhenReachable(ctx context.Context, build func() sdkworker.Worker, log *zap.Logger) *Background {
	ctx, cancel := context.WithCancel(ctx)
	b := &Background{cancel: cancel}
	go func() {
		var w sdkworker.Worker
		err := retry(ctx, time.Second, 30*time.Second, func() error {
			w = build()
			return w.Start()
		}, func(err error, backoff time.Duration) {
			log.Warn("worker not started; retrying", logging.Err(err), zap.Duration("backoff", backoff))
		})
		if err != nil {
			return
		}
		b.mu.Lock()
		stopped := b.stopped
		if !stopped {
			b.running = w
		}
		b.mu.Unlock()
		if stopped {
			w.Stop()
			return
		}
		log.Info("worker started", zap.String("temporal.task_queue", workflows.TaskQueue))
	}()
	return b
}
