package runtimehost_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/lambda-microservice/lambda/internal/platform/freeport"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// The runtime image's configuration under Kubernetes (runtimes/*/Dockerfile,
// deploy/k8s/functions): the host runs as uid 10001 with no bubblewrap, no cgroups of its
// own and only the capabilities below (its binary's file capabilities there; ambient ones
// here, given by setpriv on this root machine). Workers are kept apart by their uids.
const productionUID = 10001

// productionCaps are the runtime pod's capabilities (deploy/k8s/functions), all allowed by
// Kubernetes' baseline Pod Security Standard.
var productionCaps = []string{"setuid", "setgid", "chown", "kill", "dac_override"}

// productionHost is a runtime host binary started in the production image's configuration.
type productionHost struct {
	url, cache, secretFile string
	pid                    int
}

// How the invoke secret reaches a production-configured host.
const (
	// secretAsMounted: a file as OpenFaaS mounts a function's secret on Kubernetes (mode
	// 0644, root's; the Function API cannot set a mode) under /var/openfaas, which the
	// runtime images keep 0710 root:10001: only the host's group enters it.
	secretAsMounted = "mounted"
	// secretOpen: the same file in a folder every uid may enter.
	secretOpen = "open"
	// secretInline: LAMBDA_RUNTIME_SECRET in the host's environment.
	secretInline = "inline"
)

// productionOptions say how a production-configured host starts.
type productionOptions struct {
	caps   []string // its capabilities
	secret string   // how its secret reaches it (secretAsMounted when "")
}

// newProductionHarness starts bin/lambda-runtime for title as uid 10001 with the image's
// capabilities, and returns a harness whose calls go to it over HTTP with the secret.
func newProductionHarness(t *testing.T, title string, capNames ...string) (*harness, *productionHost) {
	t.Helper()
	return newProductionHarnessWith(t, title, productionOptions{caps: capNames})
}

