package runtimehost_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/runtimehost"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
	"github.com/lambda-microservice/lambda/runtimes"
)

// hostileScripts are one language's attacks on the sandbox. Each must end as a clean
// failed (or timeout) execution — or, for the background process, a success whose process
// is gone afterwards — while the same host keeps serving normal calls.
type hostileScripts struct {
	title      string
	loop       string // never returns
	forkBomb   string // starts up to 2000 processes that sleep; fails with "refused after N" when stopped
	alloc      string // allocates and touches 4 GiB
	fillTmp    string // writes 1 GB to /tmp as ten 100 MB files (each under RLIMIT_FSIZE)
	environ    string // returns /proc/1/environ
	scan       string // event {secret}: looks for it in every /proc/*/environ and cmdline; {"found":true} or raises
	connectTCP string // event {port}: connects to 127.0.0.1:port, returns "connected"
	connectUnx string // event {path}: connects to the Unix socket path, returns "connected"
	shadow     string // returns /etc/shadow
	background string // event {tag}: starts `sleep <tag>` detached, returns
	killParent string // SIGKILLs its parent process
}

var pythonHostile = hostileScripts{
	title: "python",
	loop: `def handler(event, context):
    while True:
        pass
`,
	forkBomb: `import os, time
def handler(event, context):
    n = 0
    while n < 2000:
        try:
            pid = os.fork()
        except OSError as e:
            raise RuntimeError("fork refused after %d processes: %s" % (n, e))
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
    return n
`,
	alloc: `def handler(event, context):
    data = b"x" * (4 << 30)
    return len(data)
`,
	fillTmp: `def handler(event, context):
    chunk = b"x" * (1 << 20)
    written = 0
    for i in range(10):
        with open("/tmp/fill-%d" % i, "wb") as f:
            for _ in range(100):
                f.write(chunk)
                written += len(chunk)
    return written
`,
	environ: `def handler(event, context):
    with open("/proc/1/environ", "rb") as f:
        return f.read().decode("latin-1")
`,
	scan: `import os
def handler(event, context):
    secret = event["secret"].encode()
    seen = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        for name in ("environ", "cmdline"):
            try:
                with open("/proc/%s/%s" % (pid, name), "rb") as f:
                    data = f.read()
            except OSError:
                continue
            seen += 1
            if secret in data:
                return {"found": True, "pid": pid}
    raise LookupError("no process holds the secret (%d files readable)" % seen)
`,
	connectTCP: `import socket
def handler(event, context):
    s = socket.create_connection(("127.0.0.1", event["port"]), timeout=2)
    s.close()
    return "connected"
`,
	connectUnx: `import socket
def handler(event, context):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(event["path"])
    s.close()
    return "connected"
`,
	shadow: `def handler(event, context):
    with open("/etc/shadow") as f:
        return f.read()
`,
	background: `import subprocess
def handler(event, context):
    p = subprocess.Popen(["sleep", event["tag"]], start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return p.pid
`,
	killParent: `import os, signal
def handler(event, context):
    os.kill(os.getppid(), signal.SIGKILL)
    return "killed %d" % os.getppid()
`,
}

