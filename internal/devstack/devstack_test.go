package devstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
	"github.com/lambda-microservice/lambda/runtimes"
)

const defaultPG = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// bareStack is a Stack for testing single steps, without binaries.
func bareStack(t *testing.T, o Options) *Stack {
	t.Helper()
	if o.DataDir == "" {
		o.DataDir = t.TempDir()
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	o.Environ = OSEnviron()
	o.Out = testWriter{t}
	o.StopGrace = 5 * time.Second
	s := &Stack{
		opts: o, out: &syncWriter{w: o.Out}, DataDir: o.DataDir, LogDir: filepath.Join(o.DataDir, "logs"),
		DatabaseURL: o.DatabaseURL, RedisURL: o.RedisURL, failed: make(chan struct{}), started: time.Now(),
	}
	s.log = zap.NewNop()
	require.NoError(t, os.MkdirAll(s.LogDir, 0o755))
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func requireServer(t *testing.T, addr, what string) {
	t.Helper()
	if err := dialCheck(addr); err != nil {
		prereq.Missing(t, "no %s at %s: %v", what, addr, err)
	}
}

func databaseExists(t *testing.T, dbURL string) bool {
	t.Helper()
	cfg, err := pgx.ParseConfig(dbURL)
	require.NoError(t, err)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, withDatabase(dbURL, "postgres"))
	require.NoError(t, err)
	defer c.Close(ctx)
	var ok bool
	require.NoError(t, c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname=$1)", cfg.Database).Scan(&ok))
	return ok
}

// TestEnsurePostgresUsesRunningServer: a running server is used as is, the database is
// created when missing (and dropped at Stop with DropDatabase), no process is started.
func TestEnsurePostgresUsesRunningServer(t *testing.T) {
	t.Parallel()
	requireServer(t, "127.0.0.1:5432", "PostgreSQL")
	name := fmt.Sprintf("devstack_test_%d", time.Now().UnixNano())
	dbURL := withDatabase(defaultPG, name)
	s := bareStack(t, Options{DatabaseURL: dbURL, DropDatabase: true})
	require.False(t, databaseExists(t, dbURL))

	require.NoError(t, s.ensurePostgres(context.Background()))
	require.True(t, databaseExists(t, dbURL), "database created")
	require.Equal(t, dbURL, s.DatabaseURL, "the running server's URL is kept")
	require.Empty(t, s.procs, "no private server started")
	require.Equal(t, "running server", s.pgNote)

	// Idempotent: a second ensure finds the database.
	require.NoError(t, s.ensurePostgres(context.Background()))

	require.NoError(t, s.Stop())
	require.False(t, databaseExists(t, dbURL), "dropped at Stop")
}

// TestEnsurePostgresStartsPrivateInstance: nothing answers at the URL's (loopback)
// address, so a private server is initialised under the data dir and started.
func TestEnsurePostgresStartsPrivateInstance(t *testing.T) {
	t.Parallel()
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres"); len(m) == 0 {
		prereq.Missing(t, "no PostgreSQL binaries under /usr/lib/postgresql")
	}
	port, err := freePort()
	require.NoError(t, err)
	dbURL := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/lambda_private?sslmode=disable", port)
	s := bareStack(t, Options{DatabaseURL: dbURL, AllowInstall: false})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	require.NoError(t, s.ensurePostgres(ctx))
	require.Contains(t, s.pgNote, "private instance")
	pg := s.procByName("postgres")
	require.NotNil(t, pg)
	require.True(t, databaseExists(t, s.DatabaseURL))
	_, err = os.Stat(filepath.Join(s.DataDir, "postgres", "PG_VERSION"))
	require.NoError(t, err)

	pid := pg.cmd.Process.Pid
	require.NoError(t, s.Stop())
	require.Error(t, syscall.Kill(pid, 0), "the private server is stopped")
	u, err := url.Parse(s.DatabaseURL)
	require.NoError(t, err)
	require.Error(t, dialCheck(u.Host), "nothing listens on the private port any more")
}

