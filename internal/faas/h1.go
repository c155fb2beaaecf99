package faas

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
)

// h1Client is the direct route's HTTP/1.1 client: keep-alive connections per replica,
// each request written and its answer read on the caller's goroutine. net/http's
// Transport hands every request to a writer goroutine and every answer back from a reader
// goroutine; when the processes are parked between calls each handoff wakes a thread,
// which cost ~0.1 ms per sequential call and ~0.2 ms at 20 calls/s on the benchmark VM
// (BENCHMARKS run 10). A runtime host answers one small JSON document per call, read
// whole before the connection goes back to the pool.
type h1Client struct {
	dialer  net.Dialer
	maxIdle int           // idle connections kept per replica
	idleFor time.Duration // an idle connection unused for longer is closed, not reused

	targets sync.Map // base URL → *h1Target
	ntarget atomic.Int64

	mu   sync.Mutex
	idle map[string][]*h1Conn // by host:port, most recently used last

	secretLine string // the invoke secret's header line, "" when none
}

func newH1Client(secret string) *h1Client {
	line := ""
	if secret != "" && validID(secret) {
		line = "\r\n" + platformsecret.RuntimeHeader + ": " + secret
	}
	return &h1Client{secretLine: line, dialer: net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second},
		maxIdle: 512, idleFor: 90 * time.Second, idle: map[string][]*h1Conn{}}
}

// h1Target is a parsed replica base URL.
type h1Target struct {
	addr, host, path string
}

type h1Conn struct {
	net.Conn
	addr      string
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time
}

// errNotHTTP marks a base URL this client does not speak (https): net/http takes it.
var errNotHTTP = errors.New("faas: not a plain http replica URL")

// aLongTimeAgo is a deadline that makes blocked reads and writes return at once.
var aLongTimeAgo = time.Unix(1, 0)

func (c *h1Client) target(base string) (*h1Target, error) {
	if t, ok := c.targets.Load(base); ok {
		return t.(*h1Target), nil
	}
	u, err := replicaURL(base)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, errNotHTTP
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	t := &h1Target{addr: addr, host: u.Host, path: u.RequestURI()}
	if c.ntarget.Add(1) > 4096 { // replicas come and go: keep the map bounded
		c.targets.Clear()
		c.ntarget.Store(1)
	}
	c.targets.Store(base, t)
	return t, nil
}

// replicaURL is the URL a call to the replica at base is posted to: base's path with one
// trailing slash (the runtime host serves POST /), its query kept.
func replicaURL(base string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, err
	}
	u.Path, u.RawPath = strings.TrimSuffix(u.Path, "/")+"/", ""
	return u, nil
}

// validID reports whether an execution id can travel as a header value.
func validID(id string) bool {
	for i := 0; i < len(id); i++ {
		if b := id[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}

// post sends body to the replica at base and returns its answer with the body read
// whole. A dial error is a *net.OpError with Op "dial" (nothing was sent). When ctx ends
// mid-call the connection is abandoned and ctx's error returned.
func (c *h1Client) post(ctx context.Context, base, executionID string, body []byte) (*http.Response, error) {
	if !validID(executionID) {
		return nil, fmt.Errorf("faas: execution id %q is not a header value", executionID)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := c.target(base)
	if err != nil {
		return nil, err
	}
	cn, err := c.conn(ctx, t.addr)
	if err != nil {
		return nil, err
	}
	// ctx's end (cancel or deadline) unblocks the call, which then returns ctx's error.
	stop := context.AfterFunc(ctx, func() { _ = cn.SetDeadline(aLongTimeAgo) })
	resp, err := cn.roundTrip(t, executionID, c.secretLine, body)
	if !stop() {
		cn.Close()
		return nil, ctx.Err()
	}
	if err != nil {
		cn.Close()
		return nil, err
	}
	if resp.Close || cn.br.Buffered() > 0 { // bytes past the answer: the stream is out of step
		cn.Close()
	} else {
		c.put(cn)
	}
	return resp, nil
}

func (cn *h1Conn) roundTrip(t *h1Target, executionID, secretLine string, body []byte) (*http.Response, error) {
	w := cn.bw
	w.WriteString("POST ")
	w.WriteString(t.path)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(t.host)
	w.WriteString("\r\nUser-Agent: lambda\r\nContent-Type: application/json\r\nX-Lambda-Execution-Id: ")
	w.WriteString(executionID)
	w.WriteString(secretLine)
	w.WriteString("\r\nContent-Length: ")
	w.WriteString(strconv.Itoa(len(body)))
	w.WriteString("\r\n\r\n")
	w.Write(body)
	if err := w.Flush(); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(cn.br, nil)
	for err == nil && resp.StatusCode/100 == 1 && resp.StatusCode != http.StatusSwitchingProtocols {
		resp, err = http.ReadResponse(cn.br, nil) // an informational answer precedes the real one
	}
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return nil, errors.New("faas: the replica switched protocols")
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp, nil
}

// conn returns a live idle connection to addr or dials one.
func (c *h1Client) conn(ctx context.Context, addr string) (*h1Conn, error) {
	now := time.Now()
	for {
		c.mu.Lock()
		list := c.idle[addr]
		if len(list) == 0 {
			c.mu.Unlock()
			break
		}
		cn := list[len(list)-1]
		if len(list) == 1 {
			delete(c.idle, addr)
		} else {
			c.idle[addr] = list[:len(list)-1]
		}
		c.mu.Unlock()
		if now.Sub(cn.idleSince) <= c.idleFor && idleAlive(cn.Conn) {
			return cn, nil
		}
		cn.Close() // closed by the replica, or idle too long
	}
	nc, err := c.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &h1Conn{Conn: nc, addr: addr, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, nil
}

// put returns a connection after a completed call. Its deadline was never set: only an
// ended context sets one, and such a connection is closed instead.
func (c *h1Client) put(cn *h1Conn) {
	cn.idleSince = time.Now()
	var stale []*h1Conn
	c.mu.Lock()
	list := c.idle[cn.addr]
	for len(list) > 0 && cn.idleSince.Sub(list[0].idleSince) > c.idleFor { // the oldest first
		stale = append(stale, list[0])
		list = list[1:]
	}
	if len(list) < c.maxIdle {
		list = append(list, cn)
	} else {
		stale = append(stale, cn)
	}
	c.idle[cn.addr] = list
	c.mu.Unlock()
	for _, s := range stale {
		s.Close()
	}
}

// closeIdle closes every idle connection (after a replica failed a call).
func (c *h1Client) closeIdle() {
	c.mu.Lock()
	idle := c.idle
	c.idle = map[string][]*h1Conn{}
	c.mu.Unlock()
	for _, list := range idle {
		for _, cn := range list {
			cn.Close()
		}
	}
}
