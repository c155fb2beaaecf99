package deploy

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// promtool returns the path of promtool (prereq.Missing when it is not installed).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		prereq.Missing(t, "promtool not found on PATH: install Debian's prometheus package (.ci/run does) to check the Prometheus config, rules and rule unit tests")
	}
	return p
}

// runPromtool runs promtool with args (bounded to 60 s) and returns its combined output.
func runPromtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool(t), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(pattern)
	require.NoError(t, err)
	require.NotEmpty(t, files, "no file matches %s", pattern)
	return files
}

func TestPrometheusRulesCheck(t *testing.T) {
	t.Parallel()
	out, err := runPromtool(t, append([]string{"check", "rules"}, mustGlob(t, "prometheus/rules/*.yml")...)...)
	require.NoError(t, err, out)
}

func TestPrometheusRulesUnitTests(t *testing.T) {
	t.Parallel()
	out, err := runPromtool(t, append([]string{"test", "rules"}, mustGlob(t, "prometheus/tests/*.yml")...)...)
	require.NoError(t, err, out)
	require.NotContains(t, out, "FAILED", out)
}

// Every alert in the rule files is exercised by at least one promtool unit test.
func TestPrometheusEveryAlertTested(t *testing.T) {
	t.Parallel()
	tested := map[string]bool{}
	for _, f := range mustGlob(t, "prometheus/tests/*.yml") {
		var ut struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `json:"alertname"`
				} `json:"alert_rule_test"`
			} `json:"tests"`
		}
		readYAML(t, f, &ut, false)
		for _, tc := range ut.Tests {
			for _, a := range tc.AlertRuleTest {
				tested[a.Alertname] = true
			}
		}
	}
	alerts, _ := ruleNames(t)
	require.NotEmpty(t, alerts)
	for _, a := range alerts {
		require.True(t, tested[a], "alert %s has no promtool unit test in deploy/prometheus/tests", a)
	}
}

// ruleFile mirrors a Prometheus rule file (strictly: an unknown key is an error).
type ruleFile struct {
	Groups []struct {
		Name     string `json:"name"`
		Interval string `json:"interval,omitempty"`
		Rules    []struct {
			Record        string            `json:"record,omitempty"`
			Alert         string            `json:"alert,omitempty"`
			Expr          string            `json:"expr"`
			For           string            `json:"for,omitempty"`
			KeepFiringFor string            `json:"keep_firing_for,omitempty"`
			Labels        map[string]string `json:"labels,omitempty"`
			Annotations   map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

// ruleNames returns the alert names and the recording rule names of deploy/prometheus/rules.
func ruleNames(t *testing.T) (alerts, records []string) {
	t.Helper()
	for _, f := range mustGlob(t, "prometheus/rules/*.yml") {
		var rf ruleFile
		readYAML(t, f, &rf, true)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					alerts = append(alerts, r.Alert)
					require.Contains(t, []string{"page", "ticket"}, r.Labels["severity"], "alert %s severity", r.Alert)
					require.NotEmpty(t, r.Annotations["summary"], "alert %s summary", r.Alert)
				} else {
					records = append(records, r.Record)
				}
			}
		}
	}
	return alerts, records
}

// ruleExprs returns every PromQL expression of the rule files.
func ruleExprs(t *testing.T) []string {
	t.Helper()
	var exprs []string
	for _, f := range mustGlob(t, "prometheus/rules/*.yml") {
		var rf ruleFile
		readYAML(t, f, &rf, true)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				exprs = append(exprs, r.Expr)
			}
		}
	}
	return exprs
}

// kubernetesSD mirrors Prometheus' kubernetes_sd_config, strictly. Debian's promtool is built
// without Kubernetes discovery, so these blocks are checked here and swapped for file_sd before
// the rest of the file goes through `promtool check config`.
type kubernetesSD struct {
	APIServer      string `json:"api_server,omitempty"`
	Role           string `json:"role"`
	KubeconfigFile string `json:"kubeconfig_file,omitempty"`
	Namespaces     *struct {
		OwnNamespace bool     `json:"own_namespace,omitempty"`
		Names        []string `json:"names,omitempty"`
	} `json:"namespaces,omitempty"`
	Selectors []struct {
		Role  string `json:"role"`
		Label string `json:"label,omitempty"`
		Field string `json:"field,omitempty"`
	} `json:"selectors,omitempty"`
	AttachMetadata *struct {
		Node      bool `json:"node,omitempty"`
		Namespace bool `json:"namespace,omitempty"`
	} `json:"attach_metadata,omitempty"`
}

