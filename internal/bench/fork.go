package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"time"
)

// forkProgram is the handler wrapped to run once: the event on stdin, the handler's JSON
// result on stdout.
func forkProgram(handlerSource string) string {
	return "import sys, json\n" + handlerSource + "\n" +
		"print(json.dumps(handler(json.loads(sys.stdin.read()), None)))\n"
}

// forkRun starts one fresh interpreter for one event and returns its stdout.
func forkRun(ctx context.Context, python, program string, event []byte) ([]byte, error) {
	cmd := exec.CommandContext(ctx, python, "-c", program)
	cmd.Stdin = bytes.NewReader(event)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("fork: %v: %s", err, bytes.TrimSpace(errOut.Bytes()))
	}
	result := bytes.TrimSpace(out.Bytes())
	if !json.Valid(result) {
		return nil, fmt.Errorf("fork: not JSON: %q", out.String())
	}
	return result, nil
}

// Watchdog is a function server of the classic OpenFaaS watchdog's design: every HTTP
// request starts a fresh interpreter with the request body on stdin and answers with its
// stdout (500 with its stderr when it fails). It is the fork-per-request baseline the
// runtime host's warm pool is compared with, each called directly over HTTP.
type Watchdog struct {
	URL string
	srv *http.Server
}

// StartWatchdog serves handlerSource run by python, fork per request, on a free
// loopback port.
func StartWatchdog(python, handlerSource string) (*Watchdog, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("watchdog: %w", err)
	}
	program := forkProgram(handlerSource)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out, err := forkRun(r.Context(), python, program, event)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})}
	go func() { _ = srv.Serve(ln) }()
	return &Watchdog{URL: "http://" + ln.Addr().String() + "/", srv: srv}, nil
}

// Request is one call of the watchdog with event.
func (w *Watchdog) Request(event []byte) Request {
	return Request{Method: http.MethodPost, URL: w.URL, Body: event, Check: func(body []byte) error {
		if !json.Valid(body) {
			return errors.New("watchdog: not JSON")
		}
		return nil
	}}
}

// Close stops the server.
func (w *Watchdog) Close() error { return w.srv.Close() }