func newProductionHarnessWith(t *testing.T, title string, o productionOptions) (*harness, *productionHost) {
	t.Helper()
	ph, logFile, exited := startProductionHost(t, title, o)
	deadline := time.Now().Add(2 * time.Minute) // a fresh Rust cache compiles serde_json first
	for {
		resp, err := http.Get(ph.url + "/_/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logFile)
			t.Fatalf("the production-configured host exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the production-configured host did not become ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	u, _ := url.Parse(ph.url)
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Header.Set(platformsecret.RuntimeHeader, testSecret)
	}}
	return &harness{handler: proxy}, ph
}

// productionToolchainPath is the PATH of a production-configured host: the system's
// folders, where the runtime images keep their toolchains (Debian's cargo and rustc in
// /usr/bin here: rustup's under /root is closed to uid 10001).
const productionToolchainPath = "/usr/local/bin:/usr/bin:/bin"

// startProductionHost starts the host and returns it, its log file and a channel closed
// when it exits.
func startProductionHost(t *testing.T, title string, o productionOptions) (*productionHost, string, <-chan struct{}) {
	t.Helper()
	requireSandbox(t)
	bin := prereq.Binary(t, "lambda-runtime")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		prereq.Missing(t, "setpriv (util-linux) starts the host as uid %d", productionUID)
	}
	if title == "rust" {
		for _, tool := range []string{"cargo", "rustc"} {
			if _, err := lookPathIn(tool, productionToolchainPath); err != nil {
				prereq.Missing(t, "%s in %s: uid %d cannot use a toolchain under /root (apt-get install cargo rustc; .ci/run does)", tool, productionToolchainPath, productionUID)
			}
		}
	}
	base, err := os.MkdirTemp("", "lambda-production-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	require.NoError(t, os.Chmod(base, 0o755))
	own := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		require.NoError(t, os.MkdirAll(p, mode))
		require.NoError(t, os.Chown(p, productionUID, productionUID))
		return p
	}
	ph := &productionHost{cache: own("cache", 0o755)}
	tmp := own("tmp", 0o711)                       // the image's TMPDIR: workers pass through to their own folders
	registry, err := filepath.Abs(bundledRegistry) // its runtime files stay where they are, world-readable, as in the image
	require.NoError(t, err)
	port, err := freeport.Get()
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	caps := "-all"
	for _, c := range o.caps {
		caps += ",+" + c
	}
	env := []string{
		"PATH=" + productionToolchainPath, "HOME=" + tmp, "TMPDIR=" + tmp,
		"LAMBDA_RUNTIME=" + title, "LAMBDA_RUNTIMES_FILE=" + registry, "LAMBDA_RUNTIME_ADDR=" + addr, "LAMBDA_RUNTIME_CACHE_DIR=" + ph.cache,
		"LAMBDA_SANDBOX=auto", "LAMBDA_SANDBOX_BWRAP=/nonexistent/bwrap",
		// A range of its own: hosts of other tests keep their uid locks elsewhere.
		"LAMBDA_SANDBOX_UID_BASE=" + strconv.Itoa(63000+100*rand.IntN(300)), "LAMBDA_SANDBOX_UIDS=100",
		"LAMBDA_TEST_SECRET=" + secretValue, "LAMBDA_LOG_LEVEL=warn",
	}
	switch o.secret {
	case secretInline:
		env = append(env, "LAMBDA_RUNTIME_SECRET="+testSecret)
	case secretOpen:
		ph.secretFile = filepath.Join(base, "secret")
	default: // as mounted in the runtime image
		dir := filepath.Join(base, "var-openfaas")
		require.NoError(t, os.Mkdir(dir, 0o710))
		require.NoError(t, os.Chmod(dir, 0o710))
		require.NoError(t, os.Chown(dir, 0, productionUID))
		require.NoError(t, os.Mkdir(filepath.Join(dir, "secrets"), 0o755))
		ph.secretFile = filepath.Join(dir, "secrets", "lambda-runtime-secret")
	}
	if ph.secretFile != "" {
		require.NoError(t, os.WriteFile(ph.secretFile, []byte(testSecret), 0o644))
		require.NoError(t, os.Chmod(ph.secretFile, 0o644))
		env = append(env, "LAMBDA_RUNTIME_SECRET_FILE="+ph.secretFile)
	}
	cmd := exec.Command(setpriv, "--reuid", strconv.Itoa(productionUID), "--regid", strconv.Itoa(productionUID), "--clear-groups",
		"--inh-caps", caps, "--ambient-caps", caps, "--bounding-set", caps, "--", bin)
	cmd.Env = env
	logFile, err := os.Create(filepath.Join(base, "host.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	ph.pid = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("runtime host log:\n%s", b)
		}
	})
	ph.url = "http://" + addr
	return ph, logFile.Name(), exited
}

// lookPathIn finds an executable named name in the folders of path.
func lookPathIn(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o001 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not in %s", name, path)
}

// The production image's configuration: each worker its own uid, the host's
// capabilities not passed on. The shared hostile table (what does not depend on a mount
// or network namespace) holds there too, and workers of different tenants cannot reach
// each other.
func TestProductionConfigurationIsolatesWorkers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		hs hostileScripts
		lc langCases
	}{{pythonHostile, pythonCases}, {nodeHostile, nodeCases}, {rustHostile, rustCases}} {
		t.Run(c.hs.title, func(t *testing.T) {
			t.Parallel()
			h, _ := newProductionHarness(t, c.hs.title, productionCaps...)
			code, doc := h.ready(t)
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, "auto", doc.Sandbox.Mode)
			require.True(t, doc.Sandbox.Layers["uid"], "distinct worker uids without bubblewrap: %s", doc.Sandbox.Missing["uid"])
			require.True(t, doc.Sandbox.Layers["rlimits"], doc.Sandbox.Missing["rlimits"])
			require.True(t, doc.Sandbox.Layers["seccomp"], "the seccomp filter without bubblewrap: %s", doc.Sandbox.Missing["seccomp"])
			require.False(t, doc.Sandbox.Layers["mountns"])
			runHostileWithoutNamespaces(t, h, c.hs, c.lc)
			t.Run("kernel interfaces refused by seccomp", func(t *testing.T) {
				runSeccompProbe(t, h, c.hs.title, c.lc, "mallory", "bystander")
			})
		})
	}
	t.Run("cross-tenant", func(t *testing.T) {
		t.Parallel()
		h, ph := newProductionHarness(t, "python", productionCaps...)
		runCrossTenant(t, h, ph.cache, ph.secretFile)
	})
}

