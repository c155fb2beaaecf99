package workflows_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"

	"github.com/lambda-microservice/lambda/workflows"
)

// TestReplayRecordedHistories replays histories recorded by the Temporal dev server:
//   - history-regular-invoke.json: a run from before Invoke could be a local activity (its
//     input edited to ask for a local Invoke, which the run must not get on replay: the
//     GetVersion marker is absent, so it keeps its regular activity);
//   - history-local-invoke.json: a run from before runs carried their pinned version,
//     Invoke as a local activity (ResolveVersion first, StoreCache last);
//   - history-pinned-version.json: a run of this code, started with its pinned version
//     (CheckCache, Invoke and Persist as local activities, no ResolveVersion or StoreCache).
func TestReplayRecordedHistories(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"testdata/history-regular-invoke.json", "testdata/history-local-invoke.json",
		"testdata/history-pinned-version.json"} {
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflowWithOptions(workflows.ExecuteFunction, workflowRegisterOptions())
		require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f), f)
	}
}
