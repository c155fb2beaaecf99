// Package e2e runs the whole platform (devstack: PostgreSQL, Redis, Temporal dev server, the
// real OpenFaaS gateway, the local provider, the runtime hosts, the api and the worker) on
// free ports with a fresh database, and drives it only the ways a user would: its public
// HTTP API, the real bin/lambda CLI (cli_test.go: newCLIUser) and the web console in
// headless Chromium (console_test.go: signInConsole). Every test of the package shares the
// one platform; a feature adds its checks as tests here, each with a tenant of its own. The
// registry adds a fourth language (Perl, from runtimes/testdata) next to the bundled three,
// without any Go change.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lambda-microservice/lambda/internal/devstack"
)

var stack *devstack.Stack

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "lambda-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	reg, err := writeRegistry(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	environ := devstack.OSEnviron()
	// Dependencies: npm through a local registry (one test package of its own, the rest
	// proxied to the npm registry), Python wheels from a wheelhouse the tests fill.
	npmReg, err := startNPMRegistry(filepath.Join(dir, "npm-markers"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer npmReg.Close()
	environ["LAMBDA_NPM_REGISTRY"] = npmReg.URL + "/"
	wheelhouse = filepath.Join(dir, "wheelhouse")
	npmMarkers = filepath.Join(dir, "npm-markers")
	for _, d := range []string{wheelhouse, npmMarkers} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
	}
	environ["LAMBDA_PIP_WHEELHOUSE"] = wheelhouse
	// Callbacks to the tests' own receivers on loopback.
	environ["LAMBDA_CALLBACK_ALLOW_CIDRS"] = "127.0.0.1/32"
	// Notebook sessions expire after 4 s without a cell, so the idle test sees it happen.
	environ["LAMBDA_SESSION_IDLE"] = "4s"
	opts, err := devstack.LoadOptions(environ)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if opts.BinDir == "" {
		fmt.Fprintln(os.Stderr, "e2e: LAMBDA_BIN_DIR is not set: run the end-to-end tests with `make test`")
		return 1
	}
	opts.Isolate(filepath.Join(dir, "data"))
	opts.RuntimesFile = reg
	opts.RulesDir = ""
	opts.Worker = "on"
	opts.TemporalHeadless = false // the console links executions to the Temporal UI
	if opts.TemporalBin == "" {
		opts.TemporalBin = devstack.DefaultTemporalBin(environ)
	}
	opts.Out = os.Stderr
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	stack, err = devstack.Start(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting the platform:", err)
		return 1
	}
	code := m.Run()
	if err := stack.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: stopping the platform:", err)
	}
	return code
}

// writeRegistry writes a registry holding the bundled runtimes plus the test-only Perl one,
// with each language's folder linked next to it.
func writeRegistry(dir string) (string, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return "", err
	}
	bundled, err := os.ReadFile(filepath.Join(root, "runtimes", "runtimes.yaml"))
	if err != nil {
		return "", err
	}
	perl, err := os.ReadFile(filepath.Join(root, "runtimes", "testdata", "runtimes.yaml"))
	if err != nil {
		return "", err
	}
	for _, lang := range []string{"python", "node", "rust"} {
		if err := os.Symlink(filepath.Join(root, "runtimes", lang), filepath.Join(dir, lang)); err != nil {
			return "", err
		}
	}
	if err := os.Symlink(filepath.Join(root, "runtimes", "testdata", "perl"), filepath.Join(dir, "perl")); err != nil {
		return "", err
	}
	_, perlEntries, _ := strings.Cut(string(perl), "runtimes:\n")
	path := filepath.Join(dir, "runtimes.yaml")
	return path, os.WriteFile(path, []byte(strings.TrimRight(string(bundled), "\n")+"\n\n"+perlEntries), 0o644)
}
