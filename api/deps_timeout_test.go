package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/api"
	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/store"
)

// slowResolver answers after a delay, as a runtime host resolving a new set from a slow
// registry does.
type slowResolver struct {
	core.Resolver
	delay time.Duration
}

func (s slowResolver) ResolveDeps(ctx context.Context, fn string, requested map[string]string) (*deps.Lock, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Resolver.ResolveDeps(ctx, fn, requested)
}

// A registration whose dependencies take longer to resolve than the api's write timeout
// (within LAMBDA_DEPS_RESOLVE_TIMEOUT) is answered, not cut off; a registration without
// dependencies keeps the write timeout.
func TestRegistrationOutlivesTheWriteTimeoutWhileResolving(t *testing.T) {
	t.Parallel()
	f := newFixture(t, collaboratorsOption(func(d *core.Deps) {
		d.Deps = slowResolver{Resolver: d.Deps, delay: 1500 * time.Millisecond}
	}), fixtureOption(func(d *api.Deps, _ *store.Store, _ *cache.Cache) {
		d.Config.WriteTimeout, d.Config.DepsResolveTimeout = 500*time.Millisecond, 5*time.Second
	}))
	cfg := api.Config{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second,
		WriteTimeout: 500 * time.Millisecond, IdleTimeout: 10 * time.Second}
	srv := api.HTTPServer(cfg, f.h, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	start := time.Now()
	resp, err := http.Post("http://"+ln.Addr().String()+"/v1/functions", "application/json",
		strings.NewReader(registerDeps("slowdeps", "python", addSource, map[string]string{"greet": "1.0"})))
	require.NoError(t, err, "the answer came after %s", time.Since(start))
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, resp.StatusCode, "%s", body)
	require.Greater(t, time.Since(start), time.Second, "the resolve took its time")
}
