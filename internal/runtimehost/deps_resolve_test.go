package runtimehost_test

import (
	"context"
	"net/http/httptest"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// The api resolves a registration's dependencies on the runtime host of its language
// (whose image has the toolchain), through its runtime client and the invoke secret.
func TestDepsResolveOnTheHost(t *testing.T) {
	_, err := exec.LookPath("npm")
	needDepsTool(t, err == nil, "npm")
	engine := newDepsEngine(t, nil)
	h, rt := depsHarness(t, "node", "", engine)
	srv := httptest.NewServer(h.handler)
	t.Cleanup(srv.Close)
	client := func(secret string) *faas.Client {
		c, err := faas.New(faas.Config{GatewayURL: srv.URL, Route: faas.RouteDirect, EndpointTemplate: srv.URL,
			RuntimeSecret: secret})
		require.NoError(t, err)
		return c
	}
	ctx := context.Background()

	lock, err := client(testSecret).ResolveDeps(ctx, rt.Function, map[string]string{"is-number": "7.0.0"})
	require.NoError(t, err)
	require.NoError(t, lock.Verify(rt.Deps))
	require.Equal(t, 1, lock.Packages)
	require.Contains(t, string(lock.Files["package-lock.json"]), `"is-number"`)
	require.Equal(t, int64(1), engine.ResolveRuns(), "resolved by the host's engine")

	// Without the deployment's secret nothing is resolved.
	_, err = client("wrong-secret-of-the-right-length").ResolveDeps(ctx, rt.Function, map[string]string{"is-odd": "3.0.1"})
	require.Error(t, err)
	require.Equal(t, int64(1), engine.ResolveRuns())

	// The host's refusals keep their kind and the installer's message.
	_, err = client(testSecret).ResolveDeps(ctx, rt.Function, map[string]string{"lambda-no-such-package-zz9": "1.0.0"})
	require.True(t, fault.Is(err, fault.Unprocessable), "%v", err)
	require.Contains(t, fault.Detail(err), "lambda-no-such-package-zz9")
	_, err = client(testSecret).ResolveDeps(ctx, rt.Function, map[string]string{"../etc": "1"})
	require.True(t, fault.Is(err, fault.Invalid), "%v", err)
}
