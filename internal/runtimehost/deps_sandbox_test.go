package runtimehost_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/faas"
)

// depsSandboxModes are the two sandboxed deployments: root with bubblewrap (the dev stack),
// and distinct uids without any namespace (the runtime image's configuration: no
// bubblewrap there; here root without it).
var depsSandboxModes = []struct {
	name  string
	vars  map[string]string
	bwrap bool
}{
	{"bubblewrap", nil, true},
	{"uid-only", map[string]string{"LAMBDA_SANDBOX_BWRAP": "/nonexistent/bwrap"}, false},
}

// traversableDir is a fresh directory every uid may pass through (t.TempDir is 0700:
// workers and installers of other uids could not reach what is below it).
func traversableDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o711))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// probeSpec is a dependency entry whose resolve and install steps report what they can
// do: uid, rlimits, HOME, network, a host file, a write next to their folder.
const probeSpec = `
runtimes:
  - title: probe
    dependencies:
      name: '^[a-z]+$'
      version: '^[0-9]+$'
      vars:
        port: {env: PROBE_PORT}
        secret: {env: PROBE_SECRET}
      files:
        probe.py: |
          import json, os, resource, socket, sys
          out, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3]
          f = {"uid": os.getuid(), "home": os.environ["HOME"], "tmpdir": os.environ["TMPDIR"],
               "cpu": resource.getrlimit(resource.RLIMIT_CPU)[1], "core": resource.getrlimit(resource.RLIMIT_CORE)[1]}
          def attempt(key, fn):
              try:
                  fn()
                  f[key] = "done"
              except OSError as e:
                  f[key] = type(e).__name__
          attempt("net", lambda: socket.create_connection(("127.0.0.1", port), timeout=3).close())
          attempt("secret", lambda: open(secret).read())
          attempt("plant", lambda: open(os.path.join(os.path.dirname(os.getcwd()), "planted"), "w").write("x"))
          attempt("home_w", lambda: open(os.path.join(os.environ["HOME"], "h"), "w").write("x"))
          with open(out, "w") as o:
              json.dump(f, o)
      resolve:
        - args: [/usr/bin/python3, -I, probe.py, resolve-none.json, "{{.Var.port}}", "{{.Var.secret}}"]
          network: none
        - args: [/usr/bin/python3, -I, probe.py, resolve-registry.json, "{{.Var.port}}", "{{.Var.secret}}"]
          network: registry
      lock: [resolve-none.json, resolve-registry.json]
      count: '(?m)^\{'
      install:
        - args: [/usr/bin/python3, -I, probe.py, install-none.json, "{{.Var.port}}", "{{.Var.secret}}"]
          network: none
`

type probeFacts struct {
	UID    int    `json:"uid"`
	Home   string `json:"home"`
	TmpDir string `json:"tmpdir"`
	CPU    int64  `json:"cpu"`
	Core   int64  `json:"core"`
	Net    string `json:"net"`
	Secret string `json:"secret"`
	Plant  string `json:"plant"`
	HomeW  string `json:"home_w"`
}

