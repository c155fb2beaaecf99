// Command lambda is the platform binary. Its server commands run the platform's
// processes: `lambda api`, `lambda worker`, `lambda provider`, `lambda migrate` and
// `lambda dev` (the whole platform on one machine); its user commands (package cli)
// deploy, invoke and watch functions, pipelines and schedules over the public API.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/caarlos0/env/v11"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/cli"
	"github.com/lambda-microservice/lambda/internal/platform/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], environ(os.Environ()), os.Stdin, os.Stdout, os.Stderr)
	cli.PrintError(os.Stderr, err)
	os.Exit(cli.ExitCode(err))
}

// Env is the process environment, read only in run and handed to each subcommand.
type Env map[string]string

func environ(kv []string) Env {
	e := Env{}
	for _, s := range kv {
		if k, v, ok := strings.Cut(s, "="); ok {
			e[k] = v
		}
	}
	return e
}

// parse fills a component's config struct from the environment (caarlos0/env tags).
func (e Env) parse(cfg any) error {
	return env.ParseWithOptions(cfg, env.Options{Environment: e})
}

// gcPercent is the garbage collector's target for the serving processes (api, worker)
// unless the operator sets GOGC: their live heap is a few MiB, so Go's default (100)
// collects several times a second under load; 400 trades tens of MiB for fewer
// collections (BENCHMARKS.md, run 13). GOMEMLIMIT, when set, still caps the heap.
const gcPercent = 400

// defaultGC applies gcPercent unless GOGC is set.
func (e Env) defaultGC() {
	if _, set := e["GOGC"]; !set {
		debug.SetGCPercent(gcPercent)
	}
}

// serving is the configuration of a serving process (api, worker).
type serving interface {
	validate() error
	logConfig() logging.Config
}

// serve is the RunE of a serving process: it reads the process's configuration from the
// environment, validates it, builds its logger, applies the GC default and runs it.
func serve[C serving](e Env, stderr io.Writer, name string, run func(context.Context, C, *zap.Logger) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		var cfg C
		if err := e.parse(&cfg); err != nil {
			return fmt.Errorf("%s config: %w", name, err)
		}
		if s, ok := any(&cfg).(interface{ setEnv(Env) }); ok {
			s.setEnv(e) // settings read through the environment itself (dependencies)
		}
		if err := cfg.validate(); err != nil {
			return err
		}
		log, err := logging.New(cfg.logConfig(), name, stderr)
		if err != nil {
			return err
		}
		defer func() { _ = log.Sync() }()
		e.defaultGC()
		return run(cmd.Context(), cfg, log)
	}
}

// groupServer is the help group of the commands that run the platform's processes.
const groupServer = "server"

// serverCommands are the commands that run the platform's processes.
func serverCommands(e Env, stdout, stderr io.Writer) []*cobra.Command {
	return []*cobra.Command{
		newAPICmd(e, stdout, stderr),
		newWorkerCmd(e, stdout, stderr),
		newProviderCmd(e, stdout, stderr),
		newMigrateCmd(e, stdout, stderr),
		newDevCmd(e, stdout, stderr),
	}
}

func run(ctx context.Context, args []string, e Env, stdin io.Reader, stdout, stderr io.Writer) error {
	root := &cobra.Command{
		Use:   "lambda",
		Short: "lambda-microservice: register scripts over HTTP and run them fast or durably",
		Long: `lambda-microservice: register scripts over HTTP and run them fast or durably.

The server commands run the platform's processes (lambda dev runs them all on this
machine). The user commands talk to a platform over its public API: start with
lambda login, then lambda fn deploy FILE and lambda invoke NAME.

` + cli.ExitCodesHelp,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddGroup(&cobra.Group{ID: groupServer, Title: "Server commands:"})
	for _, c := range serverCommands(e, stdout, stderr) {
		c.GroupID = groupServer
		root.AddCommand(c)
	}
	// The user commands (a client of the public API) share the binary.
	cli.Mount(root, cli.Options{In: stdin, Out: stdout, Err: stderr, Getenv: func(k string) string { return e[k] }})
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}