// swapKubernetesSD validates and replaces every kubernetes_sd_configs list in v (recursively)
// with a file_sd_configs list reading emptyFile. It returns how many it replaced.
func swapKubernetesSD(t *testing.T, v any, emptyFile string) int {
	t.Helper()
	n := 0
	switch x := v.(type) {
	case map[string]any:
		if sd, ok := x["kubernetes_sd_configs"]; ok {
			raw, err := yaml.Marshal(sd)
			require.NoError(t, err)
			var sds []kubernetesSD
			require.NoError(t, strictUnmarshal(raw, &sds), "kubernetes_sd_configs")
			require.NotEmpty(t, sds)
			for _, s := range sds {
				require.Contains(t, []string{"node", "service", "pod", "endpoints", "endpointslice", "ingress"}, s.Role)
			}
			delete(x, "kubernetes_sd_configs")
			x["file_sd_configs"] = []any{map[string]any{"files": []any{emptyFile}}}
			n++
		}
		for _, c := range x {
			n += swapKubernetesSD(t, c, emptyFile)
		}
	case []any:
		for _, c := range x {
			n += swapKubernetesSD(t, c, emptyFile)
		}
	}
	return n
}

type promConfig struct {
	RuleFiles     []string `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName string `json:"job_name"`
	} `json:"scrape_configs"`
}

func jobNames(t *testing.T, file string) []string {
	t.Helper()
	var pc promConfig
	readYAML(t, file, &pc, false)
	var jobs []string
	for _, sc := range pc.ScrapeConfigs {
		jobs = append(jobs, sc.JobName)
	}
	return jobs
}

func TestPrometheusConfigCompose(t *testing.T) {
	t.Parallel()
	out, err := runPromtool(t, "check", "config", "prometheus/prometheus-compose.yml")
	require.NoError(t, err, out)
	require.Subset(t, jobNames(t, "prometheus/prometheus-compose.yml"), []string{"lambda-api", "lambda-worker", "lambda-provider"})
}

func TestPrometheusConfigProduction(t *testing.T) {
	t.Parallel()
	const file = "prometheus/prometheus.yml"
	require.Subset(t, jobNames(t, file), []string{"lambda-api", "lambda-worker", "lambda-runtime", "temporal", "openfaas-gateway"})

	out, err := runPromtool(t, "check", "config", file)
	if err == nil {
		return // a promtool with Kubernetes discovery checked the whole file
	}
	require.Contains(t, out, "kubernetes_sd_configs", "promtool rejected prometheus.yml:\n%s", out)

	// Debian's promtool has no Kubernetes discovery: check those blocks here and the rest
	// with promtool, rule files included.
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &doc))
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.json")
	require.NoError(t, os.WriteFile(empty, []byte("[]"), 0o644))
	require.Equal(t, 6, swapKubernetesSD(t, doc, empty), "alertmanagers + 5 kubernetes jobs")
	abs, err := filepath.Abs("prometheus")
	require.NoError(t, err)
	rules, _ := doc["rule_files"].([]any)
	require.NotEmpty(t, rules)
	for i, r := range rules {
		rules[i] = filepath.Join(abs, r.(string))
	}
	b, err := yaml.Marshal(doc)
	require.NoError(t, err)
	tmp := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(tmp, b, 0o644))
	out, err = runPromtool(t, "check", "config", tmp)
	require.NoError(t, err, out)
	require.True(t, strings.Contains(out, "rule files found") || strings.Contains(out, "SUCCESS"), out)
}

// readYAML decodes a YAML (or JSON) file into v; strict makes unknown fields an error.
func readYAML(t *testing.T, file string, v any, strict bool) {
	t.Helper()
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	if strict {
		require.NoError(t, strictUnmarshal(raw, v), file)
	} else {
		require.NoError(t, yaml.Unmarshal(raw, v), file)
	}
}
