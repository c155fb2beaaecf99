package callback

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDeliverToAllowlistedLoopback(t *testing.T) {
	t.Parallel()
	secret := []byte(NewSecret())
	type got struct {
		method, contentType, userAgent string
		verify                         error
		body                           []byte
	}
	gotc := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotc <- got{r.Method, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"),
			Verify(r.Header.Get(SignatureHeader), b, [][]byte{secret}, time.Now(), 0), b}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	c, _ := newTestClient(t, Config{AllowCIDRs: loopbackAllowed})
	res := c.Deliver(context.Background(), srv.URL+"/hook", body, Sign(secret, time.Now(), body))
	require.Equal(t, Result{Status: Delivered, HTTPStatus: 204, Reason: "HTTP 204"}, res)
	g := <-gotc
	require.Equal(t, http.MethodPost, g.method)
	require.Equal(t, "application/json", g.contentType)
	require.Equal(t, DefaultUserAgent, g.userAgent)
	require.NoError(t, g.verify)
	require.Equal(t, body, g.body)
}

// The receiver fails three times; the caller's loop (what the activity's retries do)
// re-signs each attempt and is delivered on the fourth.
func TestDeliverRetriesUntilDelivered(t *testing.T) {
	t.Parallel()
	secret := []byte(NewSecret())
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := Verify(r.Header.Get(SignatureHeader), b, [][]byte{secret}, time.Now(), 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if calls.Add(1) <= 3 {
			http.Error(w, "database is down", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)

	c, _ := newTestClient(t, Config{AllowCIDRs: loopbackAllowed})
	b := Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond, Multiplier: 2, Jitter: 0.2, GiveUpAfter: 10 * time.Second}
	start := time.Now()
	var results []Result
	for n := 1; ; n++ {
		res := c.Deliver(context.Background(), srv.URL, body, Sign(secret, time.Now(), body))
		results = append(results, res)
		if res.Status != Retry {
			break
		}
		d, ok := b.Next(n, "exec-1", time.Since(start), res.RetryAfter)
		require.True(t, ok)
		time.Sleep(d)
	}
	require.Len(t, results, 4)
	for _, r := range results[:3] {
		require.Equal(t, Result{Status: Retry, HTTPStatus: 500, Reason: "HTTP 500: database is down", Retryable: true}, r)
	}
	require.Equal(t, Delivered, results[3].Status)
	require.Equal(t, int64(4), calls.Load())
}

func TestDeliverClassifiesStatuses(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscan(strings.TrimPrefix(r.URL.Path, "/"), &code)
		if code == 429 || code == 503 {
			w.Header().Set("Retry-After", "7")
		}
		w.WriteHeader(code)
		fmt.Fprintf(w, "status %d\n\tdetail", code)
	}))
	t.Cleanup(srv.Close)
	c, _ := newTestClient(t, Config{AllowCIDRs: loopbackAllowed})
	for code, want := range map[int]Status{
		200: Delivered, 201: Delivered, 202: Delivered, 204: Delivered, 299: Delivered,
		408: Retry, 429: Retry, 500: Retry, 502: Retry, 503: Retry, 504: Retry, 599: Retry,
		400: Failed, 401: Failed, 403: Failed, 404: Failed, 409: Failed, 410: Failed, 413: Failed, 422: Failed,
		300: Failed, 301: Failed, 302: Failed, 303: Failed, 307: Failed, 308: Failed,
	} {
		res := c.Deliver(context.Background(), fmt.Sprintf("%s/%d", srv.URL, code), body, "sig")
		require.Equal(t, want, res.Status, code)
		require.Equal(t, code, res.HTTPStatus, code)
		require.Equal(t, want == Retry, res.Retryable, code)
		switch {
		case want == Delivered:
			require.Equal(t, fmt.Sprintf("HTTP %d", code), res.Reason)
		case code >= 300 && code < 400:
			require.Equal(t, fmt.Sprintf("redirect not followed: HTTP %d", code), res.Reason)
		default:
			require.Equal(t, fmt.Sprintf("HTTP %d: status %d detail", code, code), res.Reason)
		}
		if code == 429 || code == 503 {
			require.Equal(t, 7*time.Second, res.RetryAfter, code)
		} else {
			require.Zero(t, res.RetryAfter, code)
		}
	}
}