var nodeHostile = hostileScripts{
	title: "node",
	loop:  "exports.handler = () => { for (;;) {} };\n",
	forkBomb: `const { spawn } = require('child_process');
exports.handler = () => new Promise((resolve, reject) => {
  let n = 0, done = false;
  const fail = (e) => { if (!done) { done = true; reject(new Error('spawn refused after ' + n + ' processes: ' + e.message)); } };
  for (let i = 0; i < 2000 && !done; i++) {
    let c;
    try { c = spawn('sleep', ['60'], { stdio: 'ignore' }); } catch (e) { fail(e); break; }
    c.on('error', fail);
    if (c.pid !== undefined) n++;
  }
  setTimeout(() => { if (!done) { done = true; resolve(n); } }, 2000);
});
`,
	alloc: `exports.handler = () => {
  const bufs = [];
  for (let i = 0; i < 4; i++) bufs.push(Buffer.alloc(1 << 30, 1));
  return bufs.length;
};
`,
	fillTmp: `const fs = require('fs');
exports.handler = () => {
  const chunk = Buffer.alloc(1 << 20, 120);
  let written = 0;
  for (let i = 0; i < 10; i++) {
    const fd = fs.openSync('/tmp/fill-' + i, 'w');
    try {
      for (let j = 0; j < 100; j++) { fs.writeSync(fd, chunk); written += chunk.length; }
    } finally { fs.closeSync(fd); }
  }
  return written;
};
`,
	environ: "exports.handler = () => require('fs').readFileSync('/proc/1/environ', 'latin1');\n",
	scan: `const fs = require('fs');
exports.handler = (event) => {
  let seen = 0;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    for (const name of ['environ', 'cmdline']) {
      let data;
      try { data = fs.readFileSync('/proc/' + pid + '/' + name, 'latin1'); } catch (e) { continue; }
      seen++;
      if (data.includes(event.secret)) return { found: true, pid };
    }
  }
  throw new Error('no process holds the secret (' + seen + ' files readable)');
};
`,
	connectTCP: `const net = require('net');
exports.handler = (event) => new Promise((resolve, reject) => {
  const s = net.connect({ host: '127.0.0.1', port: event.port, timeout: 2000 }, () => { s.destroy(); resolve('connected'); });
  s.on('error', reject);
  s.on('timeout', () => { s.destroy(); reject(new Error('connect timed out')); });
});
`,
	connectUnx: `const net = require('net');
exports.handler = (event) => new Promise((resolve, reject) => {
  const s = net.connect({ path: event.path }, () => { s.destroy(); resolve('connected'); });
  s.on('error', reject);
});
`,
	shadow: "exports.handler = () => require('fs').readFileSync('/etc/shadow', 'utf8');\n",
	background: `const { spawn } = require('child_process');
exports.handler = (event) => {
  const c = spawn('sleep', [event.tag], { detached: true, stdio: 'ignore' });
  c.unref();
  return c.pid;
};
`,
	killParent: "exports.handler = () => { process.kill(process.ppid, 'SIGKILL'); return 'killed'; };\n",
}

