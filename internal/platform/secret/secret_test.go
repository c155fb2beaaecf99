package secret_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/platform/secret"
)

func TestLoadAndEqual(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "s")
	require.NoError(t, secret.WriteFile(file, " from-the-file-0123456789\n"))
	fi, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), "a secret file is its owner's only")

	got, err := secret.Load("inline-0123456789abcdef", file)
	require.NoError(t, err)
	require.Equal(t, "from-the-file-0123456789", got, "the file wins, trimmed")
	got, err = secret.Load("inline-0123456789abcdef", "")
	require.NoError(t, err)
	require.Equal(t, "inline-0123456789abcdef", got)
	got, err = secret.Load("", "")
	require.NoError(t, err)
	require.Empty(t, got)
	_, err = secret.Load("short", "")
	require.Error(t, err)
	_, err = secret.Load("", filepath.Join(t.TempDir(), "missing"))
	require.Error(t, err)

	require.True(t, secret.Equal("inline-0123456789abcdef", []byte("inline-0123456789abcdef")))
	require.False(t, secret.Equal("inline-0123456789abcdeF", []byte("inline-0123456789abcdef")))
	require.False(t, secret.Equal("", nil), "no secret configured matches nothing")
	n, err := secret.New()
	require.NoError(t, err)
	require.Len(t, n, 32)
}
