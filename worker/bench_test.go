package worker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lambda-microservice/lambda/activities"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/store"
	devtemporal "github.com/lambda-microservice/lambda/internal/testkit/temporal"
	"github.com/lambda-microservice/lambda/worker"
	"github.com/lambda-microservice/lambda/workflows"
)

// BenchmarkAsyncLatency measures POST → result visible (the queued row written, the
// workflow started, the result final in PostgreSQL) one execution at a time, for the
// workflow shapes and dev server settings the design weighed:
//
//	go test ./worker -run '^$' -bench AsyncLatency -benchtime 100x
//
// Each sub-benchmark reports p50/p99 in ms; the production shape is "locals+invoke".
func BenchmarkAsyncLatency(b *testing.B) {
	for _, server := range []struct {
		name string
		args []string
	}{
		{"defaults", nil},
		{"pollrps", []string{"--dynamic-config-value", "history.transferProcessorMaxPollRPS=10000"}},
		{"pollrps+eager-activity", serverDynamicConfig()},
	} {
		addr := startBenchServer(b, server.args)
		for _, shape := range []string{"locals+invoke", "all-regular", "one-regular", "all-local"} {
			b.Run(server.name+"/"+shape, func(b *testing.B) {
				benchShape(b, addr, shape)
			})
		}
	}
}

func startBenchServer(b *testing.B, extra []string) string {
	return devtemporal.Start(b, devtemporal.Options{Namespaces: []string{"bench"},
		SearchAttributes: workflows.SearchAttributeNames, Args: extra})
}

func benchShape(b *testing.B, addr, shape string) {
	p := newPlatform(b, "bench")
	c, err := worker.Dial(context.Background(), worker.TemporalConfig{Addr: addr, Namespace: "bench"}, p.log, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	p.client = c
	p.register("bench", 5000, 0)
	acts := activities.New(activities.Config{}, p.core, metrics.NewWorkflow(prometheus.NewRegistry()), p.log)
	w := sdkworker.New(c, workflows.TaskQueue, sdkworker.Options{})
	worker.Register(w, acts)
	w.RegisterWorkflowWithOptions(allRegular, workflow.RegisterOptions{Name: "all-regular"})
	w.RegisterWorkflowWithOptions(oneRegular, workflow.RegisterOptions{Name: "one-regular"})
	w.RegisterWorkflowWithOptions(allLocal, workflow.RegisterOptions{Name: "all-local"})
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	d := p.dispatcher(10 * time.Second)
	name := workflows.WorkflowName
	if shape != "locals+invoke" {
		name = shape
	}
	run := func() time.Duration {
		t0 := time.Now()
		var id string
		if name == workflows.WorkflowName {
			id = p.start(d, "bench", fakeEvent{A: 1, B: 2}, "").ID
		} else {
			id = startVariant(b, p, name)
		}
		for {
			e, err := p.store.GetExecution(context.Background(), p.tenant, id, false)
			if err != nil {
				b.Fatal(err)
			}
			if store.Finished(e.Status) {
				if e.Status != store.StatusSucceeded {
					b.Fatalf("%s: %s %+v", shape, e.Status, e.Error)
				}
				return time.Since(t0)
			}
			time.Sleep(500 * time.Microsecond)
		}
	}
	for range 5 { // warm-up: connections, version cache, sticky cache
		run()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		lat = append(lat, run())
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}

// startVariant writes the queued row and starts a variant workflow, as the dispatcher
// does for ExecuteFunction.
func startVariant(b *testing.B, p *platform, name string) string {
	id := core.NewExecutionID()
	e := store.Execution{ID: id, Tenant: p.tenant, Function: "bench", Version: 1, Language: "python", LanguageTitle: "python",
		Mode: "async", Status: store.StatusQueued, Payload: []byte(`{"A":1,"B":2}`), CreatedAt: time.Now().UTC(),
		WorkflowID: workflows.WorkflowID(id)}
	if err := p.store.SaveExecution(context.Background(), &e); err != nil {
		b.Fatal(err)
	}
	ref := workflows.ExecutionRef{ID: id, Tenant: p.tenant, Function: "bench", Version: 1, Language: "python", LanguageTitle: "python"}
	_, err := p.client.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{ID: workflows.WorkflowID(id),
		TaskQueue: workflows.TaskQueue}, name, ref)
	if err != nil {
		b.Fatal(err)
	}
	return id
}

var benchActs *activities.Activities

func regularOptions() workflow.ActivityOptions {
	return workflow.ActivityOptions{StartToCloseTimeout: 30 * time.Second, HeartbeatTimeout: 10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 3}}
}

