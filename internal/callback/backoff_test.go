package callback

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBackoffCurve(t *testing.T) {
	t.Parallel()
	b := DefaultBackoff
	b.Jitter = 0
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600}
	for i, w := range want {
		require.Equal(t, w*time.Second, b.Delay(i+1, "k"), i+1)
	}
	require.Equal(t, 10*time.Minute, b.Delay(10000, "k"), "no overflow")
	require.Equal(t, time.Second, b.Delay(0, "k"))
}

func TestBackoffJitterIsBoundedDeterministicAndSpread(t *testing.T) {
	t.Parallel()
	b := DefaultBackoff
	seen := map[time.Duration]bool{}
	for i := range 200 {
		key := fmt.Sprintf("exec-%d", i)
		for n := 1; n <= 15; n++ {
			plain := b
			plain.Jitter = 0
			full := plain.Delay(n, key)
			d := b.Delay(n, key)
			require.LessOrEqual(t, d, full)
			require.GreaterOrEqual(t, d, time.Duration(float64(full)*(1-b.Jitter)))
			require.Equal(t, d, b.Delay(n, key), "deterministic for a key")
			if n == 12 {
				seen[d] = true
			}
		}
	}
	require.Greater(t, len(seen), 150, "callbacks failing together spread out")
}

func TestBackoffGivesUpAfter24Hours(t *testing.T) {
	t.Parallel()
	b := DefaultBackoff
	var elapsed time.Duration
	attempts := 1
	for {
		d, ok := b.Next(attempts, "exec-1", elapsed, 0)
		if !ok {
			break
		}
		elapsed += d
		attempts++
	}
	require.LessOrEqual(t, elapsed, 24*time.Hour)
	require.Greater(t, elapsed, 24*time.Hour-10*time.Minute)
	require.InDelta(t, 170, attempts, 25, "about 150–190 attempts in 24 h")

	_, ok := b.Next(3, "k", 24*time.Hour, 0)
	require.False(t, ok)
}

func TestBackoffHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	b := DefaultBackoff
	d, ok := b.Next(1, "k", 0, 30*time.Second)
	require.True(t, ok)
	require.Equal(t, 30*time.Second, d)
	d, _ = b.Next(1, "k", 0, 3*time.Hour)
	require.Equal(t, b.Max, d, "capped at Max")
	d, _ = b.Next(12, "k", 0, time.Second)
	require.Equal(t, b.Delay(12, "k"), d, "a shorter Retry-After does not hurry the schedule")
	_, ok = b.Next(1, "k", 24*time.Hour-time.Minute, 5*time.Minute)
	require.False(t, ok)
}
