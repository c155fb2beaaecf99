package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Machine describes where a run happened.
type Machine struct {
	CPUs      int    // online CPUs (nproc)
	CPUModel  string // /proc/cpuinfo model name
	MemoryMiB int64  // MemTotal from /proc/meminfo
	GoVersion string
	Kernel    string
	Hostname  string
}

// ReadMachine reads the machine's description from /proc and the Go runtime.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb int64
			if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %d kB", &kb); err == nil {
				m.MemoryMiB = kb / 1024
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Hostname, _ = os.Hostname()
	return m
}

func (m Machine) String() string {
	return fmt.Sprintf("%d CPUs (%s), %.1f GiB RAM, %s, Linux %s", m.CPUs, m.CPUModel, float64(m.MemoryMiB)/1024, m.GoVersion, m.Kernel)
}