// runHostileWithoutNamespaces is the part of the hostile table that the uid boundary
// alone must hold (the network and the file system's view are the mount and network
// namespaces' and the NetworkPolicy's part).
func runHostileWithoutNamespaces(t *testing.T, h *harness, hs hostileScripts, lc langCases) {
	nonce := randomHex(4)
	src := func(s string) string { return s + "\n" + lc.comment + " " + nonce + "\n" }
	serving := func(t *testing.T) {
		t.Helper()
		r := h.ok(t, "add", lc.add, map[string]int{"a": 40, "b": 2}, "succeeded", map[string]any{"tenant": "bystander"})
		require.JSONEq(t, `{"sum":42}`, string(r.Result), "another tenant's call answers right after the attack")
	}
	failed := func(t *testing.T, name, script string, event any, extra map[string]any) response {
		t.Helper()
		if extra == nil {
			extra = map[string]any{}
		}
		extra["tenant"] = "mallory"
		r := h.ok(t, name, src(script), event, "failed", extra)
		require.NotNil(t, r.Error)
		t.Logf("%s: %s %s: %.200s", name, r.Status, r.Error.Type, r.Error.Message)
		serving(t)
		return r
	}
	serving(t)
	t.Run("infinite loop", func(t *testing.T) {
		r := h.ok(t, "loop", src(hs.loop), map[string]any{}, "timeout", map[string]any{"timeout_ms": 1000, "tenant": "mallory"})
		require.Equal(t, "Timeout", r.Error.Type)
		serving(t)
	})
	t.Run("fork bomb", func(t *testing.T) {
		r := failed(t, "forkbomb", hs.forkBomb, map[string]any{}, map[string]any{"timeout_ms": 60000})
		require.Contains(t, r.Error.Message, "refused after", "RLIMIT_NPROC of the worker's own uid stops the bomb")
	})
	t.Run("read /proc/1/environ", func(t *testing.T) {
		r := failed(t, "environ", hs.environ, map[string]any{}, nil)
		require.NotContains(t, r.Error.Message, "PATH=")
	})
	t.Run("look for the host's secrets in /proc", func(t *testing.T) {
		r := failed(t, "scan", hs.scan, map[string]string{"secret": secretValue}, nil)
		require.NotContains(t, string(r.Result)+r.Stdout+r.Stderr+r.Error.Message, secretValue)
	})
	t.Run("read /etc/shadow", func(t *testing.T) {
		r := failed(t, "shadow", hs.shadow, map[string]any{}, nil)
		require.NotContains(t, r.Error.Message, "root:")
	})
	t.Run("background process outliving the call", func(t *testing.T) {
		tag := fmt.Sprintf("300.%06d", time.Now().UnixNano()%1000000)
		h.ok(t, "background", src(hs.background), map[string]string{"tag": tag}, "succeeded", map[string]any{"tenant": "mallory"})
		deadline := time.Now().Add(5 * time.Second)
		for processWithArg(tag) {
			require.True(t, time.Now().Before(deadline), "the background process `sleep %s` outlived its execution", tag)
			time.Sleep(20 * time.Millisecond)
		}
		serving(t)
	})
	t.Run("kill -9 of its parent", func(t *testing.T) {
		failed(t, "killparent", hs.killParent, map[string]any{}, nil)
	})
}

// The victim keeps a secret in its private folder and stays warm; the attacker, another
// tenant's worker on the same host, tries every way at it.
const victimScript = `import os
def handler(event, context):
    path = os.path.join(os.environ["HOME"], "victim-secret")
    before = open(path).read() if os.path.exists(path) else None
    with open(path, "w") as f:
        f.write(event["secret"])
    shared = "/tmp/lambda-victim-%d" % os.getpid()
    with open(shared, "w") as f:
        f.write(event["secret"])
    script = os.path.join(os.environ["HOME"], "task", "handler.py")
    return {"pid": os.getpid(), "uid": os.getuid(), "file": path, "script": script,
            "shared": shared, "before": before, "script_ok": not open(script).read().endswith("#tampered")}
`

