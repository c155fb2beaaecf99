package provider

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

type targetKey struct{}

// newProxyTransport is the pooled keep-alive transport shared by every proxied call.
func newProxyTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// makeProxyHandler serves /function/{name}[/{params}]: it picks a ready replica (fewest
// calls in flight) and forwards the call, passing status code, headers and body through
// unchanged. A deployed function without a ready replica is waited for up to ProxyWait.
func (p *Provider) makeProxyHandler() http.HandlerFunc {
	rp := &httputil.ReverseProxy{
		Transport: p.proxy,
		Rewrite: func(pr *httputil.ProxyRequest) {
			r := pr.In.Context().Value(targetKey{}).(*replica)
			base := r.baseURL()
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = base[len("http://"):]
			pr.Out.URL.Path = "/" + mux.Vars(pr.In)["params"]
			pr.Out.URL.RawPath = ""
			pr.Out.Host = ""
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if errors.Is(err, context.Canceled) && req.Context().Err() != nil {
				return // the caller went away
			}
			status := http.StatusBadGateway
			if errors.Is(err, context.DeadlineExceeded) {
				status = http.StatusGatewayTimeout
			}
			r := req.Context().Value(targetKey{}).(*replica)
			p.log.Warn("proxy call failed", zap.String(logging.FieldFunction, r.fn.name),
				zap.String("service.node.name", r.id), logging.Err(err))
			w.Header().Set("X-OpenFaaS-Internal", "proxy")
			http.Error(w, "cannot reach a replica of "+r.fn.name, status)
		},
		ErrorLog: zap.NewStdLog(p.log),
	}
	return func(w http.ResponseWriter, req *http.Request) {
		name := mux.Vars(req)["name"]
		fn, ok := p.lookup(name)
		if !ok {
			w.Header().Set("X-OpenFaaS-Internal", "proxy")
			http.Error(w, "function "+name+" not found", http.StatusNotFound)
			return
		}
		r := fn.pick()
		if r == nil {
			r = p.awaitReplica(req.Context(), fn)
			if r == nil {
				if req.Context().Err() == nil {
					w.Header().Set("X-OpenFaaS-Internal", "proxy")
					http.Error(w, "no ready replica of "+name, http.StatusServiceUnavailable)
				}
				return
			}
		}
		r.inflight.Add(1)
		defer r.inflight.Add(-1)
		ctx, cancel := context.WithTimeout(context.WithValue(req.Context(), targetKey{}, r), p.cfg.ProxyTimeout)
		defer cancel()
		rp.ServeHTTP(w, req.WithContext(ctx))
	}
}

// awaitReplica waits up to ProxyWait for a ready replica of fn.
func (p *Provider) awaitReplica(ctx context.Context, fn *function) *replica {
	timer := time.NewTimer(p.cfg.ProxyWait)
	defer timer.Stop()
	for {
		changed := fn.waitReady()
		if r := fn.pick(); r != nil {
			return r
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}
