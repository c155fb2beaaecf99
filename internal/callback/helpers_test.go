package callback

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	waitFor = 5 * time.Second
	tick    = 5 * time.Millisecond
)

// loopbackAllowed is the allowlist the tests' receivers on 127.0.0.1 need.
var loopbackAllowed = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// countingListener accepts and closes connections, counting them.
type countingListener struct {
	net.Listener
	accepts atomic.Int64
	mu      sync.Mutex
	remotes []string // in accept order
}

func listenCounting(t *testing.T, network, address string) *countingListener {
	t.Helper()
	ln, err := net.Listen(network, address)
	require.NoError(t, err)
	l := &countingListener{Listener: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.remotes = append(l.remotes, c.RemoteAddr().String())
			l.mu.Unlock()
			l.accepts.Add(1)
			c.Close()
		}
	}()
	return l
}

func (l *countingListener) port() string {
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// settledAccepts returns how many connections the listener accepted before a sentinel
// connection made now. A connection made earlier completed its handshake earlier and is
// accepted first, so this is exact without sleeping.
func (l *countingListener) settledAccepts(t *testing.T) int {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	me := c.LocalAddr().String()
	i := -1
	require.Eventually(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		i = slices.Index(l.remotes, me)
		return i >= 0
	}, waitFor, tick)
	return i
}

// newTestClient returns a client whose connection attempts (after the guard's pre-check,
// before the dialer's Control) are counted.
func newTestClient(t *testing.T, cfg Config) (*Client, *atomic.Int64) {
	t.Helper()
	c := NewClient(cfg)
	var dials atomic.Int64
	inner := c.dial
	c.dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		dials.Add(1)
		return inner(ctx, network, address)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, &dials
}

// staticResolver answers every lookup with the same addresses, as a DNS server that
// rebinds a name to an internal address would.
type staticResolver []netip.Addr

func (r staticResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}
