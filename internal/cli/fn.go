package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lambda-microservice/lambda/internal/cli/client"
	"github.com/lambda-microservice/lambda/internal/cli/source"
	"github.com/lambda-microservice/lambda/internal/cli/ui"
)

func (a *app) fnCmd() *cobra.Command {
	return group("fn", "Deploy and manage functions",
		a.fnDeployCmd(), a.fnListCmd(), a.fnGetCmd(), a.fnVersionsCmd(), a.fnRemoveCmd())
}

func (a *app) fnDeployCmd() *cobra.Command {
	var (
		name, language    string
		env               []string
		timeout, cacheTTL time.Duration
		memory            int
	)
	c := &cobra.Command{
		Use:   "deploy FILE",
		Short: "Create a function from a file, or add a version when it changed",
		Long: `Create a function from a file, or add a version to it when the source or settings
changed; says "created add v1", "updated add v2" or "unchanged add v2".

The language comes from the extension (.py python; .js, .mjs, .cjs node; .rs rust)
unless --language says; the name from the file name (lower case, other characters as
"-") unless --name says. Dependencies come from the manifest beside the file:
requirements.txt (name==1.2 lines), package.json ("dependencies") or Cargo.toml
([dependencies]).` + exitCodesHelp,
		Example: `  lambda fn deploy add.py
  lambda fn deploy src/handler.mjs --name resize --timeout 30s --memory 256 --env SIZE=64
  lambda fn deploy square.rs --cache-ttl 1m -o json`,
		Args: args(cobra.ExactArgs(1)),
	}
	f := c.Flags()
	f.StringVar(&name, "name", "", "function name (default: from the file name)")
	f.StringVar(&language, "language", "", "language: python, node or rust (default: from the extension)")
	f.StringArrayVar(&env, "env", nil, "environment variable K=V for the function (repeatable)")
	f.DurationVar(&timeout, "timeout", 0, "execution timeout, e.g. 30s (default: the platform's)")
	f.IntVar(&memory, "memory", 0, "memory limit in MB (default: the platform's)")
	f.DurationVar(&cacheTTL, "cache-ttl", 0, "cache results per event for this long, e.g. 1m (0: off)")
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		spec, err := source.Load(args[0], source.Options{Name: name, Language: language})
		if err != nil {
			return usageError{err}
		}
		if spec.Env, err = parseEnv(env); err != nil {
			return err
		}
		if c.Flags().Changed("timeout") {
			if timeout < time.Millisecond {
				return usagef("--timeout must be at least 1ms, got %s", timeout)
			}
			spec.TimeoutMS = ptr(int(timeout / time.Millisecond))
		}
		if c.Flags().Changed("memory") {
			if memory <= 0 {
				return usagef("--memory must be a positive number of MB, got %d", memory)
			}
			spec.MemoryMB = ptr(memory)
		}
		if c.Flags().Changed("cache-ttl") {
			if cacheTTL < 0 || cacheTTL%time.Second != 0 {
				return usagef("--cache-ttl must be whole seconds, got %s", cacheTTL)
			}
			spec.CacheTTLS = ptr(int(cacheTTL / time.Second))
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		fn, created, err := cl.PutFunction(ctx, spec.Name, spec)
		verb := "updated"
		switch {
		case client.IsStatus(err, 404):
			fn, err = cl.CreateFunction(ctx, spec)
			verb = "created"
		case err == nil && !created:
			verb = "unchanged"
		}
		if err != nil {
			return err
		}
		if ok, err := a.structured(fn); ok {
			return err
		}
		a.printf("%s %s\n", verb, ui.FunctionVersion(fn.Name, fn.Version))
		return nil
	})
	return c
}

func parseEnv(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	env := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--env %q: want KEY=VALUE", kv)
		}
		env[k] = v
	}
	return env, nil
}

func ptr[T any](v T) *T { return &v }

func (a *app) fnListCmd() *cobra.Command {
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List functions",
		Long:    "List the functions of your tenant with their latest version." + exitCodesHelp,
		Example: `  lambda fn ls
  lambda fn ls -o json | jq -r '.functions[].name'`,
		Args: args(cobra.NoArgs),
	}
	c.RunE = a.run(func(ctx context.Context, _ []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		fns, err := cl.ListFunctions(ctx)
		if err != nil {
			return err
		}
		if ok, err := a.structured(map[string]any{"functions": fns}); ok {
			return err
		}
		rows := make([][]string, 0, len(fns))
		for _, f := range fns {
			rows = append(rows, []string{f.Name, f.Language, strconv.Itoa(f.Version),
				ui.Millis(float64(f.TimeoutMS)), fmt.Sprintf("%d MB", f.MemoryMB), ui.Time(&f.CreatedAt)})
		}
		a.printf("%s", a.outStyles().Table([]string{"NAME", "LANGUAGE", "VERSION", "TIMEOUT", "MEMORY", "UPDATED"}, rows))
		return nil
	})
	return c
}

