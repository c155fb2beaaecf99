package deploy

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/platform/metrics"
)

// temporalMetrics are the Temporal Go SDK metrics (Prometheus tally reporter, histogram timer
// type) that the rules and the dashboard read from the worker's /metrics.
var temporalMetrics = []string{
	"temporal_workflow_task_schedule_to_start_latency_seconds",
	"temporal_activity_schedule_to_start_latency_seconds",
}

// recordingRegistry is a fresh registry that also remembers what was registered.
type recordingRegistry struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *recordingRegistry) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registry.Register(c)
}

func (r *recordingRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// definedMetricNames returns every series name the platform can expose: the collectors of
// metrics.New* (described on a fresh registry; histograms with _bucket/_sum/_count), the Go
// and process collectors, `up`, and the Temporal SDK metrics listed above.
func definedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := &recordingRegistry{Registry: metrics.NewRegistry()}
	metrics.NewHTTP(reg)
	metrics.NewInvoke(reg)
	metrics.NewRuntime(reg)
	metrics.NewProvider(reg)
	metrics.NewWorkflow(reg)
	require.NotEmpty(t, reg.collectors)

	names := map[string]bool{"up": true}
	addHistogram := func(n string) {
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			names[n+s] = true
		}
	}
	for _, c := range reg.collectors {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			require.Len(t, m, 2, d.String())
			n := m[1]
			require.True(t, strings.HasPrefix(n, "lambda_"), "%s: platform metrics carry the lambda_ prefix", n)
			names[n] = true
			switch c := c.(type) {
			case *prometheus.HistogramVec:
				addHistogram(n)
			case *prometheus.SummaryVec:
				names[n+"_sum"], names[n+"_count"] = true, true
			case prometheus.Metric: // unlabelled: ask the metric itself what it is
				var pb dto.Metric
				require.NoError(t, c.Write(&pb))
				if pb.Histogram != nil {
					addHistogram(n)
				} else if pb.Summary != nil {
					names[n+"_sum"], names[n+"_count"] = true, true
				}
			}
		}
	}
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		n := mf.GetName()
		names[n] = true
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			addHistogram(n)
		case dto.MetricType_SUMMARY:
			names[n+"_sum"], names[n+"_count"] = true, true
		}
	}
	require.True(t, names["go_goroutines"] && names["process_resident_memory_bytes"], "go and process collectors")
	for _, n := range temporalMetrics {
		addHistogram(n)
	}
	return names
}

var (
	promqlString   = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	promqlBraces   = regexp.MustCompile(`\{[^{}]*\}`)
	promqlBrackets = regexp.MustCompile(`\[[^\[\]]*\]`)
	promqlGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promqlIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promqlKeywords = map[string]bool{
		"and": true, "or": true, "unless": true, "by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true, "offset": true, "bool": true, "inf": true, "nan": true,
		"atan2": true, "start": true, "end": true,
	}
)

// promqlMetricNames returns the metric names an expression selects (its bare identifiers that
// are not functions, aggregations, keywords, label names or parts of numbers and durations).
// Grafana variables must already be substituted.
func promqlMetricNames(expr string) []string {
	s := promqlString.ReplaceAllString(expr, `""`)
	s = promqlBraces.ReplaceAllString(s, " ")
	s = promqlBrackets.ReplaceAllString(s, " ")
	s = promqlGrouping.ReplaceAllString(s, " ")
	var out []string
	for _, loc := range promqlIdent.FindAllStringIndex(s, -1) {
		id := s[loc[0]:loc[1]]
		if loc[0] > 0 && (isDigit(s[loc[0]-1]) || s[loc[0]-1] == '.') { // 5m, 1e3, 0.5
			continue
		}
		if promqlKeywords[strings.ToLower(id)] {
			continue
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // function or aggregation
		}
		out = append(out, id)
	}
	return out
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

func TestPromQLMetricNamesExtraction(t *testing.T) {
	t.Parallel()
	got := promqlMetricNames(`sum by (le, runtime) (rate(lambda_x_bucket{runtime=~"a|b", path="fast"}[5m] offset 1h)) / ignoring (outcome) group_left sum(y) > 0.1 and on (runtime) up == 0 or z:rec:ratio_rate5m * 1e3`)
	require.Equal(t, []string{"lambda_x_bucket", "y", "up", "z:rec:ratio_rate5m"}, got)
}

// grafanaVars substitutes the Grafana variables the dashboards use.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
	"${datasource}", "prometheus", "$runtime", ".*",
)

func TestMetricNamesInRulesAndDashboardsExist(t *testing.T) {
	t.Parallel()
	known := definedMetricNames(t)
	_, records := ruleNames(t)
	for _, r := range records {
		require.Contains(t, r, ":", "recording rule %s should follow level:metric:operations", r)
		known[r] = true
	}

	used := map[string][]string{} // metric -> where
	for _, e := range ruleExprs(t) {
		for _, n := range promqlMetricNames(e) {
			used[n] = append(used[n], "rules: "+strings.TrimSpace(e))
		}
	}
	for file, d := range loadDashboards(t) {
		for _, p := range d.allPanels() {
			for _, tg := range p.Targets {
				for _, n := range promqlMetricNames(grafanaVars.Replace(tg.Expr)) {
					used[n] = append(used[n], file+": "+p.Title)
				}
			}
		}
		for _, v := range d.Templating.List {
			if q, ok := v.Query.(map[string]any); ok {
				if s, ok := q["query"].(string); ok {
					if m := regexp.MustCompile(`label_values\((\w+)`).FindStringSubmatch(s); m != nil {
						used[m[1]] = append(used[m[1]], file+": variable "+v.Name)
					}
				}
			}
		}
	}
	require.NotEmpty(t, used)
	var missing []string
	for n, where := range used {
		if !known[n] {
			missing = append(missing, n+" (used in "+where[0]+")")
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "metric names used by rules/dashboards but defined nowhere")

	// The SLO inputs are all used.
	for _, n := range []string{
		"lambda_invocation_duration_seconds_bucket", "lambda_http_request_duration_seconds_bucket",
		"lambda_invocations_total", "lambda_http_requests_total", "lambda_cache_requests_total",
		"lambda_request_log_write_seconds_bucket", "lambda_workflow_executions_total",
		"lambda_runtime_pool_workers", "lambda_provider_replicas", "up",
	} {
		require.Contains(t, used, n)
	}
}
