package worker

import (
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

// The SDK's metrics reach Prometheus as counters, gauges and histograms with its tags as
// labels; a tag set reached through different WithTags chains is one series.
func TestSDKMetricsBecomePrometheusSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := MetricsHandler(reg)
	a := h.WithTags(map[string]string{"task_queue": "q", "workflow_type": "W"})
	b := h.WithTags(map[string]string{"workflow_type": "W"}).WithTags(map[string]string{"task_queue": "q"})
	a.Counter("temporal_request").Inc(2)
	b.Counter("temporal_request").Inc(3)
	h.Counter("temporal_request").Inc(1) // no tags: a series of its own
	a.Timer("temporal_request_latency").Record(3 * time.Millisecond)
	b.Timer("temporal_request_latency").Record(2 * time.Second)
	a.Gauge("temporal_num_pollers").Update(4)
	a.WithTags(map[string]string{"task_queue": "other"}).Gauge("temporal_num_pollers").Update(7)

	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string][]string{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := ""
			for _, l := range m.GetLabel() {
				labels += l.GetName() + "=" + l.GetValue() + ","
			}
			var v string
			switch {
			case m.GetCounter() != nil:
				v = labels + " " + ftoa(m.GetCounter().GetValue())
			case m.GetGauge() != nil:
				v = labels + " " + ftoa(m.GetGauge().GetValue())
			case m.GetHistogram() != nil:
				hist := m.GetHistogram()
				v = labels + " n=" + ftoa(float64(hist.GetSampleCount()))
				for _, bk := range hist.GetBucket() {
					if bk.GetUpperBound() == 0.005 || bk.GetUpperBound() == 2.5 {
						v += " le" + ftoa(bk.GetUpperBound()) + "=" + ftoa(float64(bk.GetCumulativeCount()))
					}
				}
			}
			got[f.GetName()] = append(got[f.GetName()], v)
		}
	}
	require.ElementsMatch(t, []string{"task_queue=q,workflow_type=W, 5", " 1"}, got["temporal_request_total"])
	require.Equal(t, []string{"task_queue=q,workflow_type=W, n=2 le0.005=1 le2.5=2"}, got["temporal_request_latency_seconds"])
	require.ElementsMatch(t, []string{"task_queue=q,workflow_type=W, 4", "task_queue=other,workflow_type=W, 7"}, got["temporal_num_pollers"])
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// The SDK's way: a handler per task with its tags, a counter and a timer looked up at
// each emission.
func BenchmarkSDKEmission(b *testing.B) {
	h := MetricsHandler(prometheus.NewRegistry()).WithTags(map[string]string{
		"namespace": "default", "task_queue": "lambda-executions", "workflow_type": "RunPipeline", "activity_type": "CallStep"})
	b.ReportAllocs()
	for b.Loop() {
		h.Counter("temporal_local_activity_total").Inc(1)
		h.Timer("temporal_local_activity_execution_latency").Record(time.Millisecond)
	}
}
