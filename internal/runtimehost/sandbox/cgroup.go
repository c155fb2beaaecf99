package sandbox

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Cgroups of sandboxed workers. Every worker gets its own cgroup in each hierarchy the host
// can write, nested under the host's own cgroup (so whatever limits the host's container
// has still hold): memory (memory.max on v2, memory.limit_in_bytes + memsw on v1), pids
// (pids.max) and, on v2, cgroup.kill to end the whole process tree at once. A machine may
// mix both versions (v1 memory and pids next to a v2 hierarchy without controllers, as
// here): each controller is taken from wherever it works.

// cgroupRoot is the host's parent folder in each hierarchy; "" where unavailable.
type cgroupRoot struct {
	v2     string // under the cgroup2 mount; its children get cgroup.kill
	v2Mem  bool   // memory.max works in v2 children
	v2Pids bool   // pids.max works in v2 children
	memV1  string
	pidsV1 string
	why    map[string]string // layer → reason it is unavailable
}

func (r *cgroupRoot) memory() bool { return r.v2Mem || r.memV1 != "" }
func (r *cgroupRoot) pids() bool   { return r.v2Pids || r.pidsV1 != "" }
func (r *cgroupRoot) kill() bool   { return r.v2 != "" }

type cgroupMounts struct {
	v2, memV1, pidsV1      string // mount points
	ownV2, ownMem, ownPids string
}

func readCgroupMounts() (cgroupMounts, error) {
	var m cgroupMounts
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return m, err
	}
	for line := range strings.Lines(string(mi)) {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(strings.TrimSpace(line), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 {
			continue
		}
		switch g[0] {
		case "cgroup2":
			if m.v2 == "" {
				m.v2 = f[4]
			}
		case "cgroup":
			for _, o := range strings.Split(g[2], ",") {
				switch {
				case o == "memory" && m.memV1 == "":
					m.memV1 = f[4]
				case o == "pids" && m.pidsV1 == "":
					m.pidsV1 = f[4]
				}
			}
		}
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return m, err
	}
	for line := range strings.Lines(string(own)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[0] == "0" && parts[1] == "" {
			m.ownV2 = parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			switch c {
			case "memory":
				m.ownMem = parts[2]
			case "pids":
				m.ownPids = parts[2]
			}
		}
	}
	return m, nil
}

// newCgroupRoot creates the host's parent cgroups (lambda-runtime-<pid>-<random>) and
// reports which controllers work; it never fails, it reports.
func newCgroupRoot() *cgroupRoot {
	r := &cgroupRoot{why: map[string]string{}}
	m, err := readCgroupMounts()
	if err != nil {
		r.why[layerCgroupMemory], r.why[layerCgroupPids], r.why[layerCgroupKill] = err.Error(), err.Error(), err.Error()
		return r
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := fmt.Sprintf("lambda-runtime-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))
	mk := func(mount, own string) (string, error) {
		if mount == "" {
			return "", errors.New("hierarchy not mounted")
		}
		sweepStale(filepath.Join(mount, own))
		dir := filepath.Join(mount, own, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return "", err
		}
		return dir, nil
	}
	if dir, err := mk(m.v2, m.ownV2); err != nil {
		r.why[layerCgroupKill] = "cgroup v2: " + err.Error()
	} else if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
		r.why[layerCgroupKill] = "cgroup v2 without cgroup.kill (kernel < 5.14)"
		_ = os.Remove(dir)
	} else {
		r.v2 = dir
		// Controllers for the workers: enabled in our parent's and our folder's subtree_control
		// (fails when the host's own cgroup holds processes and is not the root: then v1 or nothing).
		ctrl, _ := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		for _, c := range []string{"memory", "pids"} {
			if !bytes.Contains(ctrl, []byte(c)) && os.WriteFile(filepath.Join(filepath.Dir(dir), "cgroup.subtree_control"), []byte("+"+c), 0) != nil {
				continue
			}
			if os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+"+c), 0) == nil {
				if c == "memory" {
					r.v2Mem = true
				} else {
					r.v2Pids = true
				}
			}
		}
	}
	if !r.v2Mem {
		if dir, err := mk(m.memV1, m.ownMem); err != nil {
			r.why[layerCgroupMemory] = "no writable memory controller (v2: not delegated; v1: " + err.Error() + ")"
		} else {
			r.memV1 = dir
		}
	}
	if !r.v2Pids {
		if dir, err := mk(m.pidsV1, m.ownPids); err != nil {
			r.why[layerCgroupPids] = "no writable pids controller (v2: not delegated; v1: " + err.Error() + ")"
		} else {
			r.pidsV1 = dir
		}
	}
	return r
}

