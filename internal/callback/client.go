package callback

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Status is the outcome of one delivery attempt.
type Status string

const (
	// Delivered: the receiver answered 2xx.
	Delivered Status = "delivered"
	// Retry: worth another attempt later (408, 429, 5xx, a network error or timeout).
	Retry Status = "retry"
	// Failed: another attempt would fail the same way (refused target, invalid URL, 3xx,
	// other 4xx); the caller gives up.
	Failed Status = "failed"
)

// Result is what one Deliver call did. Retryable is Status == Retry.
type Result struct {
	Status     Status
	HTTPStatus int    // 0 when no response was received
	Reason     string // e.g. "HTTP 503: upstream down", "refused: 10.0.0.1 is a private address (RFC 1918)"
	Retryable  bool
	// RetryAfter is the receiver's Retry-After (seconds or HTTP date) on a retryable answer,
	// at most 24 h; 0 when absent. Backoff.Next honours it.
	RetryAfter time.Duration
}

// Resolver looks up a hostname's addresses; *net.Resolver is one. Tests use their own to
// simulate a name that (re)binds to a refused address.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a Client; zero fields take the defaults below.
type Config struct {
	// AllowCIDRs are exceptions to the SSRF guard (LAMBDA_CALLBACK_ALLOW_CIDRS via ParseCIDRs).
	AllowCIDRs []netip.Prefix
	// Resolver resolves hostnames (default net.DefaultResolver).
	Resolver Resolver
	// UserAgent is sent with every request (default DefaultUserAgent).
	UserAgent string
	// ConnectTimeout bounds each TCP connect (default 5 s).
	ConnectTimeout time.Duration
	// TLSHandshakeTimeout bounds the TLS handshake (default 5 s).
	TLSHandshakeTimeout time.Duration
	// Timeout bounds a whole attempt: resolve, connect, TLS, send, the response's headers
	// and the part of its body that is read (default 15 s).
	Timeout time.Duration
	// MaxResponseBytes is how much of a response body is read (default 4 KiB); past it the
	// connection is closed rather than drained.
	MaxResponseBytes int64
	// TLSConfig overrides the TLS client configuration (default: system roots, TLS ≥ 1.2).
	TLSConfig *tls.Config
}

// Defaults for Config's zero fields.
const (
	DefaultUserAgent           = "lambda-microservice-callback/1"
	DefaultConnectTimeout      = 5 * time.Second
	DefaultTLSHandshakeTimeout = 5 * time.Second
	DefaultTimeout             = 15 * time.Second
	DefaultMaxResponseBytes    = 4 << 10
	maxResponseHeaderBytes     = 16 << 10
	maxReasonBytes             = 200
	maxRetryAfter              = 24 * time.Hour
)

// Client delivers signed callbacks. It is safe for concurrent use and keeps idle
// connections to receivers (each one checked by the guard when it was made).
type Client struct {
	cfg      Config
	guard    *Guard
	resolver Resolver
	// dial connects to a literal, already checked address; the dialer's Control checks it
	// again at connect time. Tests wrap it to count connection attempts.
	dial func(ctx context.Context, network, address string) (net.Conn, error)
	http *http.Client
}