var rustHostile = hostileScripts{
	title: "rust",
	loop: `use serde_json::Value;
fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    let mut x = 0u64;
    loop {
        let y = x.wrapping_add(1);
        x = unsafe { std::ptr::read_volatile(&y) };
    }
}
`,
	forkBomb: `use serde_json::{json, Value};
use std::process::{Command, Stdio};
fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    let mut n = 0;
    while n < 2000 {
        match Command::new("sleep").arg("60").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn() {
            Ok(child) => { std::mem::forget(child); n += 1; }
            Err(e) => return Err(format!("spawn refused after {} processes: {}", n, e)),
        }
    }
    Ok(json!(n))
}
`,
	alloc: `use serde_json::{json, Value};
fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    let v = vec![1u8; 4usize << 30];
    // the vector escapes through a volatile read (Debian's Rust 1.63 has no black_box)
    let p = unsafe { std::ptr::read_volatile(&(&v as *const Vec<u8>)) };
    Ok(json!(unsafe { (*p).len() }))
}
`,
	fillTmp: `use serde_json::{json, Value};
use std::io::Write;
fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    let chunk = vec![b'x'; 1 << 20];
    let mut written = 0u64;
    for i in 0..10 {
        let mut f = std::fs::File::create(format!("/tmp/fill-{}", i)).map_err(|e| e.to_string())?;
        for _ in 0..100 {
            f.write_all(&chunk).map_err(|e| format!("after {} bytes: {}", written, e))?;
            written += chunk.len() as u64;
        }
    }
    Ok(json!(written))
}
`,
	environ: `use serde_json::{json, Value};
fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    let b = std::fs::read("/proc/1/environ").map_err(|e| e.to_string())?;
    Ok(json!(String::from_utf8_lossy(&b)))
}
`,
	scan: `use serde_json::{json, Value};
fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    let secret = event["secret"].as_str().unwrap_or("?").as_bytes().to_vec();
    let me = std::process::id().to_string();
    let mut seen = 0;
    for entry in std::fs::read_dir("/proc").map_err(|e| e.to_string())? {
        let name = entry.map_err(|e| e.to_string())?.file_name().to_string_lossy().to_string();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == me {
            continue;
        }
        for file in ["environ", "cmdline"] {
            if let Ok(data) = std::fs::read(format!("/proc/{}/{}", name, file)) {
                seen += 1;
                if data.windows(secret.len()).any(|w| w == secret.as_slice()) {
                    return Ok(json!({"found": true, "pid": name}));
                }
            }
        }
    }
    Err(format!("no process holds the secret ({} files readable)", seen))
}
`,
	connectTCP: `use serde_json::{json, Value};
fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", event["port"]).parse().map_err(|e: std::net::AddrParseError| e.to_string())?;
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).map_err(|e| e.to_string())?;
    Ok(json!("connected"))
}
`,
	connectUnx: `use serde_json::{json, Value};
fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    std::os::unix::net::UnixStream::connect(event["path"].as_str().unwrap_or("")).map_err(|e| e.to_string())?;
    Ok(json!("connected"))
}
`,
	shadow: `use serde_json::{json, Value};
fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    Ok(json!(std::fs::read_to_string("/etc/shadow").map_err(|e| e.to_string())?))
}
`,
	background: `use serde_json::{json, Value};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
extern "C" {
    fn setpgid(pid: i32, pgid: i32) -> i32;
}
fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    let mut cmd = Command::new("sleep");
    cmd.arg(event["tag"].as_str().unwrap_or("1")).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // its own process group, out of the worker's (Rust 1.63 has no process_group)
    unsafe {
        cmd.pre_exec(|| {
            setpgid(0, 0);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| e.to_string())?;
    let pid = child.id();
    std::mem::forget(child);
    Ok(json!(pid))
}
`,
	killParent: `use serde_json::{json, Value};
fn handler(_event: Value, _ctx: &Context) -> Result<Value, String> {
    let ppid = std::os::unix::process::parent_id();
    let st = std::process::Command::new("kill").arg("-9").arg(ppid.to_string()).status().map_err(|e| e.to_string())?;
    if !st.success() {
        return Err(format!("kill -9 {} refused ({})", ppid, st));
    }
    Ok(json!("killed"))
}
`,
}

// requireSandbox skips when the sandbox cannot work here (not root) — except in CI, where
// the tests run as root and a missing layer must fail rather than skip — and checks that
// the host runs every layer.
func requireSandbox(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		prereq.Missing(t, "the worker sandbox tests need root (CI runs them as root)")
	}
}

type readyDoc struct {
	Status  string `json:"status"`
	Sandbox *struct {
		Mode       string            `json:"mode"`
		Tenants    string            `json:"tenants"`
		TenantsWhy string            `json:"tenants_why"`
		Layers     map[string]bool   `json:"layers"`
		Missing    map[string]string `json:"missing"`
	} `json:"sandbox"`
}

func (h *harness) ready(t *testing.T) (int, readyDoc) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_/ready", nil))
	var doc readyDoc
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &doc), rec.Body.String())
	return rec.Code, doc
}

