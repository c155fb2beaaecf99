package freeport_test

import (
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/platform/freeport"
)

func TestPortsAreFreeAndOutsideTheEphemeralRange(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 20 {
		p, err := freeport.Get()
		require.NoError(t, err)
		require.Less(t, p, 32768, "below the kernel's ephemeral range")
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		require.NoError(t, err, "the port can be bound")
		l.Close()
		seen[p] = true
	}
	require.Greater(t, len(seen), 15, "ports are spread, not reused")
}

func TestAProcessNeverGetsAPortTwiceAndReplicasHaveTheirOwnRange(t *testing.T) {
	t.Parallel()
	small := freeport.Range{Low: 19990, High: 20000} // ten ports no range draws from: repeats would show at once
	seen := map[int]bool{}
	for range 10 {
		p, err := small.Get()
		require.NoError(t, err)
		require.False(t, seen[p], "port %d handed out twice", p)
		require.True(t, p >= small.Low && p < small.High, "port %d outside %v", p, small)
		seen[p] = true
	}
	_, err := small.Get()
	require.Error(t, err, "every port of the range is handed out")

	require.LessOrEqual(t, freeport.Children.High, freeport.Replicas.Low, "the halves do not overlap")
	for range 10 {
		p, err := freeport.Replicas.Get()
		require.NoError(t, err)
		require.True(t, p >= freeport.Replicas.Low && p < freeport.Replicas.High && p < 32768, "port %d", p)
	}
}
