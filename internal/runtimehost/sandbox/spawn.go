package sandbox

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// This file is the one seam through which the host starts processes (workers and builds):
// Plain and the Sandbox (sandbox.go: bubblewrap namespaces, per-worker uids, cgroups,
// seccomp) are its Spawners; the host's pool and build cache never call os/exec themselves.

// WorkerPath is the PATH of every worker; nothing else of the host's environment reaches it.
const WorkerPath = "/usr/local/bin:/usr/bin:/bin"

// Role says what a spawned process is for.
type Role int

// The roles of spawned processes.
const (
	RoleWorker  Role = iota // a language worker running user code
	RoleBuild               // a script's build (compiler, checker): user input, sandboxed
	RolePrepare             // the runtime's prepare step: the platform's own, a plain process
)

// Limits are the resource limits of a spawned process; zero leaves a limit alone.
type Limits struct {
	FileSize  uint64 // RLIMIT_FSIZE, bytes
	OpenFiles uint64 // RLIMIT_NOFILE
	Processes uint64 // RLIMIT_NPROC (per uid; ignored for root by the kernel)
}

// Spec describes a process to start. The environment is complete: the host builds it from
// an allowlist, nothing is inherited.
type Spec struct {
	Role       Role
	Argv       []string
	Dir        string
	Env        []string
	Stdout     io.Writer // *os.File is passed straight through; nil means /dev/null
	Stderr     io.Writer
	ExtraFiles []*os.File // fd 3 onwards
	Limits     Limits
	// Memory is the worker's memory budget in MiB when known at start (0 for a spare);
	// a sandbox with cgroups enforces it, the plain spawner does not.
	Memory int
	// ReadOnly are host paths a worker reads besides its command's own files: the script's
	// folder, or the whole build cache for a spare. A sandbox makes them (and nothing else
	// of the host's files outside the system folders) visible, read-only, at the same path.
	// For a build: the toolchain and what the registry's build_readonly names.
	ReadOnly []string
	// Writable are the folders a build writes (its script's build folder): a sandbox hands
	// them to the build's uid for the build's time and takes them back afterwards.
	Writable []string
	// CPU bounds the process's CPU time (RLIMIT_CPU); 0 means the sandbox's default.
	CPU time.Duration
	// Network keeps a build in the host's network (a dependency download from its package
	// source); every other build and worker gets none where a network namespace works.
	Network bool
}

// Process is a started process.
type Process interface {
	Pid() int
	// Wait waits for the process to exit and returns its state.
	Wait() (*os.ProcessState, error)
	// Kill sends SIGKILL to the process's whole process group.
	Kill()
}

// Spawner starts processes.
type Spawner interface {
	Spawn(spec Spec) (Process, error)
}

// Confiner is implemented by processes whose confinement depends on the script: the host
// calls Confine with the request's memory_mb right before the init frame, so the limits
// hold before any user code runs (a worker runs none until its init frame).
type Confiner interface {
	Confine(memoryMB int) error
}

// Settler is implemented by processes with setup left for when the worker said hello
// (every process of a sandbox exists, no user code has run); startWorker calls Settle,
// in the background for a spare.
type Settler interface {
	Settle() error
}

// Cleaner is implemented by processes that can tell whether an execution left processes
// behind; the host recycles a worker that is not clean after a call.
type Cleaner interface {
	Clean() bool
}

// CPUMeter is implemented by processes that can tell the CPU time they have used: the
// host recycles a warm worker that used CPU while idle (a thread its last call left
// running).
type CPUMeter interface {
	CPUTime() time.Duration
}

// LayerReporter is implemented by spawners that report which isolation layers they apply
// (exported as lambda_runtime_sandbox_layer).
type LayerReporter interface {
	Layers() map[string]bool
}

// Plain starts plain child processes: own process group (so a timeout kills the
// whole tree), SIGKILL when the host dies, no core dumps, and the Spec's rlimits.
type Plain struct{}

// Layers reports the isolation this spawner provides.
func (Plain) Layers() map[string]bool {
	m := map[string]bool{}
	for _, l := range allLayers {
		m[l] = l == layerEnv || l == layerProcessGroup || l == layerRlimits
	}
	return m
}