func (a *app) fnGetCmd() *cobra.Command {
	var version int
	var showSource bool
	c := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a function's latest version (or one version) and its settings",
		Long:  "Show a function's latest version, or the one --version names, with its settings; --source also prints its source." + exitCodesHelp,
		Example: `  lambda fn get add
  lambda fn get add --version 1 --source`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeFunctions,
	}
	c.Flags().IntVar(&version, "version", 0, "a version (default: the latest)")
	c.Flags().BoolVar(&showSource, "source", false, "print the source too")
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		if c.Flags().Changed("version") && version < 1 {
			return usagef("--version must be 1 or more, got %d", version)
		}
		cl, err := a.client()
		if err != nil {
			return err
		}
		var fn client.Function
		if version > 0 {
			fn, err = cl.GetVersion(ctx, args[0], version)
		} else if fn, err = cl.GetFunction(ctx, args[0]); err == nil && showSource && fn.Source == "" {
			fn, err = cl.GetVersion(ctx, args[0], fn.Version)
		}
		if err != nil {
			return err
		}
		if !showSource {
			fn.Source = ""
		}
		if ok, err := a.structured(fn); ok {
			return err
		}
		rows := [][]string{
			{"name:", fn.Name}, {"language:", fn.Language}, {"version:", strconv.Itoa(fn.Version)},
			{"sha256:", fn.SHA256}, {"timeout:", ui.Millis(float64(fn.TimeoutMS))},
			{"memory:", fmt.Sprintf("%d MB", fn.MemoryMB)}, {"cache ttl:", (time.Duration(fn.CacheTTLS) * time.Second).String()},
			{"created:", ui.Time(&fn.CreatedAt)},
		}
		for _, k := range slices.Sorted(maps.Keys(fn.Env)) {
			rows = append(rows, []string{"env:", k + "=" + fn.Env[k]})
		}
		for _, k := range slices.Sorted(maps.Keys(fn.Dependencies)) {
			rows = append(rows, []string{"dependency:", k + " " + fn.Dependencies[k]})
		}
		if fn.Lock != nil {
			rows = append(rows, []string{"lock:", fmt.Sprintf("%s (packages: %d)", fn.Lock.Hash, fn.Lock.Packages)})
		}
		a.printf("%s", a.outStyles().Fields(rows))
		if showSource {
			a.printf("\n%s", block(fn.Source))
		}
		return nil
	})
	return c
}

func (a *app) fnVersionsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:               "versions NAME",
		Short:             "List a function's versions",
		Long:              "List a function's versions, oldest first; every version stays callable with invoke --version." + exitCodesHelp,
		Example:           `  lambda fn versions add`,
		Args:              args(cobra.ExactArgs(1)),
		ValidArgsFunction: a.completeFunctions,
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		vs, err := cl.ListVersions(ctx, args[0])
		if err != nil {
			return err
		}
		if ok, err := a.structured(map[string]any{"versions": vs}); ok {
			return err
		}
		rows := make([][]string, 0, len(vs))
		for _, v := range vs {
			rows = append(rows, []string{strconv.Itoa(v.Version), short(v.SHA256, 12), ui.Time(&v.CreatedAt)})
		}
		a.printf("%s", a.outStyles().Table([]string{"VERSION", "SHA256", "CREATED"}, rows))
		return nil
	})
	return c
}

func (a *app) fnRemoveCmd() *cobra.Command {
	c := &cobra.Command{
		Use:               "rm NAME...",
		Aliases:           []string{"delete"},
		Short:             "Delete functions (their executions stay)",
		Long:              "Delete functions; their execution records stay." + exitCodesHelp,
		Example:           `  lambda fn rm add hello-js`,
		Args:              args(cobra.MinimumNArgs(1)),
		ValidArgsFunction: a.completeFunctions,
	}
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		cl, err := a.client()
		if err != nil {
			return err
		}
		for _, name := range args {
			if err := cl.DeleteFunction(ctx, name); err != nil {
				return err
			}
			a.printf("deleted %s\n", name)
		}
		return nil
	})
	return c
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// completeFunctions completes a function name from the platform (nothing when it
// cannot be reached).
func (a *app) completeFunctions(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 && cmd.Name() != "rm" {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	cl, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	fns, err := cl.ListFunctions(cmd.Context())
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, 0, len(fns))
	for _, f := range fns {
		names = append(names, f.Name+"\t"+f.Language)
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}
