package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/callback"
)

// TestSchedulesHTTP drives the schedules API over HTTP on the whole platform: create,
// the 4xx problems that create nothing, the runs it records, trigger, pause, delete.
func TestSchedulesHTTP(t *testing.T) {
	t.Parallel()
	mustRegister(t, "sched-add", "python", "def handler(event, context):\n    return event['a'] + event['b']\n", nil)

	for _, body := range []string{
		`{"name":"bad1","target":{"function":"sched-add"},"cron":"61 * * * *"}`,
		`{"name":"bad2","target":{"function":"sched-add"},"cron":"0 3 * * *","timezone":"Mars/Olympus"}`,
		`{"name":"bad3","target":{"function":"missing"},"interval_ms":1000}`,
		`{"name":"bad4","target":{"function":"sched-add"}}`,
	} {
		r := call(t, "POST", "/v1/schedules", body)
		require.Contains(t, []int{400, 422}, r.status, r.raw)
		require.Equal(t, "application/problem+json", r.header.Get("Content-Type"), r.raw)
	}
	r := call(t, "GET", "/v1/schedules", "")
	require.Equal(t, 200, r.status, r.raw)
	require.NotContains(t, r.raw, `"bad`)

	r = call(t, "POST", "/v1/schedules", `{"name":"every-sec","target":{"function":"sched-add"},"interval_ms":1000,
		"input":{"a":2,"b":3},"overlap":"skip"}`)
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	require.Equal(t, "sched-default-every-sec", r.body["id"])
	r = call(t, "POST", "/v1/schedules", `{"name":"every-sec","target":{"function":"sched-add"},"interval_ms":5000}`)
	require.Equal(t, http.StatusConflict, r.status, r.raw)

	var runs []any
	require.Eventually(t, func() bool {
		r := call(t, "GET", "/v1/schedules/every-sec/runs", "")
		runs, _ = r.body["runs"].([]any)
		return len(runs) >= 2
	}, 30*time.Second, 200*time.Millisecond)
	id := runs[0].(map[string]any)["execution_id"].(string)
	r = call(t, "GET", "/v1/executions/"+id+"?wait=20s", "")
	require.Equal(t, 200, r.status, r.raw)
	require.Equal(t, "succeeded", r.body["status"], r.raw)
	require.Equal(t, "every-sec", r.body["schedule"], r.raw)
	require.Equal(t, float64(5), r.body["result"])

	r = call(t, "PATCH", "/v1/schedules/every-sec", `{"paused":true}`)
	require.Equal(t, 200, r.status, r.raw)
	require.Equal(t, true, r.body["paused"])
	r = call(t, "POST", "/v1/schedules/every-sec/trigger", "")
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	r = call(t, "GET", "/v1/schedules/every-sec", "")
	require.Equal(t, 200, r.status, r.raw)
	require.NotEmpty(t, r.body["recent_actions"])

	require.Equal(t, http.StatusNoContent, call(t, "DELETE", "/v1/schedules/every-sec", "").status)
	require.Equal(t, http.StatusNotFound, call(t, "GET", "/v1/schedules/every-sec", "").status)
}

// TestCallbackHTTP: an async invoke with X-Callback-Url reaches a receiver on 127.0.0.1
// (allowed by LAMBDA_CALLBACK_ALLOW_CIDRS) signed with the tenant's secret, and the
// execution's envelope shows the delivery; a URL that is not http(s) is a 400.
func TestCallbackHTTP(t *testing.T) {
	t.Parallel()
	mustRegister(t, "cb-add", "python", "def handler(event, context):\n    return event['a'] + event['b']\n", nil)
	r := call(t, "GET", "/v1/webhook-secret", "")
	require.Equal(t, 200, r.status, r.raw)
	secret := r.body["secret"].(string)
	require.True(t, strings.HasPrefix(secret, callback.SecretPrefix))

	var mu sync.Mutex
	var sig string
	var body []byte
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		sig, body = r.Header.Get(callback.SignatureHeader), b
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rc.Close()

	r = call(t, "POST", "/v1/functions/cb-add/invoke", `{"a":1,"b":2}`, "Language-Title", "python",
		"Prefer", "respond-async", "X-Callback-Url", "ftp://example.com/x")
	require.Equal(t, 400, r.status, r.raw)
	r = call(t, "POST", "/v1/functions/cb-add/invoke", `{"a":1,"b":2}`, "Language-Title", "python",
		"Prefer", "respond-async", "X-Callback-Url", rc.URL+"/done")
	require.Equal(t, http.StatusAccepted, r.status, r.raw)
	id := r.body["id"].(string)
	require.Eventually(t, func() bool {
		r := call(t, "GET", "/v1/executions/"+id, "")
		cb, _ := r.body["callback"].(map[string]any)
		return cb != nil && cb["state"] == "delivered"
	}, 60*time.Second, 200*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	require.NoError(t, callback.Verify(sig, body, [][]byte{[]byte(secret)}, time.Now(), callback.DefaultTolerance))
	require.Contains(t, string(body), id)
}

// TestWebhookSecretRotation: a rotation gives a new secret and keeps the previous one,
// which still signs, for 24 h; another read returns the same pair.
func TestWebhookSecretRotation(t *testing.T) {
	t.Parallel()
	r := call(t, "POST", "/v1/tenants", `{"name":"rotation"}`)
	require.Equal(t, 201, r.status, r.raw)
	key := r.body["api_key"].(string)
	first := callAs(t, key, "GET", "/v1/webhook-secret")
	require.Equal(t, 200, first.status, first.raw)
	rot := callAs(t, key, "POST", "/v1/webhook-secret")
	require.Equal(t, 200, rot.status, rot.raw)
	require.NotEqual(t, first.body["secret"], rot.body["secret"])
	require.Equal(t, first.body["secret"], rot.body["previous"])
	require.NotEmpty(t, rot.body["previous_expires_at"])
	again := callAs(t, key, "GET", "/v1/webhook-secret")
	require.Equal(t, rot.body["secret"], again.body["secret"])
	other := call(t, "GET", "/v1/webhook-secret", "")
	require.NotEqual(t, rot.body["secret"], other.body["secret"], "each tenant has its own")
}
