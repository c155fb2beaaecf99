// Command lambda-bench is `make bench`: it starts the whole platform (devstack, on free
// ports with a fresh database, like the end-to-end tests), registers trivial Python,
// Node.js and Rust handlers through the API, runs the benchmark scenarios of package bench
// with its open-loop load generator, prints one table and writes it, with the machine and
// the date, between the generated-section markers of BENCHMARKS.md.
//
//	lambda-bench [-quick] [-out BENCHMARKS.md] [-profile-dir DIR] [-runtimes python,node,rust]
//	lambda-bench -api http://127.0.0.1:8000 [-token T]
//
// -quick is `make bench-quick`: every scenario with short durations, to prove the harness.
// -api runs scenario 10 (the README's way: a tenant, its key, net/http) against a stack that
// is already running, such as `make run`'s, with its admin token (-token, else
// LAMBDA_ADMIN_TOKEN, else LAMBDA_DATA_DIR/admin-token).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lambda-microservice/lambda/internal/bench"
	"github.com/lambda-microservice/lambda/internal/devstack"
	"github.com/lambda-microservice/lambda/internal/platform/freeport"
	platformsecret "github.com/lambda-microservice/lambda/internal/platform/secret"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], devstack.OSEnviron(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lambda-bench:", err)
		os.Exit(1)
	}
}

