package deploy

import (
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Every extension envoy.yaml names in a typed_config, so that protojson resolves its Any.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

const envoyFile = "envoy/envoy.yaml"

// loadEnvoy parses envoy.yaml the way Envoy does (YAML -> JSON -> proto3 JSON, unknown fields
// are errors) and runs the protoc-gen-validate rules on the bootstrap and on every Any inside it.
func loadEnvoy(t *testing.T) *bootstrapv3.Bootstrap {
	t.Helper()
	raw, err := os.ReadFile(envoyFile)
	require.NoError(t, err)
	js, err := yaml.YAMLToJSON(raw)
	require.NoError(t, err)
	var bs bootstrapv3.Bootstrap
	require.NoError(t, protojson.UnmarshalOptions{}.Unmarshal(js, &bs), "envoy.yaml does not decode into envoy.config.bootstrap.v3.Bootstrap")
	require.NoError(t, bs.ValidateAll(), "bootstrap validation")
	n := validateAnys(t, bs.ProtoReflect(), "bootstrap")
	require.Greater(t, n, 5, "expected the typed_configs of the listener, filters, access log, cluster options")
	return &bs
}

type allValidator interface{ ValidateAll() error }

// validateAnys walks m and, for every google.protobuf.Any, unpacks it (its type must be linked
// in), validates it and walks it in turn. It returns how many Anys it saw.
func validateAnys(t *testing.T, m protoreflect.Message, at string) int {
	t.Helper()
	n := 0
	visit := func(v protoreflect.Message, where string) {
		if a, ok := v.Interface().(*anypb.Any); ok {
			n++
			inner, err := a.UnmarshalNew()
			require.NoError(t, err, "%s: typed_config %s is not a known type (import its package)", where, a.GetTypeUrl())
			if va, ok := inner.(allValidator); ok {
				require.NoError(t, va.ValidateAll(), "%s: %s", where, a.GetTypeUrl())
			}
			n += validateAnys(t, inner.ProtoReflect(), where+"/"+string(inner.ProtoReflect().Descriptor().Name()))
			return
		}
		n += validateAnys(t, v, where)
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		where := at + "." + string(fd.Name())
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				visit(l.Get(i).Message(), where)
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				visit(mv.Message(), where+"["+k.String()+"]")
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			visit(v.Message(), where)
		}
		return true
	})
	return n
}

func unpack[T proto.Message](t *testing.T, a *anypb.Any, into T) T {
	t.Helper()
	require.NoError(t, a.UnmarshalTo(into))
	return into
}

