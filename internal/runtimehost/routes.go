package runtimehost

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// addRoutes lists every route of the runtime host.
func addRoutes(mux *http.ServeMux, h *Host, gatherer prometheus.Gatherer) {
	mux.Handle("POST /{$}", handleInvoke(h))
	mux.Handle("POST /_/sessions", instrument(h, "/_/sessions", platformOnly(h, handleOpenSession(h))))
	mux.Handle("GET /_/sessions", instrument(h, "/_/sessions", platformOnly(h, handleListSessions(h))))
	mux.Handle("POST /_/sessions/{id}/cells", instrument(h, "/_/sessions/{id}/cells", platformOnly(h, handleCell(h))))
	mux.Handle("DELETE /_/sessions/{id}", instrument(h, "/_/sessions/{id}", platformOnly(h, handleCloseSession(h))))
	mux.Handle("GET /_/health", instrument(h, "/_/health", handleHealth()))
	mux.Handle("GET /_/ready", instrument(h, "/_/ready", handleReady(h)))
	mux.Handle("GET /metrics", instrument(h, "/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})))
}
