// Package temporal runs the Temporal dev server (the CLI `make temporal` builds) for tests:
// headless, in memory, on free ports, with the namespaces and Keyword search attributes a
// test asks for. Shared starts one server per test binary; Start a private one. A missing
// CLI skips the test outside CI and fails it in CI (package prereq).
package temporal

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/lambda-microservice/lambda/internal/devstack"
	"github.com/lambda-microservice/lambda/internal/platform/freeport"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// Options describe a dev server.
type Options struct {
	Namespaces       []string // created at start; the first one is asked for health
	SearchAttributes []string // registered as Keyword
	Args             []string // more `temporal server start-dev` arguments (dynamic config)
}

// Server is a running dev server.
type Server struct {
	Addr string
	cmd  *exec.Cmd
}

// Stop kills the server.
func (s *Server) Stop() {
	if s != nil && s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		_ = s.cmd.Wait()
	}
}

// Bin is the Temporal CLI: LAMBDA_TEMPORAL_BIN, else where `make temporal` puts it.
func Bin() string {
	if p := os.Getenv("LAMBDA_TEMPORAL_BIN"); p != "" {
		return p
	}
	return devstack.DefaultTemporalBin(devstack.OSEnviron())
}

// Start starts a private dev server, killed when tb ends, and returns its address.
func Start(tb testing.TB, o Options) string {
	tb.Helper()
	s, err := start(tb, o)
	if s != nil {
		tb.Cleanup(s.Stop)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return s.Addr
}

var shared struct {
	once sync.Once
	s    *Server
	err  error
}

// Shared starts the test binary's one dev server the first time it is called (later
// calls get the same server, whatever their options) and returns its address. StopShared,
// from TestMain, kills it; so does the end of the test process.
func Shared(tb testing.TB, o Options) string {
	tb.Helper()
	shared.once.Do(func() { shared.s, shared.err = start(tb, o) })
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.s.Addr
}

// StopShared kills the server Shared started, if any.
func StopShared() { shared.s.Stop() }

func start(tb testing.TB, o Options) (*Server, error) {
	bin := Bin()
	if _, err := os.Stat(bin); err != nil {
		prereq.Missing(tb, "the Temporal CLI at %s (make temporal, or LAMBDA_TEMPORAL_BIN): %v", bin, err)
	}
	var ports [3]int
	for i := range ports {
		p, err := freeport.Get()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	args := []string{"server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", strconv.Itoa(ports[0]),
		"--http-port", strconv.Itoa(ports[1]), "--metrics-port", strconv.Itoa(ports[2]), "--log-level", "error"}
	args = append(args, o.Args...)
	for _, ns := range o.Namespaces {
		args = append(args, "--namespace", ns)
	}
	for _, sa := range o.SearchAttributes {
		args = append(args, "--search-attribute", sa+"=Keyword")
	}
	s := &Server{Addr: addr, cmd: exec.Command(bin, args...)}
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the temporal dev server: %w", err)
	}
	ns := "default"
	if len(o.Namespaces) > 0 {
		ns = o.Namespaces[0]
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := client.DialContext(ctx, client.Options{HostPort: addr, Namespace: ns, Logger: quiet{}})
		if err == nil {
			_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
			c.Close()
		}
		cancel()
		if err == nil {
			return s, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return s, fmt.Errorf("temporal dev server did not answer on %s within 60s", addr)
}

// quiet drops the SDK's log lines while the server comes up.
type quiet struct{}

func (quiet) Debug(string, ...any) {}
func (quiet) Info(string, ...any)  {}
func (quiet) Warn(string, ...any)  {}
func (quiet) Error(string, ...any) {}
