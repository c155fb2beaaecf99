// Package bench is the platform's load instrument: an open-loop load generator (requests
// are issued at fixed intended times, whatever the server does), the scenarios `make bench`
// runs against a whole stack, and the report they produce.
//
// Latency is measured from a request's intended send time, not from the moment a goroutine
// got round to sending it, so a server that stalls shows up in the high percentiles of every
// request that should have been sent during the stall (no coordinated omission, as in wrk2).
// Latencies go into HDR histograms (microsecond resolution, 3 significant digits).
package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Op is one request. It returns nil when the request succeeded; the error's text (its
// first line, without variable parts where the Op can help it) is counted per kind.
type Op func(ctx context.Context) error

// Load is one open-loop run: Rate requests per second for Duration.
type Load struct {
	Rate     float64       // intended requests per second (> 0)
	Duration time.Duration // how long to issue requests
	// Workers is the number of goroutines sending requests, i.e. the most requests in
	// flight. A request whose intended time comes while every worker is busy waits in a
	// queue, and that wait counts in its latency. Default: Rate/2 (half a second of
	// requests in flight), at least 64, at most 1024 — more connections than that only
	// add a connection storm on an overloaded server, while the queue keeps measuring.
	Workers int
	// Timeout bounds each request (default 10 s); a timeout is an error whose latency
	// is recorded as the time spent.
	Timeout time.Duration
}

func (l Load) withDefaults() Load {
	if l.Workers <= 0 {
		l.Workers = min(max(int(l.Rate)/2, 64), 1024)
	}
	if l.Timeout <= 0 {
		l.Timeout = 10 * time.Second
	}
	return l
}

// Count is the number of requests the load issues.
func (l Load) Count() int {
	n := int(l.Rate * l.Duration.Seconds())
	return max(n, 1)
}

// Result is what a run measured.
type Result struct {
	Rate     float64       // intended rate
	Duration time.Duration // intended duration
	// Sent is the number of requests issued; OK and Errors split them.
	Sent, OK, Errors int
	// ErrorKinds counts errors by their text.
	ErrorKinds map[string]int
	// Latency holds every request's latency (successes and failures) in microseconds,
	// measured from its intended send time.
	Latency *hdrhistogram.Histogram
	// Elapsed is from the first intended send to the last completion.
	Elapsed time.Duration
	// SendSpan is from the first to the last actual send; AchievedRate = (Sent−1)/SendSpan.
	SendSpan     time.Duration
	AchievedRate float64
	// SendLag is the generator's own delay: actual send − intended send, in microseconds.
	// A large p99 here means the generator (or the machine) could not keep the schedule
	// and the latencies include that delay.
	SendLag *hdrhistogram.Histogram
}

// NewHistogram returns a latency histogram in microseconds from 1 µs to 10 minutes.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
}

