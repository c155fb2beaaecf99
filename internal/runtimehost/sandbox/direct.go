package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Distinct uids without bubblewrap ("direct" workers). Where no mount namespace can be
// built — the shipped images run the host as uid 10001 under Kubernetes' baseline profile,
// which allows no bubblewrap — the uid is the boundary: with CAP_SETUID and CAP_SETGID the
// host starts each worker as its own uid from the range (no setuid binary involved), so
// the kernel's own checks keep workers apart: another uid's /proc/<pid>/fd, environ and
// memory are unreadable, its processes cannot be signalled or traced, its files (the
// worker's private folder, 0700, holding its own copy of the script) cannot be opened,
// and RLIMIT_NPROC, which counts per uid, bounds each worker's processes. The host keeps
// the script cache 0700 to itself; with CAP_KILL it ends every process of a worker's uid
// when the worker goes (orphans that left the process group included), with CAP_CHOWN
// it hands the worker its folder, with CAP_DAC_OVERRIDE it clears the folder afterwards.

// directCaps are the capabilities a non-root host needs for direct workers.
var directCaps = []struct {
	name string
	cap  int
}{
	{"CAP_SETUID", unix.CAP_SETUID}, {"CAP_SETGID", unix.CAP_SETGID}, {"CAP_CHOWN", unix.CAP_CHOWN},
	{"CAP_KILL", unix.CAP_KILL}, {"CAP_DAC_OVERRIDE", unix.CAP_DAC_OVERRIDE},
}

// canSetIDs reports whether this process may start workers as other uids, or why not.
func canSetIDs() (bool, string) {
	if os.Geteuid() == 0 {
		return true, ""
	}
	eff, err := effectiveCaps()
	if err != nil {
		return false, "capget: " + err.Error()
	}
	var missing []string
	for _, c := range directCaps {
		if eff&(1<<uint(c.cap)) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return false, "the runtime host is not root and lacks " + strings.Join(missing, ", ") +
			" (the runtime pod's securityContext grants them: deploy/k8s/functions)"
	}
	return true, ""
}

func effectiveCaps() (uint64, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, err
	}
	return uint64(data[0].Effective) | uint64(data[1].Effective)<<32, nil
}

// startDropped starts cmd from a thread whose ambient and inheritable capabilities are
// cleared first: a host given its capabilities as ambient ones (setpriv, capsh) would
// otherwise pass them on across the worker's execve, since a change between two non-zero
// uids keeps the permitted set.
func startDropped(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	if data[0].Inheritable != 0 || data[1].Inheritable != 0 {
		data[0].Inheritable, data[1].Inheritable = 0, 0
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("clear inheritable capabilities: %w", err)
		}
	}
	return cmd.Start()
}

// startConfined starts cmd from the confining OS thread: one thread of this process,
// locked to its goroutine for the process's lifetime, that has set no_new_privs and
// loaded the seccomp filter on itself alone. Go's os/exec runs no code of ours between
// fork and execve, but a child inherits its thread's filter and no_new_privs across both,
// so the worker (and everything it starts) runs under the filter from its first
// instruction, as under bubblewrap's --seccomp. The thread never ends: a worker's
// Pdeathsig fires when the thread that started it exits. (The Go runtime creates no
// thread from a locked one, so the filter stays on that thread.)
func startConfined(cmd *exec.Cmd, filter []unix.SockFilter) error {
	if filter == nil {
		return startDropped(cmd)
	}
	confining.once.Do(func() {
		confining.starts = make(chan confinedStart)
		loaded := make(chan error, 1)
		go func() {
			runtime.LockOSThread() // never unlocked
			if err := loadSeccomp(filter); err != nil {
				loaded <- err
				return // the thread ends with its goroutine
			}
			loaded <- nil
			for st := range confining.starts {
				st.done <- startDropped(st.cmd)
			}
		}()
		confining.err = <-loaded
	})
	if confining.err != nil {
		return confining.err
	}
	done := make(chan error, 1)
	confining.starts <- confinedStart{cmd: cmd, done: done}
	return <-done
}

// confining is the confining thread's queue (the filter is the same for every sandbox).
var confining struct {
	once   sync.Once
	starts chan confinedStart
	err    error
}

type confinedStart struct {
	cmd  *exec.Cmd
	done chan error
}