func TestEnsurePostgresRemoteDownFails(t *testing.T) {
	t.Parallel()
	// 192.0.2.0/24 is TEST-NET-1: never a local address, never answers.
	s := bareStack(t, Options{DatabaseURL: "postgres://postgres@192.0.2.1:5432/x?sslmode=disable&connect_timeout=1"})
	err := s.ensurePostgres(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), "no PostgreSQL answers at 192.0.2.1:5432")
	require.Empty(t, s.procs)
}

func TestEnsureRedisUsesRunningServer(t *testing.T) {
	t.Parallel()
	requireServer(t, "127.0.0.1:6379", "Redis")
	s := bareStack(t, Options{RedisURL: "redis://127.0.0.1:6379/0"})
	require.NoError(t, s.ensureRedis(context.Background()))
	require.Empty(t, s.procs)
	require.Equal(t, "redis://127.0.0.1:6379/0", s.RedisURL)
}

func TestEnsureRedisStartsPrivateInstance(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/redis-server"); err != nil {
		prereq.Missing(t, "no redis-server binary")
	}
	port, err := freePort()
	require.NoError(t, err)
	s := bareStack(t, Options{RedisURL: fmt.Sprintf("redis://127.0.0.1:%d/3", port)})
	require.NoError(t, s.ensureRedis(context.Background()))
	require.Equal(t, "private instance", s.redisNote)
	require.Len(t, s.procs, 1)
	require.NoError(t, redisPing(context.Background(), s.RedisURL))
	require.True(t, strings.HasSuffix(s.RedisURL, "/3"), "database index kept: %s", s.RedisURL)
	require.NoError(t, s.Stop())
	require.Error(t, redisPing(context.Background(), s.RedisURL))
}

// TestGatewayPortInUse: with 8080 taken, starting a gateway fails at once with an error
// naming the port, and nothing is spawned.
func TestGatewayPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", GatewayPort))
	if err != nil {
		t.Skipf("port %d is busy already (another stack?): %v", GatewayPort, err)
	}
	defer ln.Close()
	err = CheckGatewayPorts()
	require.Error(t, err)
	require.Contains(t, err.Error(), "port 8080 is in use — is another `make run` running?")

	s := bareStack(t, Options{GatewayBin: "/bin/false"})
	s.ProviderURL = "http://127.0.0.1:1"
	t0 := time.Now()
	err = s.startGateway(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), "port 8080 is in use")
	require.Less(t, time.Since(t0), 3*time.Second, "fails at once, never hangs")
	require.Empty(t, s.procs)

	// `lambda dev` (Start without PortWait) fails before starting anything.
	o, err := LoadOptions(OSEnviron())
	require.NoError(t, err)
	o.BinDir, o.DataDir, o.SkipTemporal = binDir(t), t.TempDir(), true
	t0 = time.Now()
	st, err := Start(context.Background(), o)
	require.Nil(t, st)
	require.ErrorContains(t, err, "port 8080 is in use — is another `make run` running?")
	require.Less(t, time.Since(t0), 3*time.Second)
}

func TestRedact(t *testing.T) {
	t.Parallel()
	require.Equal(t, "postgres://u:***@h:5432/db", redact("postgres://u:secret@h:5432/db"))
	require.Equal(t, "postgres://u@h/db", redact("postgres://u@h/db"))
	require.Equal(t, "redis://127.0.0.1:6379/0", redact("redis://127.0.0.1:6379/0"))
}