const attackerScript = `import os, signal
def handler(event, context):
    v, out = event["victim"], {}
    def attempt(name, fn):
        try:
            fn()
            out[name] = "ok"
        except Exception as e:
            out[name] = "%s: %s" % (type(e).__name__, e)
    attempt("read its private file", lambda: open(v["file"]).read())
    attempt("read its file in /tmp", lambda: open(v["shared"]).read())
    attempt("list its descriptors", lambda: os.listdir("/proc/%d/fd" % v["pid"]))
    attempt("read its request pipe", lambda: open("/proc/%d/fd/3" % v["pid"], "rb").read(1))
    attempt("read its environment", lambda: open("/proc/%d/environ" % v["pid"]).read())
    attempt("read its memory", lambda: open("/proc/%d/mem" % v["pid"], "rb").read(1))
    attempt("signal it", lambda: os.kill(v["pid"], signal.SIGKILL))
    attempt("read its script", lambda: open(v["script"]).read())
    attempt("rewrite its script", lambda: open(v["script"], "a").write("\n#tampered"))
    attempt("read the cached script", lambda: open(event["cached"]).read())
    attempt("list the script cache", lambda: os.listdir(event["cache"]))
    attempt("read the host's secret file", lambda: open(event["secret_file"]).read())
    attempt("signal the host", lambda: os.kill(os.getppid(), 0))
    attempt("read the host's environment", lambda: open("/proc/%d/environ" % os.getppid()).read())
    attempt("become its uid", lambda: os.setuid(v["uid"]))
    caps = [l.split()[1] for l in open("/proc/self/status") if l.split(":")[0] in ("CapInh", "CapPrm", "CapEff", "CapAmb")]
    return {"uid": os.getuid(), "attempts": out, "caps": caps}
`

func runCrossTenant(t *testing.T, h *harness, cache, secretFile string) {
	secret := "victim-" + randomHex(8)
	type victim struct {
		PID      int     `json:"pid"`
		UID      int     `json:"uid"`
		File     string  `json:"file"`
		Script   string  `json:"script"`
		Shared   string  `json:"shared"`
		Before   *string `json:"before"`
		ScriptOK bool    `json:"script_ok"`
	}
	call := func() (victim, response) {
		r := h.ok(t, "vault", victimScript, map[string]string{"secret": secret}, "succeeded", map[string]any{"tenant": "victim"})
		var v victim
		require.NoError(t, json.Unmarshal(r.Result, &v))
		return v, r
	}
	v, _ := call()
	t.Cleanup(func() { os.Remove(v.Shared) })
	require.NotEqual(t, productionUID, v.UID, "the worker does not run as the host's uid")
	r := h.ok(t, "probe", attackerScript, map[string]any{
		"victim": v, "cached": filepath.Join(cache, sum(victimScript), "handler.py"), "cache": cache, "secret_file": secretFile,
	}, "succeeded", map[string]any{"tenant": "mallory"})
	var got struct {
		UID      int               `json:"uid"`
		Attempts map[string]string `json:"attempts"`
		Caps     []string          `json:"caps"`
	}
	require.NoError(t, json.Unmarshal(r.Result, &got))
	require.NotEqual(t, v.UID, got.UID, "two tenants' workers never share a uid")
	require.Len(t, got.Attempts, 15)
	require.Equal(t, []string{"0000000000000000", "0000000000000000", "0000000000000000", "0000000000000000"}, got.Caps,
		"the worker holds none of the host's capabilities")
	for name, outcome := range got.Attempts {
		require.NotEqual(t, "ok", outcome, "the attacker could %s", name)
		require.NotContains(t, outcome, secret, name)
		t.Logf("%-28s %s", name, outcome)
	}
	// The victim's warm worker is untouched: same process, its file and script intact.
	again, r2 := call()
	require.False(t, r2.Cold, "the victim's worker survived")
	require.Equal(t, v.PID, again.PID)
	require.NotNil(t, again.Before)
	require.Equal(t, secret, *again.Before)
	require.True(t, again.ScriptOK, "the victim's script was not rewritten")
}

