package soak

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/devstack"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// TestSoakShort is `make soak` in two minutes with a subset of the faults (the kills of
// an api, a Temporal worker, a runtime replica and a language worker, a Redis and a
// PostgreSQL restart): it fails on any acknowledged record lost or duplicated, and on
// accepted work that never became final. `go test -short` leaves it out.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("a two-minute soak of the whole platform")
	}
	for _, b := range []string{"lambda", "lambda-runtime", "gateway"} {
		prereq.Binary(t, b)
	}
	environ := devstack.OSEnviron()
	environ["LAMBDA_BIN_DIR"] = prereq.BinDir()
	if tb := environ["LAMBDA_TEMPORAL_BIN"]; tb == "" {
		if _, err := os.Stat(devstack.DefaultTemporalBin(environ)); err != nil {
			prereq.Missing(t, "the Temporal CLI (make temporal)")
		}
	}
	var log strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	res, err := Run(ctx, Config{
		Duration: 2 * time.Minute, Seed: 7,
		Faults: []string{KillAPI, KillTemporalWorker, KillReplica, KillLanguageWorker, RestartRedis, RestartPostgres},
		MinGap: 6 * time.Second, MaxGap: 10 * time.Second, Pause: 5 * time.Second,
		HistoryPath: filepath.Join(t.TempDir(), "history.jsonl"),
		Environ:     environ, Log: &lockedWriter{w: &log},
	})
	defer func() {
		if t.Failed() {
			t.Log(log.String())
		}
	}()
	require.NoError(t, err)
	require.Empty(t, res.StackErr)
	sum := Summarize(res)
	t.Logf("%d requests, %d faults; sync availability %.3f %% (%d of %d); async %d of %d final",
		len(res.Records), len(res.Faults), 100*sum.Sync.Ratio(), sum.Sync.OK, sum.Sync.Offered, res.Checked.AsyncFinal, res.Checked.AsyncAccepted)
	for _, v := range res.Checked.Violations {
		t.Log(v)
	}
	for _, e := range errorSamples(res.Records, 10) {
		t.Log("failed first attempts: " + e)
	}
	require.NotEmpty(t, res.Faults, "the nemesis injected nothing")
	require.Greater(t, sum.Sync.OK, 100, "the load hardly ran")
	require.Zero(t, sum.Lost, "acknowledged records lost")
	require.Zero(t, sum.Dup, "records duplicated")
	require.Zero(t, res.Checked.Count("not-final"), "accepted work never final")
}
