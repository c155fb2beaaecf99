package devstack

import (
	"testing"
	"time"
)

// The gateway and the provider let a call run as long as a dependency resolve may take
// on a replica (LAMBDA_DEPS_RESOLVE_TIMEOUT), never less than the 60 s sync limit.
func TestUpstreamTimeoutCoversTheResolveTimeout(t *testing.T) {
	for _, c := range []struct {
		resolve string
		want    time.Duration
	}{
		{"", 2*time.Minute + 5*time.Second},
		{"10s", 65 * time.Second},
		{"5m", 5*time.Minute + 5*time.Second},
	} {
		s := &Stack{opts: Options{Environ: map[string]string{"LAMBDA_DEPS_RESOLVE_TIMEOUT": c.resolve}}}
		if got := s.upstreamTimeout(); got != c.want {
			t.Errorf("LAMBDA_DEPS_RESOLVE_TIMEOUT=%q: upstream timeout %s, want %s", c.resolve, got, c.want)
		}
		cmd, err := providerCommand(s)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, kv := range cmd.env {
			found = found || kv == "LAMBDA_PROVIDER_PROXY_TIMEOUT="+(c.want+5*time.Second).String()
		}
		if !found {
			t.Errorf("the provider's proxy timeout is not above the gateway's: %v", cmd.env)
		}
	}
}
