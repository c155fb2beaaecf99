package devstack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// command is what a component runs.
type command struct {
	path    string
	args    []string
	env     []string
	dir     string
	stopSig syscall.Signal // default SIGTERM
	cred    *syscall.Credential
	infra   bool // PostgreSQL/Redis: stopped after the cleanups
	oneshot bool // runs to completion: its exit is expected
}

// proc is one supervised child.
type proc struct {
	name     string
	command  command
	ready    func(context.Context) error // nil: no readiness check (Restart waits for nothing)
	cmd      *exec.Cmd
	logPath  string
	stopSig  syscall.Signal
	infra    bool
	done     chan struct{}
	err      error
	stopping atomic.Bool
}

// spawn starts c as child name, its output appended to LogDir/<name>.log; an unexpected
// exit fails the stack.
func (s *Stack) spawn(name string, c command) (*proc, error) {
	logPath := filepath.Join(s.LogDir, name+".log")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(lf, "\n==== %s %s %s\n", time.Now().Format(time.RFC3339), c.path, strings.Join(c.args, " "))
	pr, pw, err := os.Pipe()
	if err != nil {
		lf.Close()
		return nil, err
	}
	cmd := exec.Command(c.path, c.args...)
	cmd.Env = c.env
	cmd.Dir = c.dir
	cmd.Stdout = pw
	cmd.Stderr = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: c.cred}
	if c.stopSig == 0 {
		c.stopSig = syscall.SIGTERM
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", c.path, err)
	}
	pw.Close()
	p := &proc{name: name, command: c, cmd: cmd, logPath: logPath, stopSig: c.stopSig, infra: c.infra, done: make(chan struct{})}
	p.stopping.Store(c.oneshot)
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	s.log.Info("child started", zap.String("process.name", name), zap.Int("process.pid", cmd.Process.Pid), zap.String("log.file.path", logPath))

	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		defer lf.Close()
		s.pump(name, pr, lf)
	}()
	go func() {
		p.err = cmd.Wait()
		select {
		case <-pumped:
		case <-time.After(2 * time.Second): // a grandchild holds the pipe open
			pr.Close()
		}
		close(p.done)
		if !p.stopping.Load() {
			s.fail(fmt.Errorf("%s exited unexpectedly (%v); its log: %s%s", name, exitText(p.err), logPath, tailText(logPath, 15)))
			s.printf("!! %s exited unexpectedly (%v); see %s\n", name, exitText(p.err), logPath)
		}
	}()
	return p, nil
}

// pump copies a child's output to its log file and echoes its error lines to the terminal.
func (s *Stack) pump(name string, r io.ReadCloser, lf *os.File) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			_, _ = lf.Write(line)
			if isErrorLine(line) {
				fmt.Fprintf(s.out, "[%s] %s", name, ensureEOL(truncate(line, 400)))
			}
		}
		if err != nil {
			return
		}
	}
}

var errorMarks = [][]byte{
	[]byte(`"log.level":"error"`), []byte(`"log.level":"fatal"`), []byte(`"log.level":"panic"`),
	[]byte(`"level":"error"`), []byte("\tERROR\t"), []byte("panic: "), []byte("FATAL"), []byte(" level=error "),
}

func isErrorLine(line []byte) bool {
	for _, m := range errorMarks {
		if bytes.Contains(line, m) {
			return true
		}
	}
	return false
}

func truncate(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return append(b[:n:n], []byte("…\n")...)
}

func ensureEOL(b []byte) []byte {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return append(b, '\n')
	}
	return b
}

// stop sends the stop signal to the child's process group, SIGKILL after grace.
func (p *proc) stop(grace time.Duration) error {
	p.stopping.Store(true)
	select {
	case <-p.done:
		return nil
	default:
	}
	pid := p.cmd.Process.Pid
	_ = syscall.Kill(-pid, p.stopSig)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		_ = syscall.Kill(-pid, syscall.SIGKILL) // leftovers of the group
		return nil
	case <-t.C:
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %s: killed", p.name, grace)
	}
}

// runOnce runs a one-shot command (migrate) to completion, output to its log file.
func (s *Stack) runOnce(ctx context.Context, name string, c command) error {
	c.oneshot = true
	p, err := s.spawn(name, c)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		_ = p.stop(s.opts.StopGrace)
		return ctx.Err()
	}
	if p.err != nil {
		return fmt.Errorf("%s failed (%v); its log: %s%s", name, exitText(p.err), p.logPath, tailText(p.logPath, 15))
	}
	return nil
}

// waitUntil polls check every 50-250 ms until it succeeds, the child p dies, the stack
// fails, ctx ends or timeout passes.
func (s *Stack) waitUntil(ctx context.Context, p *proc, timeout time.Duration, what string, check func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	interval := 50 * time.Millisecond
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		var doneC <-chan struct{}
		if p != nil {
			doneC = p.done
		}
		select {
		case <-doneC:
			return fmt.Errorf("exited before %s (%v); its log: %s%s", what, exitText(p.err), p.logPath, tailText(p.logPath, 15))
		case <-s.failed:
			return s.failErr
		case <-ctx.Done():
			return fmt.Errorf("interrupted while waiting for %s", what)
		case <-time.After(interval):
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("not %s after %s: %v", what, timeout, last)
			if p != nil {
				msg += "; its log: " + p.logPath + tailText(p.logPath, 15)
			}
			return errors.New(msg)
		}
		interval = min(interval*3/2, 250*time.Millisecond)
	}
}

// httpOK returns a check that GET url answers 200.
func httpOK(url string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return nil
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// tailText returns the last n lines of a log file, indented, for error messages.
func tailText(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil || len(data) == 0 {
		return ""
	}
	if len(data) > 16<<10 {
		data = data[len(data)-16<<10:]
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n    | " + strings.Join(lines, "\n    | ")
}
