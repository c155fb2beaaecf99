package faas

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// replica is a test server counting the connections it accepted.
func replica(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func echo(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Seen-Id", r.Header.Get("X-Lambda-Execution-Id"))
	w.Header().Set("X-Seen-Uri", r.URL.RequestURI())
	w.Header().Set("X-Seen-Type", r.Header.Get("Content-Type"))
	_, _ = w.Write(b)
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestH1ReusesOneConnectionAndSendsTheContract(t *testing.T) {
	t.Parallel()
	srv, conns := replica(t, echo)
	c := newH1Client("")
	for i := 0; i < 50; i++ {
		resp, err := c.post(context.Background(), srv.URL, "exec-1", []byte(`{"n":1}`))
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, `{"n":1}`, body(t, resp))
		require.Equal(t, "exec-1", resp.Header.Get("X-Seen-Id"))
		require.Equal(t, "application/json", resp.Header.Get("X-Seen-Type"))
		require.Equal(t, "/", resp.Header.Get("X-Seen-Uri"))
	}
	require.EqualValues(t, 1, conns.Load(), "sequential calls share one keep-alive connection")

	// A Service URL template may carry a path and a query: both are kept.
	resp, err := c.post(context.Background(), srv.URL+"/?fn=runtime-python", "e", []byte(`1`))
	require.NoError(t, err)
	require.Equal(t, "/?fn=runtime-python", resp.Header.Get("X-Seen-Uri"))
	resp, err = c.post(context.Background(), srv.URL+"/", "e", []byte(`1`))
	require.NoError(t, err)
	require.Equal(t, "/", resp.Header.Get("X-Seen-Uri"), "one trailing slash")

	for _, id := range []string{"bad\r\nX-Evil: 1", "nul\x00", "del\x7f"} {
		_, err = c.post(context.Background(), srv.URL, id, []byte(`1`))
		require.Error(t, err, "an id that is no header value is refused: %q", id)
	}
	_, err = c.post(context.Background(), "https://example.invalid", "e", []byte(`1`))
	require.ErrorIs(t, err, errNotHTTP, "https is left to net/http")
}

func TestH1ReplacesConnectionsTheReplicaClosed(t *testing.T) {
	t.Parallel()
	srv, conns := replica(t, echo)
	c := newH1Client("")
	ctx := context.Background()
	_, err := c.post(ctx, srv.URL, "e", []byte(`1`))
	require.NoError(t, err)
	srv.CloseClientConnections() // the replica drops its idle keep-alive connection
	time.Sleep(50 * time.Millisecond)
	resp, err := c.post(ctx, srv.URL, "e", []byte(`2`))
	require.NoError(t, err, "a connection the replica closed is noticed before it is used")
	require.Equal(t, "2", body(t, resp))
	require.EqualValues(t, 2, conns.Load())

	// An idle connection past idleFor is not reused either.
	c.idleFor = time.Millisecond
	time.Sleep(5 * time.Millisecond)
	_, err = c.post(ctx, srv.URL, "e", []byte(`3`))
	require.NoError(t, err)
	require.EqualValues(t, 3, conns.Load())
}

func TestH1HonoursConnectionClose(t *testing.T) {
	t.Parallel()
	srv, conns := replica(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		echo(w, r)
	})
	c := newH1Client("")
	for i := 0; i < 3; i++ {
		resp, err := c.post(context.Background(), srv.URL, "e", []byte(`1`))
		require.NoError(t, err)
		require.Equal(t, "1", body(t, resp))
	}
	require.EqualValues(t, 3, conns.Load(), "an answer with Connection: close ends its connection")
}

