package provider_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openfaas/faas-provider/types"
	sdk "github.com/openfaas/go-sdk"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/lambda-microservice/lambda/internal/faas"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/provider"
)

// fakeReplicaEnv makes the test binary act as a tiny runtime host (see TestMain).
const fakeReplicaEnv = "LAMBDA_PROVIDER_TEST_REPLICA"

func TestMain(m *testing.M) {
	if os.Getenv(fakeReplicaEnv) == "1" {
		fakeRuntimeHost()
		return
	}
	os.Exit(m.Run())
}

// fakeRuntimeHost serves the runtime host's routes on LAMBDA_RUNTIME_ADDR: POST / answers
// its pid, environment and the request body; the X-Status request header picks the status.
func fakeRuntimeHost() {
	fmt.Fprintf(os.Stderr, "fake runtime up pid=%d\n", os.Getpid())
	var ready, sick, unready atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_/health", func(w http.ResponseWriter, r *http.Request) {
		if sick.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /_/ready", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() || unready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		// The pool's load as a runtime host reports it: busy workers read from a file the
		// test writes (LAMBDA_FAKE_LOAD_FILE), out of 4.
		if f := os.Getenv("LAMBDA_FAKE_LOAD_FILE"); f != "" {
			b, _ := os.ReadFile(f)
			busy, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			fmt.Fprintf(w, `{"status":"ready","load":{"busy":%d,"queued":0,"workers":4}}`, busy)
		}
	})
	// Test controls: POST /_/sick, /_/unready, /_/ready-again.
	mux.HandleFunc("POST /_/sick", func(w http.ResponseWriter, r *http.Request) { sick.Store(true) })
	mux.HandleFunc("POST /_/unready", func(w http.ResponseWriter, r *http.Request) { unready.Store(true) })
	mux.HandleFunc("POST /_/ready-again", func(w http.ResponseWriter, r *http.Request) { unready.Store(false) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		status := http.StatusOK
		if s := r.Header.Get("X-Status"); s != "" {
			status, _ = strconv.Atoi(s)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"pid": os.Getpid(), "env": os.Environ(), "body": string(body), "path": r.URL.Path,
		})
	})
	ln, err := net.Listen("tcp", os.Getenv("LAMBDA_RUNTIME_ADDR"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(2)
	}
	go func() { time.Sleep(50 * time.Millisecond); ready.Store(true) }()
	_ = http.Serve(ln, mux)
}

type fakeAnswer struct {
	PID  int      `json:"pid"`
	Env  []string `json:"env"`
	Body string   `json:"body"`
	Path string   `json:"path"`
}

func newProvider(t *testing.T, cfg provider.Config) (*provider.Provider, *httptest.Server, *sdk.Client) {
	t.Helper()
	reg := metrics.NewRegistry()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	p, err := provider.New(cfg, log, reg)
	require.NoError(t, err)
	srv := httptest.NewServer(p.Handler())
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		require.NoError(t, p.Close(ctx))
	})
	u, _ := url.Parse(srv.URL)
	return p, srv, sdk.NewClient(u, nil, http.DefaultClient)
}

func fakeConfig(t *testing.T) provider.Config {
	exe, err := os.Executable()
	require.NoError(t, err)
	return provider.Config{
		RuntimeBin:        exe,
		ReadyTimeout:      10 * time.Second,
		ProxyTimeout:      10 * time.Second,
		ProxyWait:         5 * time.Second,
		StopGrace:         2 * time.Second,
		RestartBackoff:    50 * time.Millisecond,
		MaxRestartBackoff: time.Second,
		LogLines:          100,
		MaxReplicas:       4,
		PassEnv:           []string{"PATH", "HOME"},
		Environ: map[string]string{
			"PATH": os.Getenv("PATH"), "HOME": "/home/test",
			"LAMBDA_DATABASE_URL": "postgres://secret@db/lambda",
		},
	}
}

// waitFor polls cond every 20 ms until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func invoke(t *testing.T, base, name string, hdr map[string]string, body string) (int, fakeAnswer, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/function/"+name+"/sub/path?x=1", strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var a fakeAnswer
	_ = json.Unmarshal(raw, &a)
	return resp.StatusCode, a, string(raw)
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

func TestProviderLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := fakeConfig(t)
	_, srv, client := newProvider(t, cfg)
	const name = "runtime-fake"

	labels := map[string]string{provider.LabelScaleMin: "1"}
	status, err := client.Deploy(ctx, types.FunctionDeployment{
		Service: name,
		Image:   "ghcr.io/lambda-microservice/runtime-fake:latest",
		EnvVars: map[string]string{fakeReplicaEnv: "1", "LAMBDA_RUNTIME": "fake"},
		Labels:  &labels,
	})
	require.NoError(t, err)
	require.Equal(t, http.StatusAccepted, status)

	_, err = client.Deploy(ctx, types.FunctionDeployment{Service: name, Image: "x"})
	require.Error(t, err, "a second deploy of the same name is a conflict")

	waitFor(t, 10*time.Second, "1 available replica", func() bool {
		st, err := client.GetFunction(ctx, name, "")
		return err == nil && st.AvailableReplicas == 1
	})
	fns, err := client.GetFunctions(ctx, provider.Namespace)
	require.NoError(t, err)
	require.Len(t, fns, 1)
	require.Equal(t, name, fns[0].Name)
	require.Equal(t, "ghcr.io/lambda-microservice/runtime-fake:latest", fns[0].Image)
	require.EqualValues(t, 1, fns[0].Replicas)
	require.EqualValues(t, 1, fns[0].AvailableReplicas)

	// Invoke through the proxy: body, path and status pass through.
	code, ans, raw := invoke(t, srv.URL, name, nil, `{"a":1}`)
	require.Equal(t, http.StatusOK, code, raw)
	require.Equal(t, `{"a":1}`, ans.Body)
	require.Equal(t, "/sub/path", ans.Path)
	code, _, raw = invoke(t, srv.URL, name+"."+provider.Namespace, nil, `{}`)
	require.Equal(t, http.StatusOK, code, "the name.namespace form (go-sdk InvokeFunction): %s", raw)
	code, _, raw = invoke(t, srv.URL, name+".other-ns", nil, `{}`)
	require.Equal(t, http.StatusNotFound, code, raw)
	code, _, raw = invoke(t, srv.URL, name, map[string]string{"X-Status": "418"}, `{}`)
	require.Equal(t, 418, code)
	require.Contains(t, raw, `"pid"`)

	// The replica's environment: the deployment's EnvVars, the allowlist, the provider's
	// settings; never the provider's secrets.
	env := strings.Join(ans.Env, "\n")
	require.Contains(t, env, "LAMBDA_RUNTIME=fake")
	require.Contains(t, env, "HOME=/home/test")
	require.Contains(t, env, "LAMBDA_RUNTIME_ADDR=127.0.0.1:")
	require.NotContains(t, env, "LAMBDA_DATABASE_URL")
	require.NotContains(t, env, "secret")

	// Scale to 2: both replicas serve calls.
	require.NoError(t, client.ScaleFunction(ctx, name, "", 2))
	waitFor(t, 10*time.Second, "2 available replicas", func() bool {
		st, err := client.GetFunction(ctx, name, "")
		return err == nil && st.AvailableReplicas == 2 && st.Replicas == 2
	})
	pids := map[int]int{}
	for range 20 {
		code, ans, raw := invoke(t, srv.URL, name, nil, `{}`)
		require.Equal(t, http.StatusOK, code, raw)
		pids[ans.PID]++
	}
	require.Len(t, pids, 2, "calls are spread over both replicas: %v", pids)

	eps, err := faas.FetchEndpoints(ctx, http.DefaultClient, srv.URL, name)
	require.NoError(t, err)
	require.Len(t, eps, 2)
	for _, ep := range eps {
		resp, err := http.Post(ep+"/", "application/json", strings.NewReader(`{}`))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "endpoint %s answers directly", ep)
	}

	var groups []provider.TargetGroup
	getJSON(t, srv.URL+"/system/prometheus-targets", &groups)
	require.Len(t, groups, 2)
	require.Equal(t, name, groups[0].Labels["function"])

	// kill -9 one replica: it is restarted and counted.
	var victim int
	for pid := range pids {
		victim = pid
		break
	}
	require.NoError(t, syscall.Kill(victim, syscall.SIGKILL))
	waitFor(t, 10*time.Second, "the killed replica to be replaced", func() bool {
		st, err := client.GetFunction(ctx, name, "")
		if err != nil || st.AvailableReplicas != 2 {
			return false
		}
		seen := map[int]bool{}
		for range 10 {
			_, ans, _ := invoke(t, srv.URL, name, nil, `{}`)
			seen[ans.PID] = true
		}
		return len(seen) == 2 && !seen[victim]
	})
	waitFor(t, 5*time.Second, "the restart to be counted", func() bool {
		return providerRestarts(t, srv.URL, name) >= 1
	})

	// Logs: the replicas' output lines, with the instance name.
	lines := readLogs(t, srv.URL, name)
	require.NotEmpty(t, lines)
	require.Contains(t, lines[0].Text, "fake runtime up")
	require.True(t, strings.HasPrefix(lines[0].Instance, name+"-"))

	// Scale down to 1, then delete: every process is gone.
	require.NoError(t, client.ScaleFunction(ctx, name, "", 1))
	waitFor(t, 10*time.Second, "1 replica", func() bool {
		eps, err := faas.FetchEndpoints(ctx, http.DefaultClient, srv.URL, name)
		return err == nil && len(eps) == 1
	})
	var last fakeAnswer
	_, last, _ = invoke(t, srv.URL, name, nil, `{}`)
	require.True(t, alive(last.PID))
	require.NoError(t, client.DeleteFunction(ctx, name, ""))
	require.False(t, alive(last.PID), "delete stops the replica processes")
	fns, err = client.GetFunctions(ctx, "")
	require.NoError(t, err)
	require.Empty(t, fns)
	code, _, _ = invoke(t, srv.URL, name, nil, `{}`)
	require.Equal(t, http.StatusNotFound, code)
}

