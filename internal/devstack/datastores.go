package devstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"
)

// ensurePostgres makes the database of DatabaseURL exist on a running server: the one at
// the URL's address when it answers, otherwise a private instance started from the system
// binaries under DataDir/postgres (installed with apt-get first when missing and root).
func (s *Stack) ensurePostgres(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(s.DatabaseURL)
	if err != nil {
		return fmt.Errorf("LAMBDA_DATABASE_URL: %w", err)
	}
	s.pgNote = "running server"
	if !strings.HasPrefix(cfg.Host, "/") {
		addr := net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port)))
		if err := dialCheck(addr); err != nil {
			if !isLoopback(cfg.Host) {
				return fmt.Errorf("no PostgreSQL answers at %s (not a local address, so none is started): %w", addr, err)
			}
			if err := s.startPrivatePostgres(ctx, cfg); err != nil {
				return err
			}
		}
	}
	if err := createDatabase(ctx, s.DatabaseURL); err != nil {
		return err
	}
	if s.opts.DropDatabase {
		u := s.DatabaseURL
		s.addCleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := dropDatabase(ctx, u); err != nil {
				s.printf("!! drop test database: %v\n", err)
			}
		})
	}
	return nil
}

func (s *Stack) startPrivatePostgres(ctx context.Context, cfg *pgx.ConnConfig) error {
	bin, err := s.postgresBinDir(ctx)
	if err != nil {
		return err
	}
	port := int(cfg.Port)
	if s.opts.FreePorts || checkFree(net.JoinHostPort("127.0.0.1", strconv.Itoa(port))) != nil {
		if port, err = freePort(); err != nil {
			return err
		}
	}
	dataDir := filepath.Join(s.DataDir, "postgres")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	// PostgreSQL refuses to run as root: run it as the postgres user of the package.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		if cred, err = postgresUser(dataDir); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(dataDir, "PG_VERSION")); err != nil {
		dbUser := cfg.User
		if dbUser == "" {
			dbUser = "postgres"
		}
		s.printf("  %-12s initdb %s\n", "", dataDir)
		err := s.runOnce(ctx, "initdb", command{
			path: filepath.Join(bin, "initdb"),
			args: []string{"-D", dataDir, "-U", dbUser, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"},
			env:  s.plainEnv(nil), dir: dataDir, cred: cred,
		})
		if err != nil {
			return err
		}
	}
	p, err := s.spawn("postgres", command{
		path: filepath.Join(bin, "postgres"),
		args: []string{"-D", dataDir, "-p", strconv.Itoa(port), "-k", dataDir, "-c", "listen_addresses=127.0.0.1"},
		env:  s.plainEnv(nil), dir: dataDir, cred: cred,
		stopSig: syscall.SIGINT, // fast shutdown
		infra:   true,
	})
	if err != nil {
		return err
	}
	s.DatabaseURL = withHostPort(s.DatabaseURL, "127.0.0.1", port)
	s.pgNote = "private instance, data in " + dataDir
	admin := withDatabase(s.DatabaseURL, "postgres")
	p.ready = func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			return err
		}
		return c.Close(ctx)
	}
	return s.waitUntil(ctx, p, s.opts.StartTimeout, "accepting connections", p.ready)
}

// postgresBinDir finds the newest /usr/lib/postgresql/<v>/bin, installing the package if allowed.
func (s *Stack) postgresBinDir(ctx context.Context) (string, error) {
	find := func() string {
		m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
		sort.Slice(m, func(i, j int) bool { return pgVersion(m[i]) > pgVersion(m[j]) })
		if len(m) == 0 {
			return ""
		}
		return filepath.Dir(m[0])
	}
	if d := find(); d != "" {
		return d, nil
	}
	if err := s.install(ctx, "postgresql", "no PostgreSQL answers and its binaries are not installed"); err != nil {
		return "", err
	}
	if d := find(); d != "" {
		return d, nil
	}
	return "", errors.New("no postgres binary under /usr/lib/postgresql after installing postgresql")
}

