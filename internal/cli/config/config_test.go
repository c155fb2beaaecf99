package config

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSaveLoad(t *testing.T) {
	t.Parallel()
	path, err := Path(filepath.Join(t.TempDir(), "nested", "lambda"))
	require.NoError(t, err)

	f, err := Load(path)
	require.NoError(t, err, "a missing file is an empty one")
	require.Equal(t, File{}, f)

	f = File{Current: "dev", Profiles: map[string]Profile{"dev": {API: "http://127.0.0.1:8000", Token: "lmk_1"}}}
	require.NoError(t, f.Save(path))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	dir, err := os.Stat(filepath.Dir(path))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o700), dir.Mode().Perm())

	// Saving again over a file someone made world-readable makes it private again.
	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, f.Save(path))
	st, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	got, err := Load(path)
	require.NoError(t, err)
	require.Equal(t, f, got)

	require.NoError(t, os.WriteFile(path, []byte("profiles: {dev: {api: x, tokn: y}}\n"), 0o600))
	_, err = Load(path)
	require.ErrorContains(t, err, "tokn", "unknown fields are errors, not silently dropped")
}

func TestResolve(t *testing.T) {
	t.Parallel()
	f := File{Current: "dev", Profiles: map[string]Profile{
		"dev":  {API: "http://dev:8000", Token: "d"},
		"prod": {API: "https://prod", Token: "p"},
	}}
	tests := []struct {
		name     string
		file     File
		flag     string
		env      map[string]string
		want     Profile
		wantName string
		wantErr  error
	}{
		{"current", f, "", nil, Profile{"http://dev:8000", "d"}, "dev", nil},
		{"flag", f, "prod", nil, Profile{"https://prod", "p"}, "prod", nil},
		{"env profile", f, "", map[string]string{"LAMBDA_PROFILE": "prod"}, Profile{"https://prod", "p"}, "prod", nil},
		{"flag beats env", f, "dev", map[string]string{"LAMBDA_PROFILE": "prod"}, Profile{"http://dev:8000", "d"}, "dev", nil},
		{"env overrides fields", f, "prod", map[string]string{"LAMBDA_API": "http://x", "LAMBDA_TOKEN": "t"}, Profile{"http://x", "t"}, "prod", nil},
		{"unknown flag profile", f, "staging", nil, Profile{}, "staging", ErrUnknownProfile},
		{"unknown env profile", f, "", map[string]string{"LAMBDA_PROFILE": "staging"}, Profile{}, "staging", ErrUnknownProfile},
		{"no file, env only", File{}, "", map[string]string{"LAMBDA_TOKEN": "t"}, Profile{DefaultAPI, "t"}, "default", nil},
		{"no file, nothing", File{}, "", nil, Profile{}, "default", ErrNotLoggedIn},
		{"no file, API only", File{}, "", map[string]string{"LAMBDA_API": "http://x"}, Profile{"http://x", ""}, "default", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, name, err := tt.file.Resolve(tt.flag, func(k string) string { return tt.env[k] })
			require.ErrorIs(t, err, tt.wantErr)
			require.Equal(t, tt.want, p)
			require.Equal(t, tt.wantName, name)
		})
	}
}