// edge returns the HTTP connection manager of the single listener.
func edge(t *testing.T, bs *bootstrapv3.Bootstrap) (*hcmv3.HttpConnectionManager, *tlsv3.DownstreamTlsContext) {
	t.Helper()
	ls := bs.GetStaticResources().GetListeners()
	require.Len(t, ls, 1)
	fcs := ls[0].GetFilterChains()
	require.Len(t, fcs, 1)
	ts := fcs[0].GetTransportSocket()
	require.Equal(t, "envoy.transport_sockets.tls", ts.GetName())
	tlsCtx := unpack(t, ts.GetTypedConfig(), &tlsv3.DownstreamTlsContext{})
	require.Len(t, fcs[0].GetFilters(), 1)
	hcm := unpack(t, fcs[0].GetFilters()[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
	return hcm, tlsCtx
}

func TestEnvoyConfigValidates(t *testing.T) {
	t.Parallel()
	bs := loadEnvoy(t)

	sa := bs.GetAdmin().GetAddress().GetSocketAddress()
	require.Equal(t, "127.0.0.1", sa.GetAddress(), "admin must listen on loopback only")

	hcm, tlsCtx := edge(t, bs)
	certs := tlsCtx.GetCommonTlsContext().GetTlsCertificates()
	require.Len(t, certs, 1)
	require.Equal(t, "/etc/envoy/certs/tls.crt", certs[0].GetCertificateChain().GetFilename())
	require.Equal(t, "/etc/envoy/certs/tls.key", certs[0].GetPrivateKey().GetFilename())

	// JSON access log on stdout.
	require.NotEmpty(t, hcm.GetAccessLog())
	al := unpack(t, hcm.GetAccessLog()[0].GetTypedConfig(), &streamv3.StdoutAccessLog{})
	jf := al.GetLogFormat().GetJsonFormat()
	require.NotNil(t, jf, "access log must use json_format")
	for _, k := range []string{"@timestamp", "message", "http.request.id", "http.response.status_code", "lambda.runtime"} {
		require.Contains(t, jf.GetFields(), k)
	}

	// Local rate limit first, router last, both enabled.
	filters := hcm.GetHttpFilters()
	require.GreaterOrEqual(t, len(filters), 2)
	require.Equal(t, "envoy.filters.http.router", filters[len(filters)-1].GetName())
	var rl *localratelimitv3.LocalRateLimit
	for _, f := range filters {
		if f.GetName() == "envoy.filters.http.local_ratelimit" {
			rl = unpack(t, f.GetTypedConfig(), &localratelimitv3.LocalRateLimit{})
		}
	}
	require.NotNil(t, rl, "local rate limit filter")
	require.EqualValues(t, 100, rl.GetFilterEnabled().GetDefaultValue().GetNumerator())
	require.EqualValues(t, 100, rl.GetFilterEnforced().GetDefaultValue().GetNumerator())
	require.Positive(t, rl.GetTokenBucket().GetMaxTokens())

	// Upstream: the api cluster, bounded connect time.
	var names []string
	for _, c := range bs.GetStaticResources().GetClusters() {
		names = append(names, c.GetName())
		require.NotNil(t, c.GetConnectTimeout(), "cluster %s connect_timeout", c.GetName())
		require.NotEmpty(t, c.GetHealthChecks(), "cluster %s health checks", c.GetName())
	}
	require.Equal(t, []string{"api"}, names)

	routes := hcm.GetRouteConfig().GetVirtualHosts()
	require.Len(t, routes, 1)
	for _, r := range routes[0].GetRoutes() {
		ra := r.GetRoute()
		if ra == nil {
			continue
		}
		require.NotNil(t, ra.GetTimeout(), "route %s needs an upstream timeout", r.GetName())
		require.LessOrEqual(t, ra.GetTimeout().AsDuration().Seconds(), 65.0, "route %s", r.GetName())
		// Retrying on 5xx/reset replays a request the api may have acted on: only for GET/HEAD.
		on := ra.GetRetryPolicy().GetRetryOn()
		if strings.Contains(on, "5xx") || strings.Contains(on, "reset") || strings.Contains(on, "retriable-status-codes") {
			require.True(t, onlySafeMethods(r.GetMatch()), "route %s retries on %q but matches non-idempotent methods", r.GetName(), on)
		} else if on != "" {
			for _, cond := range strings.Split(on, ",") {
				require.Contains(t, []string{"connect-failure", "refused-stream"}, cond, "route %s", r.GetName())
			}
		}
		for _, h := range append(r.GetRequestHeadersToRemove(), hcm.GetRouteConfig().GetRequestHeadersToRemove()...) {
			require.NotEqual(t, "language-title", strings.ToLower(h), "Language-Title must reach the api")
		}
	}
}

// onlySafeMethods reports whether m constrains :method to GET and/or HEAD.
func onlySafeMethods(m *routev3.RouteMatch) bool {
	for _, h := range m.GetHeaders() {
		if h.GetName() != ":method" || h.GetInvertMatch() {
			continue
		}
		for _, method := range []string{"POST", "PUT", "PATCH", "DELETE"} {
			if headerMatches(h, method, true) {
				return false
			}
		}
		return true
	}
	return false
}

type edgeRequest struct {
	method, target string
	headers        map[string]string
}

// route returns the first route of the virtual host that matches req, as Envoy picks it.
func route(t *testing.T, vh *routev3.VirtualHost, req edgeRequest) *routev3.Route {
	t.Helper()
	u, err := url.Parse(req.target)
	require.NoError(t, err)
	hdr := map[string]string{":method": req.method, ":path": req.target}
	for k, v := range req.headers {
		hdr[strings.ToLower(k)] = v
	}
	for _, r := range vh.GetRoutes() {
		if routeMatches(t, r.GetMatch(), u.Path, hdr) {
			return r
		}
	}
	return nil
}

func routeMatches(t *testing.T, m *routev3.RouteMatch, path string, hdr map[string]string) bool {
	t.Helper()
	ok := false
	switch {
	case m.GetPath() != "":
		ok = path == m.GetPath()
	case m.GetPathSeparatedPrefix() != "":
		p := m.GetPathSeparatedPrefix()
		ok = path == p || strings.HasPrefix(path, p+"/")
	case m.GetSafeRegex() != nil:
		ok = fullMatch(t, m.GetSafeRegex().GetRegex(), path)
	case m.GetPathSpecifier() != nil:
		ok = strings.HasPrefix(path, m.GetPrefix())
	default:
		t.Fatalf("route match %v: path specifier not modelled by this test", m)
	}
	if !ok {
		return false
	}
	for _, h := range m.GetHeaders() {
		v, present := hdr[strings.ToLower(h.GetName())]
		if headerMatches(h, v, present) == h.GetInvertMatch() {
			return false
		}
	}
	return true
}

// headerMatches evaluates h (before invert_match) against a header value.
func headerMatches(h *routev3.HeaderMatcher, v string, present bool) bool {
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		return present == s.PresentMatch
	case nil:
		return present
	}
	if !present {
		return false
	}
	if h.GetStringMatch() != nil {
		return stringMatches(h.GetStringMatch(), v)
	}
	if h.GetSafeRegexMatch() != nil {
		return regexp.MustCompile("^(?:" + h.GetSafeRegexMatch().GetRegex() + ")$").MatchString(v)
	}
	return false
}

func stringMatches(s *matcherv3.StringMatcher, v string) bool {
	if s.GetIgnoreCase() {
		v = strings.ToLower(v)
	}
	switch p := s.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return v == p.Exact
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(v, p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(v, p.Suffix)
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(v, p.Contains)
	case *matcherv3.StringMatcher_SafeRegex:
		return regexp.MustCompile("^(?:" + p.SafeRegex.GetRegex() + ")$").MatchString(v)
	}
	return false
}

func fullMatch(t *testing.T, re, s string) bool {
	t.Helper()
	rx, err := regexp.Compile("^(?:" + re + ")$") // Envoy's safe_regex is RE2, matched on the whole path
	require.NoError(t, err)
	return rx.MatchString(s)
}

func TestEnvoyRoutes(t *testing.T) {
	t.Parallel()
	bs := loadEnvoy(t)
	hcm, _ := edge(t, bs)
	vh := hcm.GetRouteConfig().GetVirtualHosts()[0]
	auth := "Bearer k"

	for _, tc := range []struct {
		name   string
		req    edgeRequest
		status uint32 // direct response status; 0 = proxied to the api
		route  string
	}{
		{"invoke without Language-Title", edgeRequest{"POST", "/v1/functions/add/invoke", map[string]string{"Authorization": auth}}, 400, "invoke-missing-language-title"},
		{"invoke with version, without Language-Title", edgeRequest{"POST", "/v1/functions/add/invoke?version=2", map[string]string{"Authorization": auth}}, 400, "invoke-missing-language-title"},
		{"invoke without anything", edgeRequest{"POST", "/v1/functions/add/invoke", nil}, 401, "v1-missing-authorization"},
		{"invoke without Authorization", edgeRequest{"POST", "/v1/functions/add/invoke", map[string]string{"Language-Title": "python"}}, 401, "v1-missing-authorization"},
		{"invoke", edgeRequest{"POST", "/v1/functions/add/invoke", map[string]string{"Authorization": auth, "Language-Title": "python"}}, 0, "invoke"},
		{"list without Authorization", edgeRequest{"GET", "/v1/functions", nil}, 401, "v1-missing-authorization"},
		{"list", edgeRequest{"GET", "/v1/functions", map[string]string{"Authorization": auth}}, 0, "v1-read"},
		{"register", edgeRequest{"POST", "/v1/functions", map[string]string{"Authorization": auth}}, 0, "v1-write"},
		{"delete", edgeRequest{"DELETE", "/v1/functions/add", map[string]string{"Authorization": auth}}, 0, "v1-write"},
		{"GET on the invoke path is not an invoke", edgeRequest{"GET", "/v1/functions/add/invoke", map[string]string{"Authorization": auth}}, 0, "v1-read"},
		{"long poll", edgeRequest{"GET", "/v1/executions/01J?wait=30s", map[string]string{"Authorization": auth}}, 0, "executions-read"},
		{"cancel", edgeRequest{"DELETE", "/v1/executions/01J", map[string]string{"Authorization": auth}}, 0, "v1-write"},
		{"healthz", edgeRequest{"GET", "/healthz", nil}, 0, "liveness"},
		{"readyz", edgeRequest{"GET", "/readyz", nil}, 0, "readiness"},
		{"metrics stay inside", edgeRequest{"GET", "/metrics", nil}, 404, "metrics-not-public"},
		{"v1 look-alike", edgeRequest{"GET", "/v1x/functions", nil}, 404, "not-found"},
		{"elsewhere", edgeRequest{"GET", "/", nil}, 404, "not-found"},
	} {
		r := route(t, vh, tc.req)
		require.NotNil(t, r, tc.name)
		require.Equal(t, tc.route, r.GetName(), tc.name)
		if tc.status != 0 {
			require.Equal(t, tc.status, r.GetDirectResponse().GetStatus(), tc.name)
			require.Contains(t, r.GetDirectResponse().GetBody().GetInlineString(), `"status":`, tc.name)
			var ct string
			for _, h := range r.GetResponseHeadersToAdd() {
				if h.GetHeader().GetKey() == "content-type" {
					ct = h.GetHeader().GetValue()
				}
			}
			require.Equal(t, "application/problem+json", ct, tc.name)
		} else {
			require.Equal(t, "api", r.GetRoute().GetCluster(), tc.name)
		}
	}

	inv := route(t, vh, edgeRequest{"POST", "/v1/functions/add/invoke", map[string]string{"Authorization": auth, "Language-Title": "python"}})
	require.GreaterOrEqual(t, inv.GetRoute().GetTimeout().AsDuration().Seconds(), 60.0, "a sync invoke may run 60 s")
	lp := route(t, vh, edgeRequest{"GET", "/v1/executions/x?wait=30s", map[string]string{"Authorization": auth}})
	require.Greater(t, lp.GetRoute().GetTimeout().AsDuration().Seconds(), 30.0, "long poll waits up to 30 s")
}
