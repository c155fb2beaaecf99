package auth_test

import (
	"context"
	"sync"
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

// gatedKeys answers lookups only when let through, so a test can hold one in flight.
type gatedKeys struct {
	mu      sync.Mutex
	key     store.APIKey
	lookups int
	gate    chan struct{} // nil: answer at once
}

func (k *gatedKeys) GetAPIKey(_ context.Context, id string) (store.APIKey, error) {
	k.mu.Lock()
	k.lookups++
	gate, key := k.gate, k.key // the row as the read saw it
	k.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return key, nil
}

func (k *gatedKeys) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lookups
}

// TestKeyInUseIsRefreshedAhead: past three quarters of its TTL a cached key is re-read in
// the background while calls keep being answered from the cache — no call waits for
// PostgreSQL — and one re-read serves them all.
func TestKeyInUseIsRefreshedAhead(t *testing.T) {
	t.Parallel()
	id, token, hash := auth.NewKey()
	ks := &gatedKeys{key: store.APIKey{ID: id, Tenant: "acme", Hash: hash}}
	a := auth.New(auth.Config{CacheTTL: 400 * time.Millisecond}, ks)
	ctx := context.Background()
	_, err := a.Authenticate(ctx, "Bearer "+token)
	require.NoError(t, err)
	require.Equal(t, 1, ks.count())

	gate := make(chan struct{})
	ks.mu.Lock()
	ks.gate = gate
	ks.mu.Unlock()
	time.Sleep(320 * time.Millisecond) // past 3/4 of the TTL, before it expires
	for range 50 {
		done := make(chan error, 1)
		go func() {
			_, err := a.Authenticate(ctx, "Bearer "+token)
			done <- err
		}()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(time.Second):
			t.Fatal("a call waited for the background re-read")
		}
	}
	require.Eventually(t, func() bool { return ks.count() == 2 }, time.Second, 5*time.Millisecond, "one re-read for all the calls")
	close(gate)
	time.Sleep(200 * time.Millisecond) // the old entry's expiry: the refreshed one serves
	_, err = a.Authenticate(ctx, "Bearer "+token)
	require.NoError(t, err)
	require.Equal(t, 2, ks.count(), "the re-read renewed the entry")
}

// TestRevocationDuringARead: a read that began before the key's revocation reached this
// replica (Forget) does not put the key back into the cache.
func TestRevocationDuringARead(t *testing.T) {
	t.Parallel()
	id, token, hash := auth.NewKey()
	gate := make(chan struct{})
	ks := &gatedKeys{key: store.APIKey{ID: id, Tenant: "acme", Hash: hash}, gate: gate}
	a := auth.New(auth.Config{CacheTTL: time.Minute}, ks)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := a.Authenticate(ctx, "Bearer "+token)
		done <- err
	}()
	require.Eventually(t, func() bool { return ks.count() == 1 }, time.Second, time.Millisecond)
	now := time.Now()
	ks.mu.Lock()
	ks.key.RevokedAt = &now // revoked after the read saw the row
	ks.gate = nil
	ks.mu.Unlock()
	a.Forget(id)
	close(gate)
	require.NoError(t, <-done, "the call that read the row before the revocation passes")
	_, err := a.Authenticate(ctx, "Bearer "+token)
	require.True(t, fault.Is(err, fault.Unauthorized), "the next call reads the key again and is refused")
	require.Equal(t, 2, ks.count())
}