func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	var targetHits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		targetHits.Add(1)
	}))
	t.Cleanup(target.Close)
	var redirects atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirects.Add(1)
		http.Redirect(w, r, target.URL+"/elsewhere", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(srv.Close)

	c, _ := newTestClient(t, Config{AllowCIDRs: loopbackAllowed})
	res := c.Deliver(context.Background(), srv.URL, body, "sig")
	require.Equal(t, Result{Status: Failed, HTTPStatus: 307,
		Reason: "redirect not followed: HTTP 307 to " + target.URL + "/elsewhere"}, res)
	require.Equal(t, int64(1), redirects.Load())
	require.Zero(t, targetHits.Load())
}

// A receiver that streams an endless body: the client reads 4 KiB, closes the connection
// (the server's writes then fail) and reports the delivery without waiting for the rest.
func TestDeliverReadsTheResponseOnlyUpToTheLimit(t *testing.T) {
	t.Parallel()
	for _, code := range []int{200, 500} {
		written := make(chan int64, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			chunk := []byte(strings.Repeat("x", 32<<10))
			var n int64
			for n < 1<<30 {
				m, err := w.Write(chunk)
				n += int64(m)
				if err != nil {
					break
				}
			}
			written <- n
		}))
		t.Cleanup(srv.Close)

		c, _ := newTestClient(t, Config{AllowCIDRs: loopbackAllowed, Timeout: 10 * time.Second})
		start := time.Now()
		res := c.Deliver(context.Background(), srv.URL, body, "sig")
		require.Less(t, time.Since(start), 5*time.Second)
		require.Equal(t, code, res.HTTPStatus)
		if code == 200 {
			require.Equal(t, Delivered, res.Status)
		} else {
			require.Equal(t, Retry, res.Status)
			require.LessOrEqual(t, len(res.Reason), len("HTTP 500: ")+maxReasonBytes+len("…"))
			require.True(t, strings.HasPrefix(res.Reason, "HTTP 500: xxxx"), res.Reason)
			require.True(t, strings.HasSuffix(res.Reason, "…"), res.Reason)
		}
		select {
		case n := <-written:
			// Socket buffers absorb a few MiB; the rest of the GiB was never read.
			require.Less(t, n, int64(256<<20), "the client kept reading")
		case <-time.After(waitFor):
			t.Fatal("the server is still writing: the client did not close the connection")
		}
	}
}

func TestDeliverTimesOutOnASlowReceiver(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	c, _ := newTestClient(t, Config{AllowCIDRs: loopbackAllowed, Timeout: 300 * time.Millisecond})
	start := time.Now()
	res := c.Deliver(context.Background(), srv.URL, body, "sig")
	elapsed := time.Since(start)
	require.Equal(t, Result{Status: Retry, Reason: "timeout: no response within 300ms", Retryable: true}, res)
	require.GreaterOrEqual(t, elapsed, 300*time.Millisecond)
	require.Less(t, elapsed, 3*time.Second)

	// A slow body after prompt headers is cut off by the same deadline: still delivered.
	slowBody := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slowBody.Close)
	res = c.Deliver(context.Background(), slowBody.URL, body, "sig")
	require.Equal(t, Delivered, res.Status)
}

func TestDeliverCanceledAndNetworkErrorsAreRetryable(t *testing.T) {
	t.Parallel()
	c, _ := newTestClient(t, Config{AllowCIDRs: loopbackAllowed})

	// Nothing listens on the port any more: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	res := c.Deliver(context.Background(), "http://"+addr+"/", body, "sig")
	require.Equal(t, Retry, res.Status)
	require.True(t, res.Retryable)
	require.Contains(t, res.Reason, "network error: ")
	require.Contains(t, res.Reason, "connection refused")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = c.Deliver(ctx, "http://"+addr+"/", body, "sig")
	require.Equal(t, Result{Status: Retry, Reason: "canceled: context canceled", Retryable: true}, res)

	// A name that does not resolve is a network error too (DNS can recover).
	c2, dials := newTestClient(t, Config{Resolver: failingResolver{}})
	res = c2.Deliver(context.Background(), "https://callback.invalid/", body, "sig")
	require.Equal(t, Retry, res.Status)
	require.Contains(t, res.Reason, "no such host")
	require.Zero(t, dials.Load())
}

