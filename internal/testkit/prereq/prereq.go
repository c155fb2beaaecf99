// Package prereq is how integration tests meet a missing prerequisite (a built binary, a
// server, root): the test is skipped on a developer's machine and fails under CI (CI set),
// where .ci/run and `make test` provide everything, so a green CI run never hides a
// skipped test.
package prereq

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Missing skips t, or fails it under CI, naming what is missing.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("prerequisite missing (CI=%s): %s", os.Getenv("CI"), msg)
	}
	t.Skipf("prerequisite missing: %s", msg)
}

// BinDir is where the platform's binaries are built: LAMBDA_BIN_DIR (make test sets it)
// or the repository's bin/.
func BinDir() string {
	if dir := os.Getenv("LAMBDA_BIN_DIR"); dir != "" {
		return dir
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "bin")
}

// Binary returns the absolute path of the built binary name (lambda, lambda-runtime,
// gateway), or meets it as Missing.
func Binary(t testing.TB, name string) string {
	t.Helper()
	bin, _ := filepath.Abs(filepath.Join(BinDir(), name))
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		Missing(t, "%s is not built (make build gateway, or set LAMBDA_BIN_DIR)", bin)
	}
	return bin
}
