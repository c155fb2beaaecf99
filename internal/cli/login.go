package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/charmbracelet/x/term"
	"github.com/spf13/cobra"

	"github.com/lambda-microservice/lambda/internal/cli/config"
)

func (a *app) loginCmd() *cobra.Command {
	var token string
	c := &cobra.Command{
		Use:   "login [API_URL]",
		Short: "Save the platform's address and an API key to a profile",
		Long: `Save the platform's address (default ` + config.DefaultAPI + `) and an API key to a
profile in the user's config directory (config.yaml, mode 0600), after checking them
with one call. The key comes from --token, LAMBDA_TOKEN, or standard input (asked
for without echo on a terminal). The profile becomes the current one; other commands
use it unless --profile or LAMBDA_PROFILE names another, and LAMBDA_API/LAMBDA_TOKEN
override its fields.` + exitCodesHelp,
		Example: `  lambda login --token "$(cat .data/admin-token)"
  lambda login https://lambda.example.com --profile prod < key.txt`,
		Args: args(cobra.MaximumNArgs(1)),
	}
	c.Flags().StringVar(&token, "token", "", "the API key (default: LAMBDA_TOKEN, else read from standard input)")
	c.RunE = a.run(func(ctx context.Context, args []string) error {
		path, err := config.Path(a.opts.ConfigDir)
		if err != nil {
			return err
		}
		f, err := config.Load(path)
		if err != nil {
			return usageError{err}
		}
		name := a.profile
		if name == "" {
			name = a.opts.Getenv("LAMBDA_PROFILE")
		}
		if name == "" {
			name = config.DefaultProfile
		}
		api := a.opts.Getenv("LAMBDA_API")
		if len(args) == 1 {
			api = args[0]
		}
		if api == "" {
			api = f.Profiles[name].API
		}
		if api == "" {
			api = config.DefaultAPI
		}
		if token == "" {
			token = a.opts.Getenv("LAMBDA_TOKEN")
		}
		if token == "" {
			if token, err = a.readToken(); err != nil {
				return err
			}
		}
		cl, err := a.newClient(api, token)
		if err != nil {
			return err
		}
		if _, err := cl.ListFunctions(ctx); err != nil {
			return err
		}
		if f.Profiles == nil {
			f.Profiles = map[string]config.Profile{}
		}
		f.Profiles[name] = config.Profile{API: cl.BaseURL(), Token: token}
		f.Current = name
		if err := f.Save(path); err != nil {
			return err
		}
		a.printf("logged in to %s as profile %q (saved in %s)\n", cl.BaseURL(), name, path)
		return nil
	})
	return c
}

// readToken reads the key from standard input: without echo on a terminal.
func (a *app) readToken() (string, error) {
	if f, ok := a.opts.In.(interface{ Fd() uintptr }); ok && a.tty(a.opts.In) {
		a.eprintf("API key: ")
		raw, err := term.ReadPassword(f.Fd())
		a.eprintf("\n")
		if err != nil {
			return "", fmt.Errorf("read the API key: %w", err)
		}
		return strings.TrimSpace(string(raw)), nil
	}
	line, err := bufio.NewReader(a.opts.In).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read the API key: %w", err)
	}
	if line = strings.TrimSpace(line); line == "" {
		return "", usagef("no API key: give --token, set LAMBDA_TOKEN or pipe it on standard input")
	}
	return line, nil
}
