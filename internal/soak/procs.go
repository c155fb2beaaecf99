package soak

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// proc is a process of this machine as /proc shows it.
type proc struct {
	PID, PPID int
	Comm      string
	Argv      []string
}

// procs lists this machine's processes.
func procs() []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		i, j := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(string(stat[j+1:]))
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		argv := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		out = append(out, proc{PID: pid, PPID: ppid, Comm: string(stat[i+1 : j]), Argv: argv})
	}
	return out
}

// descendants are the processes below root (not root itself).
func descendants(all []proc, root int) []proc {
	kids := map[int][]proc{}
	for _, p := range all {
		kids[p.PPID] = append(kids[p.PPID], p)
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, k := range kids[pid] {
			out = append(out, k)
			queue = append(queue, k.PID)
		}
	}
	return out
}

// replicas are the runtime host processes the provider runs (lambda-runtime), with the
// runtime each serves (LAMBDA_RUNTIME from its environment).
func replicas(all []proc, provider int) []proc {
	var out []proc
	for _, p := range descendants(all, provider) {
		if p.Comm == "lambda-runtime" {
			out = append(out, p)
		}
	}
	return out
}

// languageWorkers are the Python and Node.js worker processes below the runtime hosts
// (inside their sandboxes): the processes that run the functions' code.
func languageWorkers(all []proc, provider int) []proc {
	var out []proc
	for _, p := range descendants(all, provider) {
		if strings.HasPrefix(p.Comm, "python") || p.Comm == "node" {
			out = append(out, p)
		}
	}
	return out
}

// envOf reads one variable of a process's environment.
func envOf(pid int, name string) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	for _, kv := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok && k == name {
			return v
		}
	}
	return ""
}