// sweepStale removes the empty cgroups left by hosts that died without cleaning up
// (lambda-runtime-<pid>-… of a pid that no longer runs).
func sweepStale(parent string) {
	entries, _ := os.ReadDir(parent)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "lambda-runtime-")
		if !ok || !e.IsDir() {
			continue
		}
		pid, _, _ := strings.Cut(rest, "-")
		if _, err := os.Stat("/proc/" + pid); err == nil || pid == "" {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		workers, _ := os.ReadDir(dir)
		for _, w := range workers {
			if w.IsDir() {
				_ = os.Remove(filepath.Join(dir, w.Name())) // fails while processes remain
			}
		}
		_ = os.Remove(dir)
	}
}

// close removes the host's parent cgroups (they are empty once every worker is gone).
func (r *cgroupRoot) close() {
	for _, d := range []string{r.v2, r.memV1, r.pidsV1} {
		if d != "" {
			_ = os.Remove(d)
		}
	}
}

// workerCgroup is one worker's cgroups.
type workerCgroup struct {
	root     *cgroupRoot
	v2       string
	mem      string // folder holding the memory limit (v2 or v1)
	memV1    bool
	pids     string
	procs    *os.File // cgroup.procs listing every process of the worker
	v1Joined bool
}

func (r *cgroupRoot) newWorker(name string, pids int, memoryMB int) (*workerCgroup, error) {
	c := &workerCgroup{root: r}
	fail := func(err error) (*workerCgroup, error) {
		c.remove()
		return nil, err
	}
	mk := func(parent string) (string, error) {
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("cgroup %s: %w", dir, err)
		}
		return dir, nil
	}
	var err error
	if r.v2 != "" {
		if c.v2, err = mk(r.v2); err != nil {
			return fail(err)
		}
		if r.v2Mem {
			c.mem = c.v2
		}
		if r.v2Pids {
			c.pids = c.v2
		}
	}
	if r.memV1 != "" {
		if c.mem, err = mk(r.memV1); err != nil {
			return fail(err)
		}
		c.memV1 = true
	}
	if r.pidsV1 != "" {
		if c.pids, err = mk(r.pidsV1); err != nil {
			return fail(err)
		}
	}
	if c.pids != "" && pids > 0 {
		if err := os.WriteFile(filepath.Join(c.pids, "pids.max"), []byte(strconv.Itoa(pids)), 0); err != nil {
			return fail(fmt.Errorf("cgroup pids.max: %w", err))
		}
	}
	if err := c.setMemory(memoryMB); err != nil {
		return fail(err)
	}
	list := c.v2
	if list == "" {
		list = c.pids
	}
	if list == "" {
		list = c.mem
	}
	if list != "" {
		if c.procs, err = os.Open(filepath.Join(list, "cgroup.procs")); err != nil {
			return fail(err)
		}
	}
	return c, nil
}

// setMemory sets the memory limit (swap included on v1); 0 leaves it unlimited.
func (c *workerCgroup) setMemory(mb int) error {
	if c.mem == "" || mb <= 0 {
		return nil
	}
	v := []byte(strconv.FormatInt(int64(mb)<<20, 10))
	if !c.memV1 {
		if err := os.WriteFile(filepath.Join(c.mem, "memory.max"), v, 0); err != nil {
			return fmt.Errorf("cgroup memory.max: %w", err)
		}
		_ = os.WriteFile(filepath.Join(c.mem, "memory.swap.max"), []byte("0"), 0)
		return nil
	}
	mem, sw := filepath.Join(c.mem, "memory.limit_in_bytes"), filepath.Join(c.mem, "memory.memsw.limit_in_bytes")
	if err := os.WriteFile(mem, v, 0); err != nil { // raising: memsw must grow first
		_ = os.WriteFile(sw, v, 0)
		if err := os.WriteFile(mem, v, 0); err != nil {
			return fmt.Errorf("cgroup memory.limit_in_bytes: %w", err)
		}
	}
	_ = os.WriteFile(sw, v, 0) // absent without swap accounting
	return nil
}