type config struct {
	quick      bool
	out        string
	profileDir string
	profile    bool
	runtimes   string
	only       map[int]bool
	command    string
	keep       bool
	timeout    time.Duration
	api        string
	token      string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("lambda-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&c.quick, "quick", false, "short durations: prove the harness works (make bench-quick)")
	fs.StringVar(&c.out, "out", "", "write the generated section into this Markdown file (default BENCHMARKS.md; -quick: none)")
	fs.StringVar(&c.profileDir, "profile-dir", "", "keep the api's CPU profile here (default: the data dir, removed unless -keep)")
	fs.BoolVar(&c.profile, "profile", true, "profile the api (pprof) and the machine (/proc) during scenario 1")
	fs.StringVar(&c.runtimes, "runtimes", "python,node,rust", "runtime titles to benchmark; the first one serves scenarios 2, 4 and 6")
	only := fs.String("only", "", "run only these scenarios, e.g. 1,3 (default all; with -only, -out defaults to none)")
	fs.StringVar(&c.command, "command", "", "how the run was started, for the report (default: this command line)")
	fs.BoolVar(&c.keep, "keep", false, "keep the stack's data dir (logs) instead of removing it")
	fs.DurationVar(&c.timeout, "timeout", 0, "stop everything after this long (default 45m, -quick 10m)")
	fs.StringVar(&c.api, "api", "", "measure scenario 10 against this running api (e.g. make run's http://127.0.0.1:8000) instead of starting a stack")
	fs.StringVar(&c.token, "token", "", "with -api: the admin token (default LAMBDA_ADMIN_TOKEN, else LAMBDA_DATA_DIR/admin-token)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if *only != "" {
		c.only = map[int]bool{}
		for _, f := range strings.Split(*only, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 0 || n > 13 {
				return c, fmt.Errorf("-only: %q is not a scenario number 0–13", f)
			}
			c.only[n] = true
		}
	}
	if c.api != "" {
		if c.only != nil && (len(c.only) != 1 || !c.only[10]) {
			return c, errors.New("-api measures scenario 10 only (the others start their own stack)")
		}
		c.only = map[int]bool{10: true}
	}
	if c.out == "" && !c.quick && c.only == nil {
		c.out = "BENCHMARKS.md"
	}
	if c.timeout == 0 {
		c.timeout = map[bool]time.Duration{false: 45 * time.Minute, true: 10 * time.Minute}[c.quick]
	}
	if c.command == "" {
		c.command = strings.Join(append([]string{"lambda-bench"}, args...), " ")
	}
	return c, nil
}

func run(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()

	settings := bench.FullSettings()
	if cfg.quick {
		settings = bench.QuickSettings()
	}
	settings.Runtimes = strings.Split(cfg.runtimes, ",")
	settings.Only = cfg.only
	for _, t := range settings.Runtimes {
		if bench.Handlers[t] == "" {
			return fmt.Errorf("no trivial handler for runtime %q (have python, node, rust)", t)
		}
	}

	opts, err := devstack.LoadOptions(environ)
	if err != nil {
		return err
	}
	if cfg.api != "" {
		return runAgainst(ctx, cfg, settings, opts, stdout, stderr)
	}
	temporalInMemory := opts.TemporalInMemory // as `make run` would: LAMBDA_DEV_TEMPORAL_IN_MEMORY
	dir, err := os.MkdirTemp("", "lambda-bench-")
	if err != nil {
		return err
	}
	if cfg.keep {
		fmt.Fprintln(stderr, "lambda-bench: keeping the data dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	opts.Isolate(filepath.Join(dir, "data"))
	opts.TemporalInMemory = temporalInMemory
	if !cfg.quick {
		// The README's stack (`make run`), not a lighter one: Prometheus scraping every
		// component every 5 s with the project's rules, and the Temporal Web UI. Only the
		// ports, the database and the data dir are the bench's own.
		opts.SkipPrometheus = false
		opts.TemporalHeadless = false // LAMBDA_PROMETHEUS_RULES as loaded (its default)
	} else {
		opts.RulesDir = ""
	}
	opts.Worker = "on"
	opts.Out = stderr
	if opts.TemporalBin == "" {
		opts.TemporalBin = devstack.DefaultTemporalBin(environ)
	}
	debugAddr, err := freeport.Addr() // the pool the stack's own ports come from: never handed out twice
	if err != nil {
		return err
	}
	if opts.Env == nil {
		opts.Env = map[string]string{}
	}
	// The api's pprof. The rate limits are the README's defaults: the step search (3)
	// spreads its load over several keys of the tenant, as a client above one key's
	// rate would.
	opts.Env["LAMBDA_DEBUG_ADDR"] = debugAddr

	fmt.Fprintf(stderr, "lambda-bench: starting the platform (Temporal %s)\n", map[bool]string{true: "in memory", false: "file DB"}[temporalInMemory])
	stack, err := devstack.Start(ctx, opts)
	if err != nil {
		return fmt.Errorf("starting the platform: %w", err)
	}
	defer func() {
		if err := stack.Stop(); err != nil {
			fmt.Fprintln(stderr, "lambda-bench: stopping the platform:", err)
		}
	}()

	profileDir := cfg.profileDir
	if profileDir == "" {
		profileDir = dir
	}
	if err := os.MkdirAll(profileDir, 0o755); err != nil {
		return err
	}
	r := &bench.Runner{
		P: &bench.Platform{APIURL: stack.APIURL, ProviderURL: stack.ProviderURL, Token: stack.AdminToken, RuntimeSecret: readSecret(stack.RuntimeSecretFile),
			Client: bench.NewClient(16)},
		S:   settings,
		Log: stderr,

		ScratchDir: stack.DataDir,
		MetricsURLs: slices.DeleteFunc([]string{stack.APIURL + "/metrics", stack.WorkerMetricsURL},
			func(u string) bool { return u == "" || u == "/metrics" }),
		StackName: map[bool]string{false: "the README's stack (`make run`'s defaults)", true: "-quick stack"}[cfg.quick],
	}
	var diskNote string
	if len(settings.Only) == 0 || settings.Only[0] {
		diskNote = sameDisk(ctx, stack.DatabaseURL, stack.DataDir)
	}
	if cfg.profile {
		r.During = func(ctx context.Context, d time.Duration) string {
			return profile(ctx, d, "http://"+debugAddr, filepath.Join(opts.BinDir, "lambda"), profileDir, cfg.quick)
		}
	}
	loadBefore := loadAvg()
	total0, steal0, ok0 := cpuTimes()
	faults0, okF0 := majorFaults()
	rep, err := r.Run(ctx)
	if rep == nil {
		return err
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("Machine load average (1/5/15 min) at the start of the scenarios: %s; at the end: %s "+
		"(above ~1 means other work shared the cores with the run).", loadBefore, loadAvg()))
	if total1, steal1, ok1 := cpuTimes(); ok0 && ok1 {
		if note := stealNote(total0, steal0, total1, steal1); note != "" {
			rep.Notes = append(rep.Notes, note)
		}
	}
	if faults1, okF1 := majorFaults(); okF0 && okF1 {
		rep.Notes = append(rep.Notes, faultNote(faults1-faults0, rep.Finished.Sub(rep.Started)))
	}
	rep.Notes = append(rep.Notes, stackNotes(opts, temporalInMemory)...)
	if diskNote != "" {
		rep.Notes = append(rep.Notes, diskNote)
	}
	if err := stack.Err(); err != nil {
		rep.Notes = append(rep.Notes, "**The platform failed during the run**: "+err.Error())
	}
	if rev := gitRevision(ctx); rev != "" {
		rep.Notes = append(rep.Notes, "Code: "+rev+".")
	}
	md := rep.Markdown(bench.ReadMachine(), cfg.command)
	fmt.Fprintln(stdout, md)
	if cfg.out != "" {
		if werr := bench.WriteSection(cfg.out, md); werr != nil {
			return errors.Join(err, fmt.Errorf("write %s: %w", cfg.out, werr))
		}
		fmt.Fprintln(stderr, "lambda-bench: wrote", cfg.out)
	}
	if err != nil {
		return err
	}
	if empty := rep.Empty(); len(empty) > 0 {
		return fmt.Errorf("scenarios without samples: %s", strings.Join(empty, "; "))
	}
	return stack.Err()
}

// runAgainst measures scenario 10 on a stack that is already running (`make run`'s).
func runAgainst(ctx context.Context, cfg config, settings bench.Settings, opts devstack.Options, stdout, stderr io.Writer) error {
	token := cfg.token
	if token == "" {
		token = opts.Environ["LAMBDA_ADMIN_TOKEN"]
	}
	if token == "" {
		b, err := os.ReadFile(filepath.Join(opts.DataDir, "admin-token"))
		if err != nil {
			return fmt.Errorf("-api: no admin token: pass -token or set LAMBDA_ADMIN_TOKEN (%w)", err)
		}
		token = strings.TrimSpace(string(b))
	}
	r := &bench.Runner{
		P: &bench.Platform{APIURL: strings.TrimRight(cfg.api, "/"), Token: token, Client: bench.NewClient(16),
			RuntimeSecret: readSecret(filepath.Join(opts.DataDir, "secrets", "runtime-secret"))},
		S:         settings,
		Log:       stderr,
		StackName: "running stack at " + cfg.api,
	}
	if cfg.profile {
		// The machine's CPU by program; the api's CPU profile too when it serves pprof
		// (LAMBDA_DEBUG_ADDR, set for `make run` as for this command).
		debugAddr := opts.Environ["LAMBDA_DEBUG_ADDR"]
		dir := cfg.profileDir
		if dir == "" {
			dir = os.TempDir()
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		r.During = func(ctx context.Context, d time.Duration) string {
			if debugAddr == "" {
				return bench.MeasureProcCPU(ctx, d).Markdown(15)
			}
			return profile(ctx, d, "http://"+debugAddr, filepath.Join(opts.BinDir, "lambda"), dir, cfg.quick)
		}
	}
	loadBefore := loadAvg()
	rep, err := r.Run(ctx)
	if rep == nil {
		return err
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("Machine load average (1/5/15 min) at the start: %s; at the end: %s.", loadBefore, loadAvg()))
	if rev := gitRevision(ctx); rev != "" {
		rep.Notes = append(rep.Notes, "Code: "+rev+".")
	}
	md := rep.Markdown(bench.ReadMachine(), cfg.command)
	fmt.Fprintln(stdout, md)
	if cfg.out != "" {
		if werr := bench.WriteSection(cfg.out, md); werr != nil {
			return errors.Join(err, fmt.Errorf("write %s: %w", cfg.out, werr))
		}
	}
	if err != nil {
		return err
	}
	if empty := rep.Empty(); len(empty) > 0 {
		return fmt.Errorf("scenarios without samples: %s", strings.Join(empty, "; "))
	}
	for _, row := range rep.Rows {
		if row.Verdict == "FAIL" {
			return fmt.Errorf("%s: %s", row.Case, row.Note)
		}
	}
	return nil
}

func stackNotes(o devstack.Options, temporalInMemory bool) []string {
	extras := "no Temporal UI, no Prometheus (-quick)"
	if !o.SkipPrometheus {
		extras = "the Temporal Web UI, Prometheus scraping every component every 5 s"
	}
	return []string{
		fmt.Sprintf("Stack: `make run`'s (devstack) with free ports and a fresh database: Temporal dev server (%s), %s, the worker, %d replica(s) per runtime function, log level %q, the README's rate limits (5,000/s per key, 10,000/s per tenant).",
			map[bool]string{true: "in-memory DB", false: "file DB, as `make run`"}[temporalInMemory], extras, o.RuntimeReplicas, o.Log.Level),
		"Load generator, platform, PostgreSQL, Redis and Temporal all share the same cores; other work on the machine during the run shows up in the numbers.",
	}
}

// profile takes, over d, a CPU profile of the api (pprof) and the CPU time of every
// process of the machine, and summarises both.
func profile(ctx context.Context, d time.Duration, debugURL, lambdaBin, dir string, quick bool) string {
	var (
		wg      sync.WaitGroup
		procs   bench.ProcCPU
		profErr error
	)
	path := filepath.Join(dir, "api-cpu.pprof")
	wg.Go(func() { procs = bench.MeasureProcCPU(ctx, d) })
	wg.Go(func() { profErr = bench.FetchCPUProfile(ctx, debugURL, d, path) })
	wg.Wait()

	var b strings.Builder
	b.WriteString(procs.Markdown(15))
	b.WriteString("\n")
	if profErr != nil {
		fmt.Fprintf(&b, "api CPU profile: not available (%v).\n", profErr)
		return b.String()
	}
	fmt.Fprintf(&b, "api CPU profile (pprof, %s): `%s`.\n", d, path)
	if quick {
		return b.String()
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	flat, cum, err := bench.PprofTop(ctx, goBin, lambdaBin, path, 25)
	if err != nil {
		fmt.Fprintf(&b, "(go tool pprof failed: %v)\n", err)
		return b.String()
	}
	fmt.Fprintf(&b, "\nTop functions by flat time:\n\n```\n%s\n```\n\nTop by cumulative time:\n\n```\n%s\n```\n", flat, cum)
	return b.String()
}

// gitRevision describes the checkout the binaries were (presumably) built from.
func gitRevision(ctx context.Context) string {
	rev, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	s := "commit " + strings.TrimSpace(string(rev))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		s += " with uncommitted changes in " + fmt.Sprint(len(strings.Split(strings.TrimSpace(string(st)), "\n"))) + " tracked files"
	}
	return s
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " / ")
}

// cpuTimes reads the machine's CPU time counters (the cpu line of /proc/stat, in ticks):
// the total and the part stolen by the hypervisor for other guests.
func cpuTimes() (total, steal uint64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, v := range f[1:9] { // user nice system idle iowait irq softirq steal
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += n
		if i == 7 {
			steal = n
		}
	}
	return total, steal, true
}

// stealNote says how much of the machine's CPU time the hypervisor gave to other guests
// between two cpuTimes readings.
func stealNote(total0, steal0, total1, steal1 uint64) string {
	if total1 <= total0 {
		return ""
	}
	return fmt.Sprintf("CPU time stolen by the hypervisor (other guests on the host) during the scenarios: %.1f %% "+
		"(a busy VM host makes every row slower and noisier).", 100*float64(steal1-steal0)/float64(total1-total0))
}

// majorFaults reads the machine's count of major page faults (pgmajfault in /proc/vmstat).
func majorFaults() (uint64, bool) {
	b, err := os.ReadFile("/proc/vmstat")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "pgmajfault "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// faultNote reports the major page faults of a run: each one stalls a process for a disk
// read (with no swap: program text or file pages the kernel had reclaimed).
func faultNote(n uint64, d time.Duration) string {
	return fmt.Sprintf("Major page faults on the machine during the scenarios: %d (%.1f/s) — each stalls the faulting process "+
		"for a disk read; with no swap they are program or file pages the kernel had reclaimed.", n, float64(n)/max(d.Seconds(), 1))
}

// sameDisk says where scenario 0's disk-flush rows write (the stack's data directory) and
// whether PostgreSQL's data directory is on the same device, when the server shows it.
func sameDisk(ctx context.Context, databaseURL, dataDir string) string {
	note := "Disk flush rows: a file in " + dataDir
	var pgDir string
	if conn, err := pgx.Connect(ctx, databaseURL); err == nil {
		_ = conn.QueryRow(ctx, "SHOW data_directory").Scan(&pgDir)
		_ = conn.Close(ctx)
	}
	var a, b syscall.Stat_t
	switch {
	case pgDir == "":
		return note + " (PostgreSQL does not show its data directory to this user: same disk unknown)."
	case syscall.Stat(pgDir, &a) != nil || syscall.Stat(dataDir, &b) != nil:
		return note + "; PostgreSQL's data directory " + pgDir + " is not visible here: same disk unknown."
	case a.Dev == b.Dev:
		return note + ", on the same device as PostgreSQL's data directory " + pgDir + "."
	default:
		return note + "; PostgreSQL's data directory " + pgDir + " is on **another device**: the rows measure the wrong disk."
	}
}

// readSecret is the secret in file, or "" (the runtime hosts then refuse the direct calls).
func readSecret(file string) string {
	s, _ := platformsecret.Load("", file)
	return s
}
