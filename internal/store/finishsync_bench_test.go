package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/internal/testkit/db"
)

// BenchmarkFinishSyncRun records finished sync runs one after the other, as each run's
// end does on the fast path (the commit is on the caller's path): a run of 1, 3 and 40
// function steps (its row, one execution and one step row per step), beside one
// execution row alone (a single sync call's commit).
func BenchmarkFinishSyncRun(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, db.New(b), 8)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	def := json.RawMessage(`{"steps":[{"id":"s","function":"f"}]}`)
	if _, err := st.CreatePipeline(ctx, store.PipelineVersion{Tenant: "default", Name: "p", SHA256: "sha-p", Definition: def}); err != nil {
		b.Fatal(err)
	}
	out := json.RawMessage(`{"a":1,"b":2}`)
	b.Run("execution", func(b *testing.B) {
		for b.Loop() {
			e := execution(uuid.NewString())
			if err := st.SaveExecution(ctx, e); err != nil {
				b.Fatal(err)
			}
		}
	})
	finish := func(b *testing.B, n int) {
		now := time.Now().UTC().Truncate(time.Microsecond)
		r := &store.Run{ID: uuid.NewString(), Tenant: "default", Pipeline: "p", Version: 1, SHA256: "sha-p",
			Mode: "sync", Status: store.StatusSucceeded, Input: out, Output: out, CreatedAt: now, StartedAt: &now,
			FinishedAt: &now}
		steps := make([]store.RunStep, n)
		execs := make([]*store.Execution, n)
		for i := range steps {
			e := execution(uuid.NewString())
			e.Mode, e.RunID, e.StepID = "pipeline", r.ID, fmt.Sprintf("s%d", i)
			execs[i] = e
			steps[i] = store.RunStep{ID: e.StepID, Status: store.StatusSucceeded, Attempts: 1, ExecutionID: e.ID,
				Output: out, StartedAt: &now, FinishedAt: &now}
		}
		if err := st.FinishSyncRun(ctx, r, steps, execs); err != nil {
			b.Error(err)
		}
	}
	for _, n := range []int{1, 3, 40} {
		b.Run(fmt.Sprintf("steps-%d", n), func(b *testing.B) {
			for b.Loop() {
				finish(b, n)
			}
		})
	}
	// Runs ending at the same time, as at 200 runs/s when a commit is slow.
	b.Run("steps-3-concurrent-8", func(b *testing.B) {
		b.SetParallelism(4) // 8 goroutines on 2 CPUs
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				finish(b, 3)
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "runs/s")
	})
}