func pgVersion(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// postgresUser returns the postgres user's credentials and hands it dataDir (and the
// right to traverse its parents).
func postgresUser(dataDir string) (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("postgres must not run as root and there is no postgres user: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	err = filepath.Walk(dataDir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return nil, fmt.Errorf("hand %s to the postgres user: %w", dataDir, err)
	}
	for d := filepath.Dir(dataDir); ; d = filepath.Dir(d) {
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
			_ = os.Chmod(d, st.Mode().Perm()|0o001) // traverse only, no listing
		}
		if d == "/" || d == "." {
			break
		}
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func createDatabase(ctx context.Context, dbURL string) error {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	name := cfg.Database
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, withDatabase(dbURL, "postgres"))
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer c.Close(ctx)
	var exists bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func dropDatabase(ctx context.Context, dbURL string) error {
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return err
	}
	c, err := pgx.Connect(ctx, withDatabase(dbURL, "postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{cfg.Database}.Sanitize()+" WITH (FORCE)")
	return err
}

// ensureRedis makes sure a Redis answers at RedisURL, or starts a private one.
func (s *Stack) ensureRedis(ctx context.Context) error {
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		return fmt.Errorf("LAMBDA_REDIS_URL: %w", err)
	}
	s.redisNote = "running server"
	host, portStr, _ := net.SplitHostPort(opt.Addr)
	if err := dialCheck(opt.Addr); err == nil {
		return redisPing(ctx, s.RedisURL)
	} else if !isLoopback(host) {
		return fmt.Errorf("no Redis answers at %s (not a local address, so none is started): %w", opt.Addr, err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if err := s.install(ctx, "redis-server", "no Redis answers and its binaries are not installed"); err != nil {
			return err
		}
		if bin, err = exec.LookPath("redis-server"); err != nil {
			bin = "/usr/bin/redis-server"
		}
	}
	port, _ := strconv.Atoi(portStr)
	if s.opts.FreePorts || checkFree(opt.Addr) != nil {
		if port, err = freePort(); err != nil {
			return err
		}
	}
	dir := filepath.Join(s.DataDir, "redis")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p, err := s.spawn("redis", command{
		path: bin,
		args: []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
			"--dir", dir, "--daemonize", "no"},
		env: s.plainEnv(nil), dir: dir, infra: true,
	})
	if err != nil {
		return err
	}
	s.RedisURL = withHostPort(s.RedisURL, "127.0.0.1", port)
	s.redisNote = "private instance"
	p.ready = func(ctx context.Context) error { return redisPing(ctx, s.RedisURL) }
	return s.waitUntil(ctx, p, s.opts.StartTimeout, "answering PING", p.ready)
}

func redisPing(ctx context.Context, u string) error {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return err
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping Redis at %s: %w", opt.Addr, err)
	}
	return nil
}

// install runs apt-get install for a missing package when allowed (root), or fails with
// the one command to run; why says what is missing.
func (s *Stack) install(ctx context.Context, pkg, why string) error {
	if os.Geteuid() != 0 || !s.opts.AllowInstall {
		return fmt.Errorf("%s: install it with `sudo apt-get install -y %s`", why, pkg)
	}
	s.printf("  %-12s installing %s with apt-get (log: %s)\n", "", pkg, filepath.Join(s.LogDir, "apt.log"))
	env := s.plainEnv(map[string]string{"DEBIAN_FRONTEND": "noninteractive"})
	inst := command{path: "apt-get", args: []string{"install", "-y", "-q", "--no-install-recommends", pkg}, env: env}
	if p, err := exec.LookPath("apt-get"); err == nil {
		inst.path = p
	} else {
		return fmt.Errorf("%s, and apt-get is not available: install %s", why, pkg)
	}
	if err := s.runOnce(ctx, "apt", inst); err == nil {
		return nil
	}
	if err := s.runOnce(ctx, "apt", command{path: inst.path, args: []string{"update", "-q"}, env: env}); err != nil {
		return fmt.Errorf("apt-get update: %w", err)
	}
	return s.runOnce(ctx, "apt", inst)
}

func dialCheck(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// withDatabase returns a postgres URL naming another database.
func withDatabase(dbURL, name string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return dbURL
	}
	u.Path = "/" + name
	return u.String()
}

// withHostPort returns u with its host:port replaced.
func withHostPort(raw, host string, port int) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Host = net.JoinHostPort(host, strconv.Itoa(port))
	return u.String()
}
