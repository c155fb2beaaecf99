package auth_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/auth"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

// keys is an in-memory key table counting lookups.
type keys struct {
	m       map[string]store.APIKey
	lookups int
}

func (k *keys) GetAPIKey(_ context.Context, id string) (store.APIKey, error) {
	k.lookups++
	if key, ok := k.m[id]; ok {
		return key, nil
	}
	return store.APIKey{}, fault.New(fault.NotFound, "api key not found")
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	id, token, hash := auth.NewKey()
	require.Regexp(t, `^lmk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$`, token)
	ks := &keys{m: map[string]store.APIKey{id: {ID: id, Tenant: "acme", Hash: hash}}}
	a := auth.New(auth.Config{AdminToken: "root-token", AdminTenant: "default", CacheTTL: time.Minute}, ks)
	ctx := context.Background()

	p, err := a.Authenticate(ctx, "Bearer "+token)
	require.NoError(t, err)
	require.Equal(t, auth.Principal{Tenant: "acme", KeyID: id}, p)
	_, err = a.Authenticate(ctx, "bearer "+token)
	require.NoError(t, err, "the scheme is case-insensitive")
	require.Equal(t, 1, ks.lookups, "validated keys are cached")

	admin, err := a.Authenticate(ctx, "Bearer root-token")
	require.NoError(t, err)
	require.True(t, admin.Admin)
	require.Equal(t, "default", admin.Tenant)

	for _, h := range []string{"", "Bearer", "Bearer ", "Basic " + token, "Bearer root-token2", "Bearer " + token + "x",
		"Bearer lmk_" + id + "_wrongsecret", "Bearer lmk_short_x", "Bearer " + string(make([]byte, 300))} {
		_, err := a.Authenticate(ctx, h)
		require.True(t, fault.Is(err, fault.Unauthorized), "%q", h)
	}

	// Revoked: once the cache is dropped (Forget on revocation), the key is refused.
	now := time.Now()
	k := ks.m[id]
	k.RevokedAt = &now
	ks.m[id] = k
	a.Forget(id)
	_, err = a.Authenticate(ctx, "Bearer "+token)
	require.True(t, fault.Is(err, fault.Unauthorized))
}

func TestNoAdminWithoutToken(t *testing.T) {
	t.Parallel()
	a := auth.New(auth.Config{}, &keys{m: map[string]store.APIKey{}})
	_, err := a.Authenticate(context.Background(), "Bearer ")
	require.True(t, fault.Is(err, fault.Unauthorized))
	_, err = a.Authenticate(context.Background(), "Bearer anything")
	require.True(t, fault.Is(err, fault.Unauthorized), "an empty admin token matches nothing")
}
