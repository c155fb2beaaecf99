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
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
}

// newProductionHarness starts bin/lambda-runtime for title as uid 10001 with the image's
// capabilities, and returns a harness whose calls go to it over HTTP with the secret.
func newProductionHarness(t *testing.T, title string, capNames ...string) (*harness, *productionHost) {
	t.Helper()
	requireSandbox(t)
	bin := prereq.Binary(t, "lambda-runtime")
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		prereq.Missing(t, "setpriv (util-linux) starts the host as uid %d", productionUID)
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
	ph := &productionHost{cache: own("cache", 0o755), secretFile: filepath.Join(base, "secret")}
	tmp := own("tmp", 0o711)                       // the image's TMPDIR: workers pass through to their own folders
	registry, err := filepath.Abs(bundledRegistry) // its runtime files stay where they are, world-readable, as in the image
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(ph.secretFile, []byte(testSecret), 0o400))
	require.NoError(t, os.Chown(ph.secretFile, productionUID, productionUID))
	port, err := freeport.Get()
	require.NoError(t, err)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	caps := "-all"
	for _, c := range capNames {
		caps += ",+" + c
	}
	cmd := exec.Command(setpriv, "--reuid", strconv.Itoa(productionUID), "--regid", strconv.Itoa(productionUID), "--clear-groups",
		"--inh-caps", caps, "--ambient-caps", caps, "--bounding-set", caps, "--", bin)
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + tmp, "TMPDIR=" + tmp,
		"LAMBDA_RUNTIME=" + title, "LAMBDA_RUNTIMES_FILE=" + registry, "LAMBDA_RUNTIME_ADDR=" + addr, "LAMBDA_RUNTIME_CACHE_DIR=" + ph.cache,
		"LAMBDA_RUNTIME_SECRET_FILE=" + ph.secretFile, "LAMBDA_SANDBOX=auto", "LAMBDA_SANDBOX_BWRAP=/nonexistent/bwrap",
		// A range of its own: hosts of other tests keep their uid locks elsewhere.
		"LAMBDA_SANDBOX_UID_BASE=" + strconv.Itoa(63000+100*rand.IntN(300)), "LAMBDA_SANDBOX_UIDS=100",
		"LAMBDA_TEST_SECRET=" + secretValue, "LAMBDA_LOG_LEVEL=warn",
	}
	logFile, err := os.Create(filepath.Join(base, "host.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("runtime host log:\n%s", b)
		}
	})
	ph.url = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(ph.url + "/_/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
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

// The production image's configuration: each worker its own uid, the host's
// capabilities not passed on. The shared hostile table (what does not depend on a mount
// or network namespace) holds there too, and workers of different tenants cannot reach
// each other.
func TestProductionConfigurationIsolatesWorkers(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		hs hostileScripts
		lc langCases
	}{{pythonHostile, pythonCases}, {nodeHostile, nodeCases}} {
		t.Run(c.hs.title, func(t *testing.T) {
			t.Parallel()
			h, _ := newProductionHarness(t, c.hs.title, productionCaps...)
			code, doc := h.ready(t)
			require.Equal(t, http.StatusOK, code)
			require.Equal(t, "auto", doc.Sandbox.Mode)
			require.True(t, doc.Sandbox.Layers["uid"], "distinct worker uids without bubblewrap: %s", doc.Sandbox.Missing["uid"])
			require.True(t, doc.Sandbox.Layers["rlimits"], doc.Sandbox.Missing["rlimits"])
			require.False(t, doc.Sandbox.Layers["mountns"])
			runHostileWithoutNamespaces(t, h, c.hs, c.lc)
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
	require.Len(t, got.Attempts, 14)
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
	h, _ := newProductionHarness(t, "python") // uid 10001, no capabilities at all
	code, doc := h.ready(t)
	require.Equal(t, http.StatusOK, code)
	require.False(t, doc.Sandbox.Layers["uid"])
	require.Equal(t, "pinned", doc.Sandbox.Tenants)
	require.Contains(t, doc.Sandbox.TenantsWhy, "CAP_SETUID")
	require.Contains(t, h.metrics(t), `lambda_runtime_tenant_pinned{runtime="python"} 1`)

	first := h.ok(t, "add", pythonCases.add, map[string]int{"a": 1, "b": 2}, "succeeded", map[string]any{"tenant": "first"})
	require.JSONEq(t, `{"sum":3}`, string(first.Result))
	code, r := h.call(t, "add", pythonCases.add, map[string]int{"a": 1, "b": 2}, map[string]any{"tenant": "second"})
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, r.Error.Message, "another tenant")
	h.ok(t, "add", pythonCases.add, map[string]int{"a": 1, "b": 2}, "succeeded", map[string]any{"tenant": "first"})
}