// allRegular runs the five activities as regular activities.
func allRegular(ctx workflow.Context, ref workflows.ExecutionRef) error {
	ctx = workflow.WithActivityOptions(ctx, regularOptions())
	return fiveSteps(ctx, ref, func(ctx workflow.Context, fn, in, out any) error {
		return workflow.ExecuteActivity(ctx, fn, in).Get(ctx, out)
	})
}

// oneRegular runs Invoke alone as a regular activity and Persist as a local one: the
// fewest steps a heartbeating Invoke allows, without ResolveVersion/CheckCache.
func oneRegular(ctx workflow.Context, ref workflows.ExecutionRef) error {
	target := activities.Target{ID: ref.ID, Tenant: ref.Tenant}
	ver := activities.ResolveInput{Tenant: ref.Tenant, Function: ref.Function, Version: ref.Version, LanguageTitle: ref.LanguageTitle}
	var res activities.InvokeResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, regularOptions()), benchActs.Invoke,
		activities.InvokeInput{Exec: target, Version: ver, TimeoutMS: 5000}).Get(ctx, &res); err != nil {
		return err
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 10 * time.Second})
	return workflow.ExecuteLocalActivity(lctx, benchActs.Persist, activities.PersistInput{Exec: target, Status: res.Status,
		Attempts: res.Attempt}).Get(ctx, nil)
}

// allLocal runs everything, Invoke included, as local activities (no heartbeat: a dead
// worker is only noticed by the workflow task timeout).
func allLocal(ctx workflow.Context, ref workflows.ExecutionRef) error {
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 30 * time.Second})
	return fiveSteps(ctx, ref, func(ctx workflow.Context, fn, in, out any) error {
		return workflow.ExecuteLocalActivity(ctx, fn, in).Get(ctx, out)
	})
}

func fiveSteps(ctx workflow.Context, ref workflows.ExecutionRef, exec func(workflow.Context, any, any, any) error) error {
	target := activities.Target{ID: ref.ID, Tenant: ref.Tenant}
	ver := activities.ResolveInput{Tenant: ref.Tenant, Function: ref.Function, Version: ref.Version, LanguageTitle: ref.LanguageTitle}
	var v activities.Resolved
	if err := exec(ctx, benchActs.ResolveVersion, ver, &v); err != nil {
		return err
	}
	// The five steps: cache lookup and store run even for this uncached
	// function, so the variant pays for every step.
	var c activities.CacheResult
	if err := exec(ctx, benchActs.CheckCache, activities.CheckCacheInput{Exec: target, Version: ver}, &c); err != nil {
		return err
	}
	var res activities.InvokeResult
	if err := exec(ctx, benchActs.Invoke, activities.InvokeInput{Exec: target, Version: ver, TimeoutMS: v.TimeoutMS}, &res); err != nil {
		return err
	}
	if err := exec(ctx, benchActs.Persist, activities.PersistInput{Exec: target, Status: res.Status, Attempts: res.Attempt}, nil); err != nil {
		return err
	}
	return exec(ctx, benchActs.StoreCache, activities.StoreCacheInput{Exec: target, Key: c.Key, TTLS: 1}, nil)
}
