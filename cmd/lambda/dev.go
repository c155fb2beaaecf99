package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/lambda-microservice/lambda/internal/devstack"
)

func newDevCmd(e Env, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "dev",
		Short: "Run the whole platform on this machine (what `make run` does)",
		Long: `Run the whole platform on this machine: PostgreSQL and Redis (the running servers or private
instances), Prometheus (when installed), the Temporal dev server with its Web UI, the local
OpenFaaS provider, the OpenFaaS gateway, the runtime functions, the api and the worker.
Children's logs go to LAMBDA_DATA_DIR/logs (default ./.data/logs). Ctrl-C stops everything;
a child that exits unexpectedly stops everything too, and the command fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), e, stdout)
		},
	}
}

func runDev(ctx context.Context, e Env, stdout io.Writer) error {
	opts, err := devstack.LoadOptions(e)
	if err != nil {
		return err
	}
	opts.Out = stdout
	fmt.Fprintf(stdout, "starting lambda-microservice (data in %s)\n", opts.DataDir)
	st, err := devstack.Start(ctx, opts)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "\nstopping (Ctrl-C again to kill at once)…")
		// A second Ctrl-C ends this process; the children die with it (parent-death signal).
		signal.Reset(os.Interrupt, syscall.SIGTERM)
	case <-st.Done():
		fmt.Fprintln(stdout, "stopping…")
	}
	stopErr := st.Stop()
	if err := st.Err(); err != nil {
		return err
	}
	if stopErr != nil {
		return stopErr
	}
	fmt.Fprintln(stdout, "stopped")
	return nil
}
