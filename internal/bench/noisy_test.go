package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSlowHandlerSleeps(t *testing.T) {
	t.Parallel()
	src := SlowHandler(1500 * time.Millisecond)
	require.Contains(t, src, "time.sleep(1.5)")
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 to run the handler")
	}
	script := src + "\nimport json\nprint(json.dumps(handler({'n': 7}, None)))\n"
	src = strings.Replace(script, "time.sleep(1.5)", "time.sleep(0.01)", 1)
	out, err := exec.Command(python, "-c", src).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.JSONEq(t, `{"ok": true, "n": 7}`, string(out))
}

// TestAsyncPostOpCountsRefusals: a 202 is an accepted execution, a 429 a refusal counted
// apart from the other errors, whatever its detail says.
func TestAsyncPostOpCountsRefusals(t *testing.T) {
	t.Parallel()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.Header.Get("Prefer") != "respond-async" || r.Header.Get("Authorization") != "Bearer tok-a" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch i := n.Add(1); {
		case i%4 == 0:
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"detail":"the tenant has 1000 async executions queued or running"}`)
		case i%4 == 1 && i > 4:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"id":"x","status":"queued"}`)
		}
	}))
	defer srv.Close()
	p := &Platform{APIURL: srv.URL, Token: "tok-a"}
	f := Function{Name: "slow", Language: "python", Version: 1}
	res := Sequential(context.Background(), 12, 5*time.Second, p.AsyncPostOp(NewClient(1), f, Event))
	require.Equal(t, 12, res.Sent)
	require.Equal(t, 7, res.OK)
	require.Equal(t, 3, refused(res))
	require.Equal(t, 5, res.Errors)

	ns := NoisySettings{Sleep: 2 * time.Second, FloodRate: 20}
	note := noisyNote(ns, res, 1, 4, 3)
	require.Contains(t, note, "A: 12 async POSTs of a 2s sleep at 20/s → 7 accepted, 3 refused 429")
	require.Contains(t, note, ", 2 other errors (2× status 503")
	require.Contains(t, note, "runtime replicas 1 → max 4 (3 at the end)")
}

func TestNoisyNoteWithoutOtherErrors(t *testing.T) {
	t.Parallel()
	res := Result{Sent: 5, OK: 5, ErrorKinds: map[string]int{}, Latency: NewHistogram()}
	note := noisyNote(NoisySettings{Sleep: time.Second, FloodRate: 5}, res, 1, 1, 1)
	require.NotContains(t, note, "other errors")
	require.Contains(t, note, "5 accepted, 0 refused 429")
}

func TestNoisyPass(t *testing.T) {
	t.Parallel()
	mk := func(latencies []time.Duration, errs int) Result {
		r := Result{ErrorKinds: map[string]int{}, Latency: NewHistogram()}
		for i, l := range latencies {
			var err error
			if i < errs {
				err = context.DeadlineExceeded
			}
			r.observe(l, err)
		}
		return r
	}
	fast := make([]time.Duration, 200)
	for i := range fast {
		fast[i] = 3 * time.Millisecond
	}
	require.True(t, noisyPass(mk(fast, 0)))
	require.False(t, noisyPass(mk(fast, 1)), "an error misses")
	slowTail := append([]time.Duration{}, fast...)
	for i := range 3 {
		slowTail[i] = 150 * time.Millisecond // 1.5 % of the calls: the p99 is slow
	}
	require.False(t, noisyPass(mk(slowTail, 0)))
	require.False(t, noisyPass(mk(nil, 0)), "no calls: nothing shown")
}

func TestParseReplicas(t *testing.T) {
	t.Parallel()
	n, err := parseReplicas([]byte(`{"name":"runtime-python","replicas":3,"availableReplicas":2}`))
	require.NoError(t, err)
	require.Equal(t, 3, n)
	_, err = parseReplicas([]byte(`{"name":"runtime-python"}`))
	require.Error(t, err)
	_, err = parseReplicas([]byte(`not json`))
	require.Error(t, err)
}

func TestReplicaCountAsksTheProvider(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/system/function/runtime-python" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, `{"name":"runtime-python","replicas":5}`)
	}))
	defer srv.Close()
	p := &Platform{ProviderURL: srv.URL}
	n, err := p.ReplicaCount(context.Background(), "runtime-python")
	require.NoError(t, err)
	require.Equal(t, 5, n)
	_, err = p.ReplicaCount(context.Background(), "runtime-node")
	require.ErrorContains(t, err, "status 404")
}

func TestProcCPUSummary(t *testing.T) {
	t.Parallel()
	p := ProcCPU{Interval: 10 * time.Second, Total: 12 * time.Second, Groups: []ProcGroup{
		{Name: "temporal", Processes: 1, CPU: 6 * time.Second},
		{Name: "lambda worker", Processes: 1, CPU: 4 * time.Second},
		{Name: "postgres", Processes: 9, CPU: 2 * time.Second},
	}}
	require.Equal(t, "temporal 0.60, lambda worker 0.40 (of 1.20 cores in all, over 10 s)", p.Summary(2))
	require.Equal(t, "not measured", ProcCPU{}.Summary(3))
}

func TestInvokeErrorCountReadsTheActivityMetric(t *testing.T) {
	t.Parallel()
	page := `# HELP lambda_activity_duration_seconds Activity execution time, by activity and outcome (ok|error).
lambda_activity_duration_seconds_bucket{activity="Invoke",outcome="error",le="+Inf"} 17
lambda_activity_duration_seconds_count{activity="Invoke",outcome="error"} 17
lambda_activity_duration_seconds_count{activity="Invoke",outcome="ok"} 900
lambda_activity_duration_seconds_count{activity="Persist",outcome="error"} 3
`
	require.Equal(t, 17, invokeErrorCount([]byte(page)))
	require.Zero(t, invokeErrorCount(nil))
}
