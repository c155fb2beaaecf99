package faas_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
)

// host is a stand-in runtime host speaking the host's HTTP contract: it knows a script
// only after it was sent once with its source.
type host struct {
	calls atomic.Int64
	known atomic.Bool
}

func (h *host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.calls.Add(1)
	var c faas.Call
	_ = json.NewDecoder(r.Body).Decode(&c)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case c.Source == "" && !h.known.Load():
		w.WriteHeader(http.StatusPreconditionRequired)
		_, _ = w.Write([]byte(`{"error":{"type":"SourceRequired","message":"send the source"}}`))
	case strings.Contains(c.Source, "broken"):
		w.WriteHeader(http.StatusUnprocessableEntity)
		_, _ = w.Write([]byte(`{"error":{"type":"CompileError","message":"line 3: invalid syntax"}}`))
	case c.Function == "share":
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"type":"TenantShare","message":"this tenant holds its share"}}`))
	case c.Function == "busy":
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"type":"Overloaded","message":"queue full"}}`))
	default:
		h.known.Store(true)
		_, _ = w.Write([]byte(`{"status":"succeeded","result":{"tenant":"` + c.Tenant + `"},"stdout":"ok\n","duration_ms":0.2}`))
	}
}

// gateway routes /function/<name>.<namespace> to the host, as the OpenFaaS gateway does.
func gateway(t *testing.T, h http.Handler, hits *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/function/runtime-python.openfaas-fn" {
			http.Error(w, "no such function", http.StatusNotFound)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestGatewayRouteSendsSourceOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	h := &host{}
	var hits atomic.Int64
	gw := gateway(t, h, &hits)
	c, err := faas.New(faas.Config{GatewayURL: gw.URL, Namespace: "openfaas-fn"})
	require.NoError(t, err)
	ctx := context.Background()
	call := faas.Call{ExecutionID: "e1", Tenant: "acme", Function: "add", SHA256: "abc", Source: "def handler(e, c): pass", Event: json.RawMessage(`{}`)}

	res, err := c.Run(ctx, "runtime-python", call)
	require.NoError(t, err)
	require.Equal(t, "succeeded", res.Status)
	require.JSONEq(t, `{"tenant":"acme"}`, string(res.Result))
	require.EqualValues(t, 2, h.calls.Load(), "cold: 428, then resent with the source")
	_, err = c.Run(ctx, "runtime-python", call)
	require.NoError(t, err)
	require.EqualValues(t, 3, h.calls.Load(), "warm: one round trip")

	_, err = c.Run(ctx, "runtime-missing", call)
	require.True(t, fault.Is(err, fault.Unavailable), "%v", err)
	call.Function = "busy"
	_, err = c.Run(ctx, "runtime-python", call)
	require.True(t, fault.Is(err, fault.Overloaded), "%v", err)
	call.Function = "share" // the tenant is at its share: its own kind, not an overload
	_, err = c.Run(ctx, "runtime-python", call)
	require.True(t, fault.Is(err, fault.TenantShare), "%v", err)
	call.Function, call.Source, call.BuildOnly = "add", "broken", true
	_, err = c.Run(ctx, "runtime-python", call)
	require.True(t, fault.Is(err, fault.Unprocessable))
	require.Contains(t, fault.Detail(err), "line 3")
}

func TestDirectRouteBalancesAndFallsBackToTheGateway(t *testing.T) {
	t.Parallel()
	h1, h2 := &host{}, &host{}
	r1, r2 := httptest.NewServer(h1), httptest.NewServer(h2)
	t.Cleanup(r1.Close)
	t.Cleanup(r2.Close)
	gwHost := &host{}
	var gwHits atomic.Int64
	gw := gateway(t, gwHost, &gwHits)
	var listed atomic.Value
	listed.Store([]string{r1.URL, r2.URL})
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/system/endpoints/runtime-python", r.URL.Path)
		_ = json.NewEncoder(w).Encode(map[string]any{"function": "runtime-python", "endpoints": listed.Load()})
	}))
	t.Cleanup(provider.Close)

	c, err := faas.New(faas.Config{GatewayURL: gw.URL, Namespace: "openfaas-fn", Route: faas.RouteDirect,
		EndpointsURL: provider.URL, EndpointsRefresh: 50 * time.Millisecond})
	require.NoError(t, err)
	ctx := context.Background()
	call := faas.Call{ExecutionID: "e1", Function: "add", SHA256: "abc", Source: "src", Event: json.RawMessage(`1`)}
	for i := 0; i < 10; i++ {
		_, err := c.Run(ctx, "runtime-python", call)
		require.NoError(t, err)
	}
	require.Zero(t, gwHits.Load(), "the gateway is not on the direct route")
	require.Greater(t, h1.calls.Load(), int64(2))
	require.Greater(t, h2.calls.Load(), int64(2))

	// A replica that went away: a call that may have reached it fails as a platform fault
	// (never resent: the handler could run twice); once the connection is refused, calls
	// take the gateway, and the list is fetched again.
	r2.Close()
	listed.Store([]string{r2.URL})
	var failed, ok int
	for i := 0; i < 6; i++ {
		_, err := c.Run(ctx, "runtime-python", call)
		if err != nil {
			require.True(t, fault.Is(err, fault.Unavailable), "%v", err)
			failed++
		} else {
			ok++
		}
	}
	require.LessOrEqual(t, failed, 2, "only calls on connections the replica had open fail")
	require.Positive(t, ok)
	require.Positive(t, gwHits.Load())

	_, err = faas.New(faas.Config{GatewayURL: gw.URL, Route: faas.RouteDirect})
	require.Error(t, err, "the direct route needs a way to find replicas")
	_, err = faas.New(faas.Config{GatewayURL: gw.URL, Route: "carrier-pigeon"})
	require.Error(t, err)
}

