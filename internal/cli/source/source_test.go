package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/internal/cli/client"
)

func TestNameFromFile(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"add.py":                              "add",
		"dir/Hello_World.mjs":                 "hello-world",
		"resize--image  v2.js":                "resize-image-v2",
		"_private.rs":                         "private",
		"x" + strings.Repeat("y", 80) + ".py": "x" + strings.Repeat("y", 62),
		"a-.py":                               "a",
	}
	for file, want := range tests {
		got, err := NameFromFile(file)
		require.NoError(t, err, file)
		require.Equal(t, want, got, file)
		require.Regexp(t, NameRE, got)
	}
	for _, bad := range []string{"2fa.py", "___.js", ".py"} {
		_, err := NameFromFile(bad)
		require.ErrorContains(t, err, "give --name", bad)
	}
}

func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	return dir
}

func TestLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		file  string
		opts  Options
		want  client.FunctionSpec
	}{
		{"python, no manifest", map[string]string{"add.py": "x"}, "add.py", Options{},
			client.FunctionSpec{Name: "add", Language: "python", Source: "x"}},
		{"python requirements", map[string]string{"f.py": "x", "requirements.txt": "# c\nRequests[socks] == 2.31.0 # pinned\nnumpy>=1.26,<2\n\nsix\n", "package.json": `{"dependencies":{"no":"1"}}`},
			"f.py", Options{}, client.FunctionSpec{Name: "f", Language: "python", Source: "x",
				Dependencies: map[string]string{"Requests[socks]": "==2.31.0", "numpy": ">=1.26,<2", "six": "*"}}},
		{"node from .cjs with package.json", map[string]string{"h.cjs": "x", "package.json": `{"name":"h","dependencies":{"lodash":"^4.17.21"},"devDependencies":{"jest":"29"}}`},
			"h.cjs", Options{}, client.FunctionSpec{Name: "h", Language: "node", Source: "x", Dependencies: map[string]string{"lodash": "^4.17.21"}}},
		{"node without dependencies", map[string]string{"h.js": "x", "package.json": `{"name":"h"}`},
			"h.js", Options{}, client.FunctionSpec{Name: "h", Language: "node", Source: "x"}},
		{"rust cargo", map[string]string{"sq.rs": "x", "Cargo.toml": "[package]\nname=\"sq\"\n[dependencies]\nitoa = \"1\"\nregex = { version = \"1.10\", features = [\"std\"] }\n[dev-dependencies]\nx = \"1\"\n"},
			"sq.rs", Options{}, client.FunctionSpec{Name: "sq", Language: "rust", Source: "x", Dependencies: map[string]string{"itoa": "1", "regex": "1.10"}}},
		{"overrides: alias picks the manifest", map[string]string{"script": "x", "requirements.txt": "six\n"}, "script",
			Options{Name: "mine", Language: "py"}, client.FunctionSpec{Name: "mine", Language: "py", Source: "x", Dependencies: map[string]string{"six": "*"}}},
		{"unknown language override: no manifest", map[string]string{"a.rb": "x", "requirements.txt": "six\n"}, "a.rb",
			Options{Language: "ruby"}, client.FunctionSpec{Name: "a", Language: "ruby", Source: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := write(t, tt.files)
			got, err := Load(filepath.Join(dir, tt.file), tt.opts)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   map[string]string
		file    string
		opts    Options
		wantErr string
	}{
		{"missing", nil, "add.py", Options{}, "add.py: no such file"},
		{"extension", map[string]string{"a.go": "x"}, "a.go", Options{}, `unknown extension ".go"`},
		{"no extension", map[string]string{"a": "x"}, "a", Options{}, `unknown extension ""`},
		{"bad name", map[string]string{"a.py": "x"}, "a.py", Options{Name: "A"}, `invalid name "A"`},
		{"requirement option", map[string]string{"a.py": "x", "requirements.txt": "--index-url https://x\n"}, "a.py", Options{}, "line 1"},
		{"requirement url", map[string]string{"a.py": "x", "requirements.txt": "six\npkg @ https://x/pkg.whl\n"}, "a.py", Options{}, "line 2"},
		{"package.json", map[string]string{"a.js": "x", "package.json": "{"}, "a.js", Options{}, "not valid JSON"},
		{"cargo toml", map[string]string{"a.rs": "x", "Cargo.toml": "[dependencies\n"}, "a.rs", Options{}, "not valid TOML"},
		{"cargo git", map[string]string{"a.rs": "x", "Cargo.toml": "[dependencies]\ny = { git = \"https://x\" }\n"}, "a.rs", Options{}, `dependency "y"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := write(t, tt.files)
			_, err := Load(filepath.Join(dir, tt.file), tt.opts)
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}
