package devstack

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// TestRestartReplacesAChildWithoutFailingTheStack: a private Redis killed with -9 and
// started again answers again, under a new pid, and the stack has not failed; Stop
// stops the new one.
func TestRestartReplacesAChildWithoutFailingTheStack(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
		prereq.Missing(t, "no redis-server binary")
	}
	port, err := freePort()
	require.NoError(t, err)
	s := bareStack(t, Options{RedisURL: fmt.Sprintf("redis://127.0.0.1:%d/0", port), StopGrace: 5 * time.Second})
	ctx := context.Background()
	require.NoError(t, s.ensureRedis(ctx))
	require.Equal(t, []string{"redis"}, s.Processes())
	pid := s.PID("redis")
	require.NotZero(t, pid)

	down, err := s.Restart(ctx, "redis", syscall.SIGKILL)
	require.NoError(t, err)
	require.Positive(t, down)
	require.NotEqual(t, pid, s.PID("redis"))
	require.Equal(t, []string{"redis"}, s.Processes(), "the new child takes the old one's place")
	require.NoError(t, redisPing(ctx, s.RedisURL))
	time.Sleep(100 * time.Millisecond)
	require.NoError(t, s.Err(), "a restart is not a failure of the stack")

	require.NoError(t, s.Signal("redis", syscall.SIGSTOP))
	require.NoError(t, s.Signal("redis", syscall.SIGCONT))
	require.Error(t, s.Signal("nope", syscall.SIGCONT))
	_, err = s.Restart(ctx, "nope", syscall.SIGKILL)
	require.Error(t, err)

	require.NoError(t, s.Stop())
	require.Error(t, redisPing(ctx, s.RedisURL))
}
