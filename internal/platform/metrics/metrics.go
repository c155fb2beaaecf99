// Package metrics defines every Prometheus collector of the platform in one place. Names
// carry the prefix lambda_ and labels stay low-cardinality: runtime (a registry title),
// path (fast|workflow), outcome, route (a chi route pattern), method (a standard HTTP
// method or "other", Method), never a function name or id.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// latencyBuckets spans 0.25 ms to 60 s: the fast path lives in the first half.
var latencyBuckets = []float64{.00025, .0005, .001, .002, .003, .005, .0075, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// HTTP instruments an HTTP server (api, provider, runtime host).
type HTTP struct {
	Requests *prometheus.CounterVec   // route, method, code
	Duration *prometheus.HistogramVec // route, method
	InFlight prometheus.Gauge
	// Connections counts the TCP connections a server accepted: a client that does not
	// keep enough connections alive (net/http's default keeps 2 idle per host) opens one
	// for most requests once more than that are in flight.
	Connections prometheus.Counter
}

// NewHTTP registers the HTTP server collectors.
func NewHTTP(reg prometheus.Registerer) *HTTP {
	m := &HTTP{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambda_http_requests_total", Help: "HTTP requests served, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambda_http_request_duration_seconds", Help: "HTTP request latency, by route pattern and method.",
			Buckets: latencyBuckets,
		}, []string{"route", "method"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lambda_http_requests_in_flight", Help: "HTTP requests being served.",
		}),
		Connections: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lambda_http_connections_total", Help: "TCP connections the HTTP server accepted.",
		}),
	}
	reg.MustRegister(m.Requests, m.Duration, m.InFlight, m.Connections)
	return m
}

// Method is the method label of an HTTP request: the method when it is a standard one,
// else "other", so a client cannot mint label values.
func Method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

// Invoke instruments the invocation core, shared by the fast path and the activities.
type Invoke struct {
	Invocations *prometheus.CounterVec   // runtime, path, outcome (succeeded|failed|timeout|canceled|error)
	Duration    *prometheus.HistogramVec // runtime, path: core latency including cache, runtime call and log write
	RuntimeCall *prometheus.HistogramVec // runtime: the call to the runtime function alone
	Cache       *prometheus.CounterVec   // result: hit|miss|error
	CacheLocal  prometheus.Counter       // hits served from the process's own copy
	LogWrite    prometheus.Histogram     // seconds from enqueue to durable commit of a request log
	LogBatch    prometheus.Histogram     // rows per group commit
	Async       *prometheus.CounterVec   // runtime, event: started|deduplicated|canceled|restarted
	// Pipeline runs and steps. Labels stay bounded: a pipeline's name is the user's, so
	// runs are counted by mode and outcome, steps by kind and outcome.
	Runs         *prometheus.CounterVec   // mode (sync|async|handover), outcome (succeeded|failed|canceled|handed_over|error)
	Steps        *prometheus.CounterVec   // kind (function|map|parallel|sleep|wait_for), outcome (succeeded|failed|skipped|canceled)
	StepDuration *prometheus.HistogramVec // kind: from a step's start to its settling
}

// NewInvoke registers the invocation core collectors.
func NewInvoke(reg prometheus.Registerer) *Invoke {
	m := &Invoke{
		Invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambda_invocations_total", Help: "Executions finished, by runtime, path (fast|workflow) and outcome.",
		}, []string{"runtime", "path", "outcome"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambda_invocation_duration_seconds", Help: "Execution latency inside the platform, by runtime and path.",
			Buckets: latencyBuckets,
		}, []string{"runtime", "path"}),
		RuntimeCall: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambda_runtime_call_duration_seconds", Help: "Latency of the call to the runtime function, by runtime.",
			Buckets: latencyBuckets,
		}, []string{"runtime"}),
		Cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambda_cache_requests_total", Help: "Result cache lookups, by result (hit|miss|error).",
		}, []string{"result"}),
		CacheLocal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lambda_cache_local_hits_total", Help: "Result cache hits served from the process's own copy of the entry (also counted as result=hit).",
		}),
		LogWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lambda_request_log_write_seconds", Help: "Time from enqueue to durable commit of a request log row.",
			Buckets: latencyBuckets,
		}),
		LogBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "lambda_request_log_batch_rows", Help: "Rows written per group commit.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512},
		}),
		Async: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambda_async_requests_total", Help: "Async invoke requests, by runtime and event (started|deduplicated|canceled|restarted: by the sweeper).",
		}, []string{"runtime", "event"}),
		Runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambda_pipeline_runs_total", Help: "Pipeline runs finished (or handed over from sync to a workflow), by mode and outcome.",
		}, []string{"mode", "outcome"}),
		Steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambda_pipeline_steps_total", Help: "Pipeline steps settled, by kind and outcome.",
		}, []string{"kind", "outcome"}),
		StepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambda_pipeline_step_duration_seconds", Help: "Pipeline step latency from its start to its settling, by kind.",
			Buckets: latencyBuckets,
		}, []string{"kind"}),
	}
	reg.MustRegister(m.Invocations, m.Duration, m.RuntimeCall, m.Cache, m.CacheLocal, m.LogWrite, m.LogBatch, m.Async,
		m.Runs, m.Steps, m.StepDuration)
	return m
}