// providerRestarts reads lambda_provider_restarts_total{function=name} from /metrics.
func providerRestarts(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	prefix := `lambda_provider_restarts_total{function="` + name + `"} `
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return 0
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

type logMessage struct {
	Name     string `json:"name"`
	Instance string `json:"instance"`
	Text     string `json:"text"`
}

func readLogs(t *testing.T, base, name string) []logMessage {
	t.Helper()
	resp, err := http.Get(base + "/system/logs?name=" + name + "&tail=50")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var out []logMessage
	dec := json.NewDecoder(resp.Body)
	for {
		var m logMessage
		if err := dec.Decode(&m); err != nil {
			break
		}
		out = append(out, m)
	}
	return out
}

func TestProviderUnknownFunctionAndBadRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, srv, client := newProvider(t, fakeConfig(t))
	_, err := client.GetFunction(ctx, "missing", "")
	require.ErrorIs(t, err, sdk.ErrNotFound)
	require.Error(t, client.ScaleFunction(ctx, "missing", "", 1))
	require.Error(t, client.DeleteFunction(ctx, "missing", ""))

	resp, err := http.Post(srv.URL+"/system/functions", "application/json", strings.NewReader(`{"image":"x"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "service is required")

	resp, err = http.Get(srv.URL + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = http.Get(srv.URL + "/system/info")
	require.NoError(t, err)
	defer resp.Body.Close()
	var info types.ProviderInfo
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&info))
	require.Equal(t, "lambda-provider", info.Name)
}

// TestProviderRestartsReplicaThatNeverGetsReady: a replica whose process exits at once is
// restarted with backoff and never receives traffic; calls get 503 after ProxyWait.
func TestProviderCrashingReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := fakeConfig(t)
	cfg.RuntimeBin = "/bin/false"
	cfg.ProxyWait = 300 * time.Millisecond
	_, srv, client := newProvider(t, cfg)
	_, err := client.Deploy(ctx, types.FunctionDeployment{Service: "crashy", Image: "x"})
	require.NoError(t, err)
	waitFor(t, 5*time.Second, "restarts", func() bool {
		return providerRestarts(t, srv.URL, "crashy") >= 2
	})
	st, err := client.GetFunction(ctx, "crashy", "")
	require.NoError(t, err)
	require.EqualValues(t, 0, st.AvailableReplicas)
	code, _, _ := invoke(t, srv.URL, "crashy", nil, `{}`)
	require.Equal(t, http.StatusServiceUnavailable, code)
}

// TestProviderRollingUpdate: an update starts replicas with the new spec and stops the
// old ones once the new ones are ready.
func TestProviderRollingUpdate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, srv, client := newProvider(t, fakeConfig(t))
	spec := types.FunctionDeployment{Service: "rolling", Image: "img:1", EnvVars: map[string]string{fakeReplicaEnv: "1", "GEN": "one"}}
	_, err := client.Deploy(ctx, spec)
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "ready", func() bool {
		st, err := client.GetFunction(ctx, "rolling", "")
		return err == nil && st.AvailableReplicas == 1
	})
	_, first, _ := invoke(t, srv.URL, "rolling", nil, `{}`)
	require.Contains(t, first.Env, "GEN=one")

	spec.Image, spec.EnvVars["GEN"] = "img:2", "two"
	_, err = client.Update(ctx, spec)
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "the new generation to serve alone", func() bool {
		_, a, _ := invoke(t, srv.URL, "rolling", nil, `{}`)
		return slices.Contains(a.Env, "GEN=two") && !alive(first.PID)
	})
	st, err := client.GetFunction(ctx, "rolling", "")
	require.NoError(t, err)
	require.Equal(t, "img:2", st.Image)
	require.EqualValues(t, 1, st.Replicas)
	require.EqualValues(t, 1, st.AvailableReplicas)
}

// TestProviderLogsFollow: with follow=true new output lines stream as they are written.
func TestProviderLogsFollow(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, client := newProvider(t, fakeConfig(t))
	_, err := client.Deploy(ctx, types.FunctionDeployment{Service: "chatty", Image: "x", EnvVars: map[string]string{fakeReplicaEnv: "1"}})
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "ready", func() bool {
		st, err := client.GetFunction(ctx, "chatty", "")
		return err == nil && st.AvailableReplicas == 1
	})
	msgs, err := client.GetLogs(ctx, "chatty", "", true, 0, nil)
	require.NoError(t, err)
	first := <-msgs
	require.Contains(t, first.Text, "fake runtime up")
	// A second replica writes a new line, which the follower sees.
	require.NoError(t, client.ScaleFunction(ctx, "chatty", "", 2))
	select {
	case m := <-msgs:
		require.Contains(t, m.Text, "fake runtime up")
		require.Equal(t, "chatty-2", m.Instance)
	case <-ctx.Done():
		t.Fatal("no followed line")
	}
}

// TestProviderProbes: a replica failing its readiness probe leaves the balancing until it
// passes again; one failing its health probe three times is restarted.
func TestProviderProbes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := fakeConfig(t)
	cfg.ProbeInterval = 50 * time.Millisecond
	_, srv, client := newProvider(t, cfg)
	_, err := client.Deploy(ctx, types.FunctionDeployment{Service: "probed", Image: "x", EnvVars: map[string]string{fakeReplicaEnv: "1"}})
	require.NoError(t, err)
	endpoints := func() []string {
		eps, err := faas.FetchEndpoints(ctx, http.DefaultClient, srv.URL, "probed")
		require.NoError(t, err)
		return eps
	}
	waitFor(t, 10*time.Second, "ready", func() bool { return len(endpoints()) == 1 })
	ep := endpoints()[0]
	post := func(path string) {
		resp, err := http.Post(ep+path, "text/plain", nil)
		require.NoError(t, err)
		resp.Body.Close()
	}

	post("/_/unready")
	waitFor(t, 5*time.Second, "the replica out of the balancing", func() bool { return len(endpoints()) == 0 })
	post("/_/ready-again")
	waitFor(t, 5*time.Second, "the replica back", func() bool { return len(endpoints()) == 1 })

	_, before, _ := invoke(t, srv.URL, "probed", nil, `{}`)
	post("/_/sick")
	waitFor(t, 10*time.Second, "a restarted replica", func() bool {
		eps := endpoints()
		return len(eps) == 1 && eps[0] != ep
	})
	require.False(t, alive(before.PID), "the sick process was stopped")
	require.GreaterOrEqual(t, providerRestarts(t, srv.URL, "probed"), 1.0)
}

// A deployment cannot choose a replica's isolation, authentication or files: PUT and POST
// /system/functions with such a variable are 400 and change nothing; the operator's
// LAMBDA_SANDBOX* and the invoke secret's file reach every replica from the provider.
func TestDeploymentCannotSetReservedVariables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := fakeConfig(t)
	cfg.PassEnv = append(cfg.PassEnv, "LAMBDA_SANDBOX*")
	cfg.Environ["LAMBDA_SANDBOX"] = "strict"
	cfg.Environ["LAMBDA_SANDBOX_PIDS"] = "64"
	cfg.RuntimeSecretFile = "/run/secrets/lambda/runtime-secret"
	_, srv, client := newProvider(t, cfg)
	const name = "runtime-reserved"
	spec := types.FunctionDeployment{Service: name, Image: "x", EnvVars: map[string]string{fakeReplicaEnv: "1", "LAMBDA_RUNTIME": "fake"}}
	for _, k := range []string{"LAMBDA_SANDBOX", "LAMBDA_SANDBOX_NETWORK", "LAMBDA_RUNTIME_AUTH", "LAMBDA_RUNTIME_SECRET_FILE", "LD_PRELOAD", "PATH", "HOME"} {
		bad := spec
		bad.EnvVars = map[string]string{fakeReplicaEnv: "1", k: "off"}
		_, err := client.Deploy(ctx, bad)
		require.ErrorContains(t, err, k, "deploy with %s", k)
	}
	_, err := client.Deploy(ctx, spec)
	require.NoError(t, err)
	waitFor(t, 10*time.Second, "1 available replica", func() bool {
		st, err := client.GetFunction(ctx, name, "")
		return err == nil && st.AvailableReplicas == 1
	})
	bad := spec
	bad.EnvVars = map[string]string{fakeReplicaEnv: "1", "LAMBDA_SANDBOX": "off"}
	_, err = client.Update(ctx, bad)
	require.ErrorContains(t, err, "LAMBDA_SANDBOX")

	code, ans, raw := invoke(t, srv.URL, name, nil, `{}`)
	require.Equal(t, http.StatusOK, code, raw)
	env := strings.Join(ans.Env, "\n")
	require.Contains(t, env, "LAMBDA_SANDBOX=strict\n")
	require.Contains(t, env, "LAMBDA_SANDBOX_PIDS=64")
	require.Contains(t, env, "LAMBDA_RUNTIME_SECRET_FILE=/run/secrets/lambda/runtime-secret")
}

// The provider scales a function out while its replicas' workers stay busy and back in
// once they are idle, between the scale labels.
func TestProviderAutoscales(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := fakeConfig(t)
	cfg.ProbeInterval = 50 * time.Millisecond
	cfg.AutoscaleInterval = 100 * time.Millisecond
	cfg.AutoscaleUp = 0.8
	cfg.AutoscaleIdle = 500 * time.Millisecond
	_, _, client := newProvider(t, cfg)
	load := filepath.Join(t.TempDir(), "load")
	require.NoError(t, os.WriteFile(load, []byte("0"), 0o644))
	labels := map[string]string{provider.LabelScaleMin: "1", provider.LabelScaleMax: "3"}
	_, err := client.Deploy(ctx, types.FunctionDeployment{Service: "runtime-scaled", Image: "x", Labels: &labels,
		EnvVars: map[string]string{fakeReplicaEnv: "1", "LAMBDA_FAKE_LOAD_FILE": load}})
	require.NoError(t, err)
	replicas := func() uint64 {
		st, err := client.GetFunction(ctx, "runtime-scaled", "")
		require.NoError(t, err)
		return st.Replicas
	}
	waitFor(t, 10*time.Second, "1 replica", func() bool { return replicas() == 1 })
	time.Sleep(300 * time.Millisecond)
	require.EqualValues(t, 1, replicas(), "an idle function stays at its minimum")

	require.NoError(t, os.WriteFile(load, []byte("4"), 0o644)) // every worker busy
	waitFor(t, 15*time.Second, "scaled out to the maximum", func() bool { return replicas() == 3 })
	time.Sleep(500 * time.Millisecond)
	require.EqualValues(t, 3, replicas(), "never beyond com.openfaas.scale.max")

	require.NoError(t, os.WriteFile(load, []byte("0"), 0o644))
	waitFor(t, 15*time.Second, "scaled back in to the minimum", func() bool { return replicas() == 1 })
}