// Every resolve and install command runs in the build sandbox: as an unprivileged uid of
// its own, with a private HOME, RLIMIT_CPU of its time limit and no core dumps, unable to
// read a host file or write beside its folder; a `network: none` step has no network
// where bubblewrap runs, a download step (`registry`) has. The install directory ends
// owned by the host, 0755/0644, under a 0711 parent.
func TestDepsInstallersRunInTheBuildSandbox(t *testing.T) {
	requireSandbox(t)
	specs, err := deps.ParseSpecs([]byte(probeSpec))
	require.NoError(t, err)
	spec := specs["probe"]
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for _, mode := range depsSandboxModes {
		t.Run(mode.name, func(t *testing.T) {
			base := traversableDir(t, "lambda-deps-sandbox-")
			secret := filepath.Join(base, "secret")
			require.NoError(t, os.WriteFile(secret, []byte("host-secret"), 0o600))
			vars := map[string]string{"PROBE_PORT": strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), "PROBE_SECRET": secret}
			engine, err := deps.New(deps.Config{Dir: filepath.Join(base, "deps"), ResolveTimeout: 40 * time.Second, InstallTimeout: 40 * time.Second,
				Getenv: func(k string) string { return vars[k] }})
			require.NoError(t, err)
			h, _ := depsHarness(t, "python", "", engine, mode.vars)
			code, doc := h.ready(t)
			require.Equal(t, http.StatusOK, code)
			require.True(t, doc.Sandbox.Layers["uid"], doc.Sandbox.Missing["uid"])
			require.Equal(t, mode.bwrap, doc.Sandbox.Layers["mountns"])

			lock, err := engine.Resolve(context.Background(), spec, map[string]string{"probe": "1"})
			require.NoError(t, err)
			facts := map[string]probeFacts{}
			for _, name := range []string{"resolve-none", "resolve-registry"} {
				var f probeFacts
				require.NoError(t, json.Unmarshal(lock.Files[name+".json"], &f), "%s", lock.Files[name+".json"])
				facts[name] = f
			}
			in, err := engine.Install(context.Background(), spec, lock)
			require.NoError(t, err)
			defer in.Release()
			b, err := os.ReadFile(filepath.Join(in.Dir, "install-none.json"))
			require.NoError(t, err)
			var f probeFacts
			require.NoError(t, json.Unmarshal(b, &f))
			facts["install-none"] = f

			for name, f := range facts {
				t.Logf("%s: %+v", name, f)
				require.GreaterOrEqual(t, f.UID, 61000, "%s runs as a sandbox uid", name)
				require.Equal(t, f.Home, f.TmpDir, name)
				require.Contains(t, f.Home, "/work/home-", "%s: a private HOME", name)
				require.Positive(t, f.CPU, "%s: RLIMIT_CPU set", name)
				require.LessOrEqual(t, f.CPU, int64(60), "%s: RLIMIT_CPU is the step's time (40 s here) plus 10%%", name)
				require.Zero(t, f.Core, "%s: no core dumps", name)
				require.NotEqual(t, "done", f.Secret, "%s read a host file", name)
				require.NotEqual(t, "done", f.Plant, "%s wrote beside its folder", name)
			}
			require.Equal(t, "done", facts["resolve-registry"].Net, "a download step reaches its source")
			if mode.bwrap {
				require.NotEqual(t, "done", facts["resolve-none"].Net, "no network for a `none` step")
				require.NotEqual(t, "done", facts["install-none"].Net, "no network for a `none` step")
			}
			_, err = os.Stat(filepath.Join(base, "deps", "installs", "planted"))
			require.ErrorIs(t, err, os.ErrNotExist)

			// The install is the host's, read-only to everyone else; its parent lists nothing.
			requireOwnedReadOnly(t, in.Dir)
			fi, err := os.Stat(filepath.Dir(in.Dir))
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o711), fi.Mode().Perm())
			fi, err = os.Stat(filepath.Join(base, "deps", "downloads", "probe"))
			require.NoError(t, err)
			require.Equal(t, uint32(os.Geteuid()), fi.Sys().(*syscall.Stat_t).Uid, "the download cache is the host's again")
		})
	}
}

// requireOwnedReadOnly checks that everything under dir is this process's uid's,
// directories 0755 and files 0644 (0755 when executable).
func requireOwnedReadOnly(t *testing.T, dir string) { t.Helper(); requireOwnedBy(t, dir, os.Geteuid()) }

// requireOwnedBy is requireOwnedReadOnly for the owner uid (-1: one uid, below 61000 — the
// host's, not a sandbox uid — owns everything).
func requireOwnedBy(t *testing.T, dir string, uid int) {
	t.Helper()
	if uid < 0 {
		fi, err := os.Stat(dir)
		require.NoError(t, err)
		uid = int(fi.Sys().(*syscall.Stat_t).Uid)
		require.Less(t, uid, 61000, "%s belongs to a sandbox uid", dir)
	}
	n := 0
	require.NoError(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		require.NoError(t, err)
		n++
		require.Equal(t, uint32(uid), fi.Sys().(*syscall.Stat_t).Uid, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
		case fi.IsDir():
			require.Equal(t, os.FileMode(0o755)|os.ModeDir, fi.Mode(), p)
		default:
			require.Contains(t, []os.FileMode{0o644, 0o755}, fi.Mode(), p)
		}
		return nil
	}))
	require.Greater(t, n, 1)
}

// A worker cannot change installed packages: neither those of its own lock nor another
// lock's (another function's), nor list which locks exist, in either sandboxed mode.
func TestDepsWorkersCannotWriteInstalls(t *testing.T) {
	requireSandbox(t)
	_, err := exec.LookPath("npm")
	needDepsTool(t, err == nil, "npm")
	for _, mode := range depsSandboxModes {
		t.Run(mode.name, func(t *testing.T) {
			base := traversableDir(t, "lambda-deps-workers-")
			engine, err := deps.New(deps.Config{Dir: filepath.Join(base, "deps")})
			require.NoError(t, err)
			h, rt := depsHarness(t, "node", "", engine, mode.vars)
			resolve := func(set map[string]string) *deps.Lock {
				lock, err := engine.Resolve(context.Background(), rt.Deps, set)
				require.NoError(t, err)
				return lock
			}
			runInstallTampering(t, h, resolve, filepath.Join(engine.Config().Dir, "installs"))
		})
	}
}