func TestDirectRouteWithAServiceTemplate(t *testing.T) {
	t.Parallel()
	h := &host{}
	replica := httptest.NewServer(h)
	t.Cleanup(replica.Close)
	var gwHits atomic.Int64
	gw := gateway(t, &host{}, &gwHits)
	// A Kubernetes Service URL would be http://{function}.{namespace}.svc.cluster.local:8080.
	c, err := faas.New(faas.Config{GatewayURL: gw.URL, Namespace: "openfaas-fn", Route: faas.RouteDirect,
		EndpointTemplate: replica.URL + "/?fn={function}&ns={namespace}"})
	require.NoError(t, err)
	_, err = c.Run(context.Background(), "runtime-python", faas.Call{ExecutionID: "e", SHA256: "x", Source: "s", Event: json.RawMessage(`1`)})
	require.NoError(t, err)
	require.Positive(t, h.calls.Load())
	require.Zero(t, gwHits.Load())
}

// Both routes carry the runtime hosts' invoke secret; a host that checks it (as the
// runtime host does) answers the calls.
func TestBothRoutesSendTheRuntimeSecret(t *testing.T) {
	t.Parallel()
	const secret = "0123456789abcdef-runtime"
	h := &host{}
	checked := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(platformsecret.RuntimeHeader) != secret {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":{"type":"Unauthorized","message":"no secret"}}`))
			return
		}
		h.ServeHTTP(w, r)
	})
	var hits atomic.Int64
	gw := gateway(t, checked, &hits)
	replica := httptest.NewServer(checked)
	t.Cleanup(replica.Close)
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"function": "runtime-python", "endpoints": []string{replica.URL}})
	}))
	t.Cleanup(provider.Close)
	call := faas.Call{ExecutionID: "e1", Function: "add", SHA256: "abc", Source: "src", Event: json.RawMessage(`1`)}
	for _, route := range []string{faas.RouteGateway, faas.RouteDirect} {
		cfg := faas.Config{GatewayURL: gw.URL, Namespace: "openfaas-fn", Route: route, EndpointsURL: provider.URL, EndpointsRefresh: time.Minute}
		bare, err := faas.New(cfg)
		require.NoError(t, err)
		_, err = bare.Run(context.Background(), "runtime-python", call)
		require.Error(t, err, "%s: a call without the secret is refused", route)
		cfg.RuntimeSecret = secret
		c, err := faas.New(cfg)
		require.NoError(t, err)
		res, err := c.Run(context.Background(), "runtime-python", call)
		require.NoError(t, err, route)
		require.Equal(t, "succeeded", res.Status, route)
	}
	_, err := faas.New(faas.Config{GatewayURL: gw.URL, RuntimeSecret: "short"})
	require.Error(t, err)
}

// TestDirectRouteKeepsItsReplicasWhileTheProviderIsDown: a refresh the provider does not
// answer keeps the replicas listed before, rather than sending every call to the gateway
// (which asks the same provider). The soak found calls failing for the whole SIGSTOP of
// the provider.
func TestDirectRouteKeepsItsReplicasWhileTheProviderIsDown(t *testing.T) {
	t.Parallel()
	h := &host{}
	replica := httptest.NewServer(h)
	t.Cleanup(replica.Close)
	gwHost := &host{}
	var gwHits atomic.Int64
	gw := gateway(t, gwHost, &gwHits)
	var down atomic.Bool
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "paused", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"function": "runtime-python", "endpoints": []string{replica.URL}})
	}))
	t.Cleanup(provider.Close)
	c, err := faas.New(faas.Config{GatewayURL: gw.URL, Namespace: "openfaas-fn", Route: faas.RouteDirect,
		EndpointsURL: provider.URL, EndpointsRefresh: 10 * time.Millisecond})
	require.NoError(t, err)
	ctx := context.Background()
	call := faas.Call{ExecutionID: "e1", Function: "add", SHA256: "abc", Source: "src", Event: json.RawMessage(`1`)}
	_, err = c.Run(ctx, "runtime-python", call)
	require.NoError(t, err)

	down.Store(true)
	for i := 0; i < 20; i++ {
		time.Sleep(5 * time.Millisecond) // refreshes come due and fail
		_, err := c.Run(ctx, "runtime-python", call)
		require.NoError(t, err)
	}
	require.Zero(t, gwHits.Load(), "calls stay on the replica the provider listed")
	require.EqualValues(t, 22, h.calls.Load())
}

// A session refused because its tenant holds its share of the replica's workers is a
// fault.TenantShare (429 to the caller), not an unavailable replica.
func TestSessionRefusedForTheTenantsShare(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"type":"TenantShare","message":"this tenant holds its share of the 4 workers"}}`))
	}))
	t.Cleanup(srv.Close)
	c, err := faas.New(faas.Config{GatewayURL: srv.URL, Namespace: "openfaas-fn"})
	require.NoError(t, err)
	_, err = c.OpenSession(context.Background(), srv.URL, faas.SessionOpen{ID: "s1", Tenant: "a", MemoryMB: 128})
	require.True(t, fault.Is(err, fault.TenantShare), "%v", err)
	require.Contains(t, err.Error(), "holds its share")
}
