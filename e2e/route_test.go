package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/faas"
)

var gatewayInvocations = regexp.MustCompile(`gateway_function_invocation_total\{code="200",function_name="runtime-python\.openfaas-fn"\} (\d+)`)

func gatewayCount(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(stack.GatewayMetricsURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := gatewayInvocations.FindSubmatch(raw)
	if m == nil {
		return 0
	}
	n, err := strconv.Atoi(string(m[1]))
	require.NoError(t, err)
	return n
}

// TestBothRoutesReachTheRuntime calls the same registered script through the real OpenFaaS
// gateway (go-sdk, /function/runtime-python.openfaas-fn) and straight to a replica listed by
// the provider — the two routes LAMBDA_INVOKE_ROUTE chooses between.
func TestBothRoutesReachTheRuntime(t *testing.T) {
	src := "def handler(event, context):\n    return {\"sum\": event[\"a\"] + event[\"b\"], \"fn\": context.function}\n"
	mustRegister(t, "route-add", "python", src, nil)
	v := call(t, "GET", "/v1/functions/route-add/versions/1", "")
	require.Equal(t, http.StatusOK, v.status, v.raw)

	for _, route := range []string{faas.RouteGateway, faas.RouteDirect} {
		c, err := faas.New(faas.Config{GatewayURL: stack.GatewayURL, Namespace: "openfaas-fn", Route: route,
			EndpointsURL: stack.ProviderURL, EndpointsRefresh: 2e9, RuntimeSecretFile: stack.RuntimeSecretFile})
		require.NoError(t, err)
		before := gatewayCount(t)
		res, err := c.Run(context.Background(), "runtime-python", faas.Call{
			ExecutionID: "route-" + route, Tenant: "default", Function: "route-add", Version: 1,
			SHA256: buildHash(v.body["source"].(string)), Source: v.body["source"].(string),
			Event: json.RawMessage(`{"a":1,"b":2}`), TimeoutMS: 5000, MemoryMB: 128,
		})
		require.NoError(t, err, route)
		require.Equal(t, "succeeded", res.Status, route)
		require.JSONEq(t, `{"sum":3,"fn":"route-add"}`, string(res.Result), route)
		if route == faas.RouteGateway {
			require.Greater(t, gatewayCount(t), before, "the call went through the OpenFaaS gateway")
		} else {
			require.Equal(t, before, gatewayCount(t), "the direct route bypasses the gateway")
		}
	}
}

// buildHash is what a runtime host builds a version by: its source's sha256 (the
// version's own sha256 covers its settings and env too).
func buildHash(source string) string {
	sum := sha256.Sum256([]byte(source))
	return hex.EncodeToString(sum[:])
}
