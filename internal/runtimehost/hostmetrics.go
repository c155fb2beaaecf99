package runtimehost

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lambda-microservice/lambda/internal/platform/metrics"
)

// hostMetrics holds the collectors of one host with their labels resolved once, so the hot
// path does no label lookups.
type hostMetrics struct {
	idle, busy, queue           prometheus.Gauge
	sessions                    prometheus.Gauge // notebook sessions' workers
	succeeded, failed, timedOut prometheus.Counter
	duration                    prometheus.Observer
	coldStarts                  prometheus.Counter
	buildsOK, buildsFailed      prometheus.Counter
	buildTime                   prometheus.Observer
	httpInFlight                prometheus.Gauge
	httpInvokeDuration          prometheus.Observer
	httpInvokeCodes             map[int]prometheus.Counter
	httpRequests                *prometheus.CounterVec
	httpDuration                *prometheus.HistogramVec
	sandbox                     *prometheus.GaugeVec
	pinned                      prometheus.Gauge
	tenantWaits                 prometheus.Counter
}

func newHostMetrics(title string, rm *metrics.Runtime, hm *metrics.HTTP) *hostMetrics {
	m := &hostMetrics{
		idle:            rm.Workers.WithLabelValues(title, "idle"),
		busy:            rm.Workers.WithLabelValues(title, "busy"),
		sessions:        rm.Workers.WithLabelValues(title, "session"),
		queue:           rm.Queue.WithLabelValues(title),
		succeeded:       rm.Executions.WithLabelValues(title, "succeeded"),
		failed:          rm.Executions.WithLabelValues(title, "failed"),
		timedOut:        rm.Executions.WithLabelValues(title, "timeout"),
		duration:        rm.Duration.WithLabelValues(title),
		coldStarts:      rm.ColdStarts.WithLabelValues(title),
		buildsOK:        rm.Builds.WithLabelValues(title, "ok"),
		buildsFailed:    rm.Builds.WithLabelValues(title, "failed"),
		buildTime:       rm.BuildTime.WithLabelValues(title),
		sandbox:         rm.Sandbox,
		pinned:          rm.Pinned.WithLabelValues(title),
		tenantWaits:     rm.TenantWaits.WithLabelValues(title),
		httpInvokeCodes: map[int]prometheus.Counter{},
	}
	if hm != nil {
		m.httpInFlight = hm.InFlight
		m.httpInvokeDuration = hm.Duration.WithLabelValues("/", "POST")
		m.httpRequests = hm.Requests
		m.httpDuration = hm.Duration
		for _, code := range []int{200, 400, 401, 413, 422, 428, 500, 503} {
			m.httpInvokeCodes[code] = hm.Requests.WithLabelValues("/", "POST", strconv.Itoa(code))
		}
	}
	return m
}

func (m *hostMetrics) invokeServed(code int, seconds float64) {
	if m.httpRequests == nil {
		return
	}
	c, ok := m.httpInvokeCodes[code]
	if !ok {
		c = m.httpRequests.WithLabelValues("/", "POST", strconv.Itoa(code))
	}
	c.Inc()
	m.httpInvokeDuration.Observe(seconds)
}

func (m *hostMetrics) execution(status string, seconds float64) {
	switch status {
	case statusSucceeded:
		m.succeeded.Inc()
	case statusFailed:
		m.failed.Inc()
	case statusTimeout:
		m.timedOut.Inc()
	}
	m.duration.Observe(seconds)
}
