package api_test

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/api"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
)

// The api's server counts the connections it accepts: a client that keeps its connection
// alive opens one for many requests, one that does not opens one per request
// (lambda_http_connections_total shows a client's connection churn).
func TestServerCountsAcceptedConnections(t *testing.T) {
	t.Parallel()
	m := metrics.NewHTTP(prometheus.NewRegistry())
	srv := api.HTTPServer(api.Config{ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute},
		http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }), m)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	get := func(c *http.Client) {
		t.Helper()
		resp, err := c.Get("http://" + ln.Addr().String() + "/")
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		require.NoError(t, resp.Body.Close())
	}

	alive := &http.Client{Transport: &http.Transport{}}
	defer alive.CloseIdleConnections()
	for range 5 {
		get(alive)
	}
	require.Equal(t, 1.0, accepted(t, m), "five requests on one kept-alive connection")

	closing := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 3 {
		get(closing)
	}
	require.Equal(t, 4.0, accepted(t, m), "one connection per request without keep-alive")
}

func accepted(t *testing.T, m *metrics.HTTP) float64 {
	t.Helper()
	var pb dto.Metric
	require.NoError(t, m.Connections.Write(&pb))
	return pb.GetCounter().GetValue()
}
