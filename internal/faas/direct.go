package faas

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Routes of a runtime call.
const (
	// RouteGateway sends every call through the OpenFaaS gateway.
	RouteGateway = "gateway"
	// RouteDirect sends calls straight to a replica of the runtime function, found through
	// the provider's endpoint list (local) or a Service URL template (Kubernetes); the
	// gateway stays the route when no endpoint is known and serves all management calls.
	RouteDirect = "direct"
)

// resolver finds replica base URLs of runtime functions for the direct route.
type resolver struct {
	client   *http.Client
	list     string // provider base URL serving GET /system/endpoints/{function}
	template string // e.g. http://{function}.{namespace}.svc.cluster.local:8080
	ns       string
	refresh  time.Duration

	mu  sync.Mutex
	fns map[string]*replicas
}

type replicas struct {
	urls       atomic.Pointer[[]string]
	fetched    atomic.Int64 // unix nanos
	next       atomic.Uint64
	refreshing atomic.Bool
}

func newResolver(cfg Config, client *http.Client) (*resolver, error) {
	if cfg.EndpointTemplate == "" && cfg.EndpointsURL == "" {
		return nil, errors.New("faas: the direct route needs LAMBDA_ENDPOINTS_URL or LAMBDA_ENDPOINT_TEMPLATE")
	}
	return &resolver{client: client, list: strings.TrimRight(cfg.EndpointsURL, "/"), template: cfg.EndpointTemplate,
		ns: cfg.Namespace, refresh: cfg.EndpointsRefresh, fns: map[string]*replicas{}}, nil
}

// pick returns a replica base URL for fn, or "" when none is known (use the gateway).
func (r *resolver) pick(ctx context.Context, fn string) string {
	if r.template != "" {
		return strings.NewReplacer("{function}", fn, "{namespace}", r.ns).Replace(r.template)
	}
	r.mu.Lock()
	rs, ok := r.fns[fn]
	if !ok {
		rs = &replicas{}
		r.fns[fn] = rs
	}
	r.mu.Unlock()
	urls := rs.urls.Load()
	age := time.Duration(time.Now().UnixNano() - rs.fetched.Load())
	switch {
	case urls == nil:
		r.fetch(ctx, fn, rs) // first call: wait for the list
		urls = rs.urls.Load()
	case age > r.refresh && rs.refreshing.CompareAndSwap(false, true):
		go func() {
			defer rs.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			r.fetch(ctx, fn, rs)
		}()
	}
	if urls == nil || len(*urls) == 0 {
		return ""
	}
	list := *urls
	return list[rs.next.Add(1)%uint64(len(list))]
}

// forget drops fn's list after a replica refused a connection.
func (r *resolver) forget(fn string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.fns, fn)
}

func (r *resolver) fetch(ctx context.Context, fn string, rs *replicas) {
	urls, err := FetchEndpoints(ctx, r.client, r.list, fn)
	if err != nil {
		if old := rs.urls.Load(); old != nil && len(*old) > 0 {
			// The provider does not answer (paused, restarting): the replicas it listed
			// last still serve, and the gateway would ask the same provider. A replica
			// that went away meanwhile is forgotten on its first refused connection.
			rs.fetched.Store(time.Now().UnixNano())
			return
		}
		urls = []string{} // unknown: the gateway route until the next refresh
	}
	rs.urls.Store(&urls)
	rs.fetched.Store(time.Now().UnixNano())
}

// dialFailed reports an error raised before the request left this process, so retrying
// the call elsewhere cannot run the script twice.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
