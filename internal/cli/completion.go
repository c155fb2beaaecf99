package cli

import (
	"context"

	"github.com/spf13/cobra"
)

func (a *app) completionCmd() *cobra.Command {
	var c *cobra.Command
	c = &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script",
		Long: `Print the completion script of the whole lambda command for bash, zsh or fish;
function and pipeline names complete from the platform of the current profile.` + exitCodesHelp,
		Example: `  source <(lambda completion bash)
  lambda completion zsh > "${fpath[1]}/_lambda"
  lambda completion fish > ~/.config/fish/completions/lambda.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      args(cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs)),
	}
	c.RunE = a.run(func(_ context.Context, args []string) error {
		root, out := c.Root(), a.opts.Out
		switch args[0] {
		case "bash":
			return root.GenBashCompletionV2(out, true)
		case "zsh":
			return root.GenZshCompletion(out)
		default:
			return root.GenFishCompletion(out, true)
		}
	})
	return c
}
