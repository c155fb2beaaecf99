package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *dsRef `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string `json:"refId"`
		Expr       string `json:"expr"`
		Datasource *dsRef `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func (d grafanaDashboard) allPanels() []grafanaPanel {
	var out []grafanaPanel
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			out = append(out, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

func loadDashboards(t *testing.T) map[string]grafanaDashboard {
	t.Helper()
	out := map[string]grafanaDashboard{}
	for _, f := range mustGlob(t, "grafana/dashboards/*.json") {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var d grafanaDashboard
		require.NoError(t, json.Unmarshal(raw, &d), f)
		out[f] = d
	}
	return out
}

func TestGrafanaDashboards(t *testing.T) {
	t.Parallel()
	uids := map[string]bool{}
	var exprs []string
	for file, d := range loadDashboards(t) {
		require.NotEmpty(t, d.UID, file)
		require.False(t, uids[d.UID], "duplicate dashboard uid %s", d.UID)
		uids[d.UID] = true
		require.NotEmpty(t, d.Title, file)
		require.GreaterOrEqual(t, d.SchemaVersion, 36, file)

		vars := map[string]string{}
		for _, v := range d.Templating.List {
			vars[v.Name] = v.Type
		}
		require.Equal(t, "datasource", vars["datasource"], "%s: a datasource variable lets the dashboard run against any Prometheus", file)

		ids := map[int]bool{}
		for _, p := range d.allPanels() {
			where := fmt.Sprintf("%s panel %d %q", file, p.ID, p.Title)
			require.NotZero(t, p.ID, where)
			require.False(t, ids[p.ID], "duplicate panel id: %s", where)
			ids[p.ID] = true
			require.NotEmpty(t, p.Title, where)
			require.Positive(t, p.GridPos.W, where)
			require.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, where)
			if p.Type == "row" {
				continue
			}
			require.Contains(t, []string{"timeseries", "stat", "gauge", "table", "bargauge", "heatmap"}, p.Type, where)
			require.NotNil(t, p.Datasource, where)
			require.Equal(t, "${datasource}", p.Datasource.UID, where)
			require.NotEmpty(t, p.Targets, where)
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				require.NotEmpty(t, tg.RefID, where)
				require.False(t, refs[tg.RefID], "duplicate refId in %s", where)
				refs[tg.RefID] = true
				require.NotEmpty(t, strings.TrimSpace(tg.Expr), where)
				exprs = append(exprs, tg.Expr)
			}
		}
	}

	// What the dashboard must show.
	all := strings.Join(exprs, "\n")
	for _, want := range []string{
		"lambda_http_requests_total",                         // request rate
		"histogram_quantile(0.50", "histogram_quantile(0.95", // p50/p95
		"histogram_quantile(0.99",                          // p99
		"le, runtime, path",                                // by path and runtime
		`outcome="error"`,                                  // error ratio
		`lambda_cache_requests_total{result="hit"}`,        // cache hit ratio
		"temporal_workflow_task_schedule_to_start_latency", // workflow backlog
		"lambda_workflow_executions_total",                 // workflow outcomes
		"lambda_runtime_pool_workers",                      // pool usage
		"lambda_request_log_write_seconds_bucket",          // request-log write latency
		"lambda_pipeline_runs_total",                       // pipeline runs by mode and outcome
		"lambda_pipeline_steps_total",                      // pipeline steps by kind and outcome
		"lambda_pipeline_step_duration_seconds_bucket",     // pipeline step latency
	} {
		require.Contains(t, all, want)
	}

	// Every expression is valid PromQL: promtool parses them as recording rules.
	checkPromQL(t, exprs)
}

// checkPromQL has promtool parse exprs (Grafana variables substituted) as recording rules.
func checkPromQL(t *testing.T, exprs []string) {
	t.Helper()
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		rules = append(rules, rule{Record: fmt.Sprintf("dashboard:expr_%d", i), Expr: grafanaVars.Replace(e)})
	}
	doc := map[string]any{"groups": []any{map[string]any{"name": "dashboard-exprs", "rules": rules}}}
	b, err := yaml.Marshal(doc)
	require.NoError(t, err)
	f := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	require.NoError(t, os.WriteFile(f, b, 0o644))
	out, err := runPromtool(t, "check", "rules", f)
	require.NoError(t, err, out)
}

// grafanaDatasources mirrors Grafana's datasource provisioning file, strictly.
type grafanaDatasources struct {
	APIVersion  int `json:"apiVersion"`
	Datasources []struct {
		Name      string         `json:"name"`
		UID       string         `json:"uid"`
		Type      string         `json:"type"`
		Access    string         `json:"access"`
		URL       string         `json:"url"`
		IsDefault bool           `json:"isDefault"`
		Editable  bool           `json:"editable"`
		JSONData  map[string]any `json:"jsonData"`
	} `json:"datasources"`
}

// grafanaProviders mirrors Grafana's dashboard provider provisioning file, strictly.
type grafanaProviders struct {
	APIVersion int `json:"apiVersion"`
	Providers  []struct {
		Name                  string `json:"name"`
		OrgID                 int    `json:"orgId"`
		Folder                string `json:"folder"`
		Type                  string `json:"type"`
		DisableDeletion       bool   `json:"disableDeletion"`
		AllowUIUpdates        bool   `json:"allowUiUpdates"`
		UpdateIntervalSeconds int    `json:"updateIntervalSeconds"`
		Options               struct {
			Path                      string `json:"path"`
			FoldersFromFilesStructure bool   `json:"foldersFromFilesStructure"`
		} `json:"options"`
	} `json:"providers"`
}

func TestGrafanaProvisioning(t *testing.T) {
	t.Parallel()
	var ds grafanaDatasources
	readYAML(t, "grafana/provisioning/datasources/datasources.yml", &ds, true)
	require.Equal(t, 1, ds.APIVersion)
	types := map[string]string{}
	defaults := 0
	for _, d := range ds.Datasources {
		require.NotEmpty(t, d.UID)
		require.Contains(t, []string{"proxy", "direct"}, d.Access)
		require.True(t, strings.HasPrefix(d.URL, "http://") || strings.HasPrefix(d.URL, "https://"), d.URL)
		types[d.Type] = d.UID
		if d.IsDefault {
			defaults++
		}
	}
	require.Equal(t, 1, defaults, "exactly one default datasource")
	require.Contains(t, types, "prometheus")
	require.Contains(t, types, "elasticsearch")

	var pv grafanaProviders
	readYAML(t, "grafana/provisioning/dashboards/dashboards.yml", &pv, true)
	require.Equal(t, 1, pv.APIVersion)
	require.Len(t, pv.Providers, 1)
	require.Equal(t, "file", pv.Providers[0].Type)
	require.Equal(t, grafanaDashboardsPath, pv.Providers[0].Options.Path)
}

// grafanaDashboardsPath is where docker-compose mounts deploy/grafana/dashboards.
const grafanaDashboardsPath = "/var/lib/grafana/dashboards"