func TestH1ReadsChunkedAnswersWhole(t *testing.T) {
	t.Parallel()
	srv, _ := replica(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"status":"succeeded",`)
		w.(http.Flusher).Flush() // no Content-Length: chunked
		_, _ = io.WriteString(w, `"stdout":"`+strings.Repeat("x", 100<<10)+`"}`)
	})
	c := newH1Client("")
	for i := 0; i < 2; i++ {
		resp, err := c.post(context.Background(), srv.URL, "e", []byte(`1`))
		require.NoError(t, err)
		b := body(t, resp)
		require.Len(t, b, len(`{"status":"succeeded","stdout":""}`)+100<<10)
		require.True(t, strings.HasSuffix(b, `x"}`))
	}
}

func TestH1AbandonsTheCallWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	gone := make(chan struct{})
	var once sync.Once
	srv, _ := replica(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // as the runtime host does; then net/http watches the connection
		select {
		case <-r.Context().Done(): // the client went away
			once.Do(func() { close(gone) })
		case <-time.After(10 * time.Second):
		}
	})
	c := newH1Client("")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	t0 := time.Now()
	_, err := c.post(ctx, srv.URL, "e", []byte(`1`))
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(t0), 2*time.Second)
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the replica never saw the connection close")
	}

	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = c.post(ctx, srv.URL, "e", []byte(`1`))
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestH1ConcurrentCallsAndARefusedDial(t *testing.T) {
	t.Parallel()
	srv, conns := replica(t, echo)
	c := newH1Client("")
	var wg sync.WaitGroup
	errs := make(chan error, 16*20)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				resp, err := c.post(context.Background(), srv.URL, "e", []byte(`{"g":1}`))
				if err == nil && body(t, resp) != `{"g":1}` {
					err = errors.New("wrong body")
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	require.LessOrEqual(t, conns.Load(), int64(16), "at most one connection per concurrent caller")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	_, err = c.post(context.Background(), "http://"+addr, "e", []byte(`1`))
	require.Error(t, err)
	require.True(t, dialFailed(err), "a refused connection is a dial error (safe to send elsewhere): %v", err)
}

// rawReplica answers the n-th request it receives (counted over all connections) with the
// bytes answer(n) returns.
func rawReplica(t *testing.T, answer func(n int) string) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	var conns, reqs atomic.Int64
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					_, _ = io.ReadAll(req.Body)
					if _, err := io.WriteString(nc, answer(int(reqs.Add(1)-1))); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String(), &conns
}

func TestH1SkipsInformationalAnswersAndDropsAStreamOutOfStep(t *testing.T) {
	t.Parallel()
	ok := func(body string) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	base, conns := rawReplica(t, func(n int) string {
		switch n {
		case 0:
			return "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + ok("first")
		case 1:
			return ok("second") + "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray" // more than asked for
		default:
			return ok("third")
		}
	})
	c := newH1Client("")
	for _, want := range []string{"first", "second", "third"} {
		resp, err := c.post(context.Background(), base, "e", []byte(`1`))
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		require.Equal(t, want, body(t, resp), "each call gets its own answer")
	}
	require.EqualValues(t, 2, conns.Load(), "the connection with stray bytes was not reused")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.post(ctx, base, "e", []byte(`1`))
	require.ErrorIs(t, err, context.Canceled, "a call whose context already ended sends nothing")
}

func TestH1ClosesConnectionsLeftIdleByABurst(t *testing.T) {
	t.Parallel()
	srv, _ := replica(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // keeps the burst's calls overlapping
		echo(w, r)
	})
	c := newH1Client("")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.post(context.Background(), srv.URL, "e", []byte(`1`))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	addr := strings.TrimPrefix(srv.URL, "http://")
	c.mu.Lock()
	require.Len(t, c.idle[addr], 4, "the burst left four idle connections")
	c.mu.Unlock()
	c.idleFor = time.Millisecond
	time.Sleep(5 * time.Millisecond)
	_, err := c.post(context.Background(), srv.URL, "e", []byte(`1`))
	require.NoError(t, err)
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Len(t, c.idle[addr], 1, "connections idle too long are closed when one goes back, not kept forever")
}
