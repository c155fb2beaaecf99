// Package sandbox starts the runtime host's processes, through one seam (Spawner, in
// spawn.go): Plain starts them as plain processes (allowlisted environment, own process
// group, rlimits); Sandbox confines language workers as well (runtimes/README.md,
// "Sandbox"). Workers start through bubblewrap, run as root by the host, which builds for
// each worker new pid, net, mount, ipc and uts namespaces, a read-only view of the system
// (/usr, /lib*, /bin, an allowlisted /etc, the runtime's own files and the script's
// folder; no /run, /var, /home, /root), a private size-capped tmpfs as /tmp, a fresh
// /proc and a minimal /dev, and a seccomp filter. Inside, setpriv drops to the worker's
// own unprivileged uid (one per live worker) with no capabilities and no_new_privs before
// the language runtime starts. The host puts the worker in its own cgroups (memory, pids,
// cgroup.kill) and sets its rlimits before the init frame, that is before any user code
// runs. Builds of scripts run in the sandbox as well, as a uid of their own that owns only
// their folder for the build's time (runtimes/README.md, "Build cache"); without bubblewrap
// the uid alone is the boundary, with the same seccomp filter loaded by the thread that
// starts the worker (direct.go); the runtime's prepare step is the platform's own and runs
// plain.
package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Sandbox modes (LAMBDA_SANDBOX).
const (
	Off    = "off"    // plain processes: allowlisted env, process group, rlimits
	Auto   = "auto"   // every layer that works on this machine
	Strict = "strict" // every layer, or the host refuses to start
)

// Layer names, as reported on /_/ready and by lambda_runtime_sandbox_layer{layer}.
const (
	layerEnv          = "env"           // allowlisted environment
	layerProcessGroup = "process_group" // own process group, killed as a whole
	layerRlimits      = "rlimits"       // core 0, files, file size, processes, CPU, address space
	layerUID          = "uid"           // a distinct unprivileged uid per live worker
	layerPidNS        = "pidns"
	layerNetNS        = "netns" // no network at all
	layerMountNS      = "mountns"
	layerIPCNS        = "ipcns"
	layerUTSNS        = "utsns"
	layerReadOnlyFS   = "readonly_fs" // read-only system paths, no platform sockets or secrets
	layerPrivateTmp   = "private_tmp" // a private size-capped /tmp
	layerSeccomp      = "seccomp"
	layerCgroupMemory = "cgroup-memory"
	layerCgroupPids   = "cgroup-pids"
	layerCgroupKill   = "cgroup-kill"
)

// allLayers lists every layer in report order.
var allLayers = []string{
	layerEnv, layerProcessGroup, layerRlimits, layerUID, layerPidNS, layerNetNS, layerMountNS, layerIPCNS,
	layerUTSNS, layerReadOnlyFS, layerPrivateTmp, layerSeccomp, layerCgroupMemory, layerCgroupPids, layerCgroupKill,
}

// Config configures a Sandbox.
type Config struct {
	Mode          string
	UIDBase       int           // first worker uid
	UIDCount      int           // size of the worker uid range
	TmpMB         int           // size of each worker's /tmp
	Pids          int           // pids.max and RLIMIT_NPROC of a worker
	MemoryMB      int           // memory of a worker whose request names none (and of a spare)
	Network       bool          // leave workers the host's network (no netns)
	Bwrap         string        // bubblewrap binary (looked up in PATH when not absolute)
	MaxTimeout    time.Duration // the longest execution: RLIMIT_CPU headroom
	ReadOnlyExtra []string      // more host paths visible read-only in every worker
	BuildMemoryMB int           // memory of a build (cgroup), 0: 2048
}

// Sandbox is the Spawner of sandboxed workers (builds run as plain processes).
type Sandbox struct {
	cfg      Config
	layers   map[string]bool
	why      map[string]string
	bwrap    string
	setpriv  string
	prlimit  string
	args     []string // bwrap arguments shared by every worker: namespaces and system binds
	bound    []string // host paths already visible (to skip nested binds)
	seccomp  []byte
	uids     *uidSlots
	direct   bool              // workers start as their uid without bubblewrap (direct.go)
	filter   []unix.SockFilter // the seccomp filter without bubblewrap, loaded before a worker's fork
	cg       *cgroupRoot
	live     atomic.Int64 // workers started and not cleaned up
	closed   atomic.Bool
	rootGone atomic.Bool
}

