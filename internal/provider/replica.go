package provider

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/openfaas/faas-provider/types"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/freeport"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

// replica is one runtime host process of a function, restarted when it exits.
type replica struct {
	fn   *function
	id   string
	gen  int
	spec types.FunctionDeployment

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when supervise returns (no process left)

	readyMu   sync.Once
	readyOnce chan struct{} // closed the first time the replica becomes ready

	ready    atomic.Bool
	inflight atomic.Int64
	base     atomic.Pointer[string] // http://127.0.0.1:port of the current process
	pid      atomic.Int64
	restarts atomic.Int64
	// load is the replica's pool as its last readiness answer reported it.
	busy, queued, workers atomic.Int64
}

func (r *replica) baseURL() string {
	if b := r.base.Load(); b != nil {
		return *b
	}
	return ""
}

// stop stops the replica's process group and waits until it is gone.
func (r *replica) stop() {
	r.cancel()
	<-r.done
}

// markReady records the first readiness (used by rolling updates).
func (r *replica) markReady() {
	r.readyMu.Do(func() { close(r.readyOnce) })
}

// supervise runs the replica's process until the replica is stopped, restarting it with
// exponential backoff whenever it exits or fails to become ready in time.
func (r *replica) supervise() {
	defer close(r.done)
	p := r.fn.p
	log := p.log.With(zap.String(logging.FieldFunction, r.fn.name), zap.String("service.node.name", r.id))
	backoff := p.cfg.RestartBackoff
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			p.metrics.Restarts.WithLabelValues(r.fn.name).Inc()
			r.restarts.Add(1)
			log.Warn("restarting replica", zap.Duration("backoff", backoff), zap.Int64("restarts", r.restarts.Load()))
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		started := time.Now()
		err := r.runOnce(log)
		if r.ctx.Err() != nil {
			return
		}
		log.Warn("replica exited", logging.Err(err), zap.Duration("uptime", time.Since(started)))
		if time.Since(started) > time.Minute {
			backoff = p.cfg.RestartBackoff
		} else if attempt > 0 {
			backoff = min(backoff*2, p.cfg.MaxRestartBackoff)
		}
	}
}

// runOnce starts one process, waits for readiness, then for its exit or the replica's stop.
func (r *replica) runOnce(log *zap.Logger) error {
	p := r.fn.p
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("find a free port: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	outR, outW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("create output pipe: %w", err)
	}
	cmd := exec.Command(p.cfg.RuntimeBin, p.cfg.RuntimeArgs...)
	cmd.Env = p.replicaEnv(&r.spec, addr)
	cmd.Dir = os.TempDir()
	cmd.Stdin = nil
	cmd.Stdout = outW
	cmd.Stderr = outW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		outR.Close()
		outW.Close()
		return fmt.Errorf("start %s: %w", p.cfg.RuntimeBin, err)
	}
	outW.Close()
	pid := cmd.Process.Pid
	r.pid.Store(int64(pid))
	log.Info("replica started", zap.Int("process.pid", pid), zap.String("url.full", "http://"+addr))

	outDone := make(chan struct{})
	go func() { defer close(outDone); r.pump(outR, log) }()

	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()

	defer func() {
		r.base.Store(nil)
		r.pid.Store(0)
		// Language workers may outlive the runtime host: clear the whole group.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		select {
		case <-outDone:
		case <-time.After(time.Second):
			outR.Close()
		}
	}()

	base := "http://" + addr
	if err := r.awaitReady(base, exited); err != nil {
		r.terminate(pid, exited)
		select {
		case <-exited:
			if r.ctx.Err() == nil {
				return fmt.Errorf("%w (%w)", err, exitStatus(waitErr))
			}
		default:
		}
		return err
	}
	r.base.Store(&base)
	r.fn.setReady(r, true)
	r.markReady()
	log.Info("replica ready", zap.String("url.full", base))

	var probes <-chan time.Time
	if p.cfg.ProbeInterval > 0 {
		t := time.NewTicker(p.cfg.ProbeInterval)
		defer t.Stop()
		probes = t.C
	}
	ready, healthFails := true, 0
	for {
		select {
		case <-exited:
			r.fn.setReady(r, false)
			return exitStatus(waitErr)
		case <-r.ctx.Done():
			r.fn.setReady(r, false)
			r.terminate(pid, exited)
			return nil
		case <-probes:
			// As the kubelet: a failing liveness probe restarts the replica, a failing
			// readiness probe takes it out of the balancing until it passes again.
			if r.probe(base+"/_/health", 2*time.Second) {
				healthFails = 0
			} else if healthFails++; healthFails >= 3 {
				log.Warn("replica failed 3 health probes: restarting it")
				r.fn.setReady(r, false)
				r.terminate(pid, exited)
				return errors.New("health probes failed")
			}
			if now := r.probe(base+"/_/ready", 2*time.Second); now != ready {
				ready = now
				r.fn.setReady(r, ready)
				log.Info("replica readiness changed", zap.Bool("ready", ready))
			}
		}
	}
}

// probe tells whether GET url answers 200 within timeout; a readiness answer's "load"
// (the runtime host's pool) is recorded for the autoscaler.
func (r *replica) probe(url string, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := r.fn.p.probe.Do(req)
	if err != nil {
		return false
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var doc struct {
		Load *struct{ Busy, Queued, Workers int64 } `json:"load"`
	}
	if resp.StatusCode == http.StatusOK && json.Unmarshal(body, &doc) == nil && doc.Load != nil {
		r.busy.Store(doc.Load.Busy)
		r.queued.Store(doc.Load.Queued)
		r.workers.Store(doc.Load.Workers)
	}
	return resp.StatusCode == http.StatusOK
}

// awaitReady polls GET /_/ready until it answers 200, the process exits, the replica is
// stopped or the ready timeout passes.
func (r *replica) awaitReady(base string, exited <-chan struct{}) error {
	p := r.fn.p
	deadline := time.NewTimer(p.cfg.ReadyTimeout)
	defer deadline.Stop()
	interval := 5 * time.Millisecond
	for {
		if r.probe(base+"/_/ready", time.Second) {
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-r.ctx.Done():
			return r.ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("not ready after %s", p.cfg.ReadyTimeout)
		case <-time.After(interval):
			interval = min(interval*2, 200*time.Millisecond)
		}
	}
}

// terminate sends SIGTERM to the process group, then SIGKILL after the grace period.
func (r *replica) terminate(pid int, exited <-chan struct{}) {
	select {
	case <-exited:
		return
	default:
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	grace := time.NewTimer(r.fn.p.cfg.StopGrace)
	defer grace.Stop()
	select {
	case <-exited:
	case <-grace.C:
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-exited
	}
}

// pump reads the replica's output lines into the function's log ring and the provider's log.
func (r *replica) pump(rd io.ReadCloser, log *zap.Logger) {
	defer rd.Close()
	br := bufio.NewReaderSize(rd, 16<<10)
	const maxLine = 64 << 10
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) <= maxLine {
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if len(line) > 0 {
			text := string(trimEOL(line))
			r.fn.logs.add(r.fn.name, r.id, text)
			log.Info(text, zap.String("event.dataset", "replica.output"))
			line = line[:0]
		}
		if err != nil {
			return
		}
	}
}

func trimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func exitStatus(err error) error {
	if err == nil {
		return errors.New("exited with status 0")
	}
	return err
}

// freePort picks a free loopback port for a replica.
func freePort() (int, error) { return freeport.Replicas.Get() }
