package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

var (
	// wheelhouse is the stack's LAMBDA_PIP_WHEELHOUSE: tests build wheels into it.
	wheelhouse string
	// npmMarkers is where the install scripts of lambda-marker-pkg would leave files.
	npmMarkers string
)

// startNPMRegistry serves lambda-marker-pkg 1.0.0, whose preinstall, install and
// postinstall scripts would each create a file in markDir, and proxies every other
// request to the npm registry.
func startNPMRegistry(markDir string) (*httptest.Server, error) {
	upstream, err := url.Parse("https://registry.npmjs.org/")
	if err != nil {
		return nil, err
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	director := proxy.Director
	proxy.Director = func(r *http.Request) {
		director(r)
		r.Host = upstream.Host
	}
	pkgJSON, _ := json.Marshal(map[string]any{
		"name": "lambda-marker-pkg", "version": "1.0.0", "main": "index.js",
		"scripts": map[string]string{
			"preinstall":  "touch " + filepath.Join(markDir, "preinstall"),
			"install":     "touch " + filepath.Join(markDir, "install"),
			"postinstall": "touch " + filepath.Join(markDir, "postinstall"),
		},
	})
	var tgz bytes.Buffer
	gz := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(gz)
	for _, f := range [][2]string{
		{"package/package.json", string(pkgJSON)},
		{"package/index.js", "module.exports = () => 'marker-pkg loaded';\n"},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f[0], Mode: 0o644, Size: int64(len(f[1])), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(f[1])); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	sum := sha512.Sum512(tgz.Bytes())
	integrity := "sha512-" + base64.StdEncoding.EncodeToString(sum[:])
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/lambda-marker-pkg":
			var version map[string]any
			_ = json.Unmarshal(pkgJSON, &version)
			version["dist"] = map[string]any{"tarball": srv.URL + "/lambda-marker-pkg/-/lambda-marker-pkg-1.0.0.tgz", "integrity": integrity}
			version["hasInstallScript"] = true
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{
				"name": "lambda-marker-pkg", "dist-tags": map[string]string{"latest": "1.0.0"},
				"versions": map[string]any{"1.0.0": version},
			})
		case "/lambda-marker-pkg/-/lambda-marker-pkg-1.0.0.tgz":
			w.Header().Set("Content-Type", "application/octet-stream")
			_, _ = w.Write(tgz.Bytes())
		default:
			proxy.ServeHTTP(w, r)
		}
	}))
	return srv, nil
}

// installDirs lists the stack's dependency install directories (one per lock).
func installDirs(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(stack.DataDir, "deps", "installs"))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func lockHash(t *testing.T, r reply) string {
	t.Helper()
	lock, _ := r.body["lock"].(map[string]any)
	require.NotNil(t, lock, r.raw)
	h, _ := lock["hash"].(string)
	require.Len(t, h, 64)
	return h
}