func TestPrometheusConfigScrapesEveryComponent(t *testing.T) {
	t.Parallel()
	s := bareStack(t, Options{SkipPrometheus: true})
	s.apiAddr, s.providerAddr, s.temporalMetrics, s.workerMetrics = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"
	s.ProviderURL = "http://127.0.0.1:2"
	s.worker = true
	cfg := s.prometheusConfig()
	for _, want := range []string{"job_name: lambda-api", `"127.0.0.1:1"`, "job_name: lambda-provider", "job_name: temporal",
		"job_name: lambda-worker", "job_name: openfaas-gateway", `"127.0.0.1:8082"`, "job_name: lambda-runtime",
		"http://127.0.0.1:2/system/prometheus-targets"} {
		require.Contains(t, cfg, want)
	}
}

// binDir locates the built binaries for the full-stack test: LAMBDA_BIN_DIR (make test
// sets it) or the repository's bin/.
func binDir(t *testing.T) string {
	t.Helper()
	for _, b := range []string{"lambda", "lambda-runtime", "gateway"} {
		prereq.Binary(t, b)
	}
	dir, _ := filepath.Abs(prereq.BinDir())
	return dir
}

// TestStartFullStack brings the whole platform up in isolation (free ports, in-memory
// Temporal, fresh database), registers and runs a Python function through the api, and
// stops everything.
func TestStartFullStack(t *testing.T) {
	requireServer(t, "127.0.0.1:5432", "PostgreSQL")
	requireServer(t, "127.0.0.1:6379", "Redis")
	bin := binDir(t)
	opts, err := LoadOptions(OSEnviron())
	require.NoError(t, err)
	opts.BinDir = bin
	opts.Isolate(t.TempDir())
	opts.Out = testWriter{t}
	opts.RulesDir = ""
	if opts.TemporalBin == "" {
		opts.TemporalBin = DefaultTemporalBin(OSEnviron())
	}
	if !isExecutable(opts.TemporalBin) {
		opts.SkipTemporal = true // make test builds it; a bare go test may not have it
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := Start(ctx, opts)
	require.NoError(t, err)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = st.Stop()
		}
	})
	require.NotEmpty(t, st.Functions)
	require.Contains(t, st.Summary(), st.APIURL)
	require.Contains(t, st.Summary(), st.APIURL+"/console/")

	call := func(method, path, body string) (int, map[string]any) {
		req, err := http.NewRequestWithContext(ctx, method, st.APIURL+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+st.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Language-Title", "python")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var out map[string]any
		_ = json.Unmarshal(raw, &out)
		return resp.StatusCode, out
	}
	code, out := call(http.MethodPost, "/v1/functions",
		`{"name":"add","language":"python","source":"def handler(event, context):\n    return event[\"a\"] + event[\"b\"]\n"}`)
	require.Equal(t, http.StatusCreated, code, "%v", out)
	code, out = call(http.MethodPost, "/v1/functions/add/invoke", `{"a":1,"b":2}`)
	require.Equal(t, http.StatusOK, code, "%v", out)
	require.EqualValues(t, 3, out["result"], "%v", out)

	// As root the gateway runs in a network namespace of its own: its fixed ports bind
	// nothing on this machine's interfaces; the stack reaches it on 127.0.0.1.
	if os.Geteuid() == 0 {
		gw := st.procByName("gateway")
		require.NotNil(t, gw)
		// The provider runs in this machine's namespace. (Not /proc/self: that is the main
		// thread's, and the thread parked in the gateway's namespace may be the main one.)
		pv := st.procByName("provider")
		require.NotNil(t, pv)
		mine, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pv.cmd.Process.Pid))
		require.NoError(t, err)
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", gw.cmd.Process.Pid))
		require.NoError(t, err)
		require.NotEqual(t, mine, theirs, "the gateway has a network namespace of its own")
		require.True(t, strings.HasPrefix(st.GatewayURL, "http://127.0.0.1:"), st.GatewayURL)
		require.NotContains(t, st.GatewayURL, ":8080", "a free loopback port leads to it")
	}

	// The gateway's management API needs its credentials (DataDir/secrets).
	resp, err := http.Get(st.GatewayURL + "/system/functions")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	// A runtime host runs nothing called without the invoke secret, through the gateway
	// or straight at a replica.
	eps, err := faas.FetchEndpoints(context.Background(), http.DefaultClient, st.ProviderURL, st.Functions[0])
	require.NoError(t, err)
	for _, u := range []string{st.GatewayURL + "/function/" + st.Functions[0], eps[0] + "/"} {
		resp, err = http.Post(u, "application/json", strings.NewReader(`{"function":"x","sha256":"`+strings.Repeat("0", 64)+`","source":""}`))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, u)
	}

	// The gateway lists the runtime functions (its Prometheus query answered by the stub).
	auth := st.gatewayAuth()
	req, _ := http.NewRequest(http.MethodGet, st.GatewayURL+"/system/functions", nil)
	req.SetBasicAuth(auth.Username, auth.Password)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	var fns []map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&fns))
	resp.Body.Close()
	require.Len(t, fns, len(st.Functions))

	procs := append([]*proc(nil), st.procs...)
	require.NoError(t, st.Stop())
	stopped = true
	require.NoError(t, st.Err())
	for _, p := range procs {
		require.Error(t, syscall.Kill(p.cmd.Process.Pid, 0), "%s stopped", p.name)
	}
	// (Not "the gateway's ports are free again": another package's stack may take them
	// the moment this one lets go; the gateway's process being gone is the check.)
	require.False(t, databaseExists(t, st.DatabaseURL), "the test database is dropped")
}