// seccompWorks loads filter on a thread that is discarded afterwards: whether this
// process may filter the workers it starts (a container's own seccomp profile may refuse).
func seccompWorks(filter []unix.SockFilter) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the filtered thread dies with this goroutine
		errc <- loadSeccomp(filter)
	}()
	return <-errc
}

// credential runs a process as uid (gid = uid), without supplementary groups.
func credential(uid int) *syscall.Credential {
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}
}

// own gives uid the folder dir and everything in it (a script copied there), private to it.
func own(dir string, uid int) error { return ownMode(dir, uid, 0o700) }

// ownMode is own with dir's mode given.
func ownMode(dir string, uid int, mode os.FileMode) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dir { // before the chown: afterwards only the owner may
			if err := os.Chmod(path, mode); err != nil {
				return err
			}
		}
		return os.Lchown(path, uid, uid)
	})
}

// uidProcesses lists the processes whose real or effective uid is uid.
func uidProcesses(uid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name(), &st) != nil {
			continue
		}
		if int(st.Uid) == uid {
			out = append(out, pid) // the owner of /proc/<pid> is the effective uid...
			continue
		}
		if st.Uid != 0 {
			continue
		}
		// ...or root, for a process that made itself non-dumpable: its status tells.
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		if i := strings.Index(string(b), "\nUid:"); i >= 0 {
			f := strings.Fields(string(b[i+5:]))
			if len(f) > 0 && f[0] == strconv.Itoa(uid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// killUID SIGKILLs every process of uid until none is left (bounded by two seconds); it
// reports whether none is.
func killUID(uid int) bool {
	deadline := time.Now().Add(2 * time.Second)
	for {
		pids := uidProcesses(uid)
		if len(pids) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		for _, pid := range pids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// WorkersCanRead reports whether a worker of this sandbox could open path for reading,
// and why: the host checks its invoke secret's file with it before it serves, because a
// worker holding that secret could call any replica as any tenant. Under bubblewrap a
// worker sees only the system folders and the paths bound for it; a direct worker sees
// the host's file system as one of the range's uids (no supplementary groups); a worker
// without a uid of its own runs as the host's uid and reads what the host reads without
// its capabilities. (POSIX ACLs are not consulted.)
func (s *Sandbox) WorkersCanRead(path string) (bool, string) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false, ""
	}
	sameUID := func() (bool, string) {
		if unix.Access(real, unix.R_OK) != nil { // real uid, no capabilities
			return false, ""
		}
		return true, "workers run as the runtime host's own uid (" + s.why[layerUID] + ") and read every file it reads"
	}
	switch {
	case s.usesBwrap():
		visible := false
		for _, b := range append(slices.Clone(s.bound), s.cfg.ReadOnlyExtra...) {
			if real == b || strings.HasPrefix(real, strings.TrimSuffix(b, "/")+"/") {
				visible = true
			}
		}
		if !visible {
			return false, "" // outside the workers' mount namespace
		}
		if s.setpriv == "" || s.uids == nil {
			return sameUID()
		}
		return rangeCanRead(real, s.uids.base, s.uids.count)
	case s.direct:
		return rangeCanRead(real, s.uids.base, s.uids.count)
	default:
		return sameUID()
	}
}

// rangeCanRead reports whether some uid of [base, base+count) with gid = uid and no
// supplementary groups may search every folder above real and read real.
func rangeCanRead(real string, base, count int) (bool, string) {
	in := func(id uint32) bool { return int64(id) >= int64(base) && int64(id) < int64(base+count) }
	may := func(st *unix.Stat_t, owner, group, other uint32) bool {
		return in(st.Uid) && st.Mode&owner != 0 || in(st.Gid) && st.Mode&group != 0 || st.Mode&other != 0
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if unix.Stat(d, &st) != nil {
			return false, ""
		}
		if !may(&st, unix.S_IXUSR, unix.S_IXGRP, unix.S_IXOTH) {
			return false, "" // a folder on the way the workers cannot enter
		}
		if d == "/" {
			break
		}
	}
	var st unix.Stat_t
	if unix.Stat(real, &st) != nil || !may(&st, unix.S_IRUSR, unix.S_IRGRP, unix.S_IROTH) {
		return false, ""
	}
	return true, fmt.Sprintf("%s (mode %04o, owner %d:%d) and every folder above it are open to the workers' uids (%d-%d)",
		real, st.Mode&0o7777, st.Uid, st.Gid, base, base+count-1)
}
