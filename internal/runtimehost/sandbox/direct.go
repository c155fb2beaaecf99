package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
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
		if path != dir {
			return os.Lchown(path, uid, uid)
		}
		// The folder's mode is set by its owner (a host without CAP_FOWNER may not change
		// another uid's): before the chown when handing it over, after it when taking it
		// back from a worker or a build.
		if uid == os.Geteuid() {
			if err := os.Lchown(path, uid, uid); err != nil {
				return err
			}
			return os.Chmod(path, mode)
		}
		if err := os.Chmod(path, mode); err != nil {
			return err
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
