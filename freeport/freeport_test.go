package freeport_test

import (
	"fmt"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/freeport"
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