// Without the capabilities to run workers as distinct uids, auto serves one tenant per
// replica, and says so on /_/ready and in a metric: never several tenants on one uid.
func TestAutoWithoutIsolationServesOneTenant(t *testing.T) {
	t.Parallel()
	// uid 10001, no capabilities at all: workers share the host's uid, so its secret comes
	// inline (a file it reads, they would read: TestHostRefusesASecretWorkersCanRead)
	h, _ := newProductionHarnessWith(t, "python", productionOptions{secret: secretInline})
	code, doc := h.ready(t)
	require.Equal(t, http.StatusOK, code)
	require.False(t, doc.Sandbox.Layers["uid"])
	require.Equal(t, "pinned", doc.Sandbox.Tenants)
	require.Contains(t, doc.Sandbox.TenantsWhy, "CAP_SETUID")
	require.True(t, doc.Sandbox.Layers["seccomp"], "the seccomp filter needs no capability: %s", doc.Sandbox.Missing["seccomp"])
	require.Contains(t, h.metrics(t), `lambda_runtime_tenant_pinned{runtime="python"} 1`)

	first := h.ok(t, "add", pythonCases.add, map[string]int{"a": 1, "b": 2}, "succeeded", map[string]any{"tenant": "first"})
	require.JSONEq(t, `{"sum":3}`, string(first.Result))
	code, r := h.call(t, "add", pythonCases.add, map[string]int{"a": 1, "b": 2}, map[string]any{"tenant": "second"})
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, r.Error.Message, "another tenant")
	h.ok(t, "add", pythonCases.add, map[string]int{"a": 1, "b": 2}, "succeeded", map[string]any{"tenant": "first"})

	// The tenant it serves runs as the host's uid, yet cannot read the host's environment
	// (the secret), its memory or descriptors: the host is not dumpable.
	r = h.ok(t, "host-environ", `import os
def handler(event, context):
    out = {}
    for name in ("environ", "mem", "fd"):
        try:
            p = "/proc/%d/%s" % (os.getppid(), name)
            out[name] = "ok: %r" % (os.listdir(p) if name == "fd" else open(p, "rb").read(4096))
        except Exception as e:
            out[name] = "%s: %s" % (type(e).__name__, e)
    return out
`, map[string]any{}, "succeeded", map[string]any{"tenant": "first"})
	var got map[string]string
	require.NoError(t, json.Unmarshal(r.Result, &got))
	require.Len(t, got, 3)
	for name, outcome := range got {
		require.True(t, strings.HasPrefix(outcome, "PermissionError"), "the pinned tenant could read the host's %s: %.200s", name, outcome)
	}
	require.NotContains(t, string(r.Result), testSecret)
	runSeccompProbe(t, h, "python", pythonCases, "first", "first")
}

// seccompProbes call what the seccomp filter refuses (event {"calls": {name: [nr, args…]}},
// the numbers of this architecture) and report each outcome with the worker's
// Seccomp/NoNewPrivs status. Node has no raw syscall: it runs util-linux's unshare.
var seccompProbes = map[string]string{
	"python": `import ctypes, errno
def handler(event, context):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    calls = {}
    for name, args in event["calls"].items():
        ctypes.set_errno(0)
        r = libc.syscall(*[ctypes.c_long(a) for a in args])
        calls[name] = "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    status = {}
    for line in open("/proc/self/status"):
        k, _, v = line.partition(":")
        if k in ("Seccomp", "NoNewPrivs"):
            status[k] = v.strip()
    return {"calls": calls, "status": status}
`,
	"node": `const { spawnSync } = require('child_process');
const fs = require('fs');
exports.handler = () => {
  const calls = {};
  for (const [name, flag] of [['unshare', '--user'], ['mount', '--mount']]) {
    const r = spawnSync('unshare', [flag, 'true'], { encoding: 'utf8' });
    calls[name] = r.status === 0 ? 'ok' : /Operation not permitted/.test(r.stderr) ? 'EPERM' : String(r.stderr || r.error);
  }
  const status = {};
  for (const line of fs.readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const [k, v] = line.split(':');
    if (k === 'Seccomp' || k === 'NoNewPrivs') status[k] = v.trim();
  }
  return { calls, status };
};
`,
	"rust": `use serde_json::{json, Map, Value};
extern "C" {
    fn syscall(n: i64, ...) -> i64;
}
fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    let mut calls = Map::new();
    for (name, args) in event["calls"].as_object().ok_or("calls")? {
        let a: Vec<i64> = args.as_array().ok_or("args")?.iter().map(|v| v.as_i64().unwrap_or(0)).collect();
        let r = unsafe { syscall(a[0], a[1], a[2], a[3]) };
        let outcome = if r >= 0 {
            "ok".to_string()
        } else {
            match std::io::Error::last_os_error().raw_os_error() {
                Some(1) => "EPERM".to_string(),
                e => format!("{:?}", e),
            }
        };
        calls.insert(name.clone(), json!(outcome));
    }
    let mut status = Map::new();
    for line in std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k == "Seccomp" || k == "NoNewPrivs" {
                status.insert(k.to_string(), json!(v.trim()));
            }
        }
    }
    Ok(json!({ "calls": calls, "status": status }))
}
`,
}

