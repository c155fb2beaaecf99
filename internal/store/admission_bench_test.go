package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/internal/testkit/db"
)

// BenchmarkEnqueueAdmission admits async executions of one tenant from 32 goroutines,
// each finished right after (so the tenant's open work stays small, as in a steady
// state): under a cap of store.UnlockedMargin (every admission takes the tenant's lock,
// as all did before the unlocked path), under the default cap of 1,000 (far from it: no
// lock), and without a cap.
func BenchmarkEnqueueAdmission(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, db.New(b), 8) // the pool size of a test store
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(st.Close)
	for _, bc := range []struct {
		name string
		max  int
	}{{"locked", store.UnlockedMargin}, {"cap-1000", 1000}, {"no-cap", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := queued("bench-" + bc.name)
					if _, _, err := st.EnqueueExecution(ctx, e, store.Admission{MaxOpen: bc.max}); err != nil {
						b.Error(err)
						return
					}
					now := time.Now().UTC()
					e.Status, e.FinishedAt = store.StatusSucceeded, &now
					if err := st.SaveExecution(ctx, e); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "admissions/s")
		})
	}
}
