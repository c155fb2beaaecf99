//go:build unix

package faas

import (
	"errors"
	"net"
	"syscall"
)

// idleAlive peeks at an idle connection without blocking: nothing to read means the
// replica still holds it open; an end of stream (or stray bytes) means it is unusable.
func idleAlive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = errors.Is(rerr, syscall.EAGAIN)
		return true
	})
	return err == nil && alive
}