// runSeccompProbe checks that a worker of the production configuration runs under the
// seccomp filter with no_new_privs: unshare (a user namespace, which an unprivileged uid
// may otherwise create), mount, ptrace (PTRACE_TRACEME, otherwise allowed), keyctl (the
// session keyring's id, otherwise allowed) and bpf all fail with EPERM.
func runSeccompProbe(t *testing.T, h *harness, title string, lc langCases, tenant, bystander string) {
	calls := map[string][]int64{
		"unshare": {unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0},
		"mount":   {unix.SYS_MOUNT, 0, 0, 0},
		"ptrace":  {unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0},
		"keyctl":  {unix.SYS_KEYCTL, unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 0},
		"bpf":     {unix.SYS_BPF, unix.BPF_PROG_LOAD, 0, 0},
	}
	want := []string{"bpf", "keyctl", "mount", "ptrace", "unshare"}
	if title == "node" {
		want = []string{"mount", "unshare"}
	}
	src := seccompProbes[title] + "\n" + lc.comment + " seccomp " + randomHex(4) + "\n"
	r := h.ok(t, "seccomp", src, map[string]any{"calls": calls}, "succeeded", map[string]any{"tenant": tenant, "timeout_ms": 120000})
	var got struct {
		Calls  map[string]string `json:"calls"`
		Status map[string]string `json:"status"`
	}
	require.NoError(t, json.Unmarshal(r.Result, &got), string(r.Result))
	t.Logf("%s", r.Result)
	require.Equal(t, "2", got.Status["Seccomp"], "the worker runs under a seccomp filter")
	require.Equal(t, "1", got.Status["NoNewPrivs"])
	require.Len(t, got.Calls, len(want))
	for _, name := range want {
		require.Equal(t, "EPERM", got.Calls[name], name)
	}
	h.ok(t, "add", lc.add, map[string]int{"a": 40, "b": 2}, "succeeded", map[string]any{"tenant": bystander, "timeout_ms": 120000})
}

// The host refuses to serve when a worker could read its invoke secret's file (whoever
// holds the secret may call any replica as any tenant): a file open to every uid, and a
// replica whose workers share its own uid (no capabilities) with the secret in a file.
func TestHostRefusesASecretWorkersCanRead(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		o    productionOptions
		why  string
	}{
		{"file open to every uid", productionOptions{caps: productionCaps, secret: secretOpen}, "open to the workers' uids"},
		{"workers on the host's uid", productionOptions{secret: secretAsMounted}, "runtime host's own uid"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ph, logFile, exited := startProductionHost(t, "python", c.o)
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				resp, err := http.Get(ph.url + "/_/ready")
				if err == nil {
					resp.Body.Close()
				}
				t.Fatalf("the host still runs (answering: %v): it serves with a secret its workers can read", err == nil)
			}
			b, err := os.ReadFile(logFile)
			require.NoError(t, err)
			require.Contains(t, string(b), "refuses to serve")
			require.Contains(t, string(b), c.why)
			require.NotContains(t, string(b), testSecret)
		})
	}
}
