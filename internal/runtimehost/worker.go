package runtimehost

import (
	"bytes"
	"container/list"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/lambda-microservice/lambda/internal/platform/frame"
	"github.com/lambda-microservice/lambda/internal/runtimehost/sandbox"
)

// A worker is one language process. It starts unassigned (a spare, or about to be bound),
// is bound to exactly one script version by its init frame and serves that version only,
// one request at a time, until it is killed. See runtimes/README.md for the protocol.
type worker struct {
	key      poolKey // zero until assigned
	assigned bool
	dir      string // the worker's private folder (its HOME and TMPDIR unless sandboxed)
	task     string // its own copy of its script's folder (direct sandbox), or ""
	proc     sandbox.Process
	req      *os.File // fd 3 of the worker: host → worker frames
	resp     *os.File // fd 4 of the worker: worker → host frames
	rd       *frame.Reader
	wbuf     []byte
	sentinel []byte
	stdout   *capture
	stderr   *capture
	outR     *os.File
	errR     *os.File

	exited   chan struct{}
	state    *os.ProcessState // valid once exited is closed
	killOnce sync.Once

	// depsRelease drops the worker's hold on its script's install directory when its
	// process ends (depsGone: it has ended).
	depsMu      sync.Mutex
	depsRelease func()
	depsGone    bool

	// Pool bookkeeping, guarded by the pool's mutex.
	lastUsed time.Time
	elem     *list.Element // in the pool's idle LRU list while idle
	uses     int
	tenant   string        // the tenant holding it while busy
	idleCPU  time.Duration // its CPU time when its last call ended (-1: unknown)
	idleAt   time.Time     // when its last call ended
}

// workerReply is a frame from a worker.
type workerReply struct {
	Type    string          `json:"type"`
	Status  string          `json:"status"`
	Result  json.RawMessage `json:"result"`
	Error   json.RawMessage `json:"error"`
	Compile bool            `json:"compile"`
}

// errWorkerGone marks a worker that died, broke the protocol or ran out of time.
var errWorkerGone = errors.New("worker gone")

// startSpec is what starting a worker needs from the host.
type startSpec struct {
	tmp         string // the worker's folder, made by the caller ("": made here)
	task        string // the worker's own copy of its script, in tmp ("" for none)
	argv        []string
	tmpBase     string
	outputLimit int
	limits      sandbox.Limits
	memory      int
	readOnly    []string // host paths the worker reads (sandbox.Spec.ReadOnly)
	timeout     time.Duration
	spawner     sandbox.Spawner
	onExit      func(*worker) // called once the process has exited
}

func newSentinel() []byte {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return []byte("\x1e\x1flambda-end:" + hex.EncodeToString(b[:]) + "\x1f\x1e")
}

// startWorker starts a worker process and waits for its hello frame.
func startWorker(s *startSpec) (*worker, error) {
	tmp, err := s.tmp, error(nil)
	if tmp == "" {
		if tmp, err = os.MkdirTemp(s.tmpBase, "worker-"); err != nil {
			return nil, fmt.Errorf("start worker: temp dir: %w", err)
		}
	}
	var files []*os.File // every pipe end, closed on failure
	pipe := func() (r, w *os.File) {
		if err != nil {
			return nil, nil
		}
		r, w, err = os.Pipe()
		files = append(files, r, w)
		return r, w
	}
	reqR, reqW := pipe()
	respR, respW := pipe()
	outR, outW := pipe()
	errR, errW := pipe()
	fail := func(err error) (*worker, error) {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("start worker: %w", err)
	}
	if err != nil {
		return fail(err)
	}
	proc, err := s.spawner.Spawn(sandbox.Spec{
		Role:       sandbox.RoleWorker,
		Argv:       s.argv,
		Dir:        tmp,
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=" + tmp, "TMPDIR=" + tmp},
		Stdout:     outW,
		Stderr:     errW,
		ExtraFiles: []*os.File{reqR, respW},
		Limits:     s.limits,
		Memory:     s.memory,
		ReadOnly:   s.readOnly,
	})
	if err != nil {
		return fail(err)
	}
	reqR.Close()
	respW.Close()
	outW.Close()
	errW.Close()
	sentinel := newSentinel()
	w := &worker{
		proc: proc, req: reqW, resp: respR, rd: frame.NewReader(respR, 0),
		wbuf: make([]byte, 0, 4<<10), sentinel: sentinel,
		stdout: newCapture(sentinel, s.outputLimit), stderr: newCapture(sentinel, s.outputLimit),
		outR: outR, errR: errR, exited: make(chan struct{}), dir: tmp, task: s.task, idleCPU: -1,
	}
	go w.stdout.run(outR)
	go w.stderr.run(errR)
	go func() {
		st, _ := proc.Wait()
		w.state = st
		close(w.exited)
		if s.onExit != nil {
			s.onExit(w)
		}
		w.dropDeps()
		w.killGroup() // children left behind by the worker go with it
		w.req.Close()
		os.RemoveAll(tmp)
		// Output pipes held open by an escaped grandchild must not pin the drains forever.
		time.AfterFunc(2*time.Second, func() {
			outR.Close()
			errR.Close()
			respR.Close()
		})
	}()
	reply, err := w.read(time.Now().Add(s.timeout))
	if err != nil {
		err = w.describe(err)
		w.kill()
		return nil, fmt.Errorf("start worker %s: no hello: %w%s", s.argv[0], err, w.stderrTail())
	}
	if reply.Type != "hello" {
		w.kill()
		return nil, fmt.Errorf("start worker %s: first frame %q, want hello", s.argv[0], reply.Type)
	}
	if st, ok := proc.(sandbox.Settler); ok {
		if err := st.Settle(); err != nil {
			w.kill()
			return nil, fmt.Errorf("start worker %s: %w", s.argv[0], err)
		}
	}
	return w, nil
}