// NewClient returns a Client for cfg. Proxies are never used: the environment's
// HTTP(S)_PROXY would make the guard check the proxy instead of the target.
func NewClient(cfg Config) *Client {
	if cfg.UserAgent == "" {
		cfg.UserAgent = DefaultUserAgent
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.TLSHandshakeTimeout <= 0 {
		cfg.TLSHandshakeTimeout = DefaultTLSHandshakeTimeout
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	c := &Client{cfg: cfg, guard: NewGuard(cfg.AllowCIDRs), resolver: cfg.Resolver}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	dialer := &net.Dialer{
		Timeout:        cfg.ConnectTimeout,
		KeepAlive:      30 * time.Second,
		ControlContext: c.guard.Control,
	}
	c.dial = dialer.DialContext
	var tlsConfig *tls.Config
	if cfg.TLSConfig != nil {
		tlsConfig = cfg.TLSConfig.Clone()
	}
	transport := &http.Transport{
		Proxy:                  nil, // never from the environment: see above
		DialContext:            c.dialContext,
		TLSClientConfig:        tlsConfig,
		TLSHandshakeTimeout:    cfg.TLSHandshakeTimeout,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		DisableCompression:     true, // read the body as sent: no gzip bombs, the limit is on wire bytes
		MaxIdleConns:           64,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        30 * time.Second,
	}
	c.http = &http.Client{
		Transport: transport,
		// A redirect is not followed: the target would escape the URL the user registered
		// (and a 307 to an internal address would be checked, but a 303 would turn the POST
		// into a GET). The 3xx is returned and reported as a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// Guard returns the client's SSRF guard (for CheckURL when a callback URL is accepted).
func (c *Client) Guard() *Guard { return c.guard }

// CloseIdleConnections closes the connections kept for later deliveries.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

var errAttemptTimeout = errors.New("delivery attempt timed out")

// Deliver POSTs body to url once, with Content-Type application/json, SignatureHeader sig
// and the client's User-Agent, and classifies the outcome:
//
//   - 2xx: Delivered.
//   - 408, 429, 5xx, a network or TLS error, a timeout, ctx canceled: Retry.
//   - 3xx (not followed), any other 4xx or status, an invalid URL, a target the guard
//     refuses: Failed — retrying would not change the answer.
//
// At most MaxResponseBytes of the response body are read; a short excerpt of it is in the
// reason of a non-2xx answer.
func (c *Client) Deliver(ctx context.Context, url string, body []byte, sig string) Result {
	u, err := ValidateURL(url)
	if err != nil {
		return Result{Status: Failed, Reason: err.Error()}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.Timeout, errAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return Result{Status: Failed, Reason: "invalid callback url: " + err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	req.Header.Set(SignatureHeader, sig)
	resp, err := c.http.Do(req)
	if err != nil {
		return c.errorResult(ctx, err)
	}
	excerpt := readLimited(resp.Body, c.cfg.MaxResponseBytes)
	resp.Body.Close() // before EOF, this closes the connection instead of draining it
	return statusResult(resp, excerpt)
}

func (c *Client) errorResult(ctx context.Context, err error) Result {
	var refused *RefusedError
	if errors.As(err, &refused) {
		return Result{Status: Failed, Reason: refused.Error()}
	}
	if ctx.Err() != nil {
		if context.Cause(ctx) == errAttemptTimeout {
			return retry(0, fmt.Sprintf("timeout: no response within %s", c.cfg.Timeout))
		}
		return retry(0, "canceled: "+context.Cause(ctx).Error())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return retry(0, "network error: "+err.Error())
}

func retry(code int, reason string) Result {
	return Result{Status: Retry, HTTPStatus: code, Reason: reason, Retryable: true}
}

func statusResult(resp *http.Response, excerpt string) Result {
	code := resp.StatusCode
	reason := "HTTP " + strconv.Itoa(code)
	if excerpt != "" {
		reason += ": " + excerpt
	}
	switch {
	case code >= 200 && code <= 299:
		return Result{Status: Delivered, HTTPStatus: code, Reason: "HTTP " + strconv.Itoa(code)}
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500 && code <= 599:
		r := retry(code, reason)
		r.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
		return r
	case code >= 300 && code <= 399:
		r := "redirect not followed: HTTP " + strconv.Itoa(code)
		if loc := resp.Header.Get("Location"); loc != "" {
			r += " to " + clean(loc)
		}
		return Result{Status: Failed, HTTPStatus: code, Reason: r}
	case code >= 400 && code <= 499:
		return Result{Status: Failed, HTTPStatus: code, Reason: reason}
	default:
		return Result{Status: Failed, HTTPStatus: code, Reason: "unexpected status: " + reason}
	}
}

// readLimited reads at most limit bytes of body and returns an excerpt fit for a reason.
// Read errors are ignored: the status line already decided the outcome.
func readLimited(body io.Reader, limit int64) string {
	b, _ := io.ReadAll(io.LimitReader(body, limit))
	return clean(string(b))
}

// clean makes s printable on one line and at most maxReasonBytes long.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "�")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxReasonBytes {
		cut := maxReasonBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// retryAfter parses a Retry-After value: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxRetryAfter)
}

// dialContext resolves the host, refuses the target if the guard refuses any of its
// addresses (a name that resolves to both a public and an internal address is refused as a
// whole), then connects to the checked addresses in turn; the dialer checks each again at
// connect time. It dials IP literals only, so a second DNS answer cannot change the target.
func (c *Client) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", portStr, err)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		lookup := "ip"
		switch network {
		case "tcp4":
			lookup = "ip4"
		case "tcp6":
			lookup = "ip6"
		}
		addrs, err = c.resolver.LookupNetIP(ctx, lookup, host)
		if err != nil {
			return nil, err
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("lookup %s: no addresses", host)
		}
	}
	for _, a := range addrs {
		if err := c.guard.Check(a); err != nil {
			var refused *RefusedError
			if errors.As(err, &refused) {
				refused.Host = resolvedHost(host)
			}
			return nil, err
		}
	}
	var first error
	for _, a := range addrs {
		conn, err := c.dial(ctx, network, netip.AddrPortFrom(a, uint16(port)).String())
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}
