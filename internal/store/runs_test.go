package store_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

func asyncRun(t *testing.T, st *store.Store, tenant string) *store.Run {
	t.Helper()
	ctx := context.Background()
	def := json.RawMessage(`{"steps":[{"id":"s","function":"f"}]}`)
	_, err := st.CreatePipeline(ctx, store.PipelineVersion{Tenant: tenant, Name: "p-" + uuid.NewString()[:8], SHA256: "sha-" + tenant,
		Definition: def})
	if err != nil && !fault.Is(err, fault.Conflict) {
		require.NoError(t, err)
	}
	return &store.Run{ID: uuid.NewString(), Tenant: tenant, Pipeline: "p", Version: 1, SHA256: "sha-" + tenant,
		Mode: "async", Status: store.StatusQueued, Input: json.RawMessage(`{}`), CreatedAt: time.Now()}
}

// Async executions and durable runs are one budget per tenant: each counts against the
// other's admission.
func TestRunsAndExecutionsShareTheAsyncCap(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	a := store.Admission{MaxOpen: 2}

	_, created, err := st.EnqueueExecution(ctx, queued("acme"), a)
	require.NoError(t, err)
	require.True(t, created)
	_, created, err = st.InsertRun(ctx, asyncRun(t, st, "acme"), a)
	require.NoError(t, err)
	require.True(t, created)

	_, _, err = st.InsertRun(ctx, asyncRun(t, st, "acme"), a)
	require.True(t, fault.Is(err, fault.RateLimited), "%v", err)
	_, _, err = st.EnqueueExecution(ctx, queued("acme"), a)
	require.True(t, fault.Is(err, fault.RateLimited), "%v", err)
	// Another tenant has its own budget.
	_, created, err = st.InsertRun(ctx, asyncRun(t, st, "other"), a)
	require.NoError(t, err)
	require.True(t, created)
}