type failingResolver struct{}

func (failingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func TestDeliverOverTLS(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted client's handshake errors
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	tlsConfig := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	tlsConfig.RootCAs = pool

	c, _ := newTestClient(t, Config{AllowCIDRs: loopbackAllowed, TLSConfig: tlsConfig})
	require.Equal(t, Delivered, c.Deliver(context.Background(), srv.URL, body, "sig").Status)

	// An untrusted certificate is retried: it is fixable on the receiver's side.
	untrusted, _ := newTestClient(t, Config{AllowCIDRs: loopbackAllowed})
	res := untrusted.Deliver(context.Background(), srv.URL, body, "sig")
	require.Equal(t, Retry, res.Status)
	require.Contains(t, res.Reason, "certificate")
}

func TestDeliverRejectsInvalidURLs(t *testing.T) {
	t.Parallel()
	c, dials := newTestClient(t, Config{AllowCIDRs: loopbackAllowed})
	for _, u := range []string{"", "ftp://127.0.0.1/", "http://user:pw@127.0.0.1/", "/relative", "http:///path"} {
		res := c.Deliver(context.Background(), u, body, "sig")
		require.Equal(t, Failed, res.Status, u)
		require.False(t, res.Retryable, u)
		require.Contains(t, res.Reason, "invalid callback url", u)
	}
	require.Zero(t, dials.Load())
}

// Each refused class: the result names the address and what it is, no connection attempt
// is made, and a listener on that address (where one can exist) accepts nothing.
func TestDeliverRefusesInternalTargets(t *testing.T) {
	t.Parallel()
	v4 := listenCounting(t, "tcp", "127.0.0.1:0")
	var v6 *countingListener
	if ln, err := net.Listen("tcp", "[::1]:0"); err == nil {
		ln.Close()
		v6 = listenCounting(t, "tcp", "[::1]:0")
	}

	type target struct {
		name     string
		url      string
		resolver Resolver
		allow    []netip.Prefix
		reason   string
		listener *countingListener
	}
	targets := []target{
		{name: "127.0.0.1 without allowlist", url: "http://127.0.0.1:" + v4.port() + "/hook",
			reason: "refused: 127.0.0.1 is a loopback address", listener: v4},
		{name: "10.0.0.1", url: "http://10.0.0.1:" + v4.port() + "/",
			reason: "refused: 10.0.0.1 is a private address (RFC 1918)"},
		{name: "192.168.1.10 with only loopback allowed", url: "http://192.168.1.10/", allow: loopbackAllowed,
			reason: "refused: 192.168.1.10 is a private address (RFC 1918)"},
		{name: "metadata", url: "http://169.254.169.254/latest/meta-data/",
			reason: "refused: 169.254.169.254 is a cloud metadata address"},
		{name: "metadata under an allowed link-local range", url: "http://169.254.169.254/",
			allow:  []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")},
			reason: "refused: 169.254.169.254 is a cloud metadata address"},
		{name: "CGNAT", url: "https://100.64.1.1/", reason: "refused: 100.64.1.1 is a carrier-grade NAT address (100.64.0.0/10)"},
		{name: "0.0.0.0", url: "http://0.0.0.0:" + v4.port() + "/",
			reason: "refused: 0.0.0.0 is an unspecified address", listener: v4},
		{name: "IPv4-mapped loopback", url: "http://[::ffff:127.0.0.1]:" + v4.port() + "/",
			reason: "refused: ::ffff:127.0.0.1 is a loopback address", listener: v4},
		{name: "localhost", url: "http://localhost:" + v4.port() + "/",
			reason: "(localhost) is a loopback address", listener: v4},
		{name: "a name rebound to loopback", url: "http://rebind.example:" + v4.port() + "/",
			resolver: staticResolver{netip.MustParseAddr("127.0.0.1")},
			reason:   "refused: 127.0.0.1 (rebind.example) is a loopback address", listener: v4},
		{name: "a name with a public and a loopback address", url: "http://mixed.example:" + v4.port() + "/",
			resolver: staticResolver{netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("127.0.0.1")},
			reason:   "refused: 127.0.0.1 (mixed.example) is a loopback address", listener: v4},
		{name: "a name rebound to metadata", url: "http://rebind.example/",
			resolver: staticResolver{netip.MustParseAddr("169.254.169.254")},
			reason:   "refused: 169.254.169.254 (rebind.example) is a cloud metadata address"},
		{name: "a name rebound to an IPv6 ULA", url: "http://rebind.example/",
			resolver: staticResolver{netip.MustParseAddr("fd00::1")},
			reason:   "refused: fd00::1 (rebind.example) is a unique local address (fc00::/7)"},
	}
	if v6 != nil {
		targets = append(targets, target{name: "[::1]", url: "http://[::1]:" + v6.port() + "/",
			reason: "refused: ::1 is a loopback address", listener: v6})
	} else {
		targets = append(targets, target{name: "[::1] (no IPv6 listener here)", url: "http://[::1]:9/",
			reason: "refused: ::1 is a loopback address"})
	}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			c, dials := newTestClient(t, Config{AllowCIDRs: tg.allow, Resolver: tg.resolver})
			res := c.Deliver(context.Background(), tg.url, body, "sig")
			require.Equal(t, Failed, res.Status)
			require.False(t, res.Retryable)
			require.Zero(t, res.HTTPStatus)
			require.Contains(t, res.Reason, tg.reason)
			require.True(t, strings.HasPrefix(res.Reason, "refused: "), res.Reason)
			require.Zero(t, dials.Load(), "a connection was attempted")
		})
	}
	// Checked after all the refusals: none reached a listener.
	require.Zero(t, v4.settledAccepts(t), "a refused target reached 127.0.0.1")
	if v6 != nil {
		require.Zero(t, v6.settledAccepts(t), "a refused target reached ::1")
	}
}