// TestDependenciesNode: a real npm package from the registry, warm afterwards; a second
// function with the same set installs nothing new; unknown packages and versions are 422
// with npm's own message and store nothing; install scripts never run.
func TestDependenciesNode(t *testing.T) {
	t.Parallel()
	src := "const isNumber = require('is-number');\nexports.handler = (e) => ({ n: isNumber(e.x), s: isNumber('abc') });\n"
	r := call(t, "POST", "/v1/functions", registerBody("dep-isn", "node", src,
		map[string]any{"dependencies": map[string]string{"is-number": "7.0.0"}}))
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	require.Equal(t, map[string]any{"is-number": "7.0.0"}, r.body["dependencies"])
	hash := lockHash(t, r)
	for i := range 2 {
		inv := invoke(t, "dep-isn", "node", fmt.Sprintf(`{"x": %d}`, i))
		require.Equal(t, http.StatusOK, inv.status, inv.raw)
		require.Equal(t, "succeeded", inv.body["status"], inv.raw)
		require.Equal(t, map[string]any{"n": true, "s": false}, inv.body["result"])
	}
	require.Contains(t, installDirs(t), hash)
	requireReadOnlyInstall(t, hash)

	// The same set for another function: the same lock, nothing installed again.
	before := installDirs(t)
	marker := filepath.Join(stack.DataDir, "deps", "installs", hash, ".lambda-deps.json")
	created, err := os.ReadFile(marker)
	require.NoError(t, err)
	src2 := "const isNumber = require('is-number');\nexports.handler = (e) => isNumber(e.x) ? 'number' : 'other';\n"
	r = call(t, "POST", "/v1/functions", registerBody("dep-isn-two", "node", src2,
		map[string]any{"dependencies": map[string]string{"is-number": "7.0.0"}}))
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	require.Equal(t, hash, lockHash(t, r))
	inv := invoke(t, "dep-isn-two", "node", `{"x": "7"}`)
	require.Equal(t, "number", inv.body["result"], inv.raw)
	require.ElementsMatch(t, before, installDirs(t), "no new install directory")
	again, err := os.ReadFile(marker)
	require.NoError(t, err)
	require.Equal(t, string(created), string(again), "the install was not redone")

	// Unknown package, unknown version: npm's message, nothing stored.
	for _, c := range []struct {
		deps map[string]string
		want string
	}{
		{map[string]string{"lambda-no-such-package-e2e-7f3a": "1.0.0"}, "404"},
		{map[string]string{"is-number": "999.0.0"}, "ETARGET"},
	} {
		r = call(t, "POST", "/v1/functions", registerBody("dep-bad", "node", src, map[string]any{"dependencies": c.deps}))
		require.Equal(t, http.StatusUnprocessableEntity, r.status, r.raw)
		require.Contains(t, r.body["detail"], c.want)
		require.Contains(t, r.body["detail"], "npm")
		require.Equal(t, http.StatusNotFound, call(t, "GET", "/v1/functions/dep-bad", "").status)
	}

	// A package whose install scripts would leave marker files: installed, used, not run.
	r = call(t, "POST", "/v1/functions", registerBody("dep-marker", "node",
		"const m = require('lambda-marker-pkg');\nexports.handler = () => m();\n",
		map[string]any{"dependencies": map[string]string{"lambda-marker-pkg": "^1.0.0"}}))
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	inv = invoke(t, "dep-marker", "node", `{}`)
	require.Equal(t, "marker-pkg loaded", inv.body["result"], inv.raw)
	ents, err := os.ReadDir(npmMarkers)
	require.NoError(t, err)
	require.Empty(t, ents, "no install script ran")
}

// requireReadOnlyInstall checks that the install directory of hash belongs to the
// platform (not to an installer's or a worker's uid), with directories 0755 and files
// 0644 (0755 when executable), under a parent that lists nothing (0711).
func requireReadOnlyInstall(t *testing.T, hash string) {
	t.Helper()
	installs := filepath.Join(stack.DataDir, "deps", "installs")
	fi, err := os.Stat(installs)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o711), fi.Mode().Perm())
	n := 0
	require.NoError(t, filepath.Walk(filepath.Join(installs, hash), func(p string, fi os.FileInfo, err error) error {
		require.NoError(t, err)
		n++
		require.Equal(t, uint32(os.Geteuid()), fi.Sys().(*syscall.Stat_t).Uid, p)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
		case fi.IsDir():
			require.Equal(t, os.ModeDir|0o755, fi.Mode(), p)
		default:
			require.Contains(t, []os.FileMode{0o644, 0o755}, fi.Mode(), p)
		}
		return nil
	}))
	require.Greater(t, n, 3)
}

// TestDependenciesConcurrent: two registrations of the same new set at once both succeed,
// with one lock and one install directory.
func TestDependenciesConcurrent(t *testing.T) {
	t.Parallel()
	before := installDirs(t)
	var wg sync.WaitGroup
	replies := make([]reply, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprintf("const isOdd = require('is-odd');\nexports.handler = (e) => [%d, isOdd(e.x)];\n", i)
			replies[i] = call(t, "POST", "/v1/functions", registerBody(fmt.Sprintf("dep-odd-%d", i), "node", src,
				map[string]any{"dependencies": map[string]string{"is-odd": "3.0.1"}}))
		}()
	}
	wg.Wait()
	for _, r := range replies {
		require.Equal(t, http.StatusCreated, r.status, r.raw)
	}
	hash := lockHash(t, replies[0])
	require.Equal(t, hash, lockHash(t, replies[1]))
	after := installDirs(t)
	require.Contains(t, after, hash)
	require.NotContains(t, before, hash, "a new set")
	for i := range 2 {
		inv := invoke(t, fmt.Sprintf("dep-odd-%d", i), "node", `{"x": 3}`)
		require.Equal(t, []any{float64(i), true}, inv.body["result"], inv.raw)
	}
}