// join moves pids into the v1 cgroups (v2 membership comes with the clone itself). A move
// is expensive (the kernel waits for an RCU grace period, ~10 ms): the spawner moves the
// sandbox's first process right after its start, so its children are born inside, and
// Confine only moves what is not inside yet.
func (c *workerCgroup) join(pids []int) error {
	name := "/" + filepath.Base(c.mem)
	if c.mem == "" {
		name = "/" + filepath.Base(c.pids)
	}
	for _, pid := range pids {
		if c.v1Joined && c.inside(pid, name) {
			continue
		}
		for _, dir := range []string{c.v1MemDir(), c.v1PidsDir()} {
			if dir == "" {
				continue
			}
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("cgroup join %s: %w", dir, err)
			}
		}
	}
	c.v1Joined = true
	return nil
}

// inside reports whether pid is in the worker's v1 memory and pids cgroups already.
func (c *workerCgroup) inside(pid int, name string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return true // gone: nothing to move
	}
	want := 0
	for _, dir := range []string{c.v1MemDir(), c.v1PidsDir()} {
		if dir != "" {
			want++
		}
	}
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 || parts[1] == "" {
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if (ctl == "memory" && c.v1MemDir() != "") || (ctl == "pids" && c.v1PidsDir() != "") {
				if !strings.HasSuffix(parts[2], name) {
					return false
				}
				want--
			}
		}
	}
	return want <= 0
}

func (c *workerCgroup) v1MemDir() string {
	if c.memV1 {
		return c.mem
	}
	return ""
}

func (c *workerCgroup) v1PidsDir() string {
	if c.pids != "" && c.pids != c.v2 {
		return c.pids
	}
	return ""
}

// sameProcs reports whether the worker's cgroup holds exactly the processes of sorted,
// without allocating; known is false when the cgroup cannot tell.
func (c *workerCgroup) sameProcs(buf []byte, sorted []int) (same, known bool) {
	if c.procs == nil || (c.v2 == "" && !c.v1Joined) {
		return false, false
	}
	n, err := c.procs.ReadAt(buf[:cap(buf)], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return false, false
	}
	if n == cap(buf) {
		return false, true // more processes than a worker starts with
	}
	count := 0
	for b := buf[:n]; len(b) > 0; {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			i = len(b)
		}
		pid, err := strconv.Atoi(string(b[:i]))
		b = b[min(i+1, len(b)):]
		if err != nil {
			continue
		}
		if _, found := slices.BinarySearch(sorted, pid); !found {
			return false, true
		}
		count++
	}
	return count == len(sorted), true
}

// kill SIGKILLs every process of the worker.
func (c *workerCgroup) kill() {
	if c.v2 != "" && os.WriteFile(filepath.Join(c.v2, "cgroup.kill"), []byte("1"), 0) == nil {
		return
	}
	for range 3 { // v1: no atomic kill; a forking tree needs a few passes
		for _, dir := range []string{c.pids, c.mem} {
			if dir == "" {
				continue
			}
			b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
			for _, f := range bytes.Fields(b) {
				if pid, err := strconv.Atoi(string(f)); err == nil {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
	}
}

// empty reports whether no process is left.
func (c *workerCgroup) empty() bool {
	for _, dir := range []string{c.v2, c.pids, c.mem} {
		if dir == "" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err == nil && len(bytes.TrimSpace(b)) > 0 {
			return false
		}
	}
	return true
}

// remove kills what is left, waits for it to be gone (bounded) and removes the folders.
// It reports whether the worker's processes are all gone.
func (c *workerCgroup) remove() bool {
	if c.procs != nil {
		c.procs.Close()
		c.procs = nil
	}
	gone := true
	deadline := time.Now().Add(5 * time.Second)
	for !c.empty() {
		c.kill()
		if time.Now().After(deadline) {
			gone = false
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	for _, dir := range []string{c.v2, c.mem, c.pids} {
		if dir == "" {
			continue
		}
		for i := 0; i < 50; i++ {
			err := os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return gone
}

// processTree returns pid and its descendants, parents first.
func processTree(pid int) []int {
	out := []int{pid}
	for i := 0; i < len(out) && i < 4096; i++ {
		tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(out[i]) + "/task")
		for _, t := range tasks {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(out[i]) + "/task/" + t.Name() + "/children")
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(bytes.NewReader(b))
			sc.Split(bufio.ScanWords)
			for sc.Scan() {
				if c, err := strconv.Atoi(sc.Text()); err == nil {
					out = append(out, c)
				}
			}
		}
	}
	return out
}