func (h *harness) metrics(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

// requireAllLayers fails unless /_/ready and the metrics report every layer active.
func requireAllLayers(t *testing.T, h *harness) {
	t.Helper()
	code, doc := h.ready(t)
	require.Equal(t, http.StatusOK, code)
	require.NotNil(t, doc.Sandbox)
	require.NotEmpty(t, doc.Sandbox.Layers)
	for layer, on := range doc.Sandbox.Layers {
		require.True(t, on, "sandbox layer %s is not active: %s", layer, doc.Sandbox.Missing[layer])
	}
	m := h.metrics(t)
	for layer := range doc.Sandbox.Layers {
		require.Contains(t, m, `lambda_runtime_sandbox_layer{layer="`+layer+`"} 1`)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// targets are what the hostile scripts try to reach: a secret in another process's
// environment, TCP listeners (the api, PostgreSQL, Redis) and Unix sockets of the host.
type targets struct {
	secret   string
	apiPort  int
	unixPath string
	abstract string
}

func newTargets(t *testing.T) *targets {
	tg := &targets{secret: "decoy-" + randomHex(12)}
	decoy := exec.Command("sleep", "600")
	decoy.Env = []string{"PATH=" + os.Getenv("PATH"), "LAMBDA_DECOY_SECRET=" + tg.secret}
	require.NoError(t, decoy.Start())
	t.Cleanup(func() { _ = decoy.Process.Kill(); _ = decoy.Wait() })

	accept := func(ln net.Listener) {
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
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accept(ln)
	tg.apiPort = ln.Addr().(*net.TCPAddr).Port

	base := "/run"
	if fi, err := os.Stat(base); err != nil || !fi.IsDir() {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, "lambda-sandbox-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(dir, 0o755)) // reachable for any uid: only the mount namespace hides it
	t.Cleanup(func() { os.RemoveAll(dir) })
	tg.unixPath = filepath.Join(dir, ".s.PGSQL.5432")
	uln, err := net.Listen("unix", tg.unixPath)
	require.NoError(t, err)
	require.NoError(t, os.Chmod(tg.unixPath, 0o777))
	accept(uln)
	tg.abstract = "\x00lambda-sandbox-test-" + randomHex(6)
	aln, err := net.Listen("unix", "@"+tg.abstract[1:])
	require.NoError(t, err)
	accept(aln)
	return tg
}

// processWithArg reports whether a process of the host runs with arg on its command line.
func processWithArg(arg string) bool {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte("\x00"+arg+"\x00")) {
			return true
		}
	}
	return false
}

func TestSandboxHostile(t *testing.T) {
	requireSandbox(t)
	t.Parallel()
	tg := newTargets(t)
	for _, c := range []struct {
		hs hostileScripts
		lc langCases
	}{{pythonHostile, pythonCases}, {nodeHostile, nodeCases}, {rustHostile, rustCases}} {
		t.Run(c.hs.title, func(t *testing.T) {
			t.Parallel()
			cache := ""
			if c.hs.title == "rust" {
				cache = rustCache
			}
			h := newHarness(t, bundledRegistry, c.hs.title, cache, map[string]string{"LAMBDA_SANDBOX": "strict"})
			requireAllLayers(t, h)
			runHostile(t, h, c.hs, c.lc, tg)
		})
	}
}

func runHostile(t *testing.T, h *harness, hs hostileScripts, lc langCases, tg *targets) {
	// Every script gets a unique source (a fresh build and worker) on each run.
	nonce := randomHex(4)
	src := func(s string) string { return s + "\n" + lc.comment + " " + nonce + "\n" }
	serving := func(t *testing.T) {
		t.Helper()
		r := h.ok(t, "add", lc.add, map[string]int{"a": 40, "b": 2}, "succeeded", nil)
		require.JSONEq(t, `{"sum":42}`, string(r.Result), "the host keeps serving after the attack")
	}
	failed := func(t *testing.T, name, script string, event any, extra map[string]any) response {
		t.Helper()
		start := time.Now()
		r := h.ok(t, name, src(script), event, "failed", extra)
		require.NotNil(t, r.Error)
		t.Logf("%s: %s %s: %.200s (%v)", name, r.Status, r.Error.Type, r.Error.Message, time.Since(start).Round(time.Millisecond))
		serving(t)
		return r
	}
	serving(t)

	t.Run("infinite loop", func(t *testing.T) {
		start := time.Now()
		r := h.ok(t, "loop", src(hs.loop), map[string]any{}, "timeout", map[string]any{"timeout_ms": 1000})
		require.Equal(t, "Timeout", r.Error.Type)
		require.Less(t, time.Since(start), 20*time.Second) // a rust build included
		serving(t)
	})
	t.Run("fork bomb", func(t *testing.T) {
		// Forking a big runtime (node) hundreds of times can take over 10 s on a VM where
		// page tables are expensive; the pids limit, not the timeout, must stop it.
		r := failed(t, "forkbomb", hs.forkBomb, map[string]any{}, map[string]any{"timeout_ms": 60000})
		require.Contains(t, r.Error.Message, "refused after", "the pids limit stops the bomb")
	})
	t.Run("allocate 4 GB", func(t *testing.T) {
		start := time.Now()
		r := failed(t, "alloc", hs.alloc, map[string]any{}, map[string]any{"memory_mb": 128})
		require.Contains(t, []string{"MemoryError", "RuntimeExit", "RangeError", "Error"}, r.Error.Type)
		require.Less(t, time.Since(start), 30*time.Second)
	})
	t.Run("write 1 GB to /tmp", func(t *testing.T) {
		r := failed(t, "filltmp", hs.fillTmp, map[string]any{}, map[string]any{"memory_mb": 256})
		require.Contains(t, strings.ToLower(r.Error.Message), "no space left", "the private /tmp is size-capped")
	})
	t.Run("print 100 MB", func(t *testing.T) {
		start := time.Now()
		r := h.ok(t, "bigprint", src(lc.bigPrint), map[string]int{"n": 100 << 20}, "succeeded", map[string]any{"timeout_ms": 60000, "memory_mb": 1024})
		took := time.Since(start)
		require.Len(t, r.Stdout, 65536)
		require.True(t, r.StdoutTruncated)
		require.Less(t, took, 30*time.Second)
		t.Logf("100 MB of output drained in %v (%.0f ms in the host)", took.Round(time.Millisecond), r.DurationMS)
		serving(t)
	})
	t.Run("read /proc/1/environ", func(t *testing.T) {
		r := failed(t, "environ", hs.environ, map[string]any{}, nil)
		require.NotContains(t, r.Error.Message, "PATH=")
	})
	t.Run("look for the host's secrets in /proc", func(t *testing.T) {
		r := failed(t, "scan", hs.scan, map[string]string{"secret": tg.secret}, nil)
		require.NotContains(t, string(r.Result)+r.Stdout+r.Stderr, tg.secret)
		for _, v := range []string{secretValue} {
			require.NotContains(t, string(r.Result)+r.Stdout+r.Stderr+r.Error.Message, v)
		}
	})
	for _, port := range []int{5432, 6379, tg.apiPort} {
		t.Run(fmt.Sprintf("connect 127.0.0.1:%d", port), func(t *testing.T) {
			failed(t, "tcp", hs.connectTCP, map[string]int{"port": port}, nil)
		})
	}
	for _, path := range []string{tg.unixPath, "/run/postgresql/.s.PGSQL.5432", "/var/run/redis/redis-server.sock", tg.abstract} {
		t.Run("connect unix "+strings.TrimPrefix(path, "\x00"), func(t *testing.T) {
			if path == tg.abstract && hs.title == "rust" {
				t.Skip("std's UnixStream::connect takes paths only")
			}
			failed(t, "unix", hs.connectUnx, map[string]string{"path": path}, nil)
		})
	}
	t.Run("read /etc/shadow", func(t *testing.T) {
		r := failed(t, "shadow", hs.shadow, map[string]any{}, nil)
		require.NotContains(t, r.Error.Message, "root:")
	})
	t.Run("background process outliving the call", func(t *testing.T) {
		tag := fmt.Sprintf("300.%06d", time.Now().UnixNano()%1000000)
		h.ok(t, "background", src(hs.background), map[string]string{"tag": tag}, "succeeded", nil)
		deadline := time.Now().Add(5 * time.Second)
		for processWithArg(tag) {
			require.True(t, time.Now().Before(deadline), "the background process `sleep %s` outlived its execution", tag)
			time.Sleep(20 * time.Millisecond)
		}
		r := h.ok(t, "background", src(hs.background), map[string]string{"tag": "0.01"}, "succeeded", nil)
		require.True(t, r.Cold, "the worker that left a process behind was replaced")
		serving(t)
	})
	t.Run("kill -9 of its parent", func(t *testing.T) {
		failed(t, "killparent", hs.killParent, map[string]any{}, nil)
	})
}

// TestSandboxUIDs checks that live workers of different versions run as different
// unprivileged uids from the configured range.
func TestSandboxUIDs(t *testing.T) {
	requireSandbox(t)
	t.Parallel()
	h := newHarness(t, bundledRegistry, "python", "", map[string]string{"LAMBDA_SANDBOX": "strict", "LAMBDA_SANDBOX_UID_BASE": "62000", "LAMBDA_SANDBOX_UIDS": "50"})
	src := `import os
def handler(event, context):
    return [os.getuid(), os.getgid(), os.getgroups(), os.environ.get("HOME"), os.getcwd()]
`
	seen := map[float64]bool{}
	for v := 1; v <= 4; v++ {
		r := h.ok(t, "uid", src, map[string]any{}, "succeeded", map[string]any{"version": v})
		var got []any
		require.NoError(t, json.Unmarshal(r.Result, &got))
		uid := got[0].(float64)
		require.GreaterOrEqual(t, uid, 62000.0)
		require.Less(t, uid, 62050.0)
		require.Equal(t, got[0], got[1], "gid = uid")
		require.Empty(t, got[2], "no supplementary groups")
		require.Equal(t, "/tmp", got[3])
		require.Equal(t, "/tmp", got[4])
		require.False(t, seen[uid], "uid %v serves two live workers", uid)
		seen[uid] = true
	}
}

// TestSandboxStrictRefuses checks that strict mode refuses to start, naming the missing
// layers, and that auto mode starts anyway and reports them.
func TestSandboxStrictRefuses(t *testing.T) {
	t.Parallel()
	missing := map[string]string{"LAMBDA_SANDBOX_BWRAP": "/nonexistent/bwrap"}
	_, err := newHost(t, "python", withVars(missing, "LAMBDA_SANDBOX", "strict"))
	require.Error(t, err)
	require.Contains(t, err.Error(), "LAMBDA_SANDBOX=strict")
	require.Contains(t, err.Error(), "mountns")
	require.Contains(t, err.Error(), "pidns")

	h := newHarness(t, bundledRegistry, "python", "", withVars(missing, "LAMBDA_SANDBOX", "auto"))
	code, doc := h.ready(t)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "auto", doc.Sandbox.Mode)
	require.False(t, doc.Sandbox.Layers["mountns"])
	require.True(t, doc.Sandbox.Layers["env"])
	require.NotEmpty(t, doc.Sandbox.Missing["mountns"])
	require.Contains(t, h.metrics(t), `lambda_runtime_sandbox_layer{layer="mountns"} 0`)
	r := h.ok(t, "add", pythonCases.add, map[string]int{"a": 1, "b": 2}, "succeeded", nil)
	require.JSONEq(t, `{"sum":3}`, string(r.Result))

	off := newHarness(t, bundledRegistry, "python", "", map[string]string{"LAMBDA_SANDBOX": "off"})
	_, doc = off.ready(t)
	require.Equal(t, "off", doc.Sandbox.Mode)
	require.False(t, doc.Sandbox.Layers["pidns"])
	off.ok(t, "add", pythonCases.add, map[string]int{"a": 1, "b": 2}, "succeeded", nil)
}

// newHost builds (without starting) a host for title with the config defaults plus vars.
func newHost(t *testing.T, title string, vars map[string]string) (*runtimehost.Host, error) {
	reg, err := runtimes.Load(bundledRegistry)
	require.NoError(t, err)
	rt, ok := reg.Lookup(title)
	require.True(t, ok)
	all := withVars(vars, "LAMBDA_RUNTIME", title, "LAMBDA_RUNTIME_CACHE_DIR", t.TempDir(), "LAMBDA_RUNTIME_SECRET", testSecret)
	var cfg runtimehost.Config
	require.NoError(t, env.ParseWithOptions(&cfg, env.Options{Environment: all}))
	require.NoError(t, cfg.Validate())
	h, err := runtimehost.New(runtimehost.Options{Config: cfg, Runtime: rt, Metrics: metrics.NewRuntime(prometheus.NewRegistry()), Logger: zap.NewNop()})
	if h != nil {
		t.Cleanup(h.Close)
	}
	return h, err
}

func withVars(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
