package worker_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/callback"
	"github.com/lambda-microservice/lambda/internal/core"
	"github.com/lambda-microservice/lambda/internal/store"
	"github.com/lambda-microservice/lambda/workflows"
)

// fullCore is the platform's core as the api and the worker compose it: durable
// executions and runs, callbacks delivered through the guard with allow as the
// allowlist, and schedules, all on the workflows' Starter. It becomes the core of the
// workers started after it.
func (p *platform) fullCore(allow string) *core.Service {
	p.t.Helper()
	st := workflows.NewStarter(workflows.StarterConfig{HeartbeatTimeout: 2 * time.Second, MaxAttempts: 5,
		StartTimeout: 5 * time.Second, LocalInvokeMax: 10 * time.Second}, p.client, p.ns)
	cidrs, err := callback.ParseCIDRs(allow)
	require.NoError(p.t, err)
	c := core.New(core.Config{SyncTimeoutMax: time.Minute, IdempotencyTTL: 24 * time.Hour,
		VersionCacheTTL: time.Second, RuntimeCallSlack: 5 * time.Second, SyncPipelineMax: 10 * time.Second,
		AsyncPerTenant: 100_000, Functions: core.FunctionLimits{
			MaxSourceBytes: 1 << 18, DefaultTimeoutMS: 3000, DefaultMemoryMB: 128, MaxTimeout: 15 * time.Minute}},
		core.Deps{Store: p.store, Cache: p.cache, Runner: p.fx, Logs: p.logs, Registry: p.runtimes, Durable: st, Runs: st,
			Callbacks: st, Schedules: st, Deliverer: callback.NewClient(callback.Config{AllowCIDRs: cidrs}),
			Metrics: p.im, Log: p.log})
	p.core = c
	return c
}

// receiver is a callback receiver on 127.0.0.1 that answers fail5xx attempts 500 first.
type receiver struct {
	srv     *httptest.Server
	fail5xx int32
	conns   atomic.Int32
	mu      sync.Mutex
	got     []delivery
}

type delivery struct {
	sig  string
	body []byte
}

func newReceiver(t *testing.T, fail5xx int32) *receiver {
	rc := &receiver{fail5xx: fail5xx}
	rc.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.got = append(rc.got, delivery{sig: r.Header.Get(callback.SignatureHeader), body: body})
		n := int32(len(rc.got))
		rc.mu.Unlock()
		if n <= rc.fail5xx {
			http.Error(w, "receiver not ready", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	rc.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			rc.conns.Add(1)
		}
	}
	rc.srv.Start()
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) deliveries() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.got...)
}

