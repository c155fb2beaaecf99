package worker_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	sdk "github.com/openfaas/go-sdk"
	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/provider"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

// childrenNamed lists the pids of this process's children whose command is name.
func childrenNamed(name string) []int {
	var pids []int
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(raw)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		fields := strings.Fields(s[closing+1:])
		if len(fields) < 2 || s[open+1:closing] != name {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == self {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestRealRuntimeKilledMidCall runs an async execution on the real runtime host (the
// python runtime function deployed on the local OpenFaaS provider) and SIGKILLs the
// runtime host while the handler runs: the Invoke activity meets a platform fault,
// retries once the provider has restarted the replica, and the execution is recorded
// exactly once, with attempts = 2.
func TestRealRuntimeKilledMidCall(t *testing.T) {
	t.Parallel()
	bin := prereq.Binary(t, "lambda-runtime")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	env := map[string]string{}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "XDG_CACHE_HOME"} {
		env[k] = os.Getenv(k)
	}
	srvURL := pythonProvider(ctx, t, bin, env, []string{"PATH", "HOME", "TMPDIR", "XDG_CACHE_HOME"}, 2)

	p := newPlatformWith(t, "runtime", srvURL)
	p.startWorker()
	d := p.dispatcher(5 * time.Second)
	p.registerSource("sleepy", "import time\n\ndef handler(event, context):\n    time.sleep(event[\"sleep\"])\n    return event[\"a\"] + event[\"b\"]\n",
		20000, 0)

	// A warm-up run proves the path, and compiles the script once.
	warm := p.wait(p.start(d, "sleepy", map[string]any{"a": 1, "b": 1, "sleep": 0}, "").ID, 60*time.Second)
	require.Equal(t, store.StatusSucceeded, warm.Status, "%+v", warm.Error)
	require.Equal(t, 1, warm.Attempts)

	e := p.start(d, "sleepy", map[string]any{"a": 40, "b": 2, "sleep": 3}, "")
	require.Eventually(t, func() bool {
		got, err := p.store.GetExecution(ctx, p.tenant, e.ID, false)
		return err == nil && got.Status == store.StatusRunning
	}, 30*time.Second, 10*time.Millisecond)
	time.Sleep(500 * time.Millisecond) // the handler is sleeping now
	hosts := childrenNamed("lambda-runtime")
	require.Len(t, hosts, 1, "one runtime host replica")
	require.NoError(t, syscall.Kill(hosts[0], syscall.SIGKILL))
	t.Logf("killed runtime host %d mid-call", hosts[0])

	got := p.wait(e.ID, 90*time.Second)
	require.Equal(t, store.StatusSucceeded, got.Status, "%+v", got.Error)
	require.JSONEq(t, "42", string(got.Result))
	require.Equal(t, 2, got.Attempts, "the attempt after the restart produced the result")
	require.Equal(t, 1, p.rows(e.ID), "recorded exactly once")
	require.NotContains(t, childrenNamed("lambda-runtime"), hosts[0])
}

// pythonProvider starts the local OpenFaaS provider (the real one, with the invoke secret)
// that runs bin, the real runtime host, with env for its replicas (pass: what they
// inherit) and at most maxReplicas of them; deploys the python runtime function and
// returns the provider's URL once one replica is ready.
func pythonProvider(ctx context.Context, t *testing.T, bin string, env map[string]string, pass []string, maxReplicas int) string {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "runtime-secret")
	require.NoError(t, os.WriteFile(secretFile, []byte(testRuntimeSecret), 0o600))
	prov, err := provider.New(provider.Config{RuntimeSecretFile: secretFile,
		RuntimeBin: bin, ReadyTimeout: 60 * time.Second, ProxyTimeout: 65 * time.Second, ProxyWait: 20 * time.Second,
		StopGrace: 2 * time.Second, RestartBackoff: 50 * time.Millisecond, MaxRestartBackoff: time.Second,
		ProbeInterval: time.Second, LogLines: 100, MaxReplicas: maxReplicas,
		PassEnv: pass, Environ: env,
	}, testLogger(t), metrics.NewRegistry())
	require.NoError(t, err)
	srv := httptest.NewServer(prov.Handler())
	t.Cleanup(func() {
		srv.Close()
		sctx, scancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer scancel()
		_ = prov.Close(sctx)
	})
	u, _ := url.Parse(srv.URL)
	fx := sdk.NewClient(u, nil, srv.Client())
	_, err = fx.Deploy(ctx, types.FunctionDeployment{Service: "runtime-python",
		Image: "ghcr.io/lambda-microservice/runtime-python:latest", EnvVars: map[string]string{"LAMBDA_RUNTIME": "python"}})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := fx.GetFunction(ctx, "runtime-python", "")
		return err == nil && st.AvailableReplicas == 1
	}, 60*time.Second, 50*time.Millisecond, "the python runtime host becomes ready")
	return srv.URL
}
