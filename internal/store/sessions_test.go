package store_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

func TestSessionsCapCellsAndTenantScope(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	newSession := func(tenant string) (*store.Session, error) {
		s := &store.Session{ID: uuid.NewString(), Tenant: tenant, Language: "python", RuntimeFunction: "runtime-python",
			Replica: "http://r1", MemoryMB: 256}
		return s, st.OpenSession(ctx, s, 2)
	}
	a, err := newSession("acme")
	require.NoError(t, err)
	require.Equal(t, store.SessionOpen, a.Status)
	_, err = newSession("acme")
	require.NoError(t, err)
	_, err = newSession("acme")
	require.Equal(t, fault.RateLimited, fault.KindOf(err), "the third open session of a tenant with a cap of 2")
	_, err = newSession("other")
	require.NoError(t, err, "the cap is per tenant")

	// Cells get consecutive numbers, also when written concurrently.
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &store.Cell{ID: uuid.NewString(), SessionID: a.ID, Tenant: "acme", Language: "python", Source: "x = 1",
				Status: store.StatusSucceeded, Result: json.RawMessage(`1`), CreatedAt: time.Now()}
			require.NoError(t, st.AddCell(ctx, c))
		}()
	}
	wg.Wait()
	cells, err := st.Cells(ctx, a.ID)
	require.NoError(t, err)
	require.Len(t, cells, 6)
	for i, c := range cells {
		require.Equal(t, i+1, c.Index)
		require.JSONEq(t, `1`, string(c.Result))
	}
	fail := &store.Cell{ID: uuid.NewString(), SessionID: a.ID, Tenant: "acme", Language: "python", Source: "1/0",
		Status: store.StatusFailed, Error: &store.ExecError{Type: "ZeroDivisionError", Message: "division by zero"}, CreatedAt: time.Now()}
	require.NoError(t, st.AddCell(ctx, fail))
	require.Equal(t, 7, fail.Index)

	// Another tenant's session is not found; cells are not function executions.
	_, err = st.GetSession(ctx, "other", a.ID)
	require.Equal(t, fault.NotFound, fault.KindOf(err))
	_, err = st.GetSession(ctx, "acme", "not-a-uuid")
	require.Equal(t, fault.NotFound, fault.KindOf(err))
	execs, _, err := st.ListExecutions(ctx, store.ExecutionFilter{Tenant: "acme", Limit: 50})
	require.NoError(t, err)
	require.Empty(t, execs)

	ended, err := st.EndSession(ctx, a.ID, store.SessionExpired)
	require.NoError(t, err)
	require.True(t, ended)
	ended, err = st.EndSession(ctx, a.ID, store.SessionClosed)
	require.NoError(t, err)
	require.False(t, ended, "ended once")
	got, err := st.GetSession(ctx, "acme", a.ID)
	require.NoError(t, err)
	require.Equal(t, store.SessionExpired, got.Status)
	require.NotNil(t, got.ClosedAt)
	_, err = newSession("acme")
	require.NoError(t, err, "an expired session no longer counts")
}
