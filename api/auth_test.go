package api_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/api"
	"github.com/lambda-microservice/lambda/internal/auth"
	"github.com/lambda-microservice/lambda/internal/cache"
	"github.com/lambda-microservice/lambda/internal/ratelimit"
	"github.com/lambda-microservice/lambda/internal/store"
)

const adminToken = "test-admin-token"

func withAuth(limits ratelimit.Config) func(*api.Deps, *store.Store, *cache.Cache) {
	return func(d *api.Deps, st *store.Store, c *cache.Cache) {
		d.Auth = auth.New(auth.Config{AdminToken: adminToken, AdminTenant: "default", CacheTTL: 5 * time.Second}, st)
		d.Limits = ratelimit.New(limits, c.Client(), zap.NewNop())
	}
}

func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

func (f *fixture) tenant(t *testing.T, name string) string {
	r := f.do(t, "POST", "/v1/tenants", fmt.Sprintf(`{"name":%q}`, name), bearer(adminToken)...)
	require.Equal(t, 201, r.status, r.raw)
	return r.body["api_key"].(string)
}

func TestTenantsCannotReachEachOther(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withAuth(ratelimit.Config{}))
	keyA, keyB := f.tenant(t, "alpha"), f.tenant(t, "beta")

	r := f.do(t, "POST", "/v1/functions", register("add", addSource), bearer(keyA)...)
	require.Equal(t, 201, r.status, r.raw)
	r = f.do(t, "POST", "/v1/functions/add/invoke", `{"a":1,"b":2}`, append(bearer(keyA), "Language-Title", "python")...)
	require.Equal(t, 200, r.status, r.raw)
	execID := r.body["id"].(string)

	// Tenant B sees none of A's objects: 404, never 403, and nothing changes.
	bola := []struct{ method, path, body string }{
		{"GET", "/v1/functions/add", ""},
		{"PUT", "/v1/functions/add", `{"source":"def handler(e, c):\n    return 0\n"}`},
		{"DELETE", "/v1/functions/add", ""},
		{"GET", "/v1/functions/add/versions", ""},
		{"GET", "/v1/functions/add/versions/1", ""},
		{"POST", "/v1/functions/add/invoke", `{"a":1,"b":2}`},
		{"GET", "/v1/executions/" + execID, ""},
		{"DELETE", "/v1/executions/" + execID, ""},
	}
	for _, c := range bola {
		r := f.do(t, c.method, c.path, c.body, append(bearer(keyB), "Language-Title", "python")...)
		require.Equal(t, 404, r.status, "%s %s as tenant B: %s", c.method, c.path, r.raw)
	}
	r = f.do(t, "GET", "/v1/functions", "", bearer(keyB)...)
	require.Empty(t, r.body["functions"])
	r = f.do(t, "GET", "/v1/executions", "", bearer(keyB)...)
	require.Empty(t, r.body["executions"])
	// B may use the same function name: names are unique per tenant.
	require.Equal(t, 201, f.do(t, "POST", "/v1/functions", register("add", addSource), bearer(keyB)...).status)
	// Only the admin creates tenants.
	require.Equal(t, 404, f.do(t, "POST", "/v1/tenants", `{"name":"gamma"}`, bearer(keyB)...).status)
	// A still has everything.
	require.Equal(t, 200, f.do(t, "GET", "/v1/executions/"+execID, "", bearer(keyA)...).status)
	require.EqualValues(t, 1, f.do(t, "GET", "/v1/functions/add", "", bearer(keyA)...).body["version"])
}

func TestAPIKeysAre401WhenMissingWrongOrRevoked(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withAuth(ratelimit.Config{}))
	key := f.tenant(t, "alpha")
	require.Equal(t, 200, f.do(t, "GET", "/v1/functions", "", bearer(key)...).status)

	for name, h := range map[string][]string{
		"none":      nil,
		"basic":     {"Authorization", "Basic dXNlcjpwYXNz"},
		"garbage":   bearer("nonsense"),
		"wrong key": bearer(key[:len(key)-4] + "AAAA"),
		"bad admin": bearer(adminToken + "x"),
	} {
		r := f.do(t, "GET", "/v1/functions", "", h...)
		require.Equal(t, 401, r.status, name)
		require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
		require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
	}

	// Rotate: a second key works; revoking the first makes it 401 at once.
	r := f.do(t, "POST", "/v1/keys", "", bearer(key)...)
	require.Equal(t, 201, r.status, r.raw)
	second := r.body["api_key"].(string)
	keys := f.do(t, "GET", "/v1/keys", "", bearer(second)...)
	require.Len(t, keys.body["keys"], 2)
	firstID := key[len("lmk_") : len("lmk_")+12]
	require.Equal(t, 204, f.do(t, "DELETE", "/v1/keys/"+firstID, "", bearer(second)...).status)
	require.Equal(t, 401, f.do(t, "GET", "/v1/functions", "", bearer(key)...).status)
	require.Equal(t, 200, f.do(t, "GET", "/v1/functions", "", bearer(second)...).status)
	// Another tenant cannot revoke it.
	other := f.tenant(t, "beta")
	secondID := second[len("lmk_") : len("lmk_")+12]
	require.Equal(t, 404, f.do(t, "DELETE", "/v1/keys/"+secondID, "", bearer(other)...).status)
	// Health and metrics stay open for probes and scrapers.
	require.Equal(t, 200, f.do(t, "GET", "/healthz", "").status)
}

func TestRateLimitRefusesABurstAndRecovers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, withAuth(ratelimit.Config{Rate: 5, Burst: 5}))
	key := f.tenant(t, fmt.Sprintf("burst-%d", time.Now().UnixNano()%100000))
	var ok, limited int
	var retryAfter string
	for i := 0; i < 20; i++ {
		r := f.do(t, "GET", "/v1/functions", "", bearer(key)...)
		switch r.status {
		case 200:
			ok++
		case 429:
			limited++
			retryAfter = r.header.Get("Retry-After")
			require.Equal(t, "application/problem+json", r.header.Get("Content-Type"))
		default:
			t.Fatalf("unexpected status %d", r.status)
		}
	}
	require.LessOrEqual(t, ok, 6)
	require.GreaterOrEqual(t, limited, 14)
	secs, err := strconv.Atoi(retryAfter)
	require.NoError(t, err)
	require.GreaterOrEqual(t, secs, 1)
	time.Sleep(1100 * time.Millisecond)
	require.Equal(t, 200, f.do(t, "GET", "/v1/functions", "", bearer(key)...).status, "the limit recovers")
}
