package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lambda-microservice/lambda/internal/platform/health"
)

// routes lists every route of the API.
func (s *server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.requestID, s.recoverer, s.instrument)
	r.NotFound(s.notFound)
	r.MethodNotAllowed(s.methodNotAllowed)

	r.Get("/healthz", health.Live())
	r.Get("/readyz", s.ready.ReadyFor(s.isAdmin))
	r.Handle("/metrics", promhttp.HandlerFor(s.Gatherer, promhttp.HandlerOpts{}))
	if s.Console != nil {
		r.Get("/", http.RedirectHandler("/console/", http.StatusFound).ServeHTTP)
		r.Handle("/console", s.Console)
		r.Handle("/console/*", s.Console)
	}

	r.Route("/v1", func(r chi.Router) {
		r.Use(s.authenticate)
		r.Post("/tenants", s.handleCreateTenant())
		r.Post("/keys", s.handleCreateKey())
		r.Get("/keys", s.handleListKeys())
		r.Delete("/keys/{id}", s.handleRevokeKey())

		r.With(s.limitRegistrations).Post("/functions", s.handleCreateFunction())
		r.Get("/functions", s.handleListFunctions())
		r.Get("/functions/{name}", s.handleGetFunction())
		r.With(s.limitRegistrations).Put("/functions/{name}", s.handlePutFunction())
		r.Delete("/functions/{name}", s.handleDeleteFunction())
		r.Get("/functions/{name}/versions", s.handleListVersions())
		r.Get("/functions/{name}/versions/{version}", s.handleGetVersion())
		r.With(s.limitConcurrency).Post("/functions/{name}/invoke", s.handleInvoke())

		r.Get("/executions", s.handleListExecutions())
		r.With(s.limitLongPolls).Get("/executions/{id}", s.handleGetExecution())
		r.Delete("/executions/{id}", s.handleCancelExecution())

		r.With(s.limitRegistrations).Post("/pipelines", s.handleCreatePipeline())
		r.Get("/pipelines", s.handleListPipelines())
		r.Get("/pipelines/{name}", s.handleGetPipeline())
		r.With(s.limitRegistrations).Put("/pipelines/{name}", s.handlePutPipeline())
		r.Delete("/pipelines/{name}", s.handleDeletePipeline())
		r.Get("/pipelines/{name}/versions", s.handleListPipelineVersions())
		r.Get("/pipelines/{name}/versions/{version}", s.handleGetPipelineVersion())
		r.With(s.limitConcurrency).Post("/pipelines/{name}/runs", s.handleStartRun())

		r.Get("/runs", s.handleListRuns())
		r.With(s.limitLongPolls).Get("/runs/{id}", s.handleGetRun())
		r.Delete("/runs/{id}", s.handleCancelRun())
		r.Post("/runs/{id}/signals/{name}", s.handleSignalRun())
		r.Post("/runs/{id}/retry", s.handleRetryRun())

		r.Get("/stats/functions/{name}", s.handleFunctionStats())

		r.Get("/webhook-secret", s.handleGetWebhookSecret())
		r.Post("/webhook-secret", s.handleRotateWebhookSecret())

		r.With(s.limitRegistrations).Post("/schedules", s.handleCreateSchedule())
		r.Get("/schedules", s.handleListSchedules())
		r.Get("/schedules/{name}", s.handleGetSchedule())
		r.Patch("/schedules/{name}", s.handlePatchSchedule())
		r.Delete("/schedules/{name}", s.handleDeleteSchedule())
		r.Post("/schedules/{name}/trigger", s.handleTriggerSchedule())
		r.Get("/schedules/{name}/runs", s.handleScheduleRuns())

		r.Post("/sessions", s.handleOpenSession())
		r.Get("/sessions/{id}", s.handleGetSession())
		r.Delete("/sessions/{id}", s.handleDeleteSession())
		r.With(s.limitConcurrency).Post("/sessions/{id}/cells", s.handleRunCell())
		r.With(s.limitRegistrations).Post("/sessions/{id}/promote", s.handlePromoteSession())
	})
	return r
}
