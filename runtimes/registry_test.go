package runtimes_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lambda-microservice/lambda/runtimes"
)

func TestBundledRegistry(t *testing.T) {
	reg, err := runtimes.Load("")
	require.NoError(t, err)
	rt, ok := reg.Lookup("RS")
	require.True(t, ok, "aliases are case-insensitive")
	require.Equal(t, "rust", rt.Title)
	require.Equal(t, []runtimes.Package{{Name: "librust-serde-json-dev", Check: "/usr/share/cargo/registry/serde_json-*"}}, rt.Packages)
	py, _ := reg.Lookup("python")
	require.Equal(t, []runtimes.Package{{Name: "python3-pip", Check: "/usr/lib/python3/dist-packages/pip"}}, py.Packages)
	for _, title := range []string{"python", "node", "rust"} {
		rt, _ := reg.Lookup(title)
		require.NotNil(t, rt.Deps, "%s declares how its dependencies install", title)
		require.Equal(t, title, rt.Deps.Title)
	}
}

// A language's dependency installer is its registry entry's data: a fourth language
// brings its own block, and a broken block fails the registry's load.
func TestDependenciesEntry(t *testing.T) {
	doc := func(deps string) []byte {
		return []byte("runtimes:\n  - title: perl\n    function: runtime-perl\n    source_file: h.pl\n    command: [perl]\n" + deps)
	}
	reg, err := runtimes.Parse(doc(`    dependencies:
      name: '^[A-Za-z:]+$'
      version: '^[0-9.]+$'
      resolve: [{args: [cpanm, --showdeps, "{{range .Deps}}{{.Name}}{{end}}"], network: registry}]
      lock: [cpanfile.snapshot]
      count: '(?m)^  [A-Z]'
      install: [{args: [cpanm, --installdeps, .], network: registry}]
      runtime_env: {PERL5LIB: "{{.Dir}}/lib/perl5"}
`), t.TempDir(), "test.yaml")
	require.NoError(t, err)
	rt, _ := reg.Lookup("perl")
	require.NotNil(t, rt.Deps)
	_, err = rt.Deps.Validate(map[string]string{"JSON::PP": "4.16"})
	require.NoError(t, err)

	reg, err = runtimes.Parse(doc(""), t.TempDir(), "test.yaml")
	require.NoError(t, err)
	rt, _ = reg.Lookup("perl")
	require.Nil(t, rt.Deps, "no block: the language takes no dependencies")

	_, err = runtimes.Parse(doc("    dependencies:\n      name: '^x$'\n      resolv: []\n"), t.TempDir(), "test.yaml")
	require.Error(t, err, "a misspelt field fails the load")
}

func TestPackages(t *testing.T) {
	dir := t.TempDir()
	doc := func(pkg string) []byte {
		return []byte("runtimes:\n  - title: perl\n    function: runtime-perl\n    source_file: h.pl\n    command: [perl]\n" + pkg)
	}
	reg, err := runtimes.Parse(doc("    packages:\n      - {name: libjson-perl, check: \""+dir+"/JSON-*\"}\n"), dir, "test.yaml")
	require.NoError(t, err)
	rt, _ := reg.Lookup("perl")
	require.Len(t, rt.Packages, 1)
	require.False(t, rt.Packages[0].Installed())
	require.NoError(t, os.WriteFile(filepath.Join(dir, "JSON-4.10"), nil, 0o644))
	require.True(t, rt.Packages[0].Installed(), "the glob matches once the path exists")

	for _, bad := range []string{
		"    packages:\n      - {name: libjson-perl, check: relative/path}\n",
		"    packages:\n      - {check: /usr/share/perl5/JSON.pm}\n",
		"    packages:\n      - {name: x, check: /y, version: 1}\n",
	} {
		_, err := runtimes.Parse(doc(bad), dir, "test.yaml")
		require.Error(t, err, bad)
	}
}

// A registry file installed alone (a ConfigMap next to the api) still finds the promote
// templates of the bundled languages.
func TestPromoteTemplateFallsBackToTheBundledOne(t *testing.T) {
	data, err := os.ReadFile("runtimes.yaml")
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "runtimes.yaml")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	reg, err := runtimes.Load(path)
	require.NoError(t, err)
	for _, title := range []string{"python", "node"} {
		rt, ok := reg.Lookup(title)
		require.True(t, ok)
		b, err := rt.PromoteTemplate()
		require.NoError(t, err, title)
		require.Contains(t, string(b), "__CELLS__")
	}
	rust, _ := reg.Lookup("rust")
	require.Empty(t, rust.Session)
	_, err = rust.PromoteTemplate()
	require.Error(t, err)
}
