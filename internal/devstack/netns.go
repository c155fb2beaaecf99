package devstack

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// The OpenFaaS gateway binds its fixed ports (8080, 8082) on every interface, with no
// setting to change it. Where this process may create a network namespace (root), the
// gateway runs in one of its own: there it binds what it likes, and the stack bridges
// 127.0.0.1 both ways — a free loopback port of the machine to the gateway's 8080 and
// 8082, and, inside, the provider's and Prometheus' loopback ports to theirs. Nothing of
// the gateway is reachable from another interface, and stacks no longer share its ports.

// A thread that changed its network namespace goes back to its own before it is unlocked:
// a locked thread that ends instead would SIGKILL every child it ever forked (their
// parent-death signal follows the forking thread), and Go hands a goroutine any thread.

// onOwnThread runs fn locked to a thread and puts the thread back into the namespace it
// started in afterwards; if it cannot, the thread stays locked (parked) for good.
func onOwnThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		errc <- fn()
		if unix.Setns(orig, unix.CLONE_NEWNET) != nil {
			select {} // never reuse a thread in a foreign namespace; never let it end
		}
		runtime.UnlockOSThread()
	}()
	return <-errc
}

var netnsOnce = sync.OnceValue(func() bool {
	return onOwnThread(func() error { return unix.Unshare(unix.CLONE_NEWNET) }) == nil
})

// netnsWorks reports whether a network namespace can be created here.
func netnsWorks() bool { return netnsOnce() }

// netns is a network namespace the stack made, held by a descriptor and by the thread
// that made it: a child's parent-death signal follows the thread that forked it, so that
// thread lives until the namespace is closed.
type netns struct {
	fd   int
	done chan struct{}
}

// inNetns runs fn on a thread that is in ns, and returns fn's error. Sockets fn creates
// stay in ns whatever thread later uses them.
func inNetns(ns *netns, fn func() error) error {
	return onOwnThread(func() error {
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			return fmt.Errorf("setns: %w", err)
		}
		return fn()
	})
}

// newNetns makes a network namespace with its loopback up and runs start on a thread
// inside it; that thread stays (locked, parked) until the namespace is closed, so the
// children start forked keep their parent.
func newNetns(start func() error) (*netns, error) {
	type result struct {
		ns  *netns
		err error
	}
	rc := make(chan result, 1)
	go func() {
		err := onOwnThread(func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare: %w", err)
			}
			fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			ns := &netns{fd: fd, done: make(chan struct{})}
			if err := loopbackUp(); err != nil {
				ns.close()
				return fmt.Errorf("loopback: %w", err)
			}
			if err := start(); err != nil {
				ns.close()
				return err
			}
			rc <- result{ns: ns}
			<-ns.done // children started here die with this thread (their Pdeathsig)
			return nil
		})
		if err != nil {
			rc <- result{err: err}
		}
	}()
	r := <-rc
	return r.ns, r.err
}

func (ns *netns) close() {
	if ns != nil && ns.fd >= 0 {
		unix.Close(ns.fd)
		ns.fd = -1
		close(ns.done)
	}
}

// loopbackUp sets lo up in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// bridge accepts on ln and joins each connection to a new one from dial.
type bridge struct {
	ln   net.Listener
	dial func() (net.Conn, error)
	wg   sync.WaitGroup
}

func serveBridge(ln net.Listener, dial func() (net.Conn, error)) *bridge {
	b := &bridge{ln: ln, dial: dial}
	b.wg.Add(1)
	go b.serve()
	return b
}

func (b *bridge) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go func() {
			defer c.Close()
			up, err := b.dial()
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				done <- struct{}{}
			}
			go pipe(up, c)
			go pipe(c, up)
			<-done
			<-done
		}()
	}
}

func (b *bridge) close() {
	b.ln.Close()
	b.wg.Wait()
}

// dialIn connects to addr inside ns.
func dialIn(ns *netns, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() error {
		var err error
		c, err = net.Dial("tcp", addr)
		return err
	})
	return c, err
}

// listenIn listens on addr inside ns.
func listenIn(ns *netns, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// loopbackPort is the port of a 127.0.0.1 address ("" when addr is not one).
func loopbackPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "127.0.0.1" {
		return ""
	}
	if _, err := strconv.Atoi(port); err != nil {
		return ""
	}
	return port
}

var _ = os.Getpid // (keeps imports stable across platforms)
