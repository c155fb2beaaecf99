// Command lambda-soak is `make soak`: the whole platform under mixed load while a nemesis
// injects faults, a checker over the recorded history, and the report written to
// RELIABILITY.md (internal/soak) with a timeline plot beside it.
package main

import (
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
	"strings"
	"syscall"
	"time"

	"github.com/lambda-microservice/lambda/internal/devstack"
	"github.com/lambda-microservice/lambda/internal/soak"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], devstack.OSEnviron(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lambda-soak:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, environ map[string]string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("lambda-soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := fs.Duration("duration", 10*time.Minute, "how long the load runs")
	seed := fs.Uint64("seed", 1, "the nemesis' seed (the order of the faults and the gaps between them)")
	faults := fs.String("faults", strings.Join(soak.AllFaults, ","), "fault kinds, comma-separated")
	out := fs.String("out", "RELIABILITY.md", "file whose generated section gets the report (empty: stdout only)")
	plotPath := fs.String("plot", "docs/reliability-timeline.svg", "the timeline plot (SVG; empty: none)")
	history := fs.String("history", "", "write the history (JSON lines) here (default: in the temporary data dir)")
	command := fs.String("command", "", "the command named in the report (default: lambda-soak and its flags)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var kinds []string
	for _, k := range strings.Split(*faults, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		known := false
		for _, a := range soak.AllFaults {
			known = known || a == k
		}
		if !known {
			return fmt.Errorf("unknown fault %q (have %s)", k, strings.Join(soak.AllFaults, ", "))
		}
		kinds = append(kinds, k)
	}
	if kinds == nil {
		kinds = []string{}
	}
	if *command == "" {
		*command = strings.Join(append([]string{"lambda-soak"}, args...), " ")
	}
	res, err := soak.Run(ctx, soak.Config{Duration: *d, Seed: *seed, Faults: kinds, HistoryPath: *history,
		Environ: environ, Log: stderr})
	if res == nil || len(res.Records) == 0 {
		return errors.Join(err, errors.New("no requests recorded"))
	}
	sum := soak.Summarize(res)
	plotRel := ""
	if *plotPath != "" {
		if perr := soak.Plot(res, *plotPath); perr != nil {
			err = errors.Join(err, fmt.Errorf("plot: %w", perr))
		} else if *out != "" {
			plotRel, _ = filepath.Rel(filepath.Dir(*out), *plotPath)
		} else {
			plotRel = *plotPath
		}
	}
	md := soak.Markdown(res, sum, *command, plotRel, machine(), gitRevision(ctx))
	fmt.Fprintln(stdout, md)
	if *out != "" {
		if werr := soak.WriteSection(*out, md); werr != nil {
			return errors.Join(err, werr)
		}
		fmt.Fprintln(stderr, "lambda-soak: wrote", *out)
	}
	if err != nil {
		return err
	}
	if sum.Lost > 0 || sum.Dup > 0 {
		return fmt.Errorf("%d acknowledged records lost, %d duplicated", sum.Lost, sum.Dup)
	}
	return nil
}

// machine describes this machine for the report.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s/%s", runtime.NumCPU(), model, runtime.GOOS, runtime.GOARCH)
}

func gitRevision(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		rev += " with local changes"
	}
	return "Code: " + rev + "."
}