// The pre-check and the dialer's Control are two layers: the client's own dialer, handed a
// refused address directly (as if the pre-check had been skipped), stops before connect.
func TestClientDialerChecksAtConnectTime(t *testing.T) {
	t.Parallel()
	ln := listenCounting(t, "tcp", "127.0.0.1:0")
	c := NewClient(Config{})
	for _, addr := range []string{ln.Addr().String(), "[::ffff:127.0.0.1]:" + ln.port(), "0.0.0.0:" + ln.port()} {
		_, err := c.dial(context.Background(), "tcp", addr)
		var refused *RefusedError
		require.ErrorAs(t, err, &refused, addr)
	}
	require.Zero(t, ln.settledAccepts(t))

	allowed := NewClient(Config{AllowCIDRs: loopbackAllowed})
	conn, err := allowed.dial(context.Background(), "tcp", ln.Addr().String())
	require.NoError(t, err)
	conn.Close()
}

func TestClientNeverUsesAProxy(t *testing.T) {
	t.Parallel()
	c := NewClient(Config{})
	tr := c.http.Transport.(*http.Transport)
	require.Nil(t, tr.Proxy, "HTTP(S)_PROXY from the environment would bypass the guard")
	require.True(t, tr.DisableCompression)
	require.Equal(t, int64(maxResponseHeaderBytes), tr.MaxResponseHeaderBytes)
}

func TestRetryAfterParsing(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"0":                             0,
		"-5":                            0,
		"120":                           2 * time.Minute,
		"999999999999":                  24 * time.Hour,
		"Thu, 01 Jan 2026 00:01:30 GMT": 90 * time.Second,
		"Wed, 31 Dec 2025 23:00:00 GMT": 0,
		"soon":                          0,
	} {
		require.Equal(t, want, retryAfter(v, now), v)
	}
}