// Runtime instruments a runtime host.
type Runtime struct {
	Workers    *prometheus.GaugeVec     // runtime, state: idle|busy
	Executions *prometheus.CounterVec   // runtime, outcome
	Duration   *prometheus.HistogramVec // runtime: handler execution time
	ColdStarts *prometheus.CounterVec   // runtime
	Builds     *prometheus.CounterVec   // runtime, outcome: ok|failed
	BuildTime  *prometheus.HistogramVec // runtime
	Sandbox    *prometheus.GaugeVec     // layer: 1 when active
	Queue      *prometheus.GaugeVec     // runtime: requests waiting for a worker
	// Pinned is 1 when the replica serves one tenant only: its workers cannot be kept
	// apart from each other here (LAMBDA_SANDBOX=auto without distinct uids).
	Pinned *prometheus.GaugeVec // runtime
	// TenantWaits counts calls that waited because their tenant held its share of the
	// workers (LAMBDA_RUNTIME_TENANT_SHARE).
	TenantWaits *prometheus.CounterVec // runtime
}

// NewRuntime registers the runtime host collectors.
func NewRuntime(reg prometheus.Registerer) *Runtime {
	m := &Runtime{
		Workers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambda_runtime_pool_workers", Help: "Language worker processes in the pool, by state (idle|busy).",
		}, []string{"runtime", "state"}),
		Executions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambda_runtime_executions_total", Help: "Executions run by the runtime host, by outcome.",
		}, []string{"runtime", "outcome"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambda_runtime_execution_duration_seconds", Help: "Handler execution time inside the runtime host.",
			Buckets: latencyBuckets,
		}, []string{"runtime"}),
		ColdStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambda_runtime_cold_starts_total", Help: "Worker processes started for a script version.",
		}, []string{"runtime"}),
		Builds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambda_runtime_builds_total", Help: "Script builds (compile/check), by outcome (ok|failed).",
		}, []string{"runtime", "outcome"}),
		BuildTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambda_runtime_build_duration_seconds", Help: "Script build time.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2, 3, 5, 10, 30, 60},
		}, []string{"runtime"}),
		Sandbox: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambda_runtime_sandbox_layer", Help: "Sandbox layers active for language workers (1 active, 0 missing).",
		}, []string{"layer"}),
		Queue: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambda_runtime_queue_depth", Help: "Requests waiting for a free worker.",
		}, []string{"runtime"}),
	}
	m.Pinned = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lambda_runtime_tenant_pinned", Help: "1 when the replica serves one tenant only, its workers not being isolatable from each other here.",
	}, []string{"runtime"})
	m.TenantWaits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lambda_runtime_tenant_share_waits_total", Help: "Calls that waited because their tenant held its share of the workers.",
	}, []string{"runtime"})
	reg.MustRegister(m.Workers, m.Executions, m.Duration, m.ColdStarts, m.Builds, m.BuildTime, m.Sandbox, m.Queue, m.Pinned, m.TenantWaits)
	return m
}

// Provider instruments the local OpenFaaS provider.
type Provider struct {
	Replicas *prometheus.GaugeVec   // function: ready replicas
	Restarts *prometheus.CounterVec // function: replica processes restarted after exiting
}

// NewProvider registers the provider collectors.
func NewProvider(reg prometheus.Registerer) *Provider {
	m := &Provider{
		Replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "lambda_provider_replicas", Help: "Ready replicas of each deployed runtime function.",
		}, []string{"function"}),
		Restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambda_provider_restarts_total", Help: "Replica processes restarted after they exited.",
		}, []string{"function"}),
	}
	reg.MustRegister(m.Replicas, m.Restarts)
	return m
}

// Workflow instruments the Temporal worker.
type Workflow struct {
	Activities *prometheus.HistogramVec // activity, outcome
	Completed  *prometheus.CounterVec   // runtime, status
}

// NewWorkflow registers the worker collectors.
func NewWorkflow(reg prometheus.Registerer) *Workflow {
	m := &Workflow{
		Activities: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "lambda_activity_duration_seconds", Help: "Activity execution time, by activity and outcome (ok|error).",
			Buckets: latencyBuckets,
		}, []string{"activity", "outcome"}),
		Completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lambda_workflow_executions_total", Help: "Async executions finished by workflows, by runtime and status.",
		}, []string{"runtime", "status"}),
	}
	reg.MustRegister(m.Activities, m.Completed)
	return m
}