// The runtime image's own configuration (uid 10001, its capabilities, no bubblewrap):
// dependencies resolve and install there (as sandbox uids the host hands their folders to),
// and workers cannot change any install.
func TestDepsInProductionConfiguration(t *testing.T) {
	_, err := exec.LookPath("npm")
	needDepsTool(t, err == nil, "npm")
	h, ph := newProductionHarness(t, "node", productionCaps...)
	srv := httptest.NewServer(h.handler)
	t.Cleanup(srv.Close)
	client, err := faas.New(faas.Config{GatewayURL: srv.URL, Route: faas.RouteDirect, EndpointTemplate: srv.URL,
		RuntimeSecret: testSecret})
	require.NoError(t, err)
	resolve := func(set map[string]string) *deps.Lock {
		lock, err := client.ResolveDeps(context.Background(), "runtime-node", set)
		require.NoError(t, err)
		return lock
	}
	// The host's LAMBDA_DEPS_DIR default: under its HOME (the image sets /var/cache/lambda/deps).
	installs := filepath.Join(filepath.Dir(ph.cache), "tmp", ".cache", "lambda-microservice", "deps", "installs")
	runInstallTampering(t, h, resolve, installs)
}

// runInstallTampering installs two locks through h, and runs a worker of the second that
// tries to change its own packages and the first lock's: every attempt fails, the files
// are unchanged and the first function still runs.
func runInstallTampering(t *testing.T, h *harness, resolve func(map[string]string) *deps.Lock, installs string) {
	t.Helper()
	const victimSrc = "const isNumber = require('is-number');\nexports.handler = (e) => isNumber(e.x);\n"
	const hostileSrc = `const fs = require('fs'), path = require('path');
exports.handler = (e) => {
  const file = require.resolve('is-number');
  const own = path.dirname(path.dirname(path.dirname(file)));
  const out = {};
  const attempt = (k, f) => { try { f(); out[k] = 'done'; } catch (err) { out[k] = err.code || String(err); } };
  attempt('own_write', () => fs.appendFileSync(file, '\nmodule.exports = () => "pwned";'));
  attempt('own_create', () => fs.writeFileSync(path.join(own, 'node_modules', 'pwned.js'), 'x'));
  attempt('own_chmod', () => fs.chmodSync(file, 0o666));
  attempt('own_remove', () => fs.rmSync(path.join(own, 'node_modules', 'is-number'), {recursive: true}));
  attempt('other_write', () => fs.appendFileSync(path.join(e.other, 'node_modules', 'is-number', 'index.js'), '\nmodule.exports = () => "pwned";'));
  attempt('other_create', () => fs.writeFileSync(path.join(e.other, 'pwned.js'), 'x'));
  attempt('other_rename', () => fs.renameSync(e.other, e.other + '-x'));
  attempt('list', () => fs.readdirSync(e.installs));
  return out;
};
`
	victimLock := resolve(map[string]string{"is-number": "7.0.0"})
	hostileLock := resolve(map[string]string{"is-number": "6.0.0"})
	victim := func() {
		t.Helper()
		code, r := h.call(t, "victim", victimSrc, map[string]any{"x": 3},
			map[string]any{"sha256": deps.BuildHash(victimSrc, victimLock), "lock": victimLock, "tenant": "victim"})
		require.Equal(t, http.StatusOK, code, "%+v", r.Error)
		require.Equal(t, "true", string(r.Result), "%+v", r.Error)
	}
	victim()
	other := filepath.Join(installs, victimLock.Hash)
	target := filepath.Join(other, "node_modules", "is-number", "index.js")
	before := fileSum(t, target)

	code, r := h.call(t, "mallory", hostileSrc, map[string]any{"other": other, "installs": installs},
		map[string]any{"sha256": deps.BuildHash(hostileSrc, hostileLock), "lock": hostileLock, "tenant": "mallory"})
	require.Equal(t, http.StatusOK, code, "%+v", r.Error)
	require.Equal(t, "succeeded", r.Status, "%+v", r.Error)
	var out map[string]string
	require.NoError(t, json.Unmarshal(r.Result, &out))
	t.Logf("attempts: %v", out)
	require.Len(t, out, 8)
	for k, v := range out {
		require.NotEqual(t, "done", v, "a worker could %s", k)
	}
	require.Equal(t, before, fileSum(t, target), "the other lock's package is unchanged")
	requireOwnedBy(t, other, -1)
	requireOwnedBy(t, filepath.Join(installs, hostileLock.Hash), -1)
	victim()
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return sha256.Sum256(b)
}
