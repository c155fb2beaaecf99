package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
)

// loadCompose loads ../docker-compose.yml with compose-go (schema validation, interpolation,
// normalization, consistency checks), as `docker compose config` does, without an engine.
func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnv([]string{}), // the defaults in the file, not this machine's environment
		cli.WithProfiles(profiles),
		cli.WithConsistency(true),
		cli.WithResolvedPaths(true),
	)
	require.NoError(t, err)
	p, err := opts.LoadProject(ctx)
	require.NoError(t, err, "docker-compose.yml")
	return p
}

func TestComposeLoadsAndValidates(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	require.Equal(t, "lambda-microservice", p.Name)

	want := []string{
		"postgres", "redis", "temporal-schema", "temporal", "temporal-namespace", "temporal-ui",
		"migrate", "provider", "gateway-auth", "gateway", "runtimes", "api", "worker", "certs", "envoy",
		"prometheus", "grafana", "elasticsearch", "elastic-setup", "filebeat",
	}
	require.ElementsMatch(t, want, p.ServiceNames(), "services (kibana is behind the kibana profile)")
	withKibana := loadCompose(t, "kibana")
	require.Contains(t, withKibana.ServiceNames(), "kibana")

	// One-shot jobs run to completion; everything else is long-running and has a health
	// check, except the Temporal UI, whose image has no probe tool.
	oneShot := map[string]bool{"temporal-schema": true, "temporal-namespace": true, "migrate": true, "runtimes": true, "certs": true, "elastic-setup": true, "gateway-auth": true}
	for _, name := range p.ServiceNames() {
		s := p.Services[name]
		if oneShot[name] {
			require.Equal(t, "no", s.Restart, "%s is a one-shot job", name)
			continue
		}
		require.Equal(t, "unless-stopped", s.Restart, name)
		if name == "temporal-ui" {
			continue
		}
		require.NotNil(t, s.HealthCheck, "%s needs a healthcheck", name)
		require.False(t, s.HealthCheck.Disable, name)
		require.NotEmpty(t, s.HealthCheck.Test, name)
		require.NotNil(t, s.HealthCheck.Interval, name)
	}

	// depends_on conditions: what must be healthy or completed before what.
	cond := func(svc, dep string) string {
		d, ok := p.Services[svc].DependsOn[dep]
		require.True(t, ok, "%s depends on %s", svc, dep)
		return d.Condition
	}
	for _, c := range []struct{ svc, dep, cond string }{
		{"api", "postgres", types.ServiceConditionHealthy},
		{"api", "redis", types.ServiceConditionHealthy},
		{"api", "migrate", types.ServiceConditionCompletedSuccessfully},
		{"api", "temporal-namespace", types.ServiceConditionCompletedSuccessfully},
		{"api", "runtimes", types.ServiceConditionCompletedSuccessfully},
		{"worker", "temporal-namespace", types.ServiceConditionCompletedSuccessfully},
		{"worker", "gateway", types.ServiceConditionHealthy},
		{"migrate", "postgres", types.ServiceConditionHealthy},
		{"temporal", "temporal-schema", types.ServiceConditionCompletedSuccessfully},
		{"temporal-namespace", "temporal", types.ServiceConditionHealthy},
		{"temporal-ui", "temporal", types.ServiceConditionHealthy},
		{"gateway", "provider", types.ServiceConditionHealthy},
		{"gateway", "gateway-auth", types.ServiceConditionCompletedSuccessfully},
		{"runtimes", "gateway", types.ServiceConditionHealthy},
		{"envoy", "api", types.ServiceConditionHealthy},
		{"envoy", "certs", types.ServiceConditionCompletedSuccessfully},
		{"grafana", "prometheus", types.ServiceConditionHealthy},
		{"filebeat", "elasticsearch", types.ServiceConditionHealthy},
		{"filebeat", "elastic-setup", types.ServiceConditionCompletedSuccessfully},
	} {
		require.Equal(t, c.cond, cond(c.svc, c.dep), "%s -> %s", c.svc, c.dep)
	}

	// Images: the official ones, and ours built from the root Dockerfile.
	for name, img := range map[string]string{
		"temporal": "temporalio/server:", "temporal-ui": "temporalio/ui:", "temporal-schema": "temporalio/admin-tools:",
		"gateway": "ghcr.io/openfaas/gateway:", "envoy": "envoyproxy/envoy:", "prometheus": "prom/prometheus:",
		"grafana": "grafana/grafana:", "elasticsearch": "docker.elastic.co/elasticsearch/elasticsearch:",
		"filebeat": "docker.elastic.co/beats/filebeat:",
	} {
		require.True(t, strings.HasPrefix(p.Services[name].Image, img), "%s image %s", name, p.Services[name].Image)
	}
	for _, name := range []string{"api", "worker", "migrate", "provider"} {
		s := p.Services[name]
		require.NotNil(t, s.Build, name)
		require.Equal(t, "Dockerfile", filepath.Base(s.Build.Dockerfile), name)
		require.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile), name)
	}
	require.Equal(t, "platform", p.Services["api"].Build.Target)
	require.Equal(t, "local-provider", p.Services["provider"].Build.Target)
	require.Equal(t, types.ShellCommand{"api"}, p.Services["api"].Command)
	require.Equal(t, types.ShellCommand{"worker"}, p.Services["worker"].Command)
	require.Equal(t, types.ShellCommand{"provider"}, p.Services["provider"].Command)

	// The platform containers run read-only with no capabilities.
	for _, name := range []string{"api", "worker", "migrate", "envoy"} {
		s := p.Services[name]
		require.True(t, s.ReadOnly, name)
		require.Equal(t, []string{"ALL"}, s.CapDrop, name)
	}

	// The gateway points at the local provider; api and worker at the gateway and Temporal.
	require.Equal(t, "http://provider:8081/", *p.Services["gateway"].Environment["functions_provider_url"])
	require.Equal(t, ":8081", *p.Services["provider"].Environment["LAMBDA_PROVIDER_ADDR"])
	for _, name := range []string{"api", "worker"} {
		env := p.Services[name].Environment
		require.Equal(t, "http://gateway:8080", *env["LAMBDA_GATEWAY_URL"], name)
		require.Equal(t, "temporal:7233", *env["LAMBDA_TEMPORAL_ADDR"], name)
		require.NotEmpty(t, *env["LAMBDA_ADMIN_TOKEN"], name)
	}
	require.Equal(t, ":9101", *p.Services["worker"].Environment["LAMBDA_METRICS_ADDR"], "prometheus-compose.yml scrapes worker:9101")

	// Every bind mount's source is in the repository, and lands where its consumer reads it.
	mounts := map[string]string{} // target -> source
	for _, name := range p.ServiceNames() {
		for _, v := range p.Services[name].Volumes {
			if v.Type != types.VolumeTypeBind || strings.HasPrefix(v.Source, "/var/") {
				continue
			}
			_, err := os.Stat(v.Source)
			require.NoError(t, err, "%s mounts %s", name, v.Source)
			mounts[name+":"+v.Target] = v.Source
		}
	}
	root, _ := filepath.Abs("..")
	for target, src := range map[string]string{
		"envoy:/etc/envoy/envoy.yaml":                          "deploy/envoy/envoy.yaml",
		"prometheus:/etc/prometheus":                           "deploy/prometheus",
		"grafana:/etc/grafana/provisioning":                    "deploy/grafana/provisioning",
		"grafana:" + grafanaDashboardsPath:                     "deploy/grafana/dashboards",
		"filebeat:/usr/share/filebeat/filebeat.yml":            "deploy/elastic/filebeat.yml",
		"elastic-setup:/etc/lambda/index-template.json":        "deploy/elastic/index-template.json",
		"postgres:/docker-entrypoint-initdb.d/10-temporal.sql": "deploy/compose/postgres-init.sql",
	} {
		require.Equal(t, filepath.Join(root, src), mounts[target], target)
	}
	cmd := strings.Join(p.Services["prometheus"].Command, " ")
	require.Contains(t, cmd, "--config.file=/etc/prometheus/prometheus-compose.yml")
	require.FileExists(t, "prometheus/prometheus-compose.yml")

	checkComposeGatewayAuth(t, p)

	// Published ports bind to loopback only.
	for _, name := range p.ServiceNames() {
		for _, port := range p.Services[name].Ports {
			require.Equal(t, "127.0.0.1", port.HostIP, "%s publishes %s beyond loopback", name, port.Published)
		}
	}
}

