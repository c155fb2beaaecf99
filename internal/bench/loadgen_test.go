package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func okServer(t *testing.T, h func(n int64)) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if h != nil {
			h(n.Add(1))
		}
		_, _ = io.WriteString(w, `{"status":"succeeded"}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestRunAchievesTheTargetRate(t *testing.T) {
	srv := okServer(t, nil)
	l := Load{Rate: 1000, Duration: 2 * time.Second}
	res := Run(context.Background(), l, HTTPOp(NewClient(64), Request{Method: "POST", URL: srv.URL, Body: Event, Check: checkEnvelope}))
	require.Equal(t, 2000, res.Sent)
	require.Equal(t, 2000, res.OK)
	require.Zero(t, res.Errors)
	require.EqualValues(t, 2000, res.Latency.TotalCount())
	require.InDelta(t, 1000, res.AchievedRate, 50, "achieved %.1f/s", res.AchievedRate)
	require.InDelta(t, 2.0, res.SendSpan.Seconds(), 0.1)
}

// A server that stalls for 500 ms in the middle of a 3 s run: every request due during
// the stall waits for its end, so about a sixth of the requests see 0–500 ms and p99 is
// near 500 ms. A closed-loop generator would record one slow request per connection and
// a p99 near the normal service time (coordinated omission).
func TestRunShowsAStallInTheHighPercentiles(t *testing.T) {
	for _, workers := range []int{1, 256} {
		t.Run(map[int]string{1: "one connection", 256: "many connections"}[workers], func(t *testing.T) {
			var (
				mu         sync.Mutex
				start      time.Time
				stallUntil time.Time
			)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				now := time.Now()
				if start.IsZero() {
					start = now
				}
				if stallUntil.IsZero() && now.Sub(start) > time.Second {
					stallUntil = now.Add(500 * time.Millisecond)
				}
				until := stallUntil
				mu.Unlock()
				time.Sleep(time.Until(until))
				_, _ = io.WriteString(w, `{"status":"succeeded"}`)
			}))
			defer srv.Close()
			res := Run(context.Background(), Load{Rate: 200, Duration: 3 * time.Second, Workers: workers},
				HTTPOp(NewClient(workers), Request{Method: "GET", URL: srv.URL}))
			require.Equal(t, 600, res.Sent)
			require.Zero(t, res.Errors)
			require.Less(t, res.Quantile(50), 50.0, "p50")
			require.Greater(t, res.Quantile(90), 100.0, "p90: the stall hits ~17 %% of the requests")
			require.Greater(t, res.Quantile(99), 400.0, "p99")
			require.Less(t, res.Max(), 1000.0, "max")
		})
	}
}

func TestRunCountsErrorsAndTimeouts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		case "/fail":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"title":"overloaded"}`)
		default:
			_, _ = io.WriteString(w, `{"status":"failed"}`)
		}
	}))
	defer srv.Close()
	c := NewClient(64)

	res := Run(context.Background(), Load{Rate: 100, Duration: time.Second}, HTTPOp(c, Request{URL: srv.URL + "/fail"}))
	require.Equal(t, 100, res.Errors)
	require.Equal(t, []string{`100× status 503: {"title":"overloaded"}`}, res.TopErrors(3))

	res = Run(context.Background(), Load{Rate: 100, Duration: time.Second}, HTTPOp(c, Request{URL: srv.URL + "/envelope", Check: checkEnvelope}))
	require.Equal(t, 100, res.Errors)
	require.Equal(t, 100, res.ErrorKinds["execution failed"])

	res = Run(context.Background(), Load{Rate: 50, Duration: time.Second, Timeout: 100 * time.Millisecond}, HTTPOp(c, Request{URL: srv.URL + "/slow"}))
	require.Equal(t, 50, res.Errors)
	require.Equal(t, 50, res.ErrorKinds["timeout"], res.ErrorKinds)
	require.InDelta(t, 100, res.Quantile(50), 30, "a timeout's latency is the time spent")
}

func TestRunStopsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	res := Run(ctx, Load{Rate: 100, Duration: 10 * time.Second}, func(context.Context) error { return nil })
	require.Less(t, time.Since(t0), 2*time.Second)
	require.Greater(t, res.Sent, 10)
	require.Less(t, res.Sent, 100)
}

// The generator keeps the schedule at 10,000/s against a no-op op: its own overhead.
func TestRunGeneratorKeepsUpAtHighRates(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	res := Run(context.Background(), Load{Rate: 10000, Duration: time.Second}, func(context.Context) error { return nil })
	require.Equal(t, 10000, res.Sent)
	require.InDelta(t, 10000, res.AchievedRate, 1000)
	t.Logf("send lag p50 %d µs p99 %d µs max %d µs", res.SendLag.ValueAtQuantile(50), res.SendLag.ValueAtQuantile(99), res.SendLag.Max())
}

func TestSequential(t *testing.T) {
	var n atomic.Int32
	res := Sequential(context.Background(), 20, time.Second, func(context.Context) error {
		if n.Add(1)%10 == 0 {
			return errors.New("boom")
		}
		time.Sleep(time.Millisecond)
		return nil
	})
	require.Equal(t, 20, res.Sent)
	require.Equal(t, 2, res.Errors)
	require.GreaterOrEqual(t, res.Quantile(50), 1.0)
}

