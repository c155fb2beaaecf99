package db

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/lambda-microservice/lambda/internal/platform/freeport"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// Server is a throwaway PostgreSQL server run from the system binaries (as the postgres
// user) on a free port, so that a test may stop and restart it without disturbing the
// other tests.
type Server struct {
	bin, dir string
	port     int
	cred     *syscall.Credential
}

// Private starts a Server, removed when the test ends. It needs root (to run the server
// as the postgres user) and the Debian server binaries; without them the test is skipped
// outside CI and fails in CI.
func Private(t testing.TB) *Server {
	t.Helper()
	need := func(ok bool, why string) {
		if !ok {
			prereq.Missing(t, "private PostgreSQL: %s", why)
		}
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	need(len(bins) > 0, "no PostgreSQL server binaries (apt-get install postgresql)")
	need(os.Geteuid() == 0, "needs root to run the server as the postgres user")
	u, err := user.Lookup("postgres")
	need(err == nil, "no postgres user")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "lambda-pg-private-")
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatalf("testdb: %v", err)
	}
	port, err := freeport.Get() // kept across restarts: not from the ephemeral range
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	s := &Server{bin: filepath.Dir(bins[len(bins)-1]), dir: dir, port: port,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	s.run(t, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "--no-sync")
	s.ctl(t, "start")
	t.Cleanup(func() {
		_ = s.command("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "stop").Run()
		os.RemoveAll(dir)
	})
	return s
}

// URL is the server's maintenance database.
func (s *Server) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Restart restarts the server with a fast shutdown (open connections are terminated) and
// waits until it accepts connections again.
func (s *Server) Restart(t testing.TB) { t.Helper(); s.ctl(t, "restart") }

// Stop stops the server with a fast shutdown.
func (s *Server) Stop(t testing.TB) { t.Helper(); s.ctl(t, "stop") }

// Start starts a stopped server and waits until it accepts connections.
func (s *Server) Start(t testing.TB) { t.Helper(); s.ctl(t, "start") }

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	cmd.Dir = s.dir
	return cmd
}

func (s *Server) run(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := s.command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("testdb: %s: %v: %s", name, err, out)
	}
}

// ctl runs pg_ctl start|stop|restart, waiting for the server.
func (s *Server) ctl(t testing.TB, action string) {
	t.Helper()
	s.run(t, "pg_ctl", "-D", filepath.Join(s.dir, "data"), "-w", "-t", "60", "-m", "fast",
		"-l", filepath.Join(s.dir, "server.log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", s.port, s.dir), action)
}