// Problem is the error of a strict sandbox missing layers.
type Problem struct{ Missing map[string]string }

func (e *Problem) Error() string {
	var parts []string
	for _, l := range allLayers {
		if why, ok := e.Missing[l]; ok {
			parts = append(parts, l+" ("+why+")")
		}
	}
	return "LAMBDA_SANDBOX=strict: sandbox layers missing: " + strings.Join(parts, ", ")
}

// New probes which layers work here. In strict mode a missing layer is an error
// (*Problem) naming it.
func New(cfg Config) (*Sandbox, error) {
	if cfg.Mode != Auto && cfg.Mode != Strict {
		return nil, fmt.Errorf("sandbox mode %q: want auto or strict (off uses Plain)", cfg.Mode)
	}
	s := &Sandbox{cfg: cfg, layers: map[string]bool{}, why: map[string]string{}}
	for _, l := range allLayers {
		s.layers[l] = false
	}
	s.layers[layerEnv], s.layers[layerProcessGroup], s.layers[layerRlimits] = true, true, true
	s.probe()
	missing := map[string]string{}
	for _, l := range allLayers {
		if !s.layers[l] && !(l == layerNetNS && cfg.Network) {
			missing[l] = s.why[l]
			if missing[l] == "" {
				missing[l] = "unavailable"
			}
		}
	}
	if cfg.Network {
		s.why[layerNetNS] = "LAMBDA_SANDBOX_NETWORK=true"
	}
	if cfg.Mode == Strict && len(missing) > 0 {
		s.Close()
		return nil, &Problem{Missing: missing}
	}
	return s, nil
}

// Layers reports each layer's state.
func (s *Sandbox) Layers() map[string]bool { return copyLayers(s.layers) }

// PrivateMounts reports whether workers see only the host paths the sandbox binds (a
// mount namespace works here).
func (s *Sandbox) PrivateMounts() bool { return s.layers[layerMountNS] }

// Missing explains each inactive layer.
func (s *Sandbox) Missing() map[string]string {
	out := map[string]string{}
	for l, on := range s.layers {
		if !on {
			out[l] = s.why[l]
		}
	}
	return out
}

