package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/bench"
	"github.com/lambda-microservice/lambda/internal/devstack"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// TestQuick is `make bench-quick` end to end: the whole platform, every scenario with
// short durations. It asserts only that the harness works (every scenario produced
// samples, the report was written), never latencies: the machine is shared with the
// other packages' tests.
func TestQuick(t *testing.T) {
	environ := devstack.OSEnviron()
	if environ["LAMBDA_BIN_DIR"] == "" {
		prereq.Missing(t, "LAMBDA_BIN_DIR is not set: run with `make test`")
	}
	if testing.Short() {
		t.Skip("starts the whole platform")
	}
	out := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	require.NoError(t, os.WriteFile(out, []byte("# Benchmarks\n\nhand-written\n"), 0o644))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"-quick", "-out", out, "-command", "go test ./cmd/lambda-bench"}, environ, &stdout, &stderr)
	require.NoError(t, err, "stderr:\n%s", tail(stderr.String(), 4000))

	b, err := os.ReadFile(out)
	require.NoError(t, err)
	md := string(b)
	require.True(t, strings.HasPrefix(md, "# Benchmarks\n\nhand-written\n"), "the hand-written part is kept")
	require.Contains(t, md, bench.BeginMarker)
	require.Contains(t, md, bench.EndMarker)
	for _, section := range []string{"| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 5 |", "| 6 |", "| 7 |", "| 8 |", "| 9 |", "| 10 |", "| 11 |", "| 13 |"} {
		require.Contains(t, md, section, "scenario %s missing", section)
	}
	require.Contains(t, md, "fdatasync on PostgreSQL's disk (a commit's WAL flush), paced", "scenario 0 measures the disk")
	require.Contains(t, md, "Disk flush rows: a file in ", "the report says where the disk rows wrote")
	require.Contains(t, md, "warm pool speed-up at p50 (watchdog ÷ runtime host)", "scenario 7 compares the runtime layers")
	require.Contains(t, md, "whole stack speed-up at p50 (watchdog ÷ whole stack)", "scenario 7 compares the whole stack too")
	require.Contains(t, stdout.String(), "| # | case |")
}

func TestFlags(t *testing.T) {
	var stderr bytes.Buffer
	c, err := parseFlags([]string{"-only", "1, 3"}, &stderr)
	require.NoError(t, err)
	require.Equal(t, map[int]bool{1: true, 3: true}, c.only)
	require.Empty(t, c.out, "a partial run leaves BENCHMARKS.md alone")

	c, err = parseFlags(nil, &stderr)
	require.NoError(t, err)
	require.Nil(t, c.only)
	require.Equal(t, "BENCHMARKS.md", c.out)

	for _, bad := range []string{"14", "x", "1,,2", "-1"} {
		_, err := parseFlags([]string{"-only", bad}, &stderr)
		require.Error(t, err, "-only %s", bad)
	}

	c, err = parseFlags([]string{"-api", "http://127.0.0.1:8000"}, &stderr)
	require.NoError(t, err)
	require.Equal(t, map[int]bool{10: true}, c.only, "-api measures the newcomer's scenario")
	require.Empty(t, c.out)
	_, err = parseFlags([]string{"-api", "http://127.0.0.1:8000", "-only", "1"}, &stderr)
	require.Error(t, err, "-api with another scenario")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func TestStealNote(t *testing.T) {
	total, steal, ok := cpuTimes()
	require.True(t, ok, "/proc/stat has a cpu line")
	require.Positive(t, total)
	require.LessOrEqual(t, steal, total)
	require.Contains(t, stealNote(1000, 10, 2000, 60), ": 5.0 %")
	require.Empty(t, stealNote(1000, 10, 1000, 10), "no time passed: no note")
}

func TestFaultNote(t *testing.T) {
	_, ok := majorFaults()
	require.True(t, ok, "/proc/vmstat has pgmajfault")
	require.Contains(t, faultNote(120, time.Minute), "during the scenarios: 120 (2.0/s)")
}
