package core

import (
	"context"
	"time"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

// The bounds of a stats request: the store reads at most a day of one function's rows,
// in at most 1,440 buckets of at least 10 s.
const (
	MaxStatsWindow  = 24 * time.Hour
	MinStatsStep    = 10 * time.Second
	MaxStatsBuckets = 1440
)

// StatsRequest asks for a function's calls over the last Window in buckets of Step.
type StatsRequest struct {
	Tenant   string
	Function string
	Window   time.Duration
	Step     time.Duration
}

// FunctionStats is the console's chart data: one point per step, oldest first.
type FunctionStats struct {
	Function string       `json:"function"`
	WindowS  int64        `json:"window_s"`
	StepS    int64        `json:"step_s"`
	Source   string       `json:"source"`
	Series   []StatsPoint `json:"series"`
}

// StatsPoint is one bucket: t is its start (unix seconds); latencies are null when no
// call finished in it.
type StatsPoint struct {
	T      int64    `json:"t"`
	Calls  int      `json:"calls"`
	Errors int      `json:"errors"`
	P50MS  *float64 `json:"p50_ms"`
	P99MS  *float64 `json:"p99_ms"`
}

// FunctionStats returns calls, errors and p50/p99 latency of a function of the tenant
// over the last window, in buckets aligned to multiples of step (the last one holds now).
//
// The source is request_logs, not Prometheus: per-function series would need the function
// name as a metric label, a value set without bound (every tenant's every function), which
// the house rules forbid for the lambda_* collectors. request_logs already holds every
// execution with its status and duration, indexed by (tenant, function, timestamp), so a
// bounded window is one range scan of that index, tenant-scoped like every other read.
func (s *Service) FunctionStats(ctx context.Context, req StatsRequest) (FunctionStats, error) {
	switch {
	case req.Step < MinStatsStep || req.Step%time.Second != 0:
		return FunctionStats{}, fault.New(fault.Invalid, "step must be whole seconds, at least %s, got %s", MinStatsStep, req.Step)
	case req.Window < req.Step || req.Window > MaxStatsWindow:
		return FunctionStats{}, fault.New(fault.Invalid, "window must be between the step and %s, got %s", MaxStatsWindow, req.Window)
	case req.Window%req.Step != 0:
		return FunctionStats{}, fault.New(fault.Invalid, "window (%s) must be a multiple of step (%s)", req.Window, req.Step)
	case req.Window/req.Step > MaxStatsBuckets:
		return FunctionStats{}, fault.New(fault.Invalid, "window/step must be at most %d buckets, got %d", MaxStatsBuckets, req.Window/req.Step)
	}
	if _, err := s.store.GetFunction(ctx, req.Tenant, req.Function); err != nil {
		return FunctionStats{}, err
	}
	n := int(req.Window / req.Step)
	stepS := int64(req.Step / time.Second)
	now := time.Now().Unix()
	last := time.Unix(now-now%stepS, 0).UTC()
	buckets, err := s.store.FunctionStats(ctx, store.StatsQuery{Tenant: req.Tenant, Function: req.Function,
		Start: last.Add(-time.Duration(n-1) * req.Step), Step: req.Step, Buckets: n})
	if err != nil {
		return FunctionStats{}, err
	}
	out := FunctionStats{Function: req.Function, WindowS: int64(req.Window / time.Second), StepS: stepS,
		Source: "request_logs", Series: make([]StatsPoint, len(buckets))}
	for i, b := range buckets {
		out.Series[i] = StatsPoint{T: b.Start.Unix(), Calls: b.Calls, Errors: b.Errors, P50MS: b.P50MS, P99MS: b.P99MS}
	}
	return out, nil
}
