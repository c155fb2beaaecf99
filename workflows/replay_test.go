package workflows_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/lambda-microservice/lambda/workflows"
)

// TestReplayRecordedHistories replays histories recorded by the Temporal dev server:
//   - history-regular-invoke.json: a run from before Invoke could be a local activity (its
//     input edited to ask for a local Invoke, which the run must not get on replay: the
//     GetVersion marker is absent, so it keeps its regular activity);
//   - history-local-invoke.json: a run from before runs carried their pinned version,
//     Invoke as a local activity (ResolveVersion first, StoreCache last);
//   - history-pinned-version.json: a run of this code, started with its pinned version
//     (CheckCache, Invoke and Persist as local activities, no ResolveVersion or StoreCache);
//   - history-status-at-end.json: "pinned-version" 2 (Invoke records the outcome final; a
//     short local Invoke upserts no running status);
//   - history-share-wait.json: a run whose Invoke was refused three times for its tenant's
//     share (the share-wait marker, three timers, four Invokes), then succeeded
//     (worker/share_test.go: TestShareWaitInTheWorkflow).
func TestReplayRecordedHistories(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"testdata/history-regular-invoke.json", "testdata/history-local-invoke.json",
		"testdata/history-pinned-version.json", "testdata/history-status-at-end.json", "testdata/history-share-wait.json"} {
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflowWithOptions(workflows.ExecuteFunction, workflowRegisterOptions())
		require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f), f)
	}
}

// TestReplayRecordedRunHistories replays RunPipeline histories recorded by the Temporal
// dev server (LAMBDA_RECORD_HISTORIES, worker/pipeline_test.go): every change to the
// interpreter or the runner must keep them replaying (or be guarded by
// workflow.GetVersion).
//   - history-run-sequence.json: three function steps, all local activities, one task;
//   - history-run-fused.json: the same run since "fused-step-records" (the plan's load
//     marks the run running, each call settles its step);
//   - history-run-signal.json: a function, a wait for an approval signal, a function;
//   - history-run-canceled.json: canceled while waiting for its signal;
//   - history-run-kinds.json: a map in three chunk child workflows, an if, a parallel
//     with a catch, a sleep, a wait that times out to its on_timeout value;
//   - history-run-chunk.json: one of those chunks (RunPipelineChunk).
func TestReplayRecordedRunHistories(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"testdata/history-run-sequence.json", "testdata/history-run-fused.json", "testdata/history-run-signal.json",
		"testdata/history-run-canceled.json", "testdata/history-run-kinds.json", "testdata/history-run-chunk.json"} {
		r := worker.NewWorkflowReplayer()
		r.RegisterWorkflowWithOptions(workflows.RunPipeline, workflow.RegisterOptions{Name: workflows.RunWorkflowName})
		r.RegisterWorkflowWithOptions(workflows.RunPipelineChunk, workflow.RegisterOptions{Name: workflows.ChunkWorkflowName})
		require.NoError(t, r.ReplayWorkflowHistoryFromJSONFile(nil, f), f)
	}
}
