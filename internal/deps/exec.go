package deps

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Network is what a command may reach.
type Network int

const (
	// NetworkNone: the command must work without any network (offline install from the
	// download cache, a local wheelhouse, the crate registry directory).
	NetworkNone Network = iota
	// NetworkRegistry: the command talks to the language's package source (the npm
	// registry, a pip index) and to nothing else.
	NetworkRegistry
)

func (n Network) String() string {
	if n == NetworkRegistry {
		return "registry"
	}
	return "none"
}

// Cmd is one installer command. Every command of the engine goes through an Executor, the
// seam where a sandbox (bubblewrap, an unprivileged uid, a network namespace that reaches
// only the registry) wraps it.
type Cmd struct {
	Title   string        // the language
	Step    string        // "resolve" or "install"
	Dir     string        // working directory (absolute)
	Args    []string      // Args[0] is resolved against Env's PATH
	Env     []string      // the complete environment: nothing else is inherited
	Timeout time.Duration // kill the command (its whole process group) after this
	Network Network
	// Writable are the directories the command writes: Dir, the language's download
	// cache and its private HOME. Everything else may be read-only.
	Writable []string
	// ReadOnly are input directories outside the system paths it reads (a wheelhouse, a
	// crate registry).
	ReadOnly []string
	// Shared are the Writable directories other commands write too (the language's
	// download cache): an executor that hands Writable to the command's own uid for its
	// time gives it these alone meanwhile.
	Shared []string
}

// Program is the executable Args[0] names, found with the command's own PATH (not this
// process's).
func (c Cmd) Program() (string, error) {
	if len(c.Args) == 0 {
		return "", errors.New("deps: empty command")
	}
	return lookPath(c.Args[0], envValue(c.Env, "PATH"))
}

// Output is a command's captured stream: its first and last limit/2 bytes.
type Output interface {
	Write(p []byte) (int, error)
	Bytes() []byte
}

// NewOutput returns an Output keeping limit bytes (256 KiB when limit <= 0), what
// LocalExecutor keeps of each stream.
func NewOutput(limit int) Output {
	if limit <= 0 {
		limit = 256 << 10
	}
	return &headTail{limit: limit}
}

// Executor runs a Cmd. An error is an *exec.ExitError when the command ran and failed,
// the context's error when it was stopped, anything else when it could not start.
type Executor interface {
	Exec(ctx context.Context, c Cmd) (stdout, stderr []byte, err error)
}

// ExecFunc adapts a function to Executor (a wrapper that counts, logs or sandboxes).
type ExecFunc func(ctx context.Context, c Cmd) ([]byte, []byte, error)

func (f ExecFunc) Exec(ctx context.Context, c Cmd) ([]byte, []byte, error) { return f(ctx, c) }

// LocalExecutor runs commands as child processes of the caller: their own process group
// (killed as a whole on timeout), the given environment only, stdin /dev/null, output
// capped at MaxOutput bytes per stream (its start and its end are kept).
type LocalExecutor struct {
	MaxOutput int // default 256 KiB
}

func (l LocalExecutor) Exec(ctx context.Context, c Cmd) ([]byte, []byte, error) {
	if len(c.Args) == 0 {
		return nil, nil, errors.New("deps: empty command")
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	bin, err := c.Program()
	if err != nil {
		return nil, nil, err
	}
	stdout, stderr := NewOutput(l.MaxOutput), NewOutput(l.MaxOutput)
	cmd := exec.CommandContext(ctx, bin, c.Args[1:]...)
	cmd.Args[0] = c.Args[0]
	cmd.Dir, cmd.Env = c.Dir, c.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	if cmd.Process != nil {
		// Grandchildren left in the group (npm's, pip's helpers) go with it.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return stdout.Bytes(), stderr.Bytes(), err
}

// lookPath finds name in pathEnv (the command's PATH, not this process's).
func lookPath(name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		if isExecutable(name) {
			return name, nil
		}
		return "", fmt.Errorf("deps: %s: not an executable file", name)
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("deps: %s: not found in PATH %s", name, pathEnv)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// headTail keeps the first and the last limit/2 bytes written to it.
type headTail struct {
	mu      sync.Mutex
	limit   int
	head    []byte
	tail    []byte
	dropped int64
}

func (h *headTail) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(p)
	half := h.limit / 2
	if room := half - len(h.head); room > 0 {
		k := min(room, len(p))
		h.head = append(h.head, p[:k]...)
		p = p[k:]
	}
	h.tail = append(h.tail, p...)
	if over := len(h.tail) - (h.limit - half); over > 0 {
		h.dropped += int64(over)
		h.tail = append(h.tail[:0], h.tail[over:]...)
	}
	return n, nil
}

func (h *headTail) Bytes() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b bytes.Buffer
	b.Write(h.head)
	if h.dropped > 0 {
		fmt.Fprintf(&b, "\n[… %d bytes …]\n", h.dropped)
	}
	b.Write(h.tail)
	return b.Bytes()
}