// stderrTail is the end of what a worker that failed to start wrote on stderr (an
// interpreter's own error: a missing bootstrap, a bad flag), for the start error.
func (w *worker) stderrTail() string {
	timer := time.NewTimer(200 * time.Millisecond)
	defer timer.Stop()
	seg, _ := w.stderr.take(timer.C)
	msg := bytes.TrimSpace(seg.data)
	if len(msg) == 0 {
		return ""
	}
	if len(msg) > 500 {
		msg = msg[len(msg)-500:]
	}
	return fmt.Sprintf("; stderr: %q", msg)
}

// killGroup SIGKILLs the worker's process group.
func (w *worker) killGroup() { w.proc.Kill() }

// holdDeps gives the worker a hold on its script's installed dependencies, dropped when
// its process ends (at once if it has ended).
func (w *worker) holdDeps(release func()) {
	w.depsMu.Lock()
	if w.depsGone {
		w.depsMu.Unlock()
		release()
		return
	}
	if w.depsRelease != nil {
		prev := w.depsRelease
		defer prev()
	}
	w.depsRelease = release
	w.depsMu.Unlock()
}

// dropDeps drops the worker's hold (its process has ended).
func (w *worker) dropDeps() {
	w.depsMu.Lock()
	release := w.depsRelease
	w.depsRelease, w.depsGone = nil, true
	w.depsMu.Unlock()
	if release != nil {
		release()
	}
}

// kill stops the worker for good; safe to call more than once.
func (w *worker) kill() {
	w.killOnce.Do(func() {
		select {
		case <-w.exited:
		default:
			w.killGroup()
		}
	})
}

// read reads one frame with a deadline.
func (w *worker) read(deadline time.Time) (workerReply, error) {
	var r workerReply
	_ = w.resp.SetReadDeadline(deadline)
	b, err := w.rd.Next()
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("bad frame from worker: %w", err)
	}
	return r, nil
}

// write sends the frame in w.wbuf (built with frame.Begin/End) with a deadline.
func (w *worker) write(deadline time.Time) error {
	_ = w.req.SetWriteDeadline(deadline)
	_, err := w.req.Write(w.wbuf)
	return err
}

// describe explains a read/write error: the worker's exit status when it died.
func (w *worker) describe(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrClosed) || isEPIPE(err) {
		select {
		case <-w.exited:
		case <-time.After(time.Second):
		}
		return fmt.Errorf("%w: %s", errWorkerGone, w.exitStatus())
	}
	return err
}

// exitStatus describes how the worker ended, once it has.
func (w *worker) exitStatus() string {
	select {
	case <-w.exited:
	default:
		return "worker closed its pipes"
	}
	if w.state == nil {
		return "worker exited"
	}
	return "worker exited: " + w.state.String()
}

// exitCode is the worker's exit status, or -1 when it was killed by a signal.
func (w *worker) exitCode() int {
	select {
	case <-w.exited:
		if w.state != nil {
			return w.state.ExitCode()
		}
	default:
	}
	return -1
}

// collect takes the current execution's output of both streams, waiting until each
// stream's sentinel or end arrives or until expired closes. ok is false when a stream
// did not reach its sentinel (the worker cannot be trusted with another execution).
func (w *worker) collect(expired <-chan time.Time) (out, errOut segment, ok bool) {
	out, ok1 := w.stdout.take(expired)
	errOut, ok2 := w.stderr.take(expired)
	return out, errOut, ok1 && ok2
}

func (w *worker) release(out, errOut segment) {
	w.stdout.release(out)
	w.stderr.release(errOut)
}

// copyScript copies the regular files of a script's build folder (the source, a compiled
// program; not the build's markers or sub-folders) into dst, a worker's own folder.
func copyScript(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// idleCPUSlack is the CPU time an idle worker may use (its runtime's own housekeeping: a
// garbage collector's background pass) before it counts as still busy.
const idleCPUSlack = 50 * time.Millisecond

// markIdle records the worker's CPU time as its call ends.
func (w *worker) markIdle() {
	w.idleCPU, w.idleAt = -1, time.Now()
	if m, ok := w.proc.(sandbox.CPUMeter); ok {
		w.idleCPU = m.CPUTime()
	}
}

// burnedWhileIdle reports whether the worker used CPU since its last call ended: a thread
// or timer that call left running. A worker idle for less than idleCPUSlack over the
// machine's CPUs cannot have used more than idleCPUSlack: it is not read (a read of
// /proc per call, on the warm path of every call at high rates).
func (w *worker) burnedWhileIdle() bool {
	if w.idleCPU < 0 || time.Since(w.idleAt)*time.Duration(numCPU) <= idleCPUSlack {
		return false
	}
	m, ok := w.proc.(sandbox.CPUMeter)
	return ok && m.CPUTime()-w.idleCPU > idleCPUSlack
}

// numCPU bounds the CPU time a process can use per second of wall time.
var numCPU = runtime.NumCPU()