func copyLayers(m map[string]bool) map[string]bool {
	out := make(map[string]bool, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Close removes the host's parent cgroups once every worker is gone: it waits up to two
// seconds for the workers' exits, and leaves the removal to the last one otherwise.
func (s *Sandbox) Close() {
	if !s.closed.CompareAndSwap(false, true) || s.cg == nil {
		return
	}
	for deadline := time.Now().Add(2 * time.Second); s.live.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	s.removeRoot()
}

func (s *Sandbox) removeRoot() {
	if s.cg != nil && s.live.Load() == 0 && s.closed.Load() && s.rootGone.CompareAndSwap(false, true) {
		s.cg.close()
	}
}

// probeResult is what a bubblewrap probe found; it depends on the machine only, so one
// probe serves every host of the process.
type probeResult struct {
	ok      map[string]bool
	why     map[string]string
	bwrap   string
	setpriv string
	prlimit string
	args    []string
	bound   []string
	seccomp []byte
}

var (
	probeMu    sync.Mutex
	probeCache = map[string]*probeResult{}
	uidMu      sync.Mutex
	uidCache   = map[[2]int]*uidSlots{}
)

func sharedUIDSlots(base, count int) (*uidSlots, error) {
	uidMu.Lock()
	defer uidMu.Unlock()
	if s := uidCache[[2]int{base, count}]; s != nil {
		return s, nil
	}
	s, err := newUIDSlots(base, count)
	if err == nil {
		uidCache[[2]int{base, count}] = s
	}
	return s, err
}

func (s *Sandbox) probe() {
	s.layers[layerRlimits] = true
	if s.cfg.UIDBase > 0 {
		uids, err := sharedUIDSlots(s.cfg.UIDBase, s.cfg.UIDCount)
		if err != nil {
			s.why[layerUID] = err.Error()
		} else {
			s.uids = uids
		}
	}
	if os.Geteuid() != 0 {
		for _, l := range allLayers {
			if !s.layers[l] {
				s.why[l] = "the runtime host is not root"
			}
		}
		s.probeDirect()
		return
	}
	s.cg = newCgroupRoot()
	s.layers[layerCgroupMemory], s.layers[layerCgroupPids], s.layers[layerCgroupKill] = s.cg.memory(), s.cg.pids(), s.cg.kill()
	for l, why := range s.cg.why {
		s.why[l] = why
	}
	key := s.cfg.Bwrap + "\x00" + strconv.FormatBool(s.cfg.Network)
	probeMu.Lock()
	r := probeCache[key]
	if r == nil {
		r = probeBwrap(s.cfg, s.uids)
		probeCache[key] = r
	}
	probeMu.Unlock()
	for l, on := range r.ok {
		s.layers[l] = on
	}
	for l, why := range r.why {
		if s.why[l] == "" {
			s.why[l] = why
		}
	}
	if s.uids == nil {
		s.layers[layerUID] = false
	}
	s.bwrap, s.setpriv, s.prlimit, s.args, s.bound, s.seccomp = r.bwrap, r.setpriv, r.prlimit, r.args, r.bound, r.seccomp
	if s.usesBwrap() && s.prlimit == "" {
		s.layers[layerRlimits] = false
		s.why[layerRlimits] = "prlimit (util-linux) not found: rlimits cannot be set inside the sandbox"
	}
	if !r.ok[layerSeccomp] {
		s.seccomp = nil
	}
	if !r.ok[layerUID] {
		s.setpriv = ""
	}
	if !s.usesBwrap() {
		s.probeDirect()
	}
}

// probeDirect turns on distinct worker uids without bubblewrap when this process may
// switch uids (root, or the capabilities direct.go lists).
func (s *Sandbox) probeDirect() {
	// Without bubblewrap the same seccomp filter is loaded on the thread that starts each
	// worker (direct.go: startConfined), whether or not it gets a uid of its own.
	if f, ok := seccompFilter(); !ok {
		s.why[layerSeccomp] = "no seccomp filter for this architecture"
	} else if err := seccompWorks(f); err != nil {
		s.why[layerSeccomp] = "seccomp(2) refused: " + err.Error()
	} else {
		s.filter = f
		s.layers[layerSeccomp] = true
		delete(s.why, layerSeccomp)
	}
	s.layers[layerUID] = false
	if s.uids == nil {
		return
	}
	ok, why := canSetIDs()
	if !ok {
		s.why[layerUID] = why
		return
	}
	s.direct = true
	s.layers[layerUID] = true
	delete(s.why, layerUID)
	if p, err := exec.LookPath("prlimit"); err == nil {
		s.prlimit = p
	} else if os.Geteuid() != 0 {
		// Another uid's rlimits cannot be set from outside without CAP_SYS_RESOURCE.
		s.layers[layerRlimits] = false
		s.why[layerRlimits] = "prlimit (util-linux) not found: a worker's rlimits cannot be set"
	}
}

// Direct reports whether workers are kept apart by their uids alone (no mount namespace):
// the host then keeps its script cache to itself and gives each worker a private copy.
func (s *Sandbox) Direct() bool { return s.direct }

// Isolated reports whether workers of different tenants are kept apart: by bubblewrap's
// namespaces with a uid each, or by a uid each.
func (s *Sandbox) Isolated() bool { return s.layers[layerUID] }

// etcAllowlist are the /etc entries workers see (when present): the dynamic linker's
// cache, time zone, name service basics, CA certificates, language runtime defaults.
// Everything else of /etc (shadow, ssh keys, sudoers, the platform's own files) is absent.
var etcAllowlist = []string{
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "timezone",
	"passwd", "group", "nsswitch.conf", "hosts", "host.conf", "gai.conf", "protocols", "services",
	"ssl/certs", "ca-certificates", "ca-certificates.conf", "pki/tls/certs", "crypto-policies",
	"mime.types", "os-release", "debian_version", "perl", "python3*", "node*", "npmrc",
}

// systemArgs returns the bwrap arguments for the read-only system view and the host paths
// it makes visible.
func systemArgs() (args, bound []string) {
	if fi, err := os.Stat("/usr"); err == nil && fi.IsDir() {
		args = append(args, "--ro-bind", "/usr", "/usr")
		bound = append(bound, "/usr")
	}
	for _, d := range []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"} {
		fi, err := os.Lstat(d)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			if target, err := os.Readlink(d); err == nil {
				args = append(args, "--symlink", target, d)
			}
		case fi.IsDir():
			args = append(args, "--ro-bind", d, d)
			bound = append(bound, d)
		}
	}
	made := map[string]bool{}
	for _, pat := range etcAllowlist {
		matches, _ := filepath.Glob(filepath.Join("/etc", pat))
		for _, m := range matches {
			args = append(parentDirs(args, made, m), "--ro-bind", m, m)
		}
	}
	args = append(args, "--proc", "/proc", "--dev", "/dev")
	bound = append(bound, "/proc", "/dev")
	return args, bound
}

