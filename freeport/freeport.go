// Package freeport picks loopback TCP ports to hand to child processes. A port the kernel
// gives for "127.0.0.1:0" comes from the ephemeral range, which outgoing connections draw
// from too: between choosing it and the child binding it, a client socket (or another test
// process asking the same way) may take it. Ports here are drawn at random below the
// ephemeral range and checked by binding, which makes such collisions rare.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
)

// The range ports are drawn from: below Linux's default ephemeral range (32768–60999).
const (
	low  = 20000
	high = 32000
)

// Get returns a loopback port that was free a moment ago.
func Get() (int, error) {
	for range 100 {
		p := low + rand.IntN(high-low)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			l.Close()
			return p, nil
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr returns "127.0.0.1:<port>" for a port from Get.
func Addr() (string, error) {
	p, err := Get()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("127.0.0.1:%d", p), nil
}
