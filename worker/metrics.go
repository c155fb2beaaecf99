package worker

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// sdkBuckets are the Temporal SDK timers' histogram buckets, in seconds.
var sdkBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// MetricsHandler exposes the Temporal SDK's metrics (polls, task latencies, schedule-to-start
// times, sticky cache, request failures) through a Prometheus registry: counters become
// <name>_total, timers become histograms <name>_seconds, gauges stay <name>. The SDK's tags
// become labels; a metric's series may carry different label sets, as the SDK tags them.
func MetricsHandler(reg prometheus.Registerer) client.MetricsHandler {
	c := &sdkCollector{series: map[string]*sdkSeries{}}
	reg.MustRegister(c)
	return &promHandler{c: c}
}

type promHandler struct {
	c    *sdkCollector
	tags map[string]string
	// keys are the tags' names, sorted; tagKey is their part of a series id. The SDK asks
	// for a counter or timer at every emission: both are worked out once per tag set.
	keys   []string
	tagKey string
}

func (h *promHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	maps.Copy(merged, h.tags)
	maps.Copy(merged, tags)
	keys := slices.Sorted(maps.Keys(merged))
	var sb strings.Builder
	for _, k := range keys {
		sb.WriteString("\x00")
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(merged[k])
	}
	return &promHandler{c: h.c, tags: merged, keys: keys, tagKey: sb.String()}
}

func (h *promHandler) Counter(name string) client.MetricsCounter {
	s := h.c.get(kindCounter, name, h)
	return counterFunc(func(d int64) {
		h.c.mu.Lock()
		s.value += float64(d)
		h.c.mu.Unlock()
	})
}

func (h *promHandler) Gauge(name string) client.MetricsGauge {
	s := h.c.get(kindGauge, name, h)
	return gaugeFunc(func(v float64) {
		h.c.mu.Lock()
		s.value = v
		h.c.mu.Unlock()
	})
}

func (h *promHandler) Timer(name string) client.MetricsTimer {
	s := h.c.get(kindTimer, name, h)
	return timerFunc(func(d time.Duration) {
		sec := d.Seconds()
		h.c.mu.Lock()
		s.count++
		s.value += sec
		for i, b := range sdkBuckets {
			if sec <= b {
				s.buckets[i]++
			}
		}
		h.c.mu.Unlock()
	})
}

type (
	counterFunc func(int64)
	gaugeFunc   func(float64)
	timerFunc   func(time.Duration)
)

func (f counterFunc) Inc(d int64)          { f(d) }
func (f gaugeFunc) Update(v float64)       { f(v) }
func (f timerFunc) Record(d time.Duration) { f(d) }

const (
	kindCounter = iota
	kindGauge
	kindTimer
)

type sdkSeries struct {
	kind    int
	desc    *prometheus.Desc
	values  []string
	value   float64 // counter total, gauge value, timer sum
	count   uint64
	buckets []uint64 // cumulative
}

// sdkCollector is an unchecked collector: its metric set grows as the SDK names them.
type sdkCollector struct {
	mu     sync.Mutex
	series map[string]*sdkSeries
}

// get returns the series of kind and name with h's tags, created on first use.
func (c *sdkCollector) get(kind int, name string, h *promHandler) *sdkSeries {
	id := string(rune('0'+kind)) + name + h.tagKey
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.series[id]; ok {
		return s
	}
	labels := make([]string, len(h.keys))
	values := make([]string, len(h.keys))
	for i, k := range h.keys {
		labels[i], values[i] = promName(k), h.tags[k]
	}
	full := promName(name)
	switch kind {
	case kindCounter:
		full += "_total"
	case kindTimer:
		full += "_seconds"
	}
	s := &sdkSeries{kind: kind, desc: prometheus.NewDesc(full, "Temporal SDK metric "+name+".", labels, nil), values: values}
	if kind == kindTimer {
		s.buckets = make([]uint64, len(sdkBuckets))
	}
	c.series[id] = s
	return s
}

// Describe sends nothing: the collector is unchecked.
func (c *sdkCollector) Describe(chan<- *prometheus.Desc) {}

func (c *sdkCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.series {
		switch s.kind {
		case kindCounter:
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, s.value, s.values...)
		case kindGauge:
			ch <- prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, s.value, s.values...)
		case kindTimer:
			b := make(map[float64]uint64, len(sdkBuckets))
			for i, le := range sdkBuckets {
				b[le] = s.buckets[i]
			}
			ch <- prometheus.MustNewConstHistogram(s.desc, s.count, s.value, b, s.values...)
		}
	}
}

// promName makes a Temporal metric or tag name a valid Prometheus name.
func promName(s string) string {
	b := []byte(s)
	for i, ch := range b {
		ok := ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || i > 0 && ch >= '0' && ch <= '9'
		if !ok {
			b[i] = '_'
		}
	}
	return string(b)
}
