package devstack

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is the table of where everything is, as `lambda dev` prints it.
func (s *Stack) Summary() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	row := func(what, where, note string) { fmt.Fprintf(tw, "  %s\t%s\t%s\n", what, where, note) }
	if s.APIURL != "" {
		row("api", s.APIURL, "try: curl "+s.APIURL+"/readyz")
		if s.opts.Environ["LAMBDA_ADMIN_TOKEN"] == "" && s.opts.Env["LAMBDA_ADMIN_TOKEN"] == "" {
			row("admin token", s.AdminToken, "curl -H 'Authorization: Bearer <token>' (kept in "+s.DataDir+"/admin-token)")
		} else {
			row("admin token", "from LAMBDA_ADMIN_TOKEN", "")
		}
		row("console", s.APIURL+"/console/", "sign in with the admin token or a tenant's API key")
	}
	row("OpenFaaS gateway", s.GatewayURL, "UI "+s.GatewayUIURL+"  metrics "+s.GatewayMetricsURL)
	row("provider", s.ProviderURL, "functions: "+strings.Join(s.Functions, ", "))
	if s.TemporalAddr != "" {
		ui := "Web UI " + s.TemporalUIURL
		if s.TemporalUIURL == "" {
			ui = "headless"
		}
		if s.worker {
			ui += "  (worker running)"
		} else {
			ui += "  (no worker)"
		}
		row("Temporal", s.TemporalAddr, ui)
	}
	if s.PrometheusURL != "" {
		row("Prometheus", s.PrometheusURL, "targets: "+s.PrometheusURL+"/targets")
	} else {
		row("Prometheus", "-", "not running (LAMBDA_DEV_SKIP_PROMETHEUS, or the prometheus package could not be installed)")
	}
	row("PostgreSQL", redact(s.DatabaseURL), s.pgNote)
	row("Redis", redact(s.RedisURL), s.redisNote)
	row("logs", s.LogDir+"/", "one file per process")
	tw.Flush()
	return b.String()
}

func (s *Stack) printSummary() {
	s.printf("\nlambda-microservice is up (%s)\n\n%s\nCtrl-C stops everything.\n",
		time.Since(s.started).Round(100*time.Millisecond), s.Summary())
}

// redact hides a password in a URL.
func redact(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	cred := u[scheme+3 : at]
	if user, _, ok := strings.Cut(cred, ":"); ok {
		return u[:scheme+3] + user + ":***" + u[at:]
	}
	return u
}
