package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ProcCPU is the CPU time every process of the machine used over an interval, grouped
// by program (comm, with the subcommand for lambda processes), from /proc/*/stat.
type ProcCPU struct {
	Interval time.Duration
	Groups   []ProcGroup // most CPU first
	Total    time.Duration
}

// ProcGroup is one program's share.
type ProcGroup struct {
	Name      string
	Processes int
	CPU       time.Duration
}

// clock ticks per second of /proc/*/stat (USER_HZ, 100 on every Linux that matters).
const userHZ = 100

type procSample struct {
	name  string
	ticks int64
}

func sampleProcs() map[int]procSample {
	out := map[int]procSample{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		open, closeIdx := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closeIdx < open {
			continue
		}
		comm := s[open+1 : closeIdx]
		fields := strings.Fields(s[closeIdx+1:])
		// fields[0] is state (field 3); utime and stime are fields 14 and 15.
		if len(fields) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(fields[11], 10, 64)
		st, _ := strconv.ParseInt(fields[12], 10, 64)
		out[pid] = procSample{name: programName(pid, comm), ticks: ut + st}
	}
	return out
}

// programName names lambda processes by subcommand (lambda api, lambda worker, …).
func programName(pid int, comm string) string {
	if comm != "lambda" && comm != "lambda-runtime" {
		return comm
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return comm
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if comm == "lambda" && len(args) > 1 {
		return "lambda " + args[1]
	}
	return comm
}

// MeasureProcCPU samples every process's CPU time, waits d (or until ctx ends) and
// returns the difference.
func MeasureProcCPU(ctx context.Context, d time.Duration) ProcCPU {
	before := sampleProcs()
	t0 := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	after := sampleProcs()
	res := ProcCPU{Interval: time.Since(t0)}
	groups := map[string]*ProcGroup{}
	for pid, a := range after {
		delta := a.ticks - before[pid].ticks // a new process counts all its time
		if delta <= 0 {
			continue
		}
		g := groups[a.name]
		if g == nil {
			g = &ProcGroup{Name: a.name}
			groups[a.name] = g
		}
		g.Processes++
		cpu := time.Duration(delta) * time.Second / userHZ
		g.CPU += cpu
		res.Total += cpu
	}
	for _, g := range groups {
		res.Groups = append(res.Groups, *g)
	}
	sort.Slice(res.Groups, func(i, j int) bool { return res.Groups[i].CPU > res.Groups[j].CPU })
	return res
}

// Summary is the top n programs on one line, with CPU as cores in use.
func (p ProcCPU) Summary(n int) string {
	secs := p.Interval.Seconds()
	if secs <= 0 {
		return "not measured"
	}
	var parts []string
	for _, g := range p.Groups[:min(n, len(p.Groups))] {
		parts = append(parts, fmt.Sprintf("%s %.2f", g.Name, g.CPU.Seconds()/secs))
	}
	return fmt.Sprintf("%s (of %.2f cores in all, over %.0f s)", strings.Join(parts, ", "), p.Total.Seconds()/secs, secs)
}

// Markdown renders the table of the top n programs, with CPU as cores in use.
func (p ProcCPU) Markdown(n int) string {
	var b strings.Builder
	secs := p.Interval.Seconds()
	fmt.Fprintf(&b, "Whole machine, CPU time by program over %.0f s (from /proc/*/stat; 1.00 = one core busy): total **%.2f cores** of the machine's cores.\n\n",
		secs, p.Total.Seconds()/secs)
	b.WriteString("| program | processes | cores | share |\n|---|--:|--:|--:|\n")
	for _, g := range p.Groups[:min(n, len(p.Groups))] {
		fmt.Fprintf(&b, "| %s | %d | %.2f | %.0f %% |\n", g.Name, g.Processes, g.CPU.Seconds()/secs, 100*g.CPU.Seconds()/p.Total.Seconds())
	}
	return b.String()
}

// FetchCPUProfile takes a CPU profile of d from a Go process's net/http/pprof at
// debugURL (http://host:port) and writes it to path.
func FetchCPUProfile(ctx context.Context, debugURL string, d time.Duration, path string) error {
	// Make sure the port is the api's pprof (its command line), not some other server.
	if err := checkPprof(ctx, debugURL); err != nil {
		return err
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	u := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimRight(debugURL, "/"), secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: d + 30*time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("cpu profile: %w", StatusError(resp.StatusCode, b))
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// PprofTop runs `go tool pprof -top` on a profile (binary for symbols) and returns its
// first lines (nodes) of the flat and the cumulative listings.
func PprofTop(ctx context.Context, goBin, binary, profile string, nodes int) (flat, cum string, err error) {
	run := func(extra ...string) (string, error) {
		args := append([]string{"tool", "pprof", "-top", fmt.Sprintf("-nodecount=%d", nodes)}, extra...)
		args = append(args, binary, profile)
		cmd := exec.CommandContext(ctx, goBin, args...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("go tool pprof: %v: %s", err, strings.TrimSpace(errOut.String()))
		}
		return strings.TrimSpace(out.String()), nil
	}
	if flat, err = run(); err != nil {
		return "", "", err
	}
	cum, err = run("-cum")
	return flat, cum, err
}

func checkPprof(ctx context.Context, debugURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(debugURL, "/")+"/debug/pprof/cmdline", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "api") {
		return fmt.Errorf("cpu profile: %s is not the api's pprof (status %d: %q)", debugURL, resp.StatusCode, b)
	}
	return nil
}

// PerOp is the CPU each of ops operations cost, by program (the top n, then the rest):
// "temporal 13.1, lambda api 8.2, postgres 4.6, other 3.0 = 28.9 ms per run".
func (p ProcCPU) PerOp(ops, n int, unit string) string {
	if ops <= 0 || len(p.Groups) == 0 {
		return "not measured"
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(ops) }
	var parts []string
	var top time.Duration
	for _, g := range p.Groups[:min(n, len(p.Groups))] {
		parts = append(parts, fmt.Sprintf("%s %.1f", g.Name, per(g.CPU)))
		top += g.CPU
	}
	if rest := p.Total - top; rest > 0 {
		parts = append(parts, fmt.Sprintf("other %.1f", per(rest)))
	}
	return fmt.Sprintf("%s = %.1f ms per %s", strings.Join(parts, ", "), per(p.Total), unit)
}
