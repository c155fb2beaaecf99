// Package cli is the user side of the `lambda` binary: cobra commands that log in,
// deploy functions and pipelines from files, invoke and run them, watch executions
// and runs, follow logs and manage schedules and sessions — thin adapters over the
// platform's public HTTP API (package client). The binary mounts them next to its
// server commands; ExitCode maps what they return to the documented exit codes.
package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/lambda-microservice/lambda/internal/cli/client"
	"github.com/lambda-microservice/lambda/internal/cli/config"
	"github.com/lambda-microservice/lambda/internal/cli/ui"
)

// GroupID is the cobra group of every user command; the root must have it (Mount adds it).
const GroupID = "user"

// Group is the "User commands" group for the root's help.
func Group() *cobra.Group { return &cobra.Group{ID: GroupID, Title: "User commands:"} }

// Options are the commands' connections to the process: streams, environment, and
// how to tell a terminal. Zero fields take the process's own.
type Options struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
	// Getenv reads LAMBDA_API, LAMBDA_TOKEN, LAMBDA_PROFILE, NO_COLOR and TERM.
	Getenv func(string) string
	// IsTerminal reports whether one of In, Out or Err is a terminal (default: an
	// *os.File whose descriptor is a terminal).
	IsTerminal func(any) bool
	// ConfigDir holds config.yaml, the profiles (default os.UserConfigDir()/lambda).
	ConfigDir string
	// HTTPClient replaces the API client's keep-alive default.
	HTTPClient *http.Client
	// UserAgent is sent with every request (default "lambda-cli").
	UserAgent string
	// Now is the clock that unfinished steps' durations are counted to (default time.Now).
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.In == nil {
		o.In = os.Stdin
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Err == nil {
		o.Err = os.Stderr
	}
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	if o.IsTerminal == nil {
		o.IsTerminal = isTerminal
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.UserAgent == "" {
		o.UserAgent = "lambda-cli"
	}
	return o
}

func isTerminal(v any) bool {
	f, ok := v.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(f.Fd())
}

// Mount adds the "User commands" group (unless the root has it) and the commands to
// root. The root should set SilenceErrors and SilenceUsage (the commands' errors are
// printed by PrintError), and its main should end with os.Exit(Execute(ctx, root,
// os.Stderr)), or PrintError and os.Exit(ExitCode(err)) after its own ExecuteContext.
func Mount(root *cobra.Command, opts Options) {
	if !root.ContainsGroup(GroupID) {
		root.AddGroup(Group())
	}
	root.AddCommand(Commands(opts)...)
}

// Commands are the user commands, each in GroupID: login, fn, invoke, exec, logs,
// pipeline, run, schedule, session and completion.
func Commands(opts Options) []*cobra.Command {
	a := &app{opts: opts.withDefaults()}
	cmds := []*cobra.Command{
		a.loginCmd(), a.fnCmd(), a.invokeCmd(), a.execCmd(), a.logsCmd(),
		a.pipelineCmd(), a.runCmd(), a.scheduleCmd(), a.sessionCmd(), a.completionCmd(),
	}
	for _, c := range cmds {
		c.GroupID = GroupID
		a.globalFlags(c)
		c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	}
	return cmds
}

// app is the state shared by the commands of one Commands call.
type app struct {
	opts    Options
	profile string
	output  string
	verbose bool
}

// globalFlags are on every top-level command, so they work after any subcommand.
func (a *app) globalFlags(c *cobra.Command) {
	f := c.PersistentFlags()
	f.StringVar(&a.profile, "profile", "", "profile from `lambda login` (default: the current one; env LAMBDA_PROFILE)")
	f.StringVarP(&a.output, "output", "o", "table", "output format: table, json or yaml")
	f.BoolVarP(&a.verbose, "verbose", "v", false, "say more (the request id of a failed call)")
}

// action is a command's body: it gets a context and its arguments.
type action func(ctx context.Context, args []string) error

// run wraps an action: checks the output format before anything is sent, and marks
// errors for PrintError under -v.
func (a *app) run(f action) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		switch a.output {
		case "table", "json", "yaml":
		default:
			return usagef("unknown output format %q: want table, json or yaml", a.output)
		}
		err := f(cmd.Context(), args)
		if err != nil && a.verbose {
			return verboseError{err}
		}
		return err
	}
}

// client resolves the profile and returns a client for it; a missing or unknown
// profile is a usage error (nothing is sent).
func (a *app) client() (*client.Client, error) {
	path, err := config.Path(a.opts.ConfigDir)
	if err != nil {
		return nil, err
	}
	f, err := config.Load(path)
	if err != nil {
		return nil, usageError{err}
	}
	p, _, err := f.Resolve(a.profile, a.opts.Getenv)
	if err != nil {
		return nil, usageError{err}
	}
	return a.newClient(p.API, p.Token)
}

func (a *app) newClient(api, token string) (*client.Client, error) {
	opts := []client.Option{client.WithUserAgent(a.opts.UserAgent)}
	if a.opts.HTTPClient != nil {
		opts = append(opts, client.WithHTTPClient(a.opts.HTTPClient))
	}
	c, err := client.New(api, token, opts...)
	if err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// tty reports whether w is a terminal.
func (a *app) tty(w any) bool { return a.opts.IsTerminal(w) }

// color reports whether w gets colours: a terminal, NO_COLOR unset, TERM not dumb.
func (a *app) color(w any) bool {
	return a.tty(w) && a.opts.Getenv("NO_COLOR") == "" && a.opts.Getenv("TERM") != "dumb"
}

func (a *app) outStyles() ui.Styles { return ui.NewStyles(a.opts.Out, a.color(a.opts.Out)) }
func (a *app) errStyles() ui.Styles { return ui.NewStyles(a.opts.Err, a.color(a.opts.Err)) }

// pollEvery is how long each long-poll of a wait lasts: short on a terminal so the
// live view follows the steps, long otherwise (fewer requests; the server answers at
// once when the wait ends either way).
func (a *app) pollEvery() time.Duration {
	if a.tty(a.opts.Err) {
		return time.Second
	}
	return 30 * time.Second
}

// structured writes v as JSON or YAML when -o asks for it and reports whether it did.
func (a *app) structured(v any) (bool, error) {
	switch a.output {
	case "json":
		return true, ui.JSON(a.opts.Out, v)
	case "yaml":
		return true, ui.YAML(a.opts.Out, v)
	}
	return false, nil
}

func (a *app) printf(format string, args ...any) { fmt.Fprintf(a.opts.Out, format, args...) }

func (a *app) eprintf(format string, args ...any) { fmt.Fprintf(a.opts.Err, format, args...) }

// group is a command that only holds subcommands: without one it prints its help,
// with an unknown one it is a usage error.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  args(cobra.NoArgs),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	c.AddCommand(subs...)
	return c
}

// args makes an argument check's error a usage error.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}