func TestSearchFindsTheKnee(t *testing.T) {
	// A fake target that sustains up to 2,600/s.
	fake := func(_ context.Context, rate float64) Result {
		res := Result{Sent: 100, ErrorKinds: map[string]int{}, Latency: NewHistogram(), SendLag: NewHistogram()}
		lat := int64(1000)
		if rate > 2600 {
			lat = 500000
		}
		for range 100 {
			_ = res.Latency.RecordValue(lat)
		}
		return res
	}
	s := Search{Start: 1000, Factor: 1.5, Max: 20000, Refine: 2, Pass: func(r Result) bool { return r.Quantile(99) < 100 }}
	sr := s.Run(context.Background(), fake)
	// 1000, 1500, 2250 pass; 3375 fails; refine 2812 (fail), 2531 (pass).
	require.Equal(t, []float64{1000, 1500, 2250, 3375, 2813, 2531}, rates(sr))
	require.Equal(t, 2531.0, sr.Best)

	s.Start = 5000
	sr = s.Run(context.Background(), fake)
	require.Equal(t, []float64{5000, 3333, 2222, 2778, 2500}, rates(sr), "down, then refine")
	require.Equal(t, 2500.0, sr.Best)

	s.Start, s.Max = 1000, 2000
	sr = s.Run(context.Background(), fake)
	require.Equal(t, []float64{1000, 1500, 2000}, rates(sr))
}

func rates(sr SearchResult) []float64 {
	var out []float64
	for _, s := range sr.Steps {
		out = append(out, s.Rate)
	}
	return out
}

func TestWriteSectionKeepsTheHandWrittenPart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	require.NoError(t, WriteSection(path, "first"))
	b, _ := os.ReadFile(path)
	require.Contains(t, string(b), BeginMarker+"\n\nfirst\n\n"+EndMarker)

	hand := "# Benchmarks\n\nHand-written notes before.\n\n" + BeginMarker + "\nold\n" + EndMarker + "\n\n## After\n\nkept\n"
	require.NoError(t, os.WriteFile(path, []byte(hand), 0o644))
	require.NoError(t, WriteSection(path, "second"))
	b, _ = os.ReadFile(path)
	require.Equal(t, "# Benchmarks\n\nHand-written notes before.\n\n"+BeginMarker+"\n\nsecond\n\n"+EndMarker+"\n\n## After\n\nkept\n", string(b))
	require.Equal(t, 1, strings.Count(string(b), BeginMarker))
}

func TestReportTable(t *testing.T) {
	res := Run(context.Background(), Load{Rate: 100, Duration: 100 * time.Millisecond}, func(context.Context) error { return nil })
	rep := &Report{Started: time.Now(), Finished: time.Now()}
	rep.add(Row{Section: "1 sync warm", Case: "python", Offered: 100, Result: &res, Budget: "p99 ≤ 10 ms", Verdict: "ok"})
	rep.add(Row{Section: "6 overhead", Case: "derived", Note: "1.2 ms", Budget: "≤ 1 ms", Verdict: "MISS"})
	md := rep.Markdown(ReadMachine(), "make bench")
	require.Contains(t, md, "| 1 | python | 100 |")
	require.Contains(t, md, "| 6 | derived — 1.2 ms |")
	require.Empty(t, rep.Empty())
}

func TestProcCPU(t *testing.T) {
	done := make(chan struct{})
	go func() { // burn some CPU in this process
		for {
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	p := MeasureProcCPU(context.Background(), 300*time.Millisecond)
	close(done)
	require.Greater(t, p.Total, 100*time.Millisecond)
	require.Contains(t, p.Markdown(5), "| program |")
}

func TestPipeEchoRoundTripsThroughAnotherProcess(t *testing.T) {
	op, stop, err := PipeEcho()
	require.NoError(t, err)
	res := Sequential(context.Background(), 200, time.Second, op)
	stop()
	require.EqualValues(t, 200, res.OK, "%v", res.TopErrors(3))
	require.Positive(t, res.Quantile(50))
	require.Error(t, op(context.Background()), "the child is gone after stop")
}

func TestDiskFlushWritesPagesToAPreallocatedFile(t *testing.T) {
	dir := t.TempDir()
	op, stop, err := DiskFlush(dir)
	require.NoError(t, err)
	res := Sequential(context.Background(), 20, time.Second, op)
	require.EqualValues(t, 20, res.OK, "%v", res.TopErrors(3))
	require.Positive(t, res.Quantile(50))
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, files, 1)
	b, err := os.ReadFile(filepath.Join(dir, files[0].Name()))
	require.NoError(t, err)
	require.Len(t, b, flushFileSize, "the file keeps its preallocated size")
	require.Equal(t, bytes.Repeat([]byte{'w'}, 20*flushBlock), b[:20*flushBlock], "each flush wrote the next page")
	require.Zero(t, b[20*flushBlock], "pages past the flushes are still zero")
	stop()
	files, err = os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, files, "stop removes the file")
}