// probeBwrap finds what bubblewrap can do here by running it: the whole sandbox first
// (one run when everything works), then layer by layer to name what is missing.
func probeBwrap(cfg Config, uids *uidSlots) *probeResult {
	r := &probeResult{ok: map[string]bool{}, why: map[string]string{}}
	bwrapLayers := []string{layerPidNS, layerNetNS, layerMountNS, layerIPCNS, layerUTSNS, layerReadOnlyFS, layerPrivateTmp, layerSeccomp, layerUID}
	fail := func(why string) *probeResult {
		for _, l := range bwrapLayers {
			r.ok[l] = false
			r.why[l] = why
		}
		return r
	}
	name := cfg.Bwrap
	if name == "" {
		name = "bwrap"
	}
	bwrap, err := exec.LookPath(name)
	if err != nil {
		return fail("bubblewrap (" + name + ") not found: install the bubblewrap package")
	}
	r.bwrap = bwrap
	truePath, err := exec.LookPath("true")
	if err != nil {
		return fail("no true(1) to probe with")
	}
	r.args, r.bound = systemArgs()
	if prog, ok := seccompProgram(); ok {
		r.seccomp = prog
	} else {
		r.why[layerSeccomp] = "no seccomp filter for this architecture"
	}
	if p, err := exec.LookPath("prlimit"); err == nil {
		r.prlimit = p
	}
	setpriv, err := exec.LookPath("setpriv")
	if err == nil {
		r.setpriv = setpriv
	} else {
		r.why[layerUID] = "setpriv (util-linux) not found"
	}
	if uids == nil {
		r.setpriv = ""
	}
	ns := map[string]string{layerPidNS: "--unshare-pid", layerNetNS: "--unshare-net", layerIPCNS: "--unshare-ipc", layerUTSNS: "--unshare-uts"}
	if cfg.Network {
		delete(ns, layerNetNS)
	}
	run := func(flags []string, seccomp bool, uid bool) error {
		argv := append([]string{"--die-with-parent"}, flags...)
		argv = append(argv, r.args...)
		argv = append(argv, "--size", "1048576", "--tmpfs", "/tmp")
		var files []*os.File
		if seccomp && r.seccomp != nil {
			f, err := seccompFile(r.seccomp)
			if err != nil {
				return err
			}
			defer f.Close()
			files = append(files, f)
			argv = append(argv, "--seccomp", "3")
		}
		var lease *uidLease
		if uid {
			var err error
			if lease, err = uids.acquire(); err != nil {
				return err
			}
			defer lease.release()
			argv = append(argv, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP")
		}
		cmdline := chainArgv(r.prlimit, r.setpriv, lease, Limits{FileSize: 1 << 30, OpenFiles: 1024}, 64, time.Minute, []string{truePath})
		argv = append(argv, "--")
		argv = append(argv, cmdline...)
		cmd := exec.Command(bwrap, argv...)
		cmd.Env = []string{"PATH=" + WorkerPath}
		cmd.ExtraFiles = files
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	var all []string
	for _, l := range []string{layerPidNS, layerNetNS, layerIPCNS, layerUTSNS} {
		if f, ok := ns[l]; ok {
			all = append(all, f)
		}
	}
	if run(all, true, r.setpriv != "") == nil {
		for _, l := range bwrapLayers {
			r.ok[l] = true
		}
		r.ok[layerNetNS] = !cfg.Network
		r.ok[layerSeccomp] = r.seccomp != nil
		r.ok[layerUID] = r.setpriv != ""
		return r
	}
	if err := run(nil, false, false); err != nil {
		return fail("bubblewrap cannot build a mount namespace here: " + err.Error())
	}
	r.ok[layerMountNS], r.ok[layerReadOnlyFS], r.ok[layerPrivateTmp] = true, true, true
	var nsOK []string
	for _, l := range []string{layerPidNS, layerNetNS, layerIPCNS, layerUTSNS} {
		f, ok := ns[l]
		if !ok {
			continue
		}
		if err := run([]string{f}, false, false); err != nil {
			r.why[l] = "bwrap " + f + ": " + err.Error()
			continue
		}
		r.ok[l] = true
		nsOK = append(nsOK, f)
	}
	if r.seccomp != nil {
		if err := run(nsOK, true, false); err != nil {
			r.why[layerSeccomp] = "bwrap --seccomp: " + err.Error()
			r.seccomp = nil
		} else {
			r.ok[layerSeccomp] = true
		}
	}
	if r.setpriv != "" {
		if err := run(nsOK, r.seccomp != nil, true); err != nil {
			r.why[layerUID] = "setpriv in the sandbox: " + err.Error()
			r.setpriv = ""
		} else {
			r.ok[layerUID] = true
		}
	}
	return r
}

// nsArgs returns the namespace flags for the probed layers.
func (s *Sandbox) nsArgs() []string {
	var a []string
	for l, f := range map[string]string{layerPidNS: "--unshare-pid", layerNetNS: "--unshare-net", layerIPCNS: "--unshare-ipc", layerUTSNS: "--unshare-uts"} {
		if s.layers[l] {
			a = append(a, f)
		}
	}
	sort.Strings(a)
	if s.layers[layerUTSNS] {
		a = append(a, "--hostname", "lambda")
	}
	return a
}

// parentDirs appends the bwrap arguments creating path's missing parents world-readable
// (bwrap would create them 0700 as root, unreachable for the worker's uid).
func parentDirs(args []string, made map[string]bool, path string) []string {
	var parents []string
	for d := filepath.Dir(path); d != "/" && d != "." && !made[d]; d = filepath.Dir(d) {
		parents = append(parents, d)
	}
	for i := len(parents) - 1; i >= 0; i-- {
		made[parents[i]] = true
		args = append(args, "--perms", "0755", "--dir", parents[i])
	}
	return args
}

// chainArgv is what bubblewrap runs: prlimit sets the rlimits (as root, inside the
// sandbox, before anything of the worker runs: the host itself may lack CAP_SYS_RESOURCE
// to set them from outside), then setpriv drops to the worker's uid, then the worker.
func chainArgv(prlimit, setpriv string, lease *uidLease, l Limits, pids int, maxTimeout time.Duration, argv []string) []string {
	if setpriv != "" && lease != nil {
		argv = setprivArgv(setpriv, lease.uid, argv)
	}
	if prlimit != "" {
		argv = prlimitArgv(prlimit, l, pids, maxTimeout, argv)
	}
	return argv
}

// prlimitArgv sets: no core dumps, the open files and file size limits, pids processes for
// the worker's uid (its own: RLIMIT_NPROC counts per uid) and a CPU budget of the longest
// execution plus 10% and a second per (the soft limit's SIGXCPU, then SIGKILL): a warm worker
// that uses it up over many calls is replaced.
func prlimitArgv(prlimit string, l Limits, pids int, maxTimeout time.Duration, argv []string) []string {
	a := []string{prlimit, "--core=0:0"}
	pair := func(flag string, v uint64) {
		if v > 0 {
			n := strconv.FormatUint(v, 10)
			a = append(a, flag+"="+n+":"+n)
		}
	}
	pair("--nofile", l.OpenFiles)
	pair("--fsize", l.FileSize)
	pair("--nproc", uint64(pids))
	if maxTimeout > 0 {
		cpu := uint64(maxTimeout/time.Second)*11/10 + 1
		a = append(a, "--cpu="+strconv.FormatUint(cpu, 10)+":"+strconv.FormatUint(cpu+1, 10))
	}
	return append(append(a, "--"), argv...)
}

func setprivArgv(setpriv string, uid int, argv []string) []string {
	id := strconv.Itoa(uid)
	return append([]string{setpriv, "--reuid", id, "--regid", id, "--clear-groups",
		"--bounding-set", "-all", "--inh-caps", "-all", "--no-new-privs", "--"}, argv...)
}

// seccompFile returns a pipe's read end holding the filter.
func seccompFile(prog []byte) (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	_, err = w.Write(prog) // well under a pipe buffer
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// usesBwrap reports whether workers start inside bubblewrap.
func (s *Sandbox) usesBwrap() bool { return s.layers[layerMountNS] && s.bwrap != "" }

// Spawn starts spec in the sandbox: a worker, or a build (as an unprivileged uid of its
// own that can write only its Writable folders; without network, seeing only the system,
// its ReadOnly paths and its folders when bubblewrap works).
func (s *Sandbox) Spawn(spec Spec) (Process, error) {
	if spec.Role == RolePrepare || spec.Role == RoleBuild && !s.layers[layerUID] {
		return Plain{}.Spawn(spec) // (a build without a uid to run it as: the host is pinned to one tenant)
	}
	if len(spec.Argv) == 0 {
		return nil, fmt.Errorf("spawn: empty command")
	}
	p := &sandboxProcess{s: s, limits: spec.Limits, buf: make([]byte, 0, 512)}
	s.live.Add(1)
	fail := func(err error) (Process, error) {
		p.cleanup()
		return nil, fmt.Errorf("spawn %s: %w", spec.Argv[0], err)
	}
	var err error
	if s.layers[layerUID] {
		if p.lease, err = s.uids.acquire(); err != nil {
			return fail(err)
		}
	}
	memory := s.cfg.MemoryMB
	if spec.Role == RoleBuild {
		memory = s.cfg.BuildMemoryMB
		if memory <= 0 {
			memory = 2048
		}
		mode := os.FileMode(0o700) // direct: other workers share the file system's view
		if s.usesBwrap() {
			mode = 0o755 // bubblewrap (without CAP_DAC_OVERRIDE) enters it first
		}
		for _, dir := range spec.Writable {
			if err := ownMode(dir, p.lease.uid, mode); err != nil {
				return fail(err)
			}
			p.reclaim = append(p.reclaim, dir)
		}
	}
	if s.cg != nil && (s.layers[layerCgroupKill] || s.layers[layerCgroupMemory] || s.layers[layerCgroupPids]) {
		name := "w-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(workerSeq.Add(1), 10)
		if p.cg, err = s.cg.newWorker(name, s.cfg.Pids, memory); err != nil {
			return fail(err)
		}
	}
	env := slices.Clone(spec.Env)
	argv, files := spec.Argv, slices.Clone(spec.ExtraFiles)
	dir := spec.Dir
	if s.usesBwrap() {
		for i, kv := range env {
			if k, v, ok := strings.Cut(kv, "="); ok && v == spec.Dir && (k == "HOME" || k == "TMPDIR") && spec.Role == RoleWorker {
				env[i] = k + "=/tmp"
			}
		}
		var secFD int
		if s.seccomp != nil {
			f, err := seccompFile(s.seccomp)
			if err != nil {
				return fail(err)
			}
			defer f.Close()
			files = append(files, f)
			secFD = 2 + len(files)
		}
		argv = s.bwrapArgv(spec, secFD, p.lease)
	}
	direct := s.direct && p.lease != nil
	if direct {
		if spec.Role == RoleWorker {
			if err := own(spec.Dir, p.lease.uid); err != nil {
				return fail(err)
			}
		}
		if s.prlimit != "" { // as the worker, before it runs anything of its own
			argv = prlimitArgv(s.prlimit, spec.Limits, s.cfg.Pids, s.cpu(spec), argv)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.ExtraFiles = files
	cmd.WaitDelay = time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	filtered := !s.usesBwrap() && s.filter != nil // cloned by the confining thread
	if p.cg != nil && p.cg.v2 != "" && !filtered {
		// (A filtered worker is cloned by a thread under the filter, which answers
		// clone3 — the only way into a cgroup at clone — with ENOSYS: it joins right after
		// its start instead, before it runs anything of its own.)
		fd, err := unix.Open(p.cg.v2, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		defer unix.Close(fd)
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	}
	switch {
	case direct:
		cmd.SysProcAttr.Credential = credential(p.lease.uid)
		err = startConfined(cmd, s.filter)
	case !s.usesBwrap():
		err = startConfined(cmd, s.filter) // a worker on the host's uid (pinned replica)
	default:
		err = cmd.Start()
	}
	if err != nil {
		return fail(err)
	}
	p.cmd = cmd
	if p.cg != nil && p.cg.v2 != "" && filtered {
		if err := os.WriteFile(filepath.Join(p.cg.v2, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
			p.Kill()
			_, _ = p.Wait()
			return nil, fmt.Errorf("spawn %s: cgroup: %w", spec.Argv[0], err)
		}
	}
	if p.cg != nil && (spec.Role == RoleBuild || filtered) {
		_ = p.cg.join([]int{cmd.Process.Pid}) // v1 hierarchies: before it forks much
	}
	if !s.usesBwrap() && !(direct && s.prlimit != "") { // no sandbox around it: limit the process right away as well
		if err := setLimits(cmd.Process.Pid, spec.Limits); err != nil {
			p.Kill()
			_, _ = p.Wait()
			return nil, fmt.Errorf("spawn %s: rlimits: %w", spec.Argv[0], err)
		}
	}
	return p, nil
}

var workerSeq atomic.Uint64

func (s *Sandbox) cpu(spec Spec) time.Duration {
	if spec.CPU > 0 {
		return spec.CPU
	}
	return s.cfg.MaxTimeout
}

// bwrapArgv builds the bubblewrap command line of a worker or a build.
func (s *Sandbox) bwrapArgv(spec Spec, seccompFD int, lease *uidLease) []string {
	a := []string{s.bwrap, "--die-with-parent", "--new-session", "--unshare-cgroup-try"}
	ns := s.nsArgs()
	if spec.Network && spec.Role == RoleBuild {
		ns = slices.DeleteFunc(ns, func(f string) bool { return f == "--unshare-net" })
	}
	a = append(a, ns...)
	a = append(a, s.args...)
	a = append(a, "--perms", "1777", "--size", strconv.FormatInt(int64(s.cfg.TmpMB)<<20, 10), "--tmpfs", "/tmp")
	made := map[string]bool{"/tmp": true}
	if spec.Network && spec.Role == RoleBuild {
		if real, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil { // name resolution
			a = append(parentDirs(a, made, "/etc/resolv.conf"), "--ro-bind", real, "/etc/resolv.conf")
		}
	}
	for _, p := range s.readOnlyPaths(spec) {
		a = append(parentDirs(a, made, p), "--ro-bind", p, p)
	}
	chdir := "/tmp"
	if spec.Role == RoleBuild {
		for _, w := range spec.Writable {
			a = append(parentDirs(a, made, w), "--bind", w, w)
		}
		chdir = spec.Dir
	}
	a = append(a, "--chdir", chdir)
	if seccompFD > 0 {
		a = append(a, "--seccomp", strconv.Itoa(seccompFD))
	}
	if s.setpriv != "" && lease != nil {
		a = append(a, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP")
	} else {
		a = append(a, "--cap-drop", "ALL")
	}
	cmd := chainArgv(s.prlimit, s.setpriv, lease, spec.Limits, s.cfg.Pids, s.cpu(spec), spec.Argv)
	a = append(a, "--")
	return append(a, cmd...)
}

// readOnlyPaths are the host paths a worker sees besides the system: the folder of every
// absolute path in its command (the bootstrap, or the compiled script), the spec's
// ReadOnly paths (the script's folder, or the build cache for a spare) and the configured
// extras; shortest first so that nested binds land on top.
func (s *Sandbox) readOnlyPaths(spec Spec) []string {
	var paths []string
	add := func(p string) {
		if !filepath.IsAbs(p) {
			return
		}
		p = filepath.Clean(p)
		fi, err := os.Stat(p)
		if err != nil {
			return
		}
		if !fi.IsDir() {
			p = filepath.Dir(p)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return
		}
		for _, b := range s.bound {
			if real == b || strings.HasPrefix(real, b+"/") {
				return
			}
		}
		if p == "/" || slices.Contains(paths, p) {
			return
		}
		paths = append(paths, p)
	}
	if spec.Role == RoleWorker { // a build's arguments name the whole cache: it gets ReadOnly only
		for _, a := range spec.Argv {
			add(a)
		}
	}
	for _, p := range spec.ReadOnly {
		add(p)
	}
	for _, p := range s.cfg.ReadOnlyExtra {
		add(p)
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) < len(paths[j]) })
	return paths
}

// sandboxProcess is a worker started by a Sandbox.
type sandboxProcess struct {
	s       *Sandbox
	cmd     *exec.Cmd
	cg      *workerCgroup
	lease   *uidLease
	limits  Limits
	reclaim []string // a build's folders, the host's again once the build is over
	exited  atomic.Bool

	mu       sync.Mutex
	baseline []int // the worker's processes when it was confined, sorted
	buf      []byte
	cleaned  sync.Once
	meter    cpuMeter
}

func (p *sandboxProcess) Pid() int { return p.cmd.Process.Pid }

// Wait waits for the worker to exit, then kills what is left of its tree, removes its
// cgroups and frees its uid.
func (p *sandboxProcess) Wait() (*os.ProcessState, error) {
	err := p.cmd.Wait()
	p.exited.Store(true)
	p.cleanup()
	p.meter.close()
	return p.cmd.ProcessState, err
}

func (p *sandboxProcess) cleanup() {
	p.cleaned.Do(func() {
		gone := true
		if p.cg != nil {
			gone = p.cg.remove()
		}
		if p.lease != nil && (p.s.direct || len(p.reclaim) > 0) {
			gone = killUID(p.lease.uid) && gone // orphans that left the process group
		}
		for _, dir := range p.reclaim {
			_ = own(dir, os.Geteuid()) // nothing of the build's uid runs any more
		}
		if gone {
			p.lease.release()
		} // else: something still runs as the uid: never hand it out again in this host
		p.s.live.Add(-1)
		p.s.removeRoot()
	})
}

// Kill SIGKILLs the whole worker: every process of its cgroup and its process group.
func (p *sandboxProcess) Kill() {
	if p.cg != nil {
		p.cg.kill()
	}
	if !p.exited.Load() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// CPUTime is the CPU time the worker's processes have used so far (user and system).
func (p *sandboxProcess) CPUTime() time.Duration {
	p.mu.Lock()
	pids := p.baseline
	p.mu.Unlock()
	if pids == nil {
		pids = []int{p.cmd.Process.Pid}
	}
	return p.meter.cpuTime(pids)
}

// Own gives the worker's uid path and what it holds (a script copied into its folder); a
// no-op unless the worker is a direct one.
func (p *sandboxProcess) Own(path string) error {
	if !p.s.direct || p.lease == nil {
		return nil
	}
	return own(path, p.lease.uid)
}

// Settle runs once the worker said hello, before any user code: every process of the
// sandbox joins the worker's v1 cgroups (v2 membership came with the clone) and the set
// of processes Clean compares with is taken. Moving a process between v1 cgroups costs an
// RCU grace period (~10 ms): here it is off a spare's critical path.
func (p *sandboxProcess) Settle() error {
	tree := processTree(p.cmd.Process.Pid)
	if p.cg != nil {
		if err := p.cg.join(tree); err != nil {
			return err
		}
	}
	p.mu.Lock()
	p.baseline = slices.Sorted(slices.Values(tree))
	p.mu.Unlock()
	return nil
}

// Confine applies what depends on the script, before the init frame lets user code run:
// the memory limit becomes memoryMB (the configured default when 0). (The rlimits were set
// inside the sandbox at its start, the cgroups joined by Settle.)
func (p *sandboxProcess) Confine(memoryMB int) error {
	if memoryMB <= 0 {
		memoryMB = p.s.cfg.MemoryMB
	}
	p.mu.Lock()
	settled := p.baseline != nil
	p.mu.Unlock()
	if !settled {
		if err := p.Settle(); err != nil {
			return err
		}
	}
	if p.cg != nil {
		return p.cg.setMemory(memoryMB)
	}
	return nil
}

// Clean reports whether the worker's processes are exactly those it had when confined: a
// call that left a process behind (a daemon, a fork bomb) makes the worker unusable.
func (p *sandboxProcess) Clean() bool {
	if p.exited.Load() {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.baseline == nil {
		return true
	}
	if p.cg == nil {
		if p.s.direct && p.lease != nil {
			return len(uidProcesses(p.lease.uid)) == len(p.baseline) // its uid's processes are its own
		}
		return true // without a cgroup a daemon can leave the tree unseen: not worth a /proc walk per call
	}
	same, known := p.cg.sameProcs(p.buf[:0], p.baseline)
	return same || !known
}
