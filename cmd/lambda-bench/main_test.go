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

	"github.com/lambda-microservice/lambda/bench"
	"github.com/lambda-microservice/lambda/devstack"
)

// TestQuick is `make bench-quick` end to end: the whole platform, every scenario with
// short durations. It asserts only that the harness works (every scenario produced
// samples, the report was written), never latencies: the machine is shared with the
// other packages' tests.
func TestQuick(t *testing.T) {
	environ := devstack.OSEnviron()
	if environ["LAMBDA_BIN_DIR"] == "" {
		t.Skip("LAMBDA_BIN_DIR is not set: run with `make test`")
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
	for _, section := range []string{"| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 5 |", "| 6 |", "| 7 |"} {
		require.Contains(t, md, section, "scenario %s missing", section)
	}
	require.Contains(t, stdout.String(), "| # | case |")
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