// checkComposeGatewayAuth: the gateway's management API is behind basic auth, read from
// the files of its secret_mount_path (the gateway-auth volume), and every client of that
// API (api, worker, the runtimes job) sends the same files' credentials.
func checkComposeGatewayAuth(t *testing.T, p *types.Project) {
	t.Helper()
	gw := p.Services["gateway"]
	require.Equal(t, "true", *gw.Environment["basic_auth"], "the gateway's management API needs credentials")
	mountOf := func(svc, volume string) string {
		for _, v := range p.Services[svc].Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source == volume {
				return v.Target
			}
		}
		return ""
	}
	secrets := *gw.Environment["secret_mount_path"]
	require.Equal(t, secrets, mountOf("gateway", "gateway-auth"), "the gateway reads its credentials from the gateway-auth volume")
	require.NotEmpty(t, mountOf("gateway-auth", "gateway-auth"), "the gateway-auth job writes the volume")
	job := strings.Join(p.Services["gateway-auth"].Command, " ")
	for _, f := range []string{"basic-auth-user", "basic-auth-password"} {
		require.Contains(t, job, f, "the gateway-auth job writes %s", f)
	}
	for _, name := range []string{"api", "worker"} {
		env := p.Services[name].Environment
		dir := mountOf(name, "gateway-auth")
		require.NotEmpty(t, dir, "%s mounts the gateway's credentials", name)
		require.Equal(t, filepath.Join(dir, "basic-auth-user"), *env["LAMBDA_GATEWAY_USER_FILE"], name)
		require.Equal(t, filepath.Join(dir, "basic-auth-password"), *env["LAMBDA_GATEWAY_PASSWORD_FILE"], name)
	}
	dir := mountOf("runtimes", "gateway-auth")
	require.NotEmpty(t, dir, "the runtimes job mounts the gateway's credentials")
	cmd := strings.Join(p.Services["runtimes"].Command, " ")
	require.Contains(t, cmd, filepath.Join(dir, "basic-auth-password"))
	require.Equal(t, strings.Count(cmd, "curl "), strings.Count(cmd, `curl -fsS -u "$auth"`), "every call of the runtimes job sends the credentials")
}
