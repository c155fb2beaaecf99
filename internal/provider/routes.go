package provider

import (
	"net/http"

	"github.com/gorilla/mux"
	bootstrap "github.com/openfaas/faas-provider"
	"github.com/openfaas/faas-provider/logs"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler returns the provider's HTTP API. The route table is faas-provider's
// (bootstrap.Serve), mounted on a router of our own so that the provider can listen on
// loopback only, report a bind error instead of exiting, and run more than once per
// process (bootstrap.Serve binds every interface and uses a package-level router).
func (p *Provider) Handler() http.Handler {
	h := p.handlers()
	h.Logs = logs.NewLogHandlerFunc(requester{p}, p.cfg.ProxyTimeout)
	name := "{name:[" + bootstrap.NameExpression + "]+}"

	r := mux.NewRouter()
	route := func(path string, fn http.HandlerFunc, methods ...string) {
		r.Handle(path, p.instrument(path, fn)).Methods(methods...)
	}
	route("/system/functions", h.FunctionLister, http.MethodGet)
	route("/system/functions", h.DeployFunction, http.MethodPost)
	route("/system/functions", h.DeleteFunction, http.MethodDelete)
	route("/system/functions", h.UpdateFunction, http.MethodPut)
	route("/system/function/"+name, h.FunctionStatus, http.MethodGet)
	route("/system/scale-function/"+name, h.ScaleFunction, http.MethodPost)
	route("/system/endpoints/"+name, p.makeEndpointsHandler(), http.MethodGet)
	route("/system/prometheus-targets", p.makeTargetsHandler(), http.MethodGet)
	route("/system/info", h.Info, http.MethodGet)
	route("/system/secrets", h.Secrets, http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete)
	route("/system/logs", h.Logs, http.MethodGet)
	route("/system/namespaces", h.ListNamespaces, http.MethodGet)
	route("/healthz", h.Health, http.MethodGet, http.MethodHead)
	r.Handle("/metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{})).Methods(http.MethodGet)

	proxy := p.instrument("/function/{name}", h.FunctionProxy)
	r.Handle("/function/"+name, proxy)
	r.Handle("/function/"+name+"/", proxy)
	r.Handle("/function/"+name+"/{params:.*}", proxy)
	return r
}

// instrument records the lambda_http_* collectors for one route pattern. promhttp's
// wrappers keep the Flusher and CloseNotifier the streaming logs handler needs.
func (p *Provider) instrument(route string, h http.Handler) http.Handler {
	labels := prometheus.Labels{"route": route}
	reqs := p.httpm.Requests.MustCurryWith(labels)
	dur := p.httpm.Duration.MustCurryWith(labels)
	return promhttp.InstrumentHandlerInFlight(p.httpm.InFlight,
		promhttp.InstrumentHandlerCounter(reqs, promhttp.InstrumentHandlerDuration(dur, h)))
}
