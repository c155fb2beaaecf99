// Package freeport picks loopback TCP ports to hand to child processes. A port the kernel
// gives for "127.0.0.1:0" comes from the ephemeral range, which outgoing connections draw
// from too: between choosing it and the child binding it, a client socket (or another test
// process asking the same way) may take it. Ports here are drawn at random below the
// ephemeral range and checked by binding, which makes such collisions rare; a process does
// not get the same port twice within a minute (time enough for the child to bind it), and
// the local provider's replicas draw from their own half of
// the range, so a provider never takes a port its supervisor chose for a child that has not
// bound it yet.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// Range is a half-open range of ports [Low, High) below Linux's default ephemeral range
// (32768–60999).
type Range struct{ Low, High int }

var (
	// Children is where supervisors (devstack, tests, the benchmark) draw ports from.
	Children = Range{Low: 20000, High: 26000}
	// Replicas is where the local provider draws its replicas' ports from.
	Replicas = Range{Low: 26000, High: 32000}
)

// reserved is how long a port handed out stays off the list for this process.
const reserved = time.Minute

var (
	mu     sync.Mutex
	handed = map[int]time.Time{} // ports this process handed out, and when
)

// Get returns a loopback port of r that was free a moment ago and that this process has
// not handed out within the last minute.
func (r Range) Get() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	now := time.Now()
	for p, at := range handed {
		if now.Sub(at) > reserved {
			delete(handed, p)
		}
	}
	for range 200 {
		p := r.Low + rand.IntN(r.High-r.Low)
		if _, ok := handed[p]; ok {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			handed[p] = now
			return p, nil
		}
	}
	return 0, fmt.Errorf("find a free port in %d–%d: none of 200 tries was free", r.Low, r.High-1)
}

// Get returns a free loopback port from Children.
func Get() (int, error) { return Children.Get() }

// Addr returns "127.0.0.1:<port>" for a port from Get.
func Addr() (string, error) {
	p, err := Get()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p), nil
}
