package provider

import (
	"encoding/json"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/gorilla/mux"
	"github.com/openfaas/faas-provider/types"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

// Version is reported by GET /system/info.
var Version = "dev"

const maxBody = 1 << 20

// EndpointList is the answer of GET /system/endpoints/{name}: the base URLs of the
// function's ready replicas (each serves the runtime host's POST /).
type EndpointList struct {
	Function  string   `json:"function"`
	Endpoints []string `json:"endpoints"`
}

// handlers returns the faas-provider handler set of p.
func (p *Provider) handlers() *types.FaaSHandlers {
	return &types.FaaSHandlers{
		FunctionLister: p.makeListHandler(),
		DeployFunction: p.makeDeployHandler(),
		UpdateFunction: p.makeUpdateHandler(),
		DeleteFunction: p.makeDeleteHandler(),
		FunctionStatus: p.makeStatusHandler(),
		ScaleFunction:  p.makeScaleHandler(),
		Secrets:        makeNotImplemented("secrets are not supported by the local provider"),
		ListNamespaces: makeNamespacesHandler(),
		Info:           makeInfoHandler(),
		Health:         func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) },
		FunctionProxy:  p.makeProxyHandler(),
		Logs:           nil, // set in routes: the logs package's streaming handler
	}
}

func (p *Provider) makeListHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ns := r.URL.Query().Get("namespace"); ns != "" && ns != Namespace {
			writeJSON(w, http.StatusOK, []types.FunctionStatus{})
			return
		}
		writeJSON(w, http.StatusOK, p.list())
	}
}

func (p *Provider) makeDeployHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var spec types.FunctionDeployment
		if err := decode(r, &spec); err != nil {
			p.writeError(w, r, err)
			return
		}
		if err := p.deploy(spec); err != nil {
			p.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

func (p *Provider) makeUpdateHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var spec types.FunctionDeployment
		if err := decode(r, &spec); err != nil {
			p.writeError(w, r, err)
			return
		}
		if err := p.update(spec); err != nil {
			p.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

func (p *Provider) makeDeleteHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req types.DeleteFunctionRequest
		if err := decode(r, &req); err != nil {
			p.writeError(w, r, err)
			return
		}
		if req.FunctionName == "" {
			p.writeError(w, r, fault.New(fault.Invalid, "functionName is required"))
			return
		}
		if err := p.remove(req.FunctionName); err != nil {
			p.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

func (p *Provider) makeStatusHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		fn, ok := p.lookup(mux.Vars(r)["name"])
		if !ok || !namespaceOK(r) {
			p.writeError(w, r, fault.New(fault.NotFound, "function %s not found", mux.Vars(r)["name"]))
			return
		}
		writeJSON(w, http.StatusOK, fn.status())
	}
}

func (p *Provider) makeScaleHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req types.ScaleServiceRequest
		if err := decode(r, &req); err != nil {
			p.writeError(w, r, err)
			return
		}
		name := mux.Vars(r)["name"]
		if req.ServiceName != "" && req.ServiceName != name {
			p.writeError(w, r, fault.New(fault.Invalid, "serviceName %s does not match the path's %s", req.ServiceName, name))
			return
		}
		if err := p.setReplicas(name, req.Replicas); err != nil {
			p.writeError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}
}

// makeEndpointsHandler answers GET /system/endpoints/{name} with an EndpointList.
func (p *Provider) makeEndpointsHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := mux.Vars(r)["name"]
		eps, err := p.Endpoints(name)
		if err != nil {
			p.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, EndpointList{Function: name, Endpoints: eps})
	}
}

// TargetGroup is one entry of Prometheus' HTTP service discovery format.
type TargetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// makeTargetsHandler answers GET /system/prometheus-targets: every ready replica as a
// Prometheus http_sd target (host:port, labels function and replica), so a local
// Prometheus scrapes the runtime hosts' /metrics wherever their ports are.
func (p *Provider) makeTargetsHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out := []TargetGroup{}
		p.mu.RLock()
		fns := make([]*function, 0, len(p.fns))
		for _, fn := range p.fns {
			fns = append(fns, fn)
		}
		p.mu.RUnlock()
		for _, fn := range fns {
			for _, rep := range fn.readySnapshot() {
				if b := rep.baseURL(); b != "" {
					out = append(out, TargetGroup{
						Targets: []string{strings.TrimPrefix(b, "http://")},
						Labels:  map[string]string{"function": fn.name, "replica": rep.id},
					})
				}
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Labels["replica"] < out[j].Labels["replica"] })
		writeJSON(w, http.StatusOK, out)
	}
}

func makeNamespacesHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, []string{Namespace})
	}
}

func makeInfoHandler() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, types.ProviderInfo{
			Name:          "lambda-provider",
			Orchestration: "process",
			Version:       &types.VersionInfo{Release: Version, SHA: Version},
		})
	}
}

func makeNotImplemented(msg string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, msg, http.StatusNotImplemented)
	}
}

func namespaceOK(r *http.Request) bool {
	ns := r.URL.Query().Get("namespace")
	return ns == "" || ns == Namespace
}

func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return fault.Wrap(fault.Invalid, err, "read request body")
	}
	if len(body) > maxBody {
		return fault.New(fault.TooLarge, "request body over %d bytes", maxBody)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fault.Wrap(fault.Invalid, err, "decode request body: %s", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError is the one place the provider maps an error to an HTTP status. The
// faas-provider API answers errors as plain text.
func (p *Provider) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := fault.KindOf(err).HTTPStatus()
	if status >= 500 {
		p.log.Error("provider request failed", zap.String("http.request.method", r.Method),
			zap.String("url.path", r.URL.Path), logging.Err(err))
	}
	http.Error(w, fault.Detail(err), status)
}
