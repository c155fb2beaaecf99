package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var metricRE = regexp.MustCompile(`\blambda_[a-z0-9_]+`)

// usedMetricNames lists every lambda_* metric the alert rules and dashboards query.
func usedMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../deploy/prometheus/rules/*.yml")
	require.NoError(t, err)
	dash, err := filepath.Glob("../deploy/grafana/dashboards/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	require.NotEmpty(t, dash)
	used := map[string]bool{}
	for _, f := range append(files, dash...) {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range metricRE.FindAllString(string(raw), -1) {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				m = strings.TrimSuffix(m, suffix)
			}
			used[m] = true
		}
	}
	return used
}

func scrape(t *testing.T, url string, into map[string]bool) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err, url)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, url)
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			into[strings.Fields(name)[0]] = true
		}
	}
}

// TestEveryMetricOfTheRulesAndDashboardsIsExported scrapes the running api, worker,
// provider and runtime hosts after traffic on every path (pipelines included), and checks that each lambda_*
// metric an alert or a dashboard panel uses is really exported by some process.
func TestEveryMetricOfTheRulesAndDashboardsIsExported(t *testing.T) {
	mustRegister(t, "obs-cached", "python", "def handler(event, context):\n    return event\n", map[string]any{"cache_ttl_s": 30})
	for i := 0; i < 2; i++ {
		require.Equal(t, http.StatusOK, invoke(t, "obs-cached", "python", `{"x":1}`).status)
	}
	r := invoke(t, "obs-cached", "python", `{"x":2}`, "Prefer", "respond-async")
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	require.Equal(t, "succeeded", call(t, "GET", r.header.Get("Location")+"?wait=60s", "").body["status"])
	// A pipeline run: its runs, steps and step latency.
	r = call(t, "POST", "/v1/pipelines", `{"name":"obs-pipeline","steps":[{"id":"one","function":"obs-cached"}]}`)
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	r = call(t, "POST", "/v1/pipelines/obs-pipeline/runs", `{"x":3}`)
	require.Equal(t, http.StatusOK, r.status, r.raw)

	urls := []string{stack.APIURL + "/metrics", stack.WorkerMetricsURL, stack.ProviderURL + "/metrics"}
	for _, fn := range stack.Functions {
		var list struct {
			Endpoints []string `json:"endpoints"`
		}
		resp, err := http.Get(stack.ProviderURL + "/system/endpoints/" + fn)
		require.NoError(t, err)
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		resp.Body.Close()
		require.NotEmpty(t, list.Endpoints, fn)
		urls = append(urls, list.Endpoints[0]+"/metrics")
	}
	used := usedMetricNames(t)
	var missing []string
	// The worker counts a finished execution just after its row is durable, and the
	// long-poll above returns as soon as the row is: scrape until the counts have landed.
	deadline := time.Now().Add(10 * time.Second)
	for {
		exported := map[string]bool{}
		for _, u := range urls {
			scrape(t, u, exported)
		}
		missing = missing[:0]
		for name := range used {
			if !exported[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.Empty(t, missing, "used by a rule or dashboard but no process exports them")
}

// TestProcessLogsAreECS reads the api's, the worker's and the provider's log files: every
// line is a JSON object with the ECS fields Filebeat and Elasticsearch rely on.
func TestProcessLogsAreECS(t *testing.T) {
	for _, name := range []string{"api", "worker", "provider"} {
		f, err := os.Open(filepath.Join(stack.LogDir, name+".log"))
		require.NoError(t, err, name)
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		lines := 0
		for sc.Scan() {
			if len(sc.Bytes()) == 0 || strings.HasPrefix(sc.Text(), "==== ") {
				continue // devstack's separator between runs, not the process's output
			}
			var doc map[string]any
			require.NoError(t, json.Unmarshal(sc.Bytes(), &doc), "%s.log: %s", name, sc.Text())
			for _, k := range []string{"@timestamp", "log.level", "message", "ecs.version", "service.name"} {
				require.Contains(t, doc, k, "%s.log: %s", name, sc.Text())
			}
			lines++
		}
		f.Close()
		require.NoError(t, sc.Err())
		require.Positive(t, lines, "%s logged nothing", name)
	}
}

// TestWorkerReadiness: the worker's /readyz answers once it polls and its dependencies answer.
func TestWorkerReadiness(t *testing.T) {
	base := strings.TrimSuffix(stack.WorkerMetricsURL, "/metrics")
	resp, err := http.Get(base + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	require.JSONEq(t, `{"status":"ready"}`, string(raw))
}