// waitCallback polls an execution's callback state until it is final.
func (p *platform) waitCallback(id string, within time.Duration) store.CallbackState {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		cb, err := p.store.GetCallback(context.Background(), id)
		require.NoError(p.t, err)
		if cb.State != store.CallbackPending {
			return cb.CallbackState
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("callback of %s still pending after %s: %+v", id, within, cb)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCallbackDelivered: an async execution with X-Callback-Url on the real stack; the
// receiver answers 500 three times and gets the fourth delivery, every one signed with
// the tenant's secret; the envelope it gets is the finished execution, and the
// execution's envelope shows the delivery.
func TestCallbackDelivered(t *testing.T) {
	p := newPlatform(t, "callback")
	c := p.fullCore("127.0.0.1/32")
	p.startWorker()
	p.register("add", 3000, 0)
	rc := newReceiver(t, 3)
	ctx := context.Background()
	sec, err := c.GetWebhookSecret(ctx, p.tenant)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(sec.Secret, callback.SecretPrefix))

	e, _, err := c.StartExecution(ctx, core.Request{Tenant: p.tenant, Function: "add", LanguageTitle: "python",
		Event: json.RawMessage(`{"A":2,"B":3}`), CallbackURL: rc.srv.URL + "/hook"})
	require.NoError(t, err)
	require.Equal(t, store.CallbackPending, e.CallbackState.State)

	st := p.waitCallback(e.ID, 60*time.Second)
	require.Equal(t, store.CallbackDelivered, st.State, "%+v", st)
	require.Equal(t, 4, st.Attempts)
	require.Equal(t, 204, st.LastStatus)
	got := rc.deliveries()
	require.Len(t, got, 4)
	for _, d := range got {
		require.NoError(t, callback.Verify(d.sig, d.body, [][]byte{[]byte(sec.Secret)}, time.Now(), callback.DefaultTolerance))
		require.Equal(t, string(got[0].body), string(d.body), "every attempt sends the same envelope")
	}
	var env map[string]any
	require.NoError(t, json.Unmarshal(got[3].body, &env))
	require.Equal(t, e.ID, env["id"])
	require.Equal(t, "succeeded", env["status"])
	require.JSONEq(t, "5", mustJSON(t, env["result"]))

	es := []store.Execution{{ID: e.ID}}
	require.NoError(t, p.store.AnnotateExecutions(ctx, es))
	require.Equal(t, &store.CallbackState{State: "delivered", Attempts: 4, LastStatus: 204, Reason: "HTTP 204", URL: rc.srv.URL + "/hook"}, es[0].CallbackState)
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

// TestCallbackReceiverDownThenUp: nothing listens at the callback's address for the first
// attempts (connection refused); once a receiver listens there, the delivery arrives.
func TestCallbackReceiverDownThenUp(t *testing.T) {
	p := newPlatform(t, "callback")
	p.tenant = "downup"
	c := p.fullCore("127.0.0.1/32")
	p.startWorker()
	p.register("add", 3000, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // down
	ctx := context.Background()
	e, _, err := c.StartExecution(ctx, core.Request{Tenant: p.tenant, Function: "add", LanguageTitle: "python",
		Event: json.RawMessage(`{"A":1,"B":1}`), CallbackURL: "http://" + addr + "/hook"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		cb, err := p.store.GetCallback(ctx, e.ID)
		return err == nil && cb.Attempts >= 2
	}, 30*time.Second, 50*time.Millisecond, "retried while nothing listens")
	cb, err := p.store.GetCallback(ctx, e.ID)
	require.NoError(t, err)
	require.Equal(t, store.CallbackPending, cb.State)
	require.Zero(t, cb.LastStatus)

	var got atomic.Int32
	ln, err = net.Listen("tcp", addr) // up
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusOK)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	st := p.waitCallback(e.ID, 60*time.Second)
	require.Equal(t, store.CallbackDelivered, st.State, "%+v", st)
	require.Equal(t, 200, st.LastStatus)
	require.Equal(t, int32(1), got.Load())
	require.Greater(t, st.Attempts, 2)
}

// TestCallbackRotationAndRuns: after a rotation a pipeline run's callback carries two
// signatures, one verifying with the old secret and one with the new.
func TestCallbackRotationAndRuns(t *testing.T) {
	p := newPlatform(t, "callback")
	p.tenant = "rotate"
	c := p.fullCore("127.0.0.1/32")
	p.startWorker()
	p.register("add", 3000, 0)
	p.registerPipeline(c, `{"name":"one","steps":[{"id":"s1","function":"add","input":{"A":"${input.a}","B":1}}]}`)
	rc := newReceiver(t, 0)
	ctx := context.Background()
	old, err := c.GetWebhookSecret(ctx, p.tenant)
	require.NoError(t, err)
	next, err := c.RotateWebhookSecret(ctx, p.tenant)
	require.NoError(t, err)
	require.NotEqual(t, old.Secret, next.Secret)
	require.Equal(t, old.Secret, next.Previous)

	r, _, err := c.StartRun(ctx, core.RunRequest{Tenant: p.tenant, Pipeline: "one", Input: json.RawMessage(`{"a":1}`),
		CallbackURL: rc.srv.URL})
	require.NoError(t, err)
	require.Equal(t, core.ModeAsync, r.Mode, "a run with a callback is async")
	st := p.waitCallback(r.ID, 60*time.Second)
	require.Equal(t, store.CallbackDelivered, st.State, "%+v", st)
	got := rc.deliveries()
	require.Len(t, got, 1)
	require.Equal(t, 2, strings.Count(got[0].sig, "v1="), got[0].sig)
	for _, s := range []string{old.Secret, next.Secret} {
		require.NoError(t, callback.Verify(got[0].sig, got[0].body, [][]byte{[]byte(s)}, time.Now(), callback.DefaultTolerance))
	}
	var env map[string]any
	require.NoError(t, json.Unmarshal(got[0].body, &env))
	require.Equal(t, r.ID, env["id"])
	require.Equal(t, "succeeded", env["status"])
}

// TestCallbackRefused: without the allowlist, a receiver on 127.0.0.1 (and the other
// refused classes) is never connected to; the delivery fails at once with the reason.
func TestCallbackRefused(t *testing.T) {
	p := newPlatform(t, "callback")
	p.tenant = "refused"
	c := p.fullCore("")
	p.startWorker()
	p.register("add", 3000, 0)
	rc := newReceiver(t, 0)
	ctx := context.Background()
	for _, url := range []string{rc.srv.URL, "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data", "http://localhost:1/x"} {
		e, _, err := c.StartExecution(ctx, core.Request{Tenant: p.tenant, Function: "add", LanguageTitle: "python",
			Event: json.RawMessage(`{"A":1,"B":1}`), CallbackURL: url})
		require.NoError(t, err)
		st := p.waitCallback(e.ID, 30*time.Second)
		require.Equal(t, store.CallbackFailed, st.State, url)
		require.Equal(t, 1, st.Attempts, url)
		require.Contains(t, st.Reason, "refused", url)
	}
	require.Zero(t, rc.conns.Load(), "no connection to a refused target")

	_, _, err := c.StartExecution(ctx, core.Request{Tenant: p.tenant, Function: "add", LanguageTitle: "python",
		Event: json.RawMessage(`{}`), CallbackURL: "ftp://example.com/x"})
	require.Error(t, err, "only http and https")
}