// Run issues l.Count() requests at their intended times and waits for all of them.
// The schedule is fixed: request i is due at start + i/Rate. One scheduler goroutine
// hands due requests to the workers; it never waits for a response, so a slow server
// cannot slow the schedule down. Cancelling ctx stops issuing (requests not yet issued
// are not counted).
func Run(ctx context.Context, l Load, op Op) Result {
	l = l.withDefaults()
	n := l.Count()
	res := Result{
		Rate:       l.Rate,
		Duration:   l.Duration,
		ErrorKinds: map[string]int{},
		Latency:    NewHistogram(),
		SendLag:    NewHistogram(),
	}
	interval := time.Duration(float64(time.Second) / l.Rate)

	// The queue holds every request that is due but not yet picked up; it is as long as
	// the whole run so that handing over never blocks the scheduler.
	queue := make(chan time.Time, n)
	var (
		mu        sync.Mutex
		firstSend atomic.Int64
		lastSend  atomic.Int64
		lastDone  time.Time
		wg        sync.WaitGroup
	)
	record := func(intended, sent time.Time, err error) {
		done := time.Now()
		mu.Lock()
		defer mu.Unlock()
		res.observe(done.Sub(intended), err)
		_ = res.SendLag.RecordValue(max(sent.Sub(intended).Microseconds(), 0))
		if done.After(lastDone) {
			lastDone = done
		}
	}
	for range l.Workers {
		wg.Go(func() {
			for intended := range queue {
				sent := time.Now()
				ns := sent.UnixNano()
				firstSend.CompareAndSwap(0, ns)
				for {
					prev := lastSend.Load()
					if ns <= prev || lastSend.CompareAndSwap(prev, ns) {
						break
					}
				}
				rctx, cancel := context.WithDeadline(ctx, intended.Add(l.Timeout))
				err := op(rctx)
				cancel()
				record(intended, sent, err)
			}
		})
	}

	// The scheduler sleeps on its own thread in slices of at most 5 ms, so that a
	// cancelled ctx stops it quickly.
	unlock := precise()
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; {
		now := time.Now()
		// Hand over every request that is due (several when the scheduler woke late).
		for i < n {
			due := start.Add(time.Duration(i) * interval)
			if due.After(now) {
				break
			}
			queue <- due
			i++
		}
		if i < n {
			if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
				preciseSleep(min(wait, 5*time.Millisecond))
			}
		}
	}
	unlock()
	close(queue)
	wg.Wait()

	if lastDone.After(start) {
		res.Elapsed = lastDone.Sub(start)
	}
	if first, last := firstSend.Load(), lastSend.Load(); first > 0 && last > first {
		res.SendSpan = time.Duration(last - first)
		res.AchievedRate = float64(res.Sent-1) / res.SendSpan.Seconds()
	} else if res.Sent == 1 {
		res.AchievedRate = l.Rate
	}
	return res
}

// Sequential runs op count times, one at a time (closed loop: each request starts when
// the previous one ended). It measures service time without queueing, for side-by-side
// comparisons; it is not a load test.
func Sequential(ctx context.Context, count int, timeout time.Duration, op Op) Result {
	res := Result{ErrorKinds: map[string]int{}, Latency: NewHistogram(), SendLag: NewHistogram()}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	start := time.Now()
	for range count {
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		rctx, cancel := context.WithTimeout(ctx, timeout)
		err := op(rctx)
		cancel()
		res.observe(time.Since(t0), err)
	}
	res.Elapsed = time.Since(start)
	res.SendSpan = res.Elapsed
	if res.Elapsed > 0 {
		res.AchievedRate = float64(res.Sent) / res.Elapsed.Seconds()
	}
	return res
}

// ErrorRate is Errors/Sent (0 when nothing was sent).
func (r Result) ErrorRate() float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(r.Errors) / float64(r.Sent)
}

// Quantile is the latency at q (0..100) in milliseconds.
func (r Result) Quantile(q float64) float64 {
	if r.Latency == nil || r.Latency.TotalCount() == 0 {
		return 0
	}
	return float64(r.Latency.ValueAtQuantile(q)) / 1000
}

// Max is the largest latency in milliseconds.
func (r Result) Max() float64 {
	if r.Latency == nil || r.Latency.TotalCount() == 0 {
		return 0
	}
	return float64(r.Latency.Max()) / 1000
}

// TopErrors lists the most frequent error kinds, "count× text", most frequent first.
func (r Result) TopErrors(k int) []string {
	kinds := slices.Collect(maps.Keys(r.ErrorKinds))
	sort.Slice(kinds, func(i, j int) bool {
		a, b := r.ErrorKinds[kinds[i]], r.ErrorKinds[kinds[j]]
		if a != b {
			return a > b
		}
		return kinds[i] < kinds[j]
	})
	var out []string
	for _, kind := range kinds[:min(k, len(kinds))] {
		out = append(out, fmt.Sprintf("%d× %s", r.ErrorKinds[kind], kind))
	}
	return out
}

// errorKind is an error's first line, shortened, with deadline errors named plainly.
func errorKind(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timeout"
	}
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// observe counts one finished request and records its latency.
func (r *Result) observe(latency time.Duration, err error) {
	r.Sent++
	if err != nil {
		r.Errors++
		r.ErrorKinds[errorKind(err)]++
	} else {
		r.OK++
	}
	_ = r.Latency.RecordValue(max(latency.Microseconds(), 1))
}
