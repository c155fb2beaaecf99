package prereq_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/testkit/prereq"
)

func TestBinary(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LAMBDA_BIN_DIR", dir)
	require.Equal(t, dir, prereq.BinDir())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lambda"), []byte("#!/bin/sh\n"), 0o755))
	require.Equal(t, filepath.Join(dir, "lambda"), prereq.Binary(t, "lambda"))

	// A missing binary: skipped here, failed under CI.
	t.Setenv("CI", "")
	var inner *testing.T
	t.Run("missing", func(t *testing.T) { inner = t; prereq.Binary(t, "gateway"); t.Error("not reached") })
	require.True(t, inner.Skipped(), "skipped outside CI")
	t.Setenv("CI", "true")
	var failed bool
	ft := &fakeT{TB: t, failed: &failed}
	func() {
		defer func() { _ = recover() }()
		prereq.Missing(ft, "x")
	}()
	require.True(t, failed, "under CI a missing prerequisite fails the test")
}

// fakeT records Fatalf instead of ending the real test.
type fakeT struct {
	testing.TB
	failed *bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(string, ...any) {
	*f.failed = true
	panic("fatal")
}
