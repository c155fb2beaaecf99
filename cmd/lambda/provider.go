package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/lambda-microservice/lambda/internal/platform/logging"
	"github.com/lambda-microservice/lambda/internal/platform/metrics"
	"github.com/lambda-microservice/lambda/internal/provider"
)

func newProviderCmd(e Env, stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "provider",
		Short: "Run the local OpenFaaS provider: runtime functions as supervised runtime-host processes",
		Long: `Run the local OpenFaaS provider (the laptop stand-in for faas-netes) on LAMBDA_PROVIDER_ADDR
(default 127.0.0.1:8081). Point the OpenFaaS gateway's functions_provider_url at it.
Every replica of a deployed function runs LAMBDA_RUNTIME_BIN (default: lambda-runtime next to
this executable) on its own free loopback port.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProvider(cmd.Context(), e, stderr)
		},
	}
}

func runProvider(ctx context.Context, e Env, stderr io.Writer) error {
	var cfg provider.Config
	if err := e.parse(&cfg); err != nil {
		return fmt.Errorf("provider config: %w", err)
	}
	cfg.Environ = e
	log, err := logging.New(cfg.Log, "provider", stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	p, err := provider.New(cfg, log, metrics.NewRegistry())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("provider: listen on %s: %w", cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           p.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       cfg.ProxyTimeout + 5*time.Second,
		WriteTimeout:      cfg.ProxyTimeout + 5*time.Second,
		ErrorLog:          zap.NewStdLog(log),
	}
	log.Info("provider listening", zap.String("server.address", ln.Addr().String()))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	log.Info("provider stopping")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.StopGrace+5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if cerr := p.Close(sctx); cerr != nil {
		log.Error("stop replicas", logging.Err(cerr))
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("provider: serve: %w", err)
	}
	return nil
}
