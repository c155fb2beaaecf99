package bench

import (
	"context"
	"math"
	"time"
)

// Search finds the highest rate a target sustains: open-loop steps of Step each, from
// Start multiplying by Factor while a step passes (up to Max), then Refine bisections
// between the last passing and the first failing rate. When Start itself fails it divides
// by Factor until a step passes or the rate drops below Min.
type Search struct {
	Start, Factor, Min, Max float64
	Step                    time.Duration
	Refine                  int
	// Pass says whether a step was sustained (e.g. p99 < 100 ms and errors < 0.1 %).
	Pass func(Result) bool
	// Between runs after every step (let queues drain); nil: nothing.
	Between func(ctx context.Context)
}

// SearchResult is the outcome: Best is the highest passing rate (0 when none passed) and
// BestResult its step; Steps lists every step in the order run.
type SearchResult struct {
	Best       float64
	BestResult Result
	Steps      []Step
}

// Step is one rate tried.
type Step struct {
	Rate   float64
	Pass   bool
	Result Result
}

// Run runs the search; run(rate) performs one step at that rate.
func (s Search) Run(ctx context.Context, run func(ctx context.Context, rate float64) Result) SearchResult {
	if s.Factor <= 1 {
		s.Factor = 1.5
	}
	var out SearchResult
	try := func(rate float64) bool {
		rate = math.Round(rate)
		r := run(ctx, rate)
		ok := s.Pass(r)
		out.Steps = append(out.Steps, Step{Rate: rate, Pass: ok, Result: r})
		if ok && rate > out.Best {
			out.Best, out.BestResult = rate, r
		}
		if s.Between != nil {
			s.Between(ctx)
		}
		return ok
	}
	lo, hi := 0.0, 0.0 // last passing, first failing
	rate := s.Start
	if try(rate) {
		lo = rate
		for ctx.Err() == nil {
			next := rate * s.Factor
			if s.Max > 0 && next > s.Max {
				if rate >= s.Max {
					return out
				}
				next = s.Max
			}
			rate = next
			if !try(rate) {
				hi = rate
				break
			}
			lo = rate
		}
	} else {
		hi = rate
		for ctx.Err() == nil {
			rate /= s.Factor
			if rate < s.Min || rate < 1 {
				return out
			}
			if try(rate) {
				lo = rate
				break
			}
			hi = rate
		}
	}
	for range s.Refine {
		if ctx.Err() != nil || lo == 0 || hi == 0 || hi-lo < math.Max(1, lo*0.05) {
			break
		}
		mid := (lo + hi) / 2
		if try(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return out
}