// TestDependenciesPython: a wheel built offline from a tiny local project into the
// stack's wheelhouse; a requirement without a wheel (an sdist only) is refused.
func TestDependenciesPython(t *testing.T) {
	t.Parallel()
	proj := filepath.Join(t.TempDir(), "proj")
	require.NoError(t, os.MkdirAll(filepath.Join(proj, "e2egreet"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(proj, "e2egreet", "__init__.py"),
		[]byte("def hello(n):\n    return 'hello ' + n\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(proj, "pyproject.toml"), []byte(`[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
[project]
name = "e2egreet"
version = "0.3.0"
`), 0o644))
	out, err := exec.Command("/usr/bin/python3", "-I", "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
		"--no-index", "-w", wheelhouse, proj).CombinedOutput()
	require.NoError(t, err, "%s", out)
	// An sdist only: refused (installing it would run its build).
	sdist := filepath.Join(t.TempDir(), "e2esdist")
	require.NoError(t, os.MkdirAll(sdist, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(sdist, "pyproject.toml"), []byte(
		"[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n[project]\nname = \"e2esdist\"\nversion = \"1.0\"\n"), 0o644))
	tarball := filepath.Join(wheelhouse, "e2esdist-1.0.tar.gz")
	cmd := exec.Command("tar", "-czf", tarball, "-C", filepath.Dir(sdist), "e2esdist")
	require.NoError(t, cmd.Run())

	src := "import e2egreet\n\ndef handler(event, context):\n    return e2egreet.hello(event['n'])\n"
	r := call(t, "POST", "/v1/functions", registerBody("dep-py", "python", src,
		map[string]any{"dependencies": map[string]string{"e2egreet": "0.3.0"}}))
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	hash := lockHash(t, r)
	for _, n := range []string{"py", "again"} {
		inv := invoke(t, "dep-py", "python", `{"n": "`+n+`"}`)
		require.Equal(t, http.StatusOK, inv.status, inv.raw)
		require.Equal(t, "hello "+n, inv.body["result"], inv.raw)
	}
	requireReadOnlyInstall(t, hash)
	_, err = os.Stat(filepath.Join(stack.DataDir, "deps", "installs", hash, "wheels"))
	require.ErrorIs(t, err, os.ErrNotExist, "the downloaded wheels are not kept beside the install")

	r = call(t, "POST", "/v1/functions", registerBody("dep-py-sdist", "python", src,
		map[string]any{"dependencies": map[string]string{"e2esdist": "1.0"}}))
	require.Equal(t, http.StatusUnprocessableEntity, r.status, r.raw)
	require.Contains(t, r.body["detail"], "no wheel of e2esdist")
	require.Equal(t, http.StatusNotFound, call(t, "GET", "/v1/functions/dep-py-sdist", "").status)
}

// TestDependenciesRust: a crate from Debian's packaged registry (librust-itoa-dev),
// built offline with exactly the locked versions.
func TestDependenciesRust(t *testing.T) {
	t.Parallel()
	src := `use serde_json::{json, Value};

fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    let mut buf = itoa::Buffer::new();
    Ok(json!(buf.format(event["n"].as_i64().unwrap_or(0)).to_string()))
}
`
	r := call(t, "POST", "/v1/functions", registerBody("dep-rs", "rust", src,
		map[string]any{"dependencies": map[string]string{"itoa": "1"}, "timeout_ms": 30000}))
	require.Equal(t, http.StatusCreated, r.status, r.raw)
	hash := lockHash(t, r)
	for _, n := range []int{1234, 7} {
		inv := invoke(t, "dep-rs", "rust", fmt.Sprintf(`{"n": %d}`, n))
		require.Equal(t, http.StatusOK, inv.status, inv.raw)
		require.Equal(t, fmt.Sprint(n), inv.body["result"], inv.raw)
	}
	requireReadOnlyInstall(t, hash)
	r = call(t, "POST", "/v1/functions", registerBody("dep-rs-bad", "rust", src,
		map[string]any{"dependencies": map[string]string{"lambda-no-such-crate": "1"}}))
	require.Equal(t, http.StatusUnprocessableEntity, r.status, r.raw)
	require.Contains(t, r.body["detail"], "librust-")
}