// TestEnsurePackages: a runtime's missing host package stops the start at once with the
// command to run (not as a runtime host that never gets ready); only the deployed
// runtimes' packages count.
func TestEnsurePackages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reg, err := runtimes.Parse([]byte(`runtimes:
  - title: perl
    function: runtime-perl
    source_file: h.pl
    command: [perl]
    packages:
      - {name: libjson-perl, check: "`+dir+`/JSON-*"}
  - title: python
    function: runtime-python
    source_file: h.py
    command: [python3]
`), dir, "test.yaml")
	require.NoError(t, err)
	s := bareStack(t, Options{AllowInstall: false})
	s.registry = reg

	err = s.ensurePackages(context.Background())
	require.Error(t, err)
	require.Contains(t, err.Error(), "the perl runtime needs libjson-perl")
	require.Contains(t, err.Error(), "sudo apt-get install -y libjson-perl")

	s.opts.Runtimes = []string{"python"}
	require.NoError(t, s.ensurePackages(context.Background()), "perl is not deployed")

	s.opts.Runtimes = nil
	require.NoError(t, os.WriteFile(filepath.Join(dir, "JSON-4.10"), nil, 0o644))
	require.NoError(t, s.ensurePackages(context.Background()))

	s.opts.Runtimes = []string{"cobol"}
	require.ErrorContains(t, s.ensurePackages(context.Background()), `runtime "cobol" is not in the registry`)
}

// TestEnsurePrometheus: a missing binary that cannot be installed is a warning and no
// Prometheus (the gateway gets the stub); a taken address moves to a free port.
func TestEnsurePrometheus(t *testing.T) {
	t.Parallel()
	s := bareStack(t, Options{PrometheusBin: filepath.Join(t.TempDir(), "prometheus"), AllowInstall: false})
	s.prometheusAddr, s.PrometheusURL = "127.0.0.1:9", "http://127.0.0.1:9"
	require.False(t, s.ensurePrometheus(context.Background()))
	require.Empty(t, s.prometheusAddr)
	require.Empty(t, s.PrometheusURL)
	require.Contains(t, s.Summary(), "not running")

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	s = bareStack(t, Options{PrometheusBin: "/bin/true"})
	s.prometheusAddr = taken.Addr().String()
	require.True(t, s.ensurePrometheus(context.Background()))
	require.NotEqual(t, taken.Addr().String(), s.prometheusAddr)
	require.Equal(t, "http://"+s.prometheusAddr, s.PrometheusURL)
}