// Spawn starts spec. Resource limits are applied with prlimit right after the start, before
// the host sends the worker anything: a worker runs no user code until its init frame.
func (Plain) Spawn(spec Spec) (Process, error) {
	if len(spec.Argv) == 0 {
		return nil, fmt.Errorf("spawn: empty command")
	}
	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Dir = spec.Dir
	cmd.Env = spec.Env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdout = spec.Stdout
	cmd.Stderr = spec.Stderr
	cmd.ExtraFiles = spec.ExtraFiles
	cmd.WaitDelay = time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("spawn %s: %w", spec.Argv[0], err)
	}
	p := &process{cmd: cmd}
	if err := setLimits(cmd.Process.Pid, spec.Limits); err != nil {
		p.Kill()
		_, _ = p.Wait()
		return nil, fmt.Errorf("spawn %s: rlimits: %w", spec.Argv[0], err)
	}
	return p, nil
}

func setLimits(pid int, l Limits) error {
	set := func(res int, v uint64) error {
		if v == 0 {
			return nil
		}
		var cur unix.Rlimit
		if err := unix.Prlimit(pid, res, nil, &cur); err != nil {
			return err
		}
		lim := unix.Rlimit{Cur: min(v, cur.Max), Max: min(v, cur.Max)}
		return unix.Prlimit(pid, res, &lim, nil)
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_CORE, &unix.Rlimit{}, nil); err != nil {
		return err
	}
	if err := set(unix.RLIMIT_FSIZE, l.FileSize); err != nil {
		return err
	}
	if err := set(unix.RLIMIT_NOFILE, l.OpenFiles); err != nil {
		return err
	}
	return set(unix.RLIMIT_NPROC, l.Processes)
}

type process struct {
	cmd   *exec.Cmd
	meter cpuMeter
}

func (p *process) Pid() int { return p.cmd.Process.Pid }

func (p *process) Wait() (*os.ProcessState, error) {
	err := p.cmd.Wait()
	p.meter.close()
	return p.cmd.ProcessState, err
}

// CPUTime is the process's CPU time so far.
func (p *process) CPUTime() time.Duration { return p.meter.cpuTime([]int{p.cmd.Process.Pid}) }

// cpuMeter reads the CPU time (user and system) of a worker's processes from
// /proc/<pid>/stat through descriptors it keeps open: one pread per process where reading
// the file anew takes an open, a stat, two reads and a close — a warm call reads it once.
// A kept descriptor stays with its process: once that exits, reads fail (ESRCH) instead
// of reading a process that reuses the pid.
type cpuMeter struct {
	mu     sync.Mutex
	files  map[int]*os.File
	buf    [1024]byte
	closed bool
}

// cpuTime sums the CPU time of pids, in the kernel's clock ticks of 10 ms (USER_HZ
// everywhere Linux runs); a process it cannot read adds nothing.
func (m *cpuMeter) cpuTime(pids []int) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0
	}
	var ticks uint64
	for _, pid := range pids {
		f := m.files[pid]
		if f == nil {
			var err error
			if f, err = os.Open("/proc/" + strconv.Itoa(pid) + "/stat"); err != nil {
				continue
			}
			if m.files == nil {
				m.files = map[int]*os.File{}
			}
			m.files[pid] = f
		}
		n, _ := f.ReadAt(m.buf[:], 0)
		ticks += statTicks(m.buf[:n])
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// close closes the descriptors; later reads count nothing.
func (m *cpuMeter) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.files {
		f.Close()
	}
	m.files, m.closed = nil, true
}

// statTicks is utime + stime of a /proc/<pid>/stat line: fields 14 and 15, counted from
// after the last ')' (comm may hold spaces and parentheses); 0 for a line it cannot read.
func statTicks(b []byte) uint64 {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	var ticks uint64
	field := 0 // fields after ')': state is 1, utime 12, stime 13
	for j := i + 1; j < len(b) && field <= 13; {
		for j < len(b) && b[j] == ' ' {
			j++
		}
		k := j
		for k < len(b) && b[k] != ' ' && b[k] != '\n' {
			k++
		}
		if k == j {
			break
		}
		field++
		if field == 12 || field == 13 {
			v, err := strconv.ParseUint(string(b[j:k]), 10, 64)
			if err != nil {
				return 0
			}
			ticks += v
		}
		j = k
	}
	if field < 13 {
		return 0
	}
	return ticks
}

func (p *process) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
}
