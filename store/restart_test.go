package store_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/prereq"
	"github.com/lambda-microservice/lambda/store"
)

// privatePostgres runs a throwaway PostgreSQL server from the system binaries (as the
// postgres user) on a free port, so a test may restart it without disturbing anyone.
type privatePostgres struct {
	bin, dir string
	port     int
	cred     *syscall.Credential
}

func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	need := func(ok bool, why string) {
		if ok {
			return
		}
		prereq.Missing(t, "restart test: %s", why)
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	need(len(bins) > 0, "no PostgreSQL server binaries (apt-get install postgresql)")
	need(os.Geteuid() == 0, "needs root to run the server as the postgres user")
	u, err := user.Lookup("postgres")
	need(err == nil, "no postgres user")
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir, err := os.MkdirTemp("", "lambda-pg-restart-")
	require.NoError(t, err)
	require.NoError(t, os.Chown(dir, uid, gid))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	pg := &privatePostgres{bin: filepath.Dir(bins[len(bins)-1]), dir: dir, port: port,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	pg.run(t, "initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "--no-sync")
	pg.ctl(t, "start")
	t.Cleanup(func() {
		_ = pg.command("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "stop").Run()
		os.RemoveAll(dir)
	})
	return pg
}

func (pg *privatePostgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred, Setpgid: true}
	cmd.Dir = pg.dir
	return cmd
}

func (pg *privatePostgres) run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := pg.command(name, args...).CombinedOutput()
	require.NoError(t, err, "%s: %s", name, out)
}

// ctl runs pg_ctl start|restart and waits until the server accepts connections.
func (pg *privatePostgres) ctl(t *testing.T, action string) {
	t.Helper()
	pg.run(t, "pg_ctl", "-D", filepath.Join(pg.dir, "data"), "-w", "-t", "60", "-m", "fast",
		"-l", filepath.Join(pg.dir, "server.log"),
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", pg.port, pg.dir), action)
}

func (pg *privatePostgres) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", pg.port)
}

// TestNoAcknowledgedExecutionLostWhenPostgresRestarts writes request logs continuously while
// the server restarts: every write that returned nil is in the table afterwards, and the
// writes during the outage wait for the server instead of failing.
func TestNoAcknowledgedExecutionLostWhenPostgresRestarts(t *testing.T) {
	pg := startPrivatePostgres(t)
	ctx := context.Background()
	require.NoError(t, store.Migrate(ctx, pg.url()))
	st, err := store.Open(ctx, pg.url(), 8)
	require.NoError(t, err)
	defer st.Close()
	w := st.NewLogWriter(store.LogWriterConfig{MaxBatch: 64, Writers: 2, RetryFor: 30 * time.Second}, zap.NewNop(), nil)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { w.Run(wctx); close(done) }()
	defer func() { stop(); <-done }()

	var mu sync.Mutex
	var acked []string
	var failures []error
	deadline := time.Now().Add(4 * time.Second)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				id := uuid.Must(uuid.NewV7()).String()
				err := w.Write(ctx, execution(id))
				mu.Lock()
				if err == nil {
					acked = append(acked, id)
				} else {
					failures = append(failures, err)
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	pg.ctl(t, "restart") // fast shutdown: open connections are terminated
	wg.Wait()
	require.Positive(t, before, "writes were acknowledged before the restart")
	require.Greater(t, len(acked), before, "writes went on after the restart")
	if len(failures) > 0 {
		t.Fatalf("%d writes failed instead of waiting for the server; the first: %v", len(failures), failures[0])
	}

	conn, err := pgx.Connect(ctx, pg.url())
	require.NoError(t, err)
	defer conn.Close(ctx)
	var missing int
	require.NoError(t, conn.QueryRow(ctx, `SELECT count(*) FROM unnest($1::uuid[]) AS a(id)
		WHERE NOT EXISTS (SELECT 1 FROM request_logs r WHERE r.id = a.id)`, acked).Scan(&missing))
	require.Zero(t, missing, "of %d acknowledged executions", len(acked))
}
